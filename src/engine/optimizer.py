"""Momentum SGD (optionally Nesterov), AdamW or the RepOptimizer, with no weight decay on BatchNorm parameters,
biases and RepOpt branch scales."""

import numpy as np
from mindspore import Tensor, nn

from src.config import Config
from src.engine.adamw import AdamW
from src.engine.momentum_sgd import MomentumSGD
from src.engine.repoptimizer import RepOptimizer

_NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")
# The search net's per-channel branch scales (scale_conv, scale_1x1, scale_identity) are gains like BN's gamma;
# decaying them would pull the searched hyper-parameters towards 0 (the official code exempts them too).
_SCALE_MARKER = ".scale_"


def _decays(param) -> bool:
    return not param.name.endswith(_NO_DECAY_SUFFIXES) and _SCALE_MARKER not in param.name


def split_decay_groups(params: list) -> tuple[list, list]:
    """(with weight decay, without): BatchNorm gains/shifts, biases and RepOpt scales are not decayed."""
    decay = [p for p in params if _decays(p)]
    no_decay = [p for p in params if not _decays(p)]
    return decay, no_decay


def build_optimizer(cfg: Config, params: list, lr_schedule: np.ndarray,
                    grad_mults: dict[str, np.ndarray] | None = None) -> nn.Cell:
    """The optimiser ``cfg`` names; ``optimizer: repopt`` needs ``grad_mults`` (see src/engine/networks.py)."""
    decay, no_decay = split_decay_groups(params)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"order_params": params},
    ]
    learning_rate = Tensor(lr_schedule)
    if cfg.optimizer == "adamw":
        return AdamW(groups, learning_rate=learning_rate, beta1=cfg.beta[0], beta2=cfg.beta[1], eps=cfg.eps)
    if cfg.optimizer == "repopt":
        if grad_mults is None:
            raise ValueError("optimizer: repopt needs the gradient multipliers of build_training_network")
        return RepOptimizer(groups, grad_mults, learning_rate, cfg.momentum, use_nesterov=cfg.nesterov)
    return MomentumSGD(groups, learning_rate=learning_rate, momentum=cfg.momentum, use_nesterov=cfg.nesterov)
