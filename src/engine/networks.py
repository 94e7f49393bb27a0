"""The network a config trains: RepVGG, the RepOpt hyper-search net, or the plain RepOpt-VGG.

Two keys choose (RepOptimizer's two stages): ``repopt_search: true`` trains the search net (``RepOptSearchNet``, every
branch scale trainable) with the config's plain optimizer and writes its scales next to the checkpoints;
``optimizer: repopt`` trains the plain RepOpt-VGG, started from the scales in ``repopt_scales`` and stepped by the
RepOptimizer with their gradient multipliers. Otherwise the net is the RepVGG of ``arch``.
"""

from pathlib import Path

import numpy as np
from mindspore import nn

from src.config import Config
from src.engine.repoptimizer import grad_multipliers, initialise_from_scales
from src.logger import get_logger
from src.models import create_model
from src.models.from_checkpoint import load_pretrained
from src.models.repopt import create_repopt_model, extract_scales, repopt_name
from src.models.repopt_scales import load_scales, save_scales


def build_network(cfg: Config) -> nn.Cell:
    """A freshly initialised network of the kind ``cfg`` trains (also the float32 twin used for evaluation)."""
    if cfg.repopt_search:
        return create_repopt_model(cfg.arch, cfg.num_classes, search=True)
    if cfg.optimizer == "repopt":
        return create_repopt_model(cfg.arch, cfg.num_classes)
    return create_model(cfg.arch, num_classes=cfg.num_classes)


def searched_scales_path(cfg: Config) -> Path:
    """Where a search run writes its scales: ``<train_url>/RepOptVGG-<arch>-scales.npz``."""
    return Path(cfg.train_url) / f"{repopt_name(cfg.arch)}-scales.npz"


def build_training_network(cfg: Config) -> tuple[nn.Cell, dict[str, np.ndarray] | None]:
    """The network to train, with its starting weights, and the RepOptimizer's gradient multipliers (None unless
    ``optimizer: repopt``). ``--pretrained`` weights replace the start from the scales, and so does ``--resume``,
    which restores its checkpoint after this."""
    net = build_network(cfg)
    log = get_logger()
    grad_mults = None
    if cfg.optimizer == "repopt":
        scales = load_scales(cfg.repopt_scales, net)
        # The paper's start: each plain kernel equals the CSLA block's merged kernel at its initialisation.
        initialise_from_scales(net, scales)
        grad_mults = grad_multipliers(net, scales)
        log.info(f"RepOpt-VGG: {net.arch} initialised from the scales in {cfg.repopt_scales}; the RepOptimizer "
                 f"multiplies the gradients of {len(grad_mults)} convolutions")
    elif cfg.repopt_search:
        log.info(f"RepOpt hyper-search: training {net.arch}; its scales are written to {searched_scales_path(cfg)} "
                 "with every checkpoint")
    if cfg.pretrained:
        load_pretrained(net, cfg.pretrained)
    return net, grad_mults


def write_searched_scales(cfg: Config, net: nn.Cell) -> Path:
    """Save the scales of the search net ``net`` (atomically) for ``optimizer: repopt`` runs to read."""
    return save_scales(searched_scales_path(cfg), cfg.arch, extract_scales(net))
