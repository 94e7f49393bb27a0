"""Quantisation-aware training end to end: train.py fine-tunes the fake-quantised network of a checkpoint, eval.py
measures it, export.py writes its float network (ONNX) and the fake-quantised net itself (MINDIR), and
quantize_onnx turns the ONNX model into int8 with the learned ranges, whose top-1 is the one QAT measured."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from conftest import randomise_batchnorm

from src.checkpoint_files import CheckpointForm, checkpoint_form, read_checkpoint, save_checkpoint_atomic
from src.data import write_demo_imagefolder
from src.deploy.quantize import quantize_int8_learned
from src.models import create_model
from src.models.from_checkpoint import load_network

REPO = Path(__file__).resolve().parents[2]
QAT_CONFIG = REPO / "src" / "configs" / "demo_qat.yaml"
ARCH = "RepVGG-A0-cifar"


def run(*args: str) -> subprocess.CompletedProcess:
    completed = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data, QAT checkpoint): two short QAT epochs (EMA ranges, then frozen) from a float train-form checkpoint."""
    root = tmp_path_factory.mktemp("qat")
    data = root / "data"
    write_demo_imagefolder(str(data), num_train_per_class=4, num_val_per_class=8)
    float_net = create_model(ARCH, num_classes=8)
    randomise_batchnorm(float_net, seed=1)
    start = save_checkpoint_atomic(float_net, root / "float.ckpt")
    run(*qat_args(data, start, root / "run"))
    return data, root / "run" / f"{ARCH}-epoch0002.ckpt"


def qat_args(data: Path, start: Path, out: Path) -> list[str]:
    # One warm-up epoch: the schedule of the first epoch is then the same whether the run lasts 1 or 2 epochs.
    return ["train.py", "--config", str(QAT_CONFIG), "--data_url", str(data), "--train_url", str(out),
            "--pretrained", str(start), "--batch_size", "8", "--epochs", "2", "--qat_freeze_epochs", "1",
            "--warmup_length", "1", "--warmup_lr", "0.0001", "--eval_every", "0"]


def test_qat_checkpoint_is_the_fake_quantised_net_with_frozen_observed_ranges(qat_run):
    _, checkpoint = qat_run
    params = read_checkpoint(checkpoint)
    assert checkpoint_form(params) is CheckpointForm.FAKE_QUANT
    assert float(params["input_quant.observed"].asnumpy()) == 1.0
    assert all(float(params[name].asnumpy()) == 1.0 for name in params if name.endswith(".frozen"))
    assert int(params["epoch"].asnumpy()) == 2


def test_int8_onnx_top1_equals_the_fake_quant_eval(qat_run, tmp_path):
    data, checkpoint = qat_run
    common = ["--config", str(QAT_CONFIG), "--data_url", str(data), "--pretrained", str(checkpoint)]
    run("eval.py", *common, "--result_json", str(tmp_path / "eval.json"))
    simulated = json.loads((tmp_path / "eval.json").read_text())
    assert simulated["weights"].startswith(str(CheckpointForm.FAKE_QUANT))

    # One command: the float model is exported from the checkpoint, then quantised with the learned ranges.
    run("-m", "src.tools.quantize_onnx", *common, "--onnx_path", str(tmp_path / "qat.onnx"))
    assert (tmp_path / "qat.onnx").is_file()
    rows = {row["model"]: row for row in json.loads((tmp_path / "qat.int8.json").read_text())}
    assert set(rows) == {"fp32 (QAT float weights)", "int8 QDQ per-channel QAT"}
    assert abs(rows["int8 QDQ per-channel QAT"]["top1"] - simulated["top1"]) <= 0.3


def test_export_writes_the_float_net_as_onnx_and_the_simulation_as_mindir(qat_run, tmp_path):
    data, checkpoint = qat_run
    common = ["--config", str(QAT_CONFIG), "--data_url", str(data), "--pretrained", str(checkpoint)]
    run("export.py", *common, "--file_format", "MINDIR", "--file_name", str(tmp_path / "qat"))
    run("export.py", *common, "--file_format", "ONNX", "--file_name", str(tmp_path / "qat"))
    qnet, _ = load_network(checkpoint, ARCH, 8)
    # The ONNX file holds the checkpoint's float weights: the learned ranges are accepted for it.
    quantize_int8_learned(tmp_path / "qat.onnx", tmp_path / "qat.int8.onnx", qnet, str(checkpoint))
    x = np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)
    exported = ms.nn.GraphCell(ms.load(str(tmp_path / "qat.mindir")))
    np.testing.assert_allclose(exported(ms.Tensor(x)).asnumpy(), qnet(ms.Tensor(x)).asnumpy(), atol=1e-5)


def test_a_resumed_qat_run_ends_where_the_straight_one_does(qat_run, tmp_path):
    data, straight = qat_run
    start = straight.parent.parent / "float.ckpt"
    # Stopped after the first epoch (ranges still moving), then resumed: the second epoch freezes them.
    run(*qat_args(data, start, tmp_path), "--epochs", "1", "--qat_freeze_epochs", "0")
    resumed = run(*qat_args(data, start, tmp_path), "--resume", "auto")
    assert "resumed from" in resumed.stderr and "after epoch 1" in resumed.stderr
    expected, actual = read_checkpoint(straight), read_checkpoint(tmp_path / straight.name)
    assert expected.keys() == actual.keys()
    compared = [name for name in expected if name not in ("learning_rate", "best_top1")]
    assert "output_quants.3.range_max" in compared and "output_quants.3.frozen" in compared
    for name in compared:
        np.testing.assert_array_equal(actual[name].asnumpy(), expected[name].asnumpy(), err_msg=name)
