"""Distillation end to end: train.py distils from a teacher checkpoint, resumes, and the files it writes serve
eval.py and export.py with the student alone."""

import os
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np

from src.checkpoint_files import read_checkpoint, save_checkpoint_atomic
from src.data import write_demo_imagefolder
from src.engine.distillation import TEACHER_PREFIX
from src.models import create_model
from src.models.from_checkpoint import load_network

REPO = Path(__file__).resolve().parents[2]
KD_CONFIG = REPO / "src" / "configs" / "demo_kd.yaml"
DEMO_CLASSES = 8


def train_py(data: Path, out: Path, teacher: Path, epochs: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", "--config", str(KD_CONFIG), "--data_url", str(data), "--train_url", str(out),
         "--epochs", str(epochs), "--batch_size", "16", "--amp_level", "O0", "--teacher_arch", "RepVGG-A1-cifar",
         "--teacher_ckpt", str(teacher), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_train_py_distils_from_a_teacher_checkpoint_and_resumes(tmp_path):
    data = tmp_path / "demo"
    write_demo_imagefolder(str(data), num_train_per_class=8, num_val_per_class=4)
    ms.set_seed(1)
    teacher_path = save_checkpoint_atomic(create_model("RepVGG-A1-cifar", num_classes=DEMO_CLASSES),
                                          tmp_path / "teacher.ckpt")
    out = tmp_path / "kd"
    first = train_py(data, out, teacher_path, 1)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "knowledge distillation: teacher RepVGG-A1-cifar" in first.stderr
    second = train_py(data, out, teacher_path, 2, "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr
    checkpoint = out / "RepVGG-A0-cifar-epoch0002.ckpt"
    saved = read_checkpoint(checkpoint)
    # The teacher rides along in the train step's checkpoint (resume restores it), exactly as it was loaded.
    for name, value in read_checkpoint(teacher_path).items():
        np.testing.assert_array_equal(saved[TEACHER_PREFIX + name].asnumpy(), value.asnumpy(), err_msg=name)
    # eval.py and export.py read the student alone from the same file.
    student, _ = load_network(checkpoint, "RepVGG-A0-cifar", DEMO_CLASSES)
    assert not any(p.name.startswith(TEACHER_PREFIX) for p in student.get_parameters())
