"""MixUp / CutMix on whole batches, with timm's ``mixup_prob`` and ``switch_prob`` semantics.

MindSpore's ``RandomApply`` and ``RandomChoice`` only give equal odds between operators, so the per-batch
choice is made here in Python and the chosen MindSpore operator (``MixUpBatch`` or ``CutMixBatch``) is
applied to the batch:
- with probability ``1 - mixup_prob`` the batch passes unchanged;
- otherwise, when both ``mix_up`` and ``cutmix`` alphas are positive, CutMix with probability
  ``switch_prob`` and MixUp otherwise; when only one is positive, that one.
MixUpBatch draws one lambda per batch and pairs each image with a random one of the batch (timm's
``batch`` mode); CutMixBatch draws its box and lambda per image, and mixes the labels by the pasted area.
"""

import random
from collections.abc import Callable

import mindspore.dataset as ds
import numpy as np
from mindspore.dataset import vision

from src.config import Config

BatchOp = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class BatchMix:
    """Callable for ``Dataset.map`` over (images NCHW float32, one-hot labels float32) batches."""

    def __init__(self, mixup: BatchOp | None, cutmix: BatchOp | None, prob: float, switch_prob: float,
                 seed: int):
        if mixup is None and cutmix is None:
            raise ValueError("BatchMix needs a MixUp or a CutMix operator")
        self._mixup = mixup
        self._cutmix = cutmix
        self._prob = prob
        self._switch_prob = switch_prob
        self._random = random.Random(seed)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._random.random() >= self._prob:
            return images, labels
        use_cutmix = self._mixup is None or (
            self._cutmix is not None and self._random.random() < self._switch_prob)
        return (self._cutmix if use_cutmix else self._mixup)(images, labels)


def batch_mix(cfg: Config) -> BatchMix | None:
    """The batch mixer the config asks for, or None when MixUp and CutMix are both off. MixUpBatch mixes whole
    batches, the only ``mixup_mode`` a Config accepts."""
    if (cfg.mix_up <= 0 and cfg.cutmix <= 0) or cfg.mixup_prob <= 0:
        return None
    mixup = vision.MixUpBatch(float(cfg.mix_up)) if cfg.mix_up > 0 else None
    cutmix = vision.CutMixBatch(vision.ImageBatchFormat.NCHW, float(cfg.cutmix)) if cfg.cutmix > 0 else None
    # Seeded from the data set seed so that ds.config.set_seed makes the choices repeatable.
    return BatchMix(mixup, cutmix, float(cfg.mixup_prob), float(cfg.switch_prob), ds.config.get_seed())
