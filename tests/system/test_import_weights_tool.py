"""python -m src.tools.import_weights run as a tool, on real files: official and timm RepVGG weights (.pth,
.safetensors, .npz) to a checkpoint that reproduces the PyTorch model, RepOpt-VGG plain weights and hyper-search
scales, and one clear line for every bad input. The files are written by the independent PyTorch implementation in
tests/torch_reference.py."""

import os
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from torch_reference import (
    inputs,
    mindspore_outputs,
    numpy_state,
    torch_outputs,
    torch_repopt,
    torch_repvgg,
    torch_scales,
)

from src.models import create_model
from src.models.from_checkpoint import load_network
from src.models.repopt import create_repopt_model
from src.models.repopt_scales import load_scales

REPO = Path(__file__).resolve().parents[2]
REPVGG_ARCH = "RepVGG-B1g4-cifar"  # groups and identity branches, yet small
REPOPT_ARCH = "RepVGG-A0-cifar"  # a RepOpt-VGG of this shape: identity and stride-2 blocks, small enough to write fast
OTHER_REPOPT_ARCH = "RepVGG-B0-cifar"  # other depths and widths


def run_tool(*args: str, launcher: tuple[str, ...] = ("-m", "src.tools.import_weights")) -> subprocess.CompletedProcess:
    command = [sys.executable, *launcher, *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def write_state(path: Path, state: dict) -> None:
    if path.suffix == ".pth":
        torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}}, path)
    elif path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        np.savez(path, **state)


@pytest.mark.parametrize(("suffix", "naming", "deploy"), [
    (".pth", "official", False), (".safetensors", "timm", False), (".npz", "official", True),
])
def test_tool_writes_a_checkpoint_that_reproduces_the_torch_model(tmp_path, suffix, naming, deploy):
    model = torch_repvgg(REPVGG_ARCH, naming, deploy, num_classes=6)
    source = tmp_path / f"weights{suffix}"
    write_state(source, numpy_state(model, prefix="module." if suffix == ".pth" else ""))
    output = tmp_path / "out" / "imported.ckpt"
    result = run_tool("--arch", REPVGG_ARCH, "--pretrained", str(source), "--file_name", str(output))
    assert result.returncode == 0, result.stderr
    net = create_model(REPVGG_ARCH, num_classes=6, deploy=deploy)
    not_loaded, _ = ms.load_param_into_net(net, ms.load_checkpoint(str(output)), strict_load=True)
    assert not not_loaded
    x = inputs(5)
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_tool_rejects_bad_keys_without_writing_anything(tmp_path):
    state = numpy_state(torch_repvgg(REPVGG_ARCH, "official"))
    state.pop("linear.bias")
    source = tmp_path / "bad.npz"
    write_state(source, state)
    output = tmp_path / "out.ckpt"
    output.write_bytes(b"previous checkpoint")
    result = run_tool("--arch", REPVGG_ARCH, "--pretrained", str(source), "--file_name", str(output))
    assert result.returncode == 2
    assert "missing key(s): linear.bias" in result.stderr
    assert "Traceback" not in result.stderr
    assert output.read_bytes() == b"previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "out.ckpt"]  # no temp file left behind


@pytest.mark.parametrize(("file_name", "content", "expected"), [
    ("absent.pth", None, "weights file not found"),
    ("w.txt", "x", "unsupported weights file w.txt"),
    ("w.safetensors", "garbage", "cannot read"),
    ("w.pth", "garbage", "cannot read"),
])
def test_tool_reports_unreadable_inputs_in_one_line(tmp_path, file_name, content, expected):
    source = tmp_path / file_name
    if content is not None:
        source.write_text(content)
    result = run_tool("--arch", REPVGG_ARCH, "--pretrained", str(source), "--file_name", str(tmp_path / "o.ckpt"))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.ckpt").exists()


