"""Interrupted and failing runs lose nothing: real train.py processes stopped by SIGTERM/SIGINT or killed with
SIGKILL (during a step, during a checkpoint write) resume to exactly the weights of an uninterrupted run; a
diverging run stops with a clear message and never writes a non-finite checkpoint."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from conftest import ARCH, DEMO_CONFIG, EPOCHS, STEPS_PER_EPOCH, train_args

from src.checkpoint_files import read_checkpoint
from src.config import load_config
from src.data import write_demo_imagefolder
from src.engine.trainer import train
from src.errors import UserError

REPO = Path(__file__).resolve().parents[2]


class TrainProcess:
    """train.py in the background; its stderr is collected line by line so the test can wait for a line."""

    def __init__(self, args: list[str]):
        self.process = subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"train.py ended before printing {text!r}:\n{self.stderr[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{self.stderr[-3000:]}"
            time.sleep(0.02)

    def finish(self, timeout: float = 600) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code


def run_to_end(args: list[str]) -> TrainProcess:
    run = TrainProcess(args)
    code = run.finish()
    assert code == 0, run.stderr[-3000:]
    return run


def final_weights(out: Path) -> dict[str, np.ndarray]:
    return {name: p.asnumpy() for name, p in read_checkpoint(out / f"{ARCH}-epoch{EPOCHS:04d}.ckpt").items()}


def assert_same_run(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> None:
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-6, atol=1e-7, err_msg=name)


def test_sigterm_and_sigint_stop_cleanly_and_the_resumed_run_equals_a_straight_one(demo_data, straight_run,
                                                                                     tmp_path):
    out = tmp_path / "run"
    run = TrainProcess(train_args(demo_data, out))
    run.wait_for_line(f"epoch 1/{EPOCHS}: loss")  # epoch 2 starts now: the signal lands inside it
    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 128 + signal.SIGTERM, run.stderr[-3000:]
    assert "SIGTERM received" in run.stderr and "continue with --resume" in run.stderr
    assert "Traceback" not in run.stderr
    interrupted = out / f"{ARCH}-interrupted.ckpt"
    step = int(ms.load_checkpoint(str(interrupted))["step"].asnumpy())
    assert STEPS_PER_EPOCH < step < 2 * STEPS_PER_EPOCH  # stopped inside epoch 2, not at its end
    assert (out / f"{ARCH}-epoch0001.ckpt").is_file()

    # The resumed process is interrupted again while it compiles its first step: it stops after that step.
    run = TrainProcess(train_args(demo_data, out, "--resume"))
    run.wait_for_line("resumed from")
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 128 + signal.SIGINT, run.stderr[-3000:]
    assert f"steps into the next (step {step})" in run.stderr
    assert int(ms.load_checkpoint(str(interrupted))["step"].asnumpy()) == step + 1

    final = run_to_end(train_args(demo_data, out, "--resume"))
    assert "interrupted.ckpt" in final.stderr
    assert not interrupted.exists()  # the next epoch checkpoint replaced it
    assert_same_run(final_weights(straight_run), final_weights(out))


def test_sigkill_during_a_step_and_during_a_checkpoint_write_then_resume_equals_a_straight_run(
        demo_data, straight_run, tmp_path):
    out = tmp_path / "run"
    run = TrainProcess(train_args(demo_data, out))
    run.wait_for_line(f"epoch 1/{EPOCHS}: loss")
    time.sleep(random.Random(9).uniform(0.0, 1.0))  # somewhere in epoch 2's data loading or steps
    run.process.kill()
    assert run.finish() == -signal.SIGKILL

    run = TrainProcess(train_args(demo_data, out, "--resume"))
    run.wait_for_line("resumed from")
    # Kill as soon as a checkpoint is being written: a staging file exists next to the checkpoints.
    deadline = time.monotonic() + 300
    while not any(path.name.startswith(".") for path in out.glob("*.ckpt*")) and run.process.poll() is None:
        assert time.monotonic() < deadline, run.stderr[-3000:]
        time.sleep(0.001)
    run.process.kill()
    run.finish()
    for checkpoint in out.glob(f"{ARCH}-*.ckpt"):  # every visible checkpoint is whole and readable
        assert "step" in ms.load_checkpoint(str(checkpoint))

    run_to_end(train_args(demo_data, out, "--resume"))
    assert_same_run(final_weights(straight_run), final_weights(out))
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # staging files cleaned up


def test_a_diverging_run_stops_with_a_clear_message_and_writes_no_non_finite_checkpoint(demo_data, tmp_path):
    out = tmp_path / "run"
    run = TrainProcess(train_args(demo_data, out, "--base_lr", "1e30", "--warmup_length", "0",
                                  "--clip_global_norm_value", "0", "--max_nonfinite_steps", "3"))
    assert run.finish() == 2, run.stderr[-3000:]
    assert "training diverged: 3 steps in a row had a non-finite loss or gradients" in run.stderr
    assert "Traceback" not in run.stderr
    for checkpoint in out.glob("*.ckpt"):
        for name, value in read_checkpoint(checkpoint).items():
            assert np.isfinite(value.asnumpy()).all(), f"{checkpoint.name}: {name}"


def test_a_new_run_refuses_a_train_url_that_holds_another_run(tmp_path):
    cfg = load_config(DEMO_CONFIG, {"train_url": str(tmp_path), "data_url": str(tmp_path / "data")})
    earlier = tmp_path / f"{ARCH}-epoch0003.ckpt"
    earlier.write_bytes(b"an earlier run")
    with pytest.raises(UserError, match=r"already holds a run \(RepVGG-A0-cifar-epoch0003.ckpt\).*--resume"):
        train(cfg)
    assert earlier.read_bytes() == b"an earlier run"
    assert sorted(path.name for path in tmp_path.iterdir()) == [earlier.name]


def test_a_job_killed_before_its_first_checkpoint_restarts_with_the_same_command_line(tmp_path):
    """A preempted job is restarted with the same command line, --resume included, whatever it had written."""
    data, out = tmp_path / "data", tmp_path / "run"
    write_demo_imagefolder(str(data), num_train_per_class=1, num_val_per_class=1)
    args = [sys.executable, "train.py", "--config", str(DEMO_CONFIG), "--data_url", str(data), "--train_url",
            str(out), "--epochs", "1", "--batch_size", "4", "--warmup_length", "0", "--resume"]
    run = TrainProcess(args)
    deadline = time.monotonic() + 300
    while not (out / "config.yaml").is_file():  # written when training starts, before the first step
        assert run.process.poll() is None and time.monotonic() < deadline, run.stderr[-3000:]
        time.sleep(0.01)
    run.process.kill()
    assert run.finish() == -signal.SIGKILL
    assert not list(out.glob("*.ckpt"))

    restarted = run_to_end(args)
    assert "no checkpoint in" in restarted.stderr and "starting a new run" in restarted.stderr
    assert (out / f"{ARCH}-epoch0001.ckpt").is_file()
