"""The atomic checkpoint writer never leaves a damaged file at the target path."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

from src.checkpoint_files import (
    CheckpointForm,
    checkpoint_form,
    is_deploy_form,
    read_checkpoint,
    read_checkpoint_class_names,
    save_checkpoint_atomic,
)
from src.errors import UserError
from src.models import create_model
from src.models.fake_quant import fake_quant_network
from src.models.repopt import create_repopt_model

REPO = Path(__file__).resolve().parents[2]
TINY = [{"name": "w", "data": ms.Tensor(np.ones(2, np.float32))}]


def test_written_checkpoint_loads_back(tmp_path):
    net = create_model("RepVGG-A0-cifar", num_classes=4)
    path = save_checkpoint_atomic(net, tmp_path / "sub" / "net.ckpt", append_dict={"epoch": 3})
    loaded = ms.load_checkpoint(str(path))
    assert int(loaded["epoch"]) == 3
    np.testing.assert_array_equal(loaded["linear.weight"].asnumpy(), net.linear.weight.asnumpy())
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.ckpt"]


def test_a_write_killed_midway_leaves_the_previous_checkpoint_intact(tmp_path):
    target = tmp_path / "last.ckpt"
    save_checkpoint_atomic([{"name": "w", "data": ms.Tensor(np.ones(4, np.float32))}], target)
    previous = target.read_bytes()
    # A child process writes a large checkpoint to the same path in a loop; SIGKILL lands mid-write.
    writer = (
        "import src, numpy as np, mindspore as ms\n"
        "from src.checkpoint_files import save_checkpoint_atomic\n"
        "data = [{'name': f'w{i}', 'data': ms.Tensor(np.zeros((1024, 1024), np.float32))} for i in range(64)]\n"
        "print('ready', flush=True)\n"
        f"while True: save_checkpoint_atomic(data, {str(target)!r})\n"
    )
    child = subprocess.Popen([sys.executable, "-c", writer], cwd=REPO, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    loaded = ms.load_checkpoint(str(target))
    # Either the old checkpoint or a complete new one: never a torn file.
    if target.read_bytes() == previous:
        assert list(loaded) == ["w"]
    else:
        assert len(loaded) == 64


def test_a_full_disk_is_a_user_error_and_leaves_no_partial_files(tmp_path):
    target, text_target = tmp_path / "net.ckpt", tmp_path / "metrics.json"
    target.write_bytes(b"previous")
    text_target.write_bytes(b"previous")
    # RLIMIT_FSIZE makes writes past 100 kB fail with EFBIG, as a full disk would.
    program = (
        "import src, resource, signal, numpy as np, mindspore as ms\n"
        "from src.checkpoint_files import save_checkpoint_atomic\n"
        "from src.atomic_files import write_text_atomic\n"
        "from src.errors import UserError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "try:\n"
        "    big = [{'name': 'w', 'data': ms.Tensor(np.zeros((500, 500), np.float32))}]\n"
        f"    save_checkpoint_atomic(big, {str(target)!r})\n"
        "except UserError as error:\n"
        "    print('USER ERROR:', error)\n"
        "try:\n"
        f"    write_text_atomic({str(text_target)!r}, 'x' * 200_000)\n"
        "except UserError as error:\n"
        "    print('USER ERROR:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "USER ERROR: cannot write checkpoint" in result.stdout, result.stderr
    assert f"USER ERROR: cannot write {text_target}: File too large" in result.stdout, result.stderr
    assert target.read_bytes() == text_target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "net.ckpt"]


def test_a_file_in_place_of_the_folder_is_a_user_error(tmp_path):
    (tmp_path / "not_a_dir").write_text("x")
    with pytest.raises(UserError, match="not_a_dir is a file, not a folder"):
        save_checkpoint_atomic(TINY, tmp_path / "not_a_dir" / "x.ckpt")


def test_non_ckpt_suffix_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"must end in \.ckpt"):
        save_checkpoint_atomic([], tmp_path / "x.bin")


@pytest.mark.parametrize(("build", "expected"), [
    (lambda: create_model("RepVGG-A0-cifar", num_classes=10), CheckpointForm.TRAIN),
    (lambda: create_model("RepVGG-A0-cifar", num_classes=10, deploy=True), CheckpointForm.DEPLOY),
    (lambda: create_repopt_model("RepVGG-A0-cifar", 10), CheckpointForm.REPOPT_PLAIN),
    (lambda: create_repopt_model("RepVGG-A0-cifar", 10, search=True), CheckpointForm.REPOPT_SEARCH),
    (lambda: fake_quant_network(create_model("RepVGG-A0-cifar", num_classes=10, deploy=True)),
     CheckpointForm.FAKE_QUANT),
])
def test_checkpoint_form_names_the_network_the_weight_names_describe(build, expected):
    names = [name for name, _ in build().parameters_and_names()]
    assert checkpoint_form(names) is expected
    assert is_deploy_form(names) == (expected is CheckpointForm.DEPLOY)


def test_checkpoint_form_reads_timm_fused_names_as_deploy():
    assert checkpoint_form(["stem.reparam_conv.weight", "head.fc.weight"]) is CheckpointForm.DEPLOY
    assert checkpoint_form(["stem.conv_kxk.conv.weight", "head.fc.weight"]) is CheckpointForm.TRAIN


def test_checkpoints_carry_class_names_that_survive_copying_alone(tmp_path):
    names = ["tabby cat", "chien", "émeu"]
    written = save_checkpoint_atomic(create_model("RepVGG-A0-cifar", num_classes=3), tmp_path / "a" / "m.ckpt",
                                     append_dict={"epoch": 2}, class_names=names)
    copy = tmp_path / "b" / "copy.ckpt"
    copy.parent.mkdir()
    copy.write_bytes(written.read_bytes())
    assert read_checkpoint_class_names(copy) == names
    # Whoever walks the entries sees tensors only: the names are read apart.
    assert all(isinstance(value, ms.Parameter) for value in read_checkpoint(copy).values())
    assert "epoch" in read_checkpoint(copy)
    plain = save_checkpoint_atomic(create_model("RepVGG-A0-cifar", num_classes=3), tmp_path / "plain.ckpt")
    assert read_checkpoint_class_names(plain) is None