def test_tool_says_how_to_read_pth_without_torch(tmp_path):
    source = tmp_path / "w.pth"
    write_state(source, numpy_state(torch_repvgg(REPVGG_ARCH, "official")))
    # A None entry in sys.modules makes `import torch` fail, as on a machine without PyTorch.
    block_torch = "import sys, runpy; sys.modules['torch'] = None; sys.argv = ['import_weights'] + sys.argv[1:]; " \
                  "runpy.run_module('src.tools.import_weights', run_name='__main__')"
    result = run_tool("--arch", REPVGG_ARCH, "--pretrained", str(source), "--file_name", str(tmp_path / "o.ckpt"),
                      launcher=("-c", block_torch))
    assert result.returncode == 2
    assert "needs PyTorch, which is not installed" in result.stderr


def test_tool_rejects_an_unknown_arch(tmp_path):
    source = tmp_path / "w.npz"
    write_state(source, numpy_state(torch_repvgg(REPVGG_ARCH, "official")))
    result = run_tool("--arch", "RepVGG-X1", "--pretrained", str(source), "--file_name", str(tmp_path / "o.ckpt"))
    assert result.returncode == 2
    assert "unknown arch 'RepVGG-X1'" in result.stderr


# ----- RepOpt-VGG -----

def save_pth(path: Path, state: dict[str, np.ndarray]) -> Path:
    # The official training script saves the state under "model", from a DistributedDataParallel wrapper.
    torch.save({"model": {f"module.{k}": torch.from_numpy(v) for k, v in state.items()}}, path)
    return path




def test_tool_imports_plain_weights_that_eval_reads_as_a_repopt_vgg(tmp_path):
    model = torch_repopt(REPOPT_ARCH, num_classes=6)
    output = tmp_path / "imported.ckpt"
    result = run_tool("--arch", REPOPT_ARCH, "--pretrained", str(save_pth(tmp_path / "w.pth", numpy_state(model))),
                      "--file_name", str(output))
    assert result.returncode == 0, result.stderr
    net, form = load_network(output, REPOPT_ARCH, num_classes=6)
    assert form.startswith("RepOpt plain") and net.arch == "RepOptVGG-A0-cifar"
    x = inputs(1)
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_tool_writes_the_scales_file_that_repopt_training_reads(tmp_path):
    model = torch_repopt(REPOPT_ARCH, search=True, num_classes=100)
    output = tmp_path / "scales.npz"
    result = run_tool("--arch", REPOPT_ARCH, "--pretrained", str(save_pth(tmp_path / "s.pth", numpy_state(model))),
                      "--file_name", str(output))
    assert result.returncode == 0, result.stderr
    scales = load_scales(output, create_repopt_model(REPOPT_ARCH, num_classes=10))
    np.testing.assert_array_equal(scales["stage3.2"].scale_identity,
                                  torch_scales(model)["stage3.2.scale_identity.weight"])


def test_tool_refuses_scales_of_another_arch_in_one_line_and_keeps_the_existing_output(tmp_path):
    source = save_pth(tmp_path / "s.pth", numpy_state(torch_repopt(OTHER_REPOPT_ARCH, search=True)))
    output = tmp_path / "scales.npz"
    output.write_bytes(b"previous scales")
    result = run_tool("--arch", REPOPT_ARCH, "--pretrained", str(source), "--file_name", str(output))
    assert result.returncode == 2
    assert "do not fit RepOptVGG-A0-cifar" in result.stderr and "unexpected key(s)" in result.stderr
    assert "Traceback" not in result.stderr
    assert output.read_bytes() == b"previous scales"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pth", "scales.npz"]


def test_tool_says_scales_go_to_an_npz(tmp_path):
    source = save_pth(tmp_path / "s.pth", numpy_state(torch_repopt(REPOPT_ARCH, search=True)))
    result = run_tool("--arch", REPOPT_ARCH, "--pretrained", str(source), "--file_name", str(tmp_path / "scales.ckpt"))
    assert result.returncode == 2
    assert "pass a --file_name ending in .npz" in result.stderr
    assert not (tmp_path / "scales.ckpt").exists()
