"""A RepVGG trains in graph mode at every AMP level: one graph compilation per level, the most expensive check
of the train step, so it runs with the system tier."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from src.engine.amp import apply_amp
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler
from src.models import create_model


def make_step(net: nn.Cell, lr: float) -> TrainStep:
    optimizer = nn.SGD(net.trainable_params(), learning_rate=lr)
    return TrainStep(NetWithLoss(net, SoftTargetCrossEntropy()), optimizer, make_loss_scaler(False, 1.0), 0.0,
                     ema_source=None, ema_decay=0.0)


@pytest.mark.parametrize("amp_level", ["O0", "O1", "O2"])
def test_repvgg_trains_in_graph_mode_at_every_amp_level(amp_level, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        ms.set_seed(0)
        net = create_model("RepVGG-A0-cifar", num_classes=4)
        step = make_step(apply_amp(net, amp_level), lr=0.02)
        rng = np.random.default_rng(0)
        images = ms.Tensor(rng.normal(size=(8, 3, 16, 16)).astype(np.float32))
        targets = ms.Tensor(np.eye(4, dtype=np.float32)[np.arange(8) % 4])
        losses = [float(step(images, targets)[0].asnumpy()) for _ in range(6)]
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert np.isfinite(losses).all()
    assert max(losses[-2:]) < losses[0]  # fitting one fixed batch
    assert list(tmp_path.iterdir()) == []  # MindSpore's AMP rewrite did not litter the working folder
