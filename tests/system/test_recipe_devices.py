"""Recipes run where the user is: real train.py / eval.py / export.py processes with the shipped recipes, whose
devices (Ascend for ImageNet, GPU for CIFAR-100) this CPU-only MindSpore build lacks."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import onnx

from src.checkpoint_files import save_checkpoint_atomic
from src.models import create_model

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "src" / "configs"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_train_with_a_gpu_recipe_stops_naming_the_cpu_flag_before_creating_any_folder(tmp_path):
    (tmp_path / "cifar").mkdir()
    result = run("train.py", "--config", str(CONFIGS / "RepVGG-A0-cifar100.yaml"), "--data_url", "cifar",
                 "--epochs", "30", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert "cannot run on GPU" in line and "--device_target CPU" in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cifar"]


def test_eval_with_an_ascend_recipe_stops_naming_the_cpu_flag_before_creating_any_folder(tmp_path):
    (tmp_path / "imagenet").mkdir()
    (tmp_path / "a0.ckpt").write_bytes(b"never read: the device is checked first")
    result = run("eval.py", "--config", str(CONFIGS / "RepVGG-A0.yaml"), "--data_url", "imagenet",
                 "--pretrained", "a0.ckpt", "--result_json", "metrics/a0.json", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert "cannot run on Ascend" in line and "--device_target CPU" in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a0.ckpt", "imagenet"]


def test_export_with_a_gpu_recipe_runs_on_the_cpu_and_says_so(tmp_path):
    checkpoint = save_checkpoint_atomic(create_model("RepVGG-A0-cifar", num_classes=100), tmp_path / "a0.ckpt")
    result = run("export.py", "--config", str(CONFIGS / "RepVGG-A0-cifar100.yaml"), "--pretrained", str(checkpoint),
                 "--file_format", "ONNX", "--file_name", "a0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exporting on the CPU" in result.stderr and "device_target GPU is not used" in result.stderr
    model = onnx.load(str(tmp_path / "a0.onnx"))
    assert [value.name for value in model.graph.output] == ["output"]


def readme_command(prefix: str) -> list[str]:
    [line] = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(prefix)]
    return shlex.split(line.split("#")[0])


def test_the_readme_cifar_training_command_passes_its_checks_on_a_cpu_machine(tmp_path):
    """As written, it gets past the config and device checks to the data: only the CIFAR files are missing."""
    command = readme_command("python train.py --config src/configs/RepVGG-A0-cifar100.yaml")
    command[3] = str(REPO / command[3])  # the recipe, relative to the repository in the README
    (tmp_path / "dataset" / "cifar-100-binary").mkdir(parents=True)
    result = run(*command[1:], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = error_lines(result.stderr)
    assert "missing CIFAR-100 file ./dataset/cifar-100-binary/train.bin" in line


def test_a_config_error_creates_no_folder(tmp_path):
    """The CIFAR recipe warms up for 20 epochs: 10 epochs alone is a config error, caught before any folder."""
    (tmp_path / "cifar").mkdir()
    result = run("train.py", "--config", str(CONFIGS / "RepVGG-A0-cifar100.yaml"), "--data_url", "cifar",
                 "--device_target", "CPU", "--epochs", "10", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = error_lines(result.stderr)
    assert "'warmup_length'" in line and "must not exceed --epochs" in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cifar"]
