"""The train step: overflow skips the update, clipping bounds the global norm, EMA really moves (a RepVGG training
in graph mode at every AMP level is in tests/system/test_graph_mode_training.py)."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from src.checkpoint_files import BN_BACKUP_PREFIX
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler


def tiny_net() -> nn.Cell:
    ms.set_seed(0)
    return nn.SequentialCell([nn.Dense(6, 16), nn.ReLU(), nn.Dense(16, 3)])


def batch(seed: int = 0, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    images = ms.Tensor((rng.normal(size=(8, 6)) * scale).astype(np.float32))
    targets = ms.Tensor(np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)])
    return images, targets


def weights_of(net: nn.Cell) -> dict:
    return {p.name: p.asnumpy().copy() for p in net.trainable_params()}


def make_step(net, lr=0.1, scaler=None, clip=0.0, ema_decay=None):
    optimizer = nn.SGD(net.trainable_params(), learning_rate=lr)
    return TrainStep(NetWithLoss(net, SoftTargetCrossEntropy()), optimizer,
                     scaler or make_loss_scaler(False, 1.0), clip,
                     ema_source=net.get_parameters() if ema_decay else None,
                     ema_decay=ema_decay or 0.0)


def test_soft_target_cross_entropy_equals_the_formula():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], np.float32)
    targets = np.array([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5]], np.float32)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(targets * log_probs).sum(1).mean()
    actual = SoftTargetCrossEntropy()(ms.Tensor(logits), ms.Tensor(targets)).asnumpy()
    assert actual == pytest.approx(expected, rel=1e-6)


def test_overflow_skips_the_update_and_halves_the_dynamic_scale():
    net = tiny_net()
    scaler = make_loss_scaler(True, 3.0e38)  # loss * scale overflows float32
    step = make_step(net, scaler=scaler)
    before = weights_of(net)
    _, finite = step(*batch(scale=1e4))
    assert not bool(finite.asnumpy())
    for name, value in weights_of(net).items():
        np.testing.assert_array_equal(value, before[name])
    assert float(step.loss_scale.asnumpy()) == pytest.approx(1.5e38, rel=1e-6)
    _, finite = step(*batch())
    assert bool(finite.asnumpy())
    assert any(not np.array_equal(v, before[k]) for k, v in weights_of(net).items())


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_a_non_finite_batch_changes_no_state_not_even_batchnorm_statistics(mode):
    ms.set_context(mode=mode)
    try:
        ms.set_seed(0)
        net = nn.SequentialCell([nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dense(64, 3)])
        step = TrainStep(NetWithLoss(net, SoftTargetCrossEntropy()),
                         nn.Momentum(net.trainable_params(), 0.1, 0.9), make_loss_scaler(False, 1.0), 1.0,
                         ema_source=net.get_parameters(), ema_decay=0.5)
        rng = np.random.default_rng(0)
        images = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
        targets = ms.Tensor(np.eye(3, dtype=np.float32)[[0, 2]])
        step(ms.Tensor(images), targets)  # one good step: moments and statistics hold real values
        before = {p.name: p.asnumpy().copy() for p in step.get_parameters()}
        images[0, 0, 0, 0] = np.inf
        _, finite = step(ms.Tensor(images), targets)
        assert not bool(finite.asnumpy())
        after = {p.name: p.asnumpy() for p in step.get_parameters()}
        assert any(name.endswith("moving_mean") for name in after)
        for name, value in before.items():
            if not name.startswith(BN_BACKUP_PREFIX):
                np.testing.assert_array_equal(after[name], value, err_msg=name)
        _, finite = step(ms.Tensor(np.ones_like(images)), targets)
        assert bool(finite.asnumpy())
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


def test_clipping_bounds_the_global_norm_of_the_update():
    clip = 0.01
    net = tiny_net()
    step = make_step(net, lr=1.0, clip=clip)
    before = weights_of(net)
    step(*batch(scale=50.0))
    update = np.sqrt(sum(((weights_of(net)[k] - v) ** 2).sum() for k, v in before.items()))
    assert update == pytest.approx(clip, rel=1e-4)  # plain SGD, lr 1: the update is the clipped gradient

    unclipped = tiny_net()
    make_step(unclipped, lr=1.0)(*batch(scale=50.0))
    free_update = np.sqrt(sum(((weights_of(unclipped)[k] - v) ** 2).sum() for k, v in before.items()))
    assert free_update > 10 * clip


def test_ema_follows_the_weights_with_its_decay():
    net = tiny_net()
    decay = 0.5
    step = make_step(net, ema_decay=decay)
    first = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    step(*batch())
    after = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    ema = {p.name.removeprefix("ema."): p.asnumpy() for p in step.ema}
    for name in first:
        np.testing.assert_allclose(ema[name], decay * first[name] + (1 - decay) * after[name], rtol=1e-6)
    assert any(not np.array_equal(ema[n], first[n]) for n in first)
