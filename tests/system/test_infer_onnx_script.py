"""infer_onnx.py and scripts/run_infer_onnx.sh run as scripts: the same preprocessing and accuracy as eval.py,
clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "src" / "configs" / "demo.yaml"
IMAGENET_CONFIG = REPO / "src" / "configs" / "RepVGG-A0.yaml"


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_infer_onnx_accuracy_equals_eval_py(exported):
    folder = exported["folder"]
    evaluated = run("eval.py", "--config", str(CONFIG), "--data_url", str(exported["data"]),
                    "--pretrained", str(exported["checkpoint"]), "--result_json", str(folder / "eval.json"))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    inferred = run("infer_onnx.py", "--onnx_path", str(exported["dynamic"]), "--dataset_path", str(exported["data"]),
                   "--config", str(CONFIG), "--device_target", "CPU", "--result_json", str(folder / "onnx.json"))
    assert inferred.returncode == 0, inferred.stderr[-2000:]
    mindspore_metrics = json.loads((folder / "eval.json").read_text())
    onnx_metrics = json.loads((folder / "onnx.json").read_text())
    assert onnx_metrics["images"] == mindspore_metrics["images"] == 40
    assert onnx_metrics["top1"] == mindspore_metrics["top1"]
    assert onnx_metrics["top5"] == mindspore_metrics["top5"]
    assert onnx_metrics["loss"] == pytest.approx(mindspore_metrics["loss"], rel=1e-4)
    assert "ms/img" in inferred.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--onnx_path", "/nonexistent.onnx", "--dataset_path", "."], "ONNX model not found"),
    # An ImageNet recipe: a demo recipe would generate the missing demo folder instead.
    (["--onnx_path", "{dynamic}", "--dataset_path", "{folder}/absent", "--config", str(IMAGENET_CONFIG)], "data_url"),
    (["--onnx_path", "{dynamic}", "--dataset_path", "{data}", "--device_target", "GPU"], "CUDAExecutionProvider"),
    (["--onnx_path", "{checkpoint}", "--dataset_path", "{data}"], "cannot load"),
])
def test_bad_inputs_are_clear_errors(exported, args, message):
    args = [a.format(**{k: str(v) for k, v in exported.items()}) for a in args]
    result = run("infer_onnx.py", *(args if "--config" in args else [*args, "--config", str(CONFIG)]))
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts" / "run_infer_onnx.sh"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_run_infer_onnx_script_evaluates_and_logs(exported, tmp_path):
    result = run_script(str(exported["dynamic"]), str(exported["data"]), "CPU", "0", "--config", str(CONFIG),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "infer_onnx" / "log.txt").read_text()
    assert "top-1 accuracy:" in log and "top-5 accuracy:" in log


@pytest.mark.parametrize(("args", "message"), [
    ([], "expected 4 arguments"),
    (["{dynamic}", "{data}", "TPU", "0"], "DEVICE_TARGET must be CPU or GPU"),
    (["{dynamic}", "{data}", "CPU", "x"], "DEVICE_ID must be a whole number"),
    (["/absent.onnx", "{data}", "CPU", "0"], "is not a file"),
    (["{dynamic}", "/absent", "CPU", "0"], "is not a folder"),
])
def test_run_infer_onnx_script_checks_its_arguments(exported, tmp_path, args, message):
    args = [a.format(**{k: str(v) for k, v in exported.items()}) for a in args]
    result = run_script(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "usage: bash scripts/run_infer_onnx.sh" in result.stderr
    assert not (tmp_path / "infer_onnx").exists()
