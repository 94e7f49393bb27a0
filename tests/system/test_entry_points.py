"""train.py and eval.py turn user mistakes into one clear line and exit code 2, before any work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.checkpoint_files import save_checkpoint_atomic
from src.models import create_model

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "src" / "configs" / "demo.yaml"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture
def typo_config(tmp_path) -> Path:
    path = tmp_path / "typo.yaml"
    path.write_text(f"base: {DEMO}\nbath_size: 8\n")
    return path


@pytest.fixture
def other_arch_checkpoint(tmp_path) -> Path:
    return save_checkpoint_atomic(create_model("RepVGG-B0-cifar", num_classes=8), tmp_path / "b0.ckpt")


@pytest.mark.parametrize(("args", "message"), [
    (("train.py", "--config", "{tmp}/absent.yaml"), "absent.yaml"),
    (("train.py", "--config", "{typo}"), "did you mean 'batch_size'"),
    (("train.py", "--config", str(DEMO), "--epochs", "0"), "epochs"),
    (("train.py", "--config", str(DEMO), "--data_url", "{tmp}/demo", "--train_url", "{tmp}/run", "--sync_bn", "true"),
     "SyncBatchNorm runs on Ascend only"),
    (("eval.py", "--config", str(DEMO), "--data_url", "{tmp}/demo", "--pretrained", "{tmp}/absent.ckpt"),
     "absent.ckpt"),
    (("eval.py", "--config", str(DEMO), "--data_url", "{tmp}/demo", "--pretrained", "{other}"),
     "does not fit RepVGG-A0-cifar"),
])
def test_user_errors_are_one_line_and_exit_code_2(tmp_path, typo_config, other_arch_checkpoint, args, message):
    args = [a.format(tmp=tmp_path, typo=typo_config, other=other_arch_checkpoint) for a in args]
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("*.ckpt"))
