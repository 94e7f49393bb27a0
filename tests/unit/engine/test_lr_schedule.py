"""Learning-rate schedules per step, and which parameters get weight decay."""

import math

import numpy as np
import pytest

from src.config import Config
from src.engine.lr_schedule import build_lr_schedule
from src.engine.optimizer import split_decay_groups
from src.models import create_model


def test_warmup_rises_linearly_then_cosine_reaches_min_lr():
    cfg = Config(epochs=10, warmup_length=2, base_lr=0.4, warmup_lr=0.0, min_lr=1e-6, lr_scheduler="cosine_lr")
    lr = build_lr_schedule(cfg, steps_per_epoch=5)
    assert len(lr) == 50
    np.testing.assert_allclose(lr[:10], 0.4 * np.arange(10) / 10, rtol=1e-6)
    assert lr[10] == pytest.approx(0.4, rel=1e-6)  # first step after warm-up: the peak
    halfway = 10 + 20
    assert lr[halfway] == pytest.approx(1e-6 + 0.5 * (0.4 - 1e-6) * (1 + math.cos(math.pi * 0.5)), rel=1e-5)
    assert lr[-1] == pytest.approx(1e-6 + 0.5 * (0.4 - 1e-6) * (1 + math.cos(math.pi * 39 / 40)), rel=1e-5)
    assert np.all(np.diff(lr[10:]) <= 0)


def test_step_schedule_decays_every_lr_adjust_epochs():
    cfg = Config(epochs=6, warmup_length=0, base_lr=0.1, lr_scheduler="step_lr", lr_adjust=2, lr_gamma=0.5)
    lr = build_lr_schedule(cfg, steps_per_epoch=3)
    np.testing.assert_allclose(lr, np.repeat([0.1, 0.1, 0.05, 0.05, 0.025, 0.025], 3), rtol=1e-6)


def test_constant_schedule_after_warmup():
    cfg = Config(epochs=3, warmup_length=1, base_lr=0.2, warmup_lr=0.1, lr_scheduler="constant_lr")
    lr = build_lr_schedule(cfg, steps_per_epoch=2)
    np.testing.assert_allclose(lr, [0.1, 0.15, 0.2, 0.2, 0.2, 0.2], rtol=1e-6)


def test_batchnorm_and_biases_get_no_weight_decay():
    net = create_model("RepVGG-A0-cifar", num_classes=4)
    decay, no_decay = split_decay_groups(net.trainable_params())
    assert all(p.name.endswith("weight") for p in decay)
    assert {p.name.rsplit(".", 1)[-1] for p in no_decay} == {"gamma", "beta", "bias"}
    assert len(decay) + len(no_decay) == len(net.trainable_params())
    assert "linear.weight" in {p.name for p in decay}
