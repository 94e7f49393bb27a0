"""Data sinking: the device-side tally of the train step, and the sunk training loop, which MindSpore runs on
Ascend and GPU only. On CPU the one call that sinks (``mindspore.data_sink``) is replaced by a loop that feeds
the same step the same batches; everything around it (sink sizes, resume mid-epoch, a stop at a sink
boundary, the log) runs for real."""

import signal
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

import src.engine.trainer as trainer_module
from src.checkpoint_files import read_checkpoint
from src.config import load_config
from src.data import write_demo_imagefolder
from src.device import setup_device
from src.engine.sinking import StepTally, steps_per_sink
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler
from src.engine.trainer import RESUME_LATEST, Trainer
from src.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def test_the_tally_counts_finite_losses_and_the_longest_run_of_nonfinite_steps():
    ms.set_seed(0)
    net = nn.SequentialCell([nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 3)])
    tally = StepTally(TrainStep(NetWithLoss(net, SoftTargetCrossEntropy()), nn.SGD(net.trainable_params(), 0.01),
                                make_loss_scaler(False, 1.0), 1.0))
    rng = np.random.default_rng(0)
    targets = ms.Tensor(np.eye(3, dtype=np.float32)[[0, 1]])
    good = rng.normal(size=(2, 4)).astype(np.float32)
    bad = good.copy()
    bad[0, 0] = np.nan
    losses = []
    for images in (good, bad, bad, good, bad):
        loss, finite = tally(ms.Tensor(images), targets)
        if bool(finite.asnumpy()):
            losses.append(float(loss.asnumpy()))
    first = tally.read()
    assert (first.steps, first.finite_steps, first.skipped_steps) == (5, 2, 3)
    assert first.finite_loss_sum == pytest.approx(sum(losses), rel=1e-6)
    assert (first.nonfinite_streak, first.longest_streak) == (1, 2)
    tally(ms.Tensor(bad), targets)
    second = tally.read()  # the streak goes on across reads; the sums start again
    assert (second.steps, second.finite_steps, second.finite_loss_sum) == (1, 0, 0.0)
    assert (second.nonfinite_streak, second.longest_streak) == (2, 2)


def test_a_sink_size_of_minus_one_or_more_than_an_epoch_means_one_sink_per_epoch():
    assert [steps_per_sink(size, 6) for size in (-1, 2, 6, 50)] == [6, 2, 6, 6]


def test_sink_size_is_minus_one_or_a_positive_number_of_steps():
    with pytest.raises(UserError, match="sink_size"):
        load_config(REPO / "src" / "configs" / "demo.yaml", {"sink_size": 0}, check_paths=False)


def test_on_cpu_sinking_falls_back_to_step_by_step(tmp_path):
    data = tmp_path / "demo"
    write_demo_imagefolder(str(data), num_train_per_class=2, num_val_per_class=1)
    cfg = load_config(REPO / "src" / "configs" / "demo.yaml", {
        "data_url": str(data), "train_url": str(tmp_path / "out"), "batch_size": 4, "dataset_sink_mode": True})
    try:
        trainer = Trainer(cfg, setup_device(cfg))
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert not trainer.sinks and trainer.tally is None


def cpu_sink(step: nn.Cell, dataset, sink_size: int):
    """What mindspore.data_sink does on a device, on the CPU: each call runs ``sink_size`` steps."""
    batches = dataset.create_tuple_iterator(num_epochs=1)

    def run() -> None:
        for _ in range(sink_size):
            step(*next(batches))
    return run


@pytest.fixture
def sinking_on_cpu(monkeypatch):
    monkeypatch.setattr(trainer_module, "SINKING_DEVICES", ("CPU",))
    monkeypatch.setattr(trainer_module, "device_sink", cpu_sink)


def fit(data: Path, out: Path, resume: bool = False, stop_at_once: bool = False, **overrides):
    cfg = load_config(REPO / "src" / "configs" / "demo.yaml", {
        "data_url": str(data), "train_url": str(out), "epochs": 1, "batch_size": 16, "image_size": 16,
        "warmup_length": 0, "with_ema": True, "ema_decay": 0.9, **overrides})
    try:
        trainer = Trainer(cfg, setup_device(cfg))
        if resume:
            trainer.resume(RESUME_LATEST)
        if stop_at_once:
            trainer.stop.signal_number = signal.SIGTERM  # as if SIGTERM arrived during the first sink
        return trainer.fit()
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


def state(path: Path) -> dict:
    return {name: p.asnumpy() for name, p in read_checkpoint(path).items()}


def test_a_sunk_run_stopped_at_a_sink_boundary_and_resumed_equals_a_step_by_step_run(sinking_on_cpu, tmp_path):
    data = tmp_path / "demo"
    write_demo_imagefolder(str(data), num_train_per_class=12, num_val_per_class=2)  # 96 images: 6 steps
    fit(data, tmp_path / "straight")

    stopped = fit(data, tmp_path / "sunk", stop_at_once=True, dataset_sink_mode=True, sink_size=2)
    assert stopped.exit_code == 128 + signal.SIGTERM and stopped.position.step == 2
    # Resumed with another sink size: 4 steps left, so one odd step runs alone, then one sink of 3.
    resumed = fit(data, tmp_path / "sunk", resume=True, dataset_sink_mode=True, sink_size=3)
    assert resumed.exit_code == 0 and resumed.position.step == 6

    expected = state(tmp_path / "straight" / "RepVGG-A0-cifar-epoch0001.ckpt")
    actual = state(tmp_path / "sunk" / "RepVGG-A0-cifar-epoch0001.ckpt")
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-6, atol=1e-7, err_msg=name)
    straight_log = (tmp_path / "straight" / "log.csv").read_text().splitlines()
    sunk_log = (tmp_path / "sunk" / "log.csv").read_text().splitlines()
    train_loss = straight_log[0].split(",").index("train_loss")
    assert sunk_log[-1].split(",")[train_loss] != ""
