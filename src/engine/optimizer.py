"""Momentum SGD (optionally Nesterov) or AdamW, with no weight decay on BatchNorm parameters and biases."""

import numpy as np
from mindspore import Tensor, nn

from src.config import Config

_NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")


def split_decay_groups(params: list) -> tuple[list, list]:
    """(with weight decay, without): BatchNorm gains/shifts and biases are not decayed."""
    decay = [p for p in params if not p.name.endswith(_NO_DECAY_SUFFIXES)]
    no_decay = [p for p in params if p.name.endswith(_NO_DECAY_SUFFIXES)]
    return decay, no_decay


def build_optimizer(cfg: Config, params: list, lr_schedule: np.ndarray) -> nn.Optimizer:
    decay, no_decay = split_decay_groups(params)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"order_params": params},
    ]
    learning_rate = Tensor(lr_schedule)
    if cfg.optimizer == "adamw":
        return nn.AdamWeightDecay(groups, learning_rate=learning_rate, beta1=cfg.beta[0], beta2=cfg.beta[1],
                                  eps=cfg.eps)
    return nn.Momentum(groups, learning_rate=learning_rate, momentum=cfg.momentum, use_nesterov=cfg.nesterov)
