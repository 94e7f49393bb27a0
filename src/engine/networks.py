"""The network a config trains: RepVGG, the RepOpt hyper-search net, or the plain RepOpt-VGG.

Two keys choose (RepOptimizer's two stages): ``repopt_search: true`` trains the search net (``RepOptSearchNet``, every
branch scale trainable) with the config's plain optimizer and writes its scales next to the checkpoints;
``optimizer: repopt`` trains the plain RepOpt-VGG, started from the scales in ``repopt_scales`` and stepped by the
RepOptimizer with their gradient multipliers. Otherwise the net is the RepVGG of ``arch``.

``qat: true`` (quantisation-aware training) trains instead the fake-quantised fused network of the ``pretrained``
checkpoint (``src.models.fake_quant``), whose activation ranges stop moving for the last ``qat_freeze_epochs``.
"""

from pathlib import Path

import numpy as np
from mindspore import nn

from src.config import Config
from src.engine.repoptimizer import grad_multipliers, initialise_from_scales
from src.logger import get_logger
from src.models import create_model
from src.models.fake_quant import FakeQuantVGG, fake_quant_network
from src.models.from_checkpoint import load_network, load_pretrained
from src.models.repopt import create_repopt_model, extract_scales, repopt_name
from src.models.repopt_scales import load_scales, save_scales


def build_network(cfg: Config) -> nn.Cell:
    """A freshly initialised network of the kind ``cfg`` trains (also the float32 twin used for evaluation)."""
    if cfg.qat:
        return fake_quant_network(create_model(cfg.arch, num_classes=cfg.num_classes, deploy=True))
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
    if cfg.qat:
        return _qat_start(cfg), None
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


def _qat_start(cfg: Config) -> FakeQuantVGG:
    trained, description = load_network(cfg.pretrained, cfg.arch, cfg.num_classes)
    net = trained if isinstance(trained, FakeQuantVGG) else fake_quant_network(trained)
    get_logger().info(f"quantisation-aware training of {cfg.arch} from {cfg.pretrained} ({description}): "
                      f"{len(net.convs)} fused convolutions, int8 simulated; activation ranges frozen for the "
                      f"last {cfg.qat_freeze_epochs} of {cfg.epochs} epochs")
    return net


def set_qat_ranges(cfg: Config, net: nn.Cell, epoch: int) -> None:
    """Before training epoch ``epoch`` (0-based): activation ranges move by EMA, or stay fixed in the last
    ``qat_freeze_epochs`` epochs. Set every epoch, so that a resumed run is in the right phase too."""
    if cfg.qat:
        net.freeze_ranges(epoch >= cfg.epochs - cfg.qat_freeze_epochs)


def write_searched_scales(cfg: Config, net: nn.Cell) -> Path:
    """Save the scales of the search net ``net`` (atomically) for ``optimizer: repopt`` runs to read."""
    return save_scales(searched_scales_path(cfg), cfg.arch, extract_scales(net))
