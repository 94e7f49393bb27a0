"""RepOpt-VGG import from the official PyTorch files: plain-net weights to a checkpoint, a hyper-search model to
the scales file. The files are written by an independent PyTorch RepOpt-VGG (tests/torch_reference.py)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_reference import (
    TorchRepOptVGG,
    inputs,
    mindspore_outputs,
    numpy_state,
    randomise_torch_batchnorm,
    randomise_torch_scales,
    torch_outputs,
)

from src.errors import UserError
from src.models import get_variant
from src.models.from_checkpoint import load_network
from src.models.repopt import create_repopt_model, plain_blocks
from src.models.repopt_scales import load_scales
from src.models.weight_import import WeightImportError, load_pytorch_weights, scales_from_pytorch_state

REPO = Path(__file__).resolve().parents[3]
ARCH = "RepVGG-A0-cifar"  # a RepOpt-VGG of this shape: identity and stride-2 blocks, small enough to write fast
OTHER_ARCH = "RepVGG-B0-cifar"  # other depths and widths


def torch_repopt(arch: str = ARCH, search: bool = False, num_classes: int = 10, seed: int = 0) -> TorchRepOptVGG:
    torch.manual_seed(seed)
    model = TorchRepOptVGG(get_variant(arch), num_classes, search=search)
    randomise_torch_batchnorm(model, seed)
    randomise_torch_scales(model, seed)
    return model.eval()



def torch_scales(model: TorchRepOptVGG) -> dict[str, np.ndarray]:
    return {k: v for k, v in numpy_state(model).items() if ".scale_" in k}


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "src.tools.import_weights", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


def save_pth(path: Path, state: dict[str, np.ndarray]) -> Path:
    # The official training script saves the state under "model", from a DistributedDataParallel wrapper.
    torch.save({"model": {f"module.{k}": torch.from_numpy(v) for k, v in state.items()}}, path)
    return path


def test_plain_weights_load_and_reproduce_the_torch_outputs():
    model = torch_repopt()
    net = create_repopt_model(ARCH, num_classes=10)
    load_pytorch_weights(net, numpy_state(model))
    x = inputs()
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_plain_weights_with_a_missing_and_an_unknown_key_are_refused_naming_both():
    state = numpy_state(torch_repopt())
    del state["stage2.1.bn.running_var"]
    state["stage2.1.post_se.down.weight"] = np.zeros((4, 64, 1, 1), np.float32)
    with pytest.raises(WeightImportError) as caught:
        load_pytorch_weights(create_repopt_model(ARCH, num_classes=10), state)
    assert caught.value.missing == ["stage2.1.bn.running_var"]
    assert caught.value.unexpected == ["stage2.1.post_se.down.weight"]


@pytest.mark.parametrize("scales_only", [False, True])
def test_scales_are_read_from_a_whole_search_model_or_from_its_scales_alone(scales_only):
    model = torch_repopt(search=True, num_classes=100)
    state = torch_scales(model) if scales_only else numpy_state(model)
    scales = scales_from_pytorch_state(create_repopt_model(ARCH, num_classes=10), state)
    expected = torch_scales(model)
    assert list(scales) == list(plain_blocks(create_repopt_model(ARCH)))
    for block, block_scales in scales.items():
        prefix = f"{block}."
        np.testing.assert_array_equal(block_scales.scale_3x3, expected[prefix + "scale_conv.weight"])
        np.testing.assert_array_equal(block_scales.scale_1x1, expected[prefix + "scale_1x1.weight"])
        identity = expected.get(prefix + "scale_identity.weight")
        assert (block_scales.scale_identity is None) == (identity is None)
        if identity is not None:
            np.testing.assert_array_equal(block_scales.scale_identity, identity)


def test_scales_of_another_arch_list_missing_unknown_and_misshaped_keys():
    state = numpy_state(torch_repopt(OTHER_ARCH, search=True))
    with pytest.raises(WeightImportError) as caught:
        scales_from_pytorch_state(create_repopt_model(ARCH), state)
    error = caught.value
    # B0 has 4/6/16 blocks where A0 has 2/4/14, and wider stages 1-3; both have a 2.5x stage 4.
    assert "stage1.2.scale_conv.weight" in error.unexpected
    assert any(key.startswith("stage1.0.scale_conv.weight (32,) != (24,)") for key in error.misshaped)
    assert not error.missing
    assert "unexpected key(s)" in str(error) and "mis-shaped key(s)" in str(error)


def test_missing_and_non_finite_scales_are_refused():
    state = torch_scales(torch_repopt(search=True))
    del state["stage1.1.scale_identity.weight"]
    with pytest.raises(WeightImportError, match=r"1 missing key\(s\): stage1.1.scale_identity.weight"):
        scales_from_pytorch_state(create_repopt_model(ARCH), state)
    state = torch_scales(torch_repopt(search=True))
    state["stage3.4.scale_1x1.weight"][3] = np.nan
    with pytest.raises(UserError, match=r"NaN or infinite values: stage3.4.scale_1x1.weight"):
        scales_from_pytorch_state(create_repopt_model(ARCH), state)


# ---- the command-line tool: real files, real subprocesses ----

def test_tool_imports_plain_weights_that_eval_reads_as_a_repopt_vgg(tmp_path):
    model = torch_repopt(num_classes=6)
    output = tmp_path / "imported.ckpt"
    result = run_tool("--arch", ARCH, "--pretrained", str(save_pth(tmp_path / "w.pth", numpy_state(model))),
                      "--file_name", str(output))
    assert result.returncode == 0, result.stderr
    net, form = load_network(output, ARCH, num_classes=6)
    assert form.startswith("RepOpt plain") and net.arch == "RepOptVGG-A0-cifar"
    x = inputs(1)
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_tool_writes_the_scales_file_that_repopt_training_reads(tmp_path):
    model = torch_repopt(search=True, num_classes=100)
    output = tmp_path / "scales.npz"
    result = run_tool("--arch", ARCH, "--pretrained", str(save_pth(tmp_path / "s.pth", numpy_state(model))),
                      "--file_name", str(output))
    assert result.returncode == 0, result.stderr
    scales = load_scales(output, create_repopt_model(ARCH, num_classes=10))
    np.testing.assert_array_equal(scales["stage3.2"].scale_identity,
                                  torch_scales(model)["stage3.2.scale_identity.weight"])


def test_tool_refuses_scales_of_another_arch_in_one_line_and_keeps_the_existing_output(tmp_path):
    source = save_pth(tmp_path / "s.pth", numpy_state(torch_repopt(OTHER_ARCH, search=True)))
    output = tmp_path / "scales.npz"
    output.write_bytes(b"previous scales")
    result = run_tool("--arch", ARCH, "--pretrained", str(source), "--file_name", str(output))
    assert result.returncode == 2
    assert "do not fit RepOptVGG-A0-cifar" in result.stderr and "unexpected key(s)" in result.stderr
    assert "Traceback" not in result.stderr
    assert output.read_bytes() == b"previous scales"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pth", "scales.npz"]


def test_tool_says_scales_go_to_an_npz(tmp_path):
    source = save_pth(tmp_path / "s.pth", numpy_state(torch_repopt(search=True)))
    result = run_tool("--arch", ARCH, "--pretrained", str(source), "--file_name", str(tmp_path / "scales.ckpt"))
    assert result.returncode == 2
    assert "pass a --file_name ending in .npz" in result.stderr
    assert not (tmp_path / "scales.ckpt").exists()
