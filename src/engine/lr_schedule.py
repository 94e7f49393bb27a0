"""Per-step learning rates: linear warm-up, then cosine, step or constant."""

import numpy as np

from src.config import Config


def build_lr_schedule(cfg: Config, steps_per_epoch: int) -> np.ndarray:
    """One float32 learning rate per optimisation step of the whole run.

    Warm-up rises linearly from ``warmup_lr`` to ``base_lr`` over ``warmup_length`` epochs. Cosine then decays
    to ``min_lr`` at the last step; ``step_lr`` multiplies by ``lr_gamma`` every ``lr_adjust`` epochs.
    """
    total = cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_length * steps_per_epoch, total)
    steps = np.arange(total, dtype=np.float64)
    if cfg.lr_scheduler == "cosine_lr":
        decay_steps = max(total - warmup, 1)
        progress = (steps - warmup) / decay_steps
        lr = cfg.min_lr + 0.5 * (cfg.base_lr - cfg.min_lr) * (1.0 + np.cos(np.pi * progress))
    elif cfg.lr_scheduler == "step_lr":
        lr = cfg.base_lr * cfg.lr_gamma ** (steps // (cfg.lr_adjust * steps_per_epoch))
    else:
        lr = np.full(total, cfg.base_lr)
    if warmup:
        ramp = cfg.warmup_lr + (cfg.base_lr - cfg.warmup_lr) * steps[:warmup] / warmup
        lr[:warmup] = ramp
    return lr.astype(np.float32)
