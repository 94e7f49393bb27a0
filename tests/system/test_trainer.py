"""Training runs end to end through train.py and eval.py: resume is exact, outputs are what they claim."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import train_args as shared_train_args

from src.checkpoint_files import read_checkpoint, read_checkpoint_class_names
from src.class_names import CLASSES_FILE, read_classes_file
from src.config import load_config
from src.data import DEMO_CLASSES, create_dataset, data_folder, iterate_checked, write_demo_imagefolder
from src.deploy.onnx_runtime import evaluate_onnx, open_session
from src.engine.evaluation import evaluate
from src.engine.run_checkpoints import run_checkpoints
from src.models.from_checkpoint import load_network

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "src" / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> Path:
    """A demo folder small enough for a few-second epoch: 8 classes x 8 train / 4 val images."""
    root = tmp_path_factory.mktemp("demo")
    write_demo_imagefolder(str(root), num_train_per_class=8, num_val_per_class=4)
    return root


def run_entry(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


def train_args(data: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return ["--config", str(DEMO_CONFIG), "--data_url", str(data), "--train_url", str(out),
            "--epochs", str(epochs), "--batch_size", "16", "--warmup_length", "1", "--amp_level", "O0",
            "--with_ema", "true", "--ema_decay", "0.9", *extra]


def final_state(run: Path, epoch: int) -> dict:
    params = read_checkpoint(run / f"RepVGG-A0-cifar-epoch{epoch:04d}.ckpt")
    return {name: p.asnumpy() for name, p in params.items()}


def test_two_epochs_equal_one_epoch_plus_resume_plus_one(demo_data, straight_run, tmp_path):
    resumed = tmp_path / "resumed"
    first = run_entry(*shared_train_args(demo_data, resumed, epochs=1)[1:])
    assert first.returncode == 0, first.stderr[-3000:]
    # The second process is told the full length and resumes from the newest checkpoint in train_url.
    second = run_entry(*shared_train_args(demo_data, resumed, "--resume")[1:])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr

    expected, actual = final_state(straight_run, 2), final_state(resumed, 2)
    assert expected.keys() == actual.keys()
    assert any(name.startswith("ema.") for name in expected)
    assert any("moments" in name or "stat" in name or "accum" in name for name in expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-6, atol=1e-7, err_msg=name)

    rows = list(csv.DictReader((tmp_path / "resumed" / "log.csv").read_text().splitlines()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for picture in ("loss.png", "accuracy.png", "learning_rate.png"):
        assert (tmp_path / "resumed" / picture).stat().st_size > 1000


def test_eval_reports_the_checkpoint_and_prefers_ema(small_demo, tmp_path):
    run = tmp_path / "run"
    trained = run_entry("train.py", *train_args(small_demo, run, 1))
    assert trained.returncode == 0, trained.stderr[-3000:]
    checkpoint = run / "RepVGG-A0-cifar-epoch0001.ckpt"
    result_path = tmp_path / "metrics.json"
    evaluated = run_entry("eval.py", "--config", str(DEMO_CONFIG), "--data_url", str(small_demo),
                          "--pretrained", str(checkpoint), "--result_json", str(result_path))
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads(result_path.read_text())
    assert metrics["images"] == 32
    assert "EMA" in metrics["weights"]
    assert f"top-1 accuracy: {metrics['top1']:.3f} %" in evaluated.stdout
    logged = list(csv.DictReader((run / "log.csv").read_text().splitlines()))[-1]
    assert float(logged["top1"]) == pytest.approx(metrics["top1"], abs=1e-3)  # training evaluated EMA too
    # The class names travel with the run and with the checkpoint copied alone.
    assert read_classes_file(run / CLASSES_FILE) == list(DEMO_CLASSES)
    alone = tmp_path / "copied" / checkpoint.name
    alone.parent.mkdir()
    alone.write_bytes(checkpoint.read_bytes())
    assert read_checkpoint_class_names(alone) == list(DEMO_CLASSES)


def quantised_nodes(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node} & {"QuantizeLinear", "DequantizeLinear"}


def test_demo_learns_and_every_deployed_form_keeps_its_accuracy(tmp_path):
    """`make demo` as users run it, on the real demo set (8 classes, chance 12.5%, 400 val images)."""
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "src.tools.demo", "--train_url", str(out)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((out / "demo_results.json").read_text())
    train_row, deploy_row, onnx_row, ptq_row, qat_row = rows
    assert train_row["top1"] > 80.0
    assert deploy_row["top1"] == pytest.approx(train_row["top1"], abs=0.3)  # at most one image of 400 flips
    assert onnx_row["top1"] == pytest.approx(deploy_row["top1"], abs=0.3)
    assert ptq_row["top1"] >= onnx_row["top1"] - 1.0
    assert qat_row["top1"] >= onnx_row["top1"] - 1.0
    assert deploy_row["params_m"] < train_row["params_m"]
    for row in rows:
        assert f"| {row['network']}" in result.stdout and 0 <= row["top1"] <= row["top5"] <= 100

    # The int8 rows are what ONNX Runtime computes with the int8 files the demo wrote: evaluated again here, from
    # the files, they give the same top-1 and top-5.
    cfg = load_config(DEMO_CONFIG, {"data_url": str(tmp_path / "data" / "demo")})
    for row in (ptq_row, qat_row):
        model = out / row["onnx"]
        assert quantised_nodes(model) == {"QuantizeLinear", "DequantizeLinear"}
        again = evaluate_onnx(open_session(model), cfg, row["network"]).accuracy
        assert (again.top1, again.top5) == (row["top1"], row["top5"])
    # The QAT model carries the ranges the QAT run learned: it computes what its last checkpoint simulates.
    qat_checkpoint = run_checkpoints(out / "qat")[-1]
    qnet, _ = load_network(qat_checkpoint, cfg.arch, cfg.num_classes)
    simulated = evaluate(qnet, iterate_checked(create_dataset(cfg, "val", training=False), data_folder(cfg, "val")))
    assert qat_row["top1"] == pytest.approx(simulated.top1, abs=0.3)
