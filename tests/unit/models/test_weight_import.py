"""Weight import from the PyTorch ecosystem, checked against an independent PyTorch implementation."""

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
    TorchRepVGG,
    TorchRepVGGBlock,
    inputs,
    mindspore_outputs,
    numpy_state,
    randomise_torch_batchnorm,
    torch_outputs,
)

from src.models import RepVGGBlock, create_model, get_variant, repvgg_model_convert
from src.models.weight_import import WeightImportError, load_pytorch_weights, timm_name

REPO = Path(__file__).resolve().parents[3]
ARCH = "RepVGG-B1g4-cifar"  # groups and identity branches, yet small
SE_ARCH = "RepVGG-D2se-cifar"


def torch_model(arch: str, naming: str, deploy: bool = False, num_classes: int = 10, seed: int = 0):
    torch.manual_seed(seed)
    model = TorchRepVGG(get_variant(arch), num_classes, deploy=deploy, naming=naming)
    randomise_torch_batchnorm(model, seed)
    return model.eval()



@pytest.mark.parametrize("naming", ["official", "timm"])
@pytest.mark.parametrize("deploy", [False, True])
def test_torch_state_loads_and_reproduces_torch_outputs(naming, deploy):
    model = torch_model(ARCH, naming, deploy)
    net = create_model(ARCH, num_classes=10, deploy=deploy)
    load_pytorch_weights(net, numpy_state(model))
    x = inputs()
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("naming", ["official", "timm"])
def test_se_variant_loads_in_both_namings(naming):
    model = torch_model(SE_ARCH, naming)
    net = create_model(SE_ARCH, num_classes=10)
    load_pytorch_weights(net, numpy_state(model))
    x = inputs(1)
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_module_prefix_of_data_parallel_checkpoints_is_accepted():
    model = torch_model(ARCH, "official")
    net = create_model(ARCH, num_classes=10)
    load_pytorch_weights(net, numpy_state(model, prefix="module."))
    x = inputs(2)
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_our_fused_kernel_runs_identically_as_a_torch_convolution():
    torch.manual_seed(3)
    reference = TorchRepVGGBlock(8, 8, stride=1, groups=2).eval()
    randomise_torch_batchnorm(reference, 3)
    block = RepVGGBlock(8, 8, stride=1, groups=2)
    load_pytorch_weights(block, numpy_state(reference))
    block.set_train(False)
    kernel, bias = (t.asnumpy() for t in block.get_equivalent_kernel_bias())
    x = inputs(3, size=9)[:, :1].repeat(8, axis=1)
    with torch.no_grad():
        fused = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(kernel), torch.from_numpy(bias),
                                           padding=1, groups=2).relu().numpy()
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(fused, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mindspore_outputs(block, x), expected, rtol=1e-4, atol=1e-5)


def test_deploy_weights_from_torch_equal_our_conversion_of_torch_train_weights():
    train_model = torch_model(ARCH, "official")
    net = create_model(ARCH, num_classes=10)
    load_pytorch_weights(net, numpy_state(train_model))
    x = inputs(4)
    np.testing.assert_allclose(mindspore_outputs(repvgg_model_convert(net), x), torch_outputs(train_model, x),
                               rtol=1e-4, atol=1e-5)


def test_missing_unexpected_and_misshaped_keys_are_all_listed_and_nothing_is_loaded():
    state = numpy_state(torch_model(ARCH, "official"))
    del state["stage1.0.rbr_dense.conv.weight"]
    state["stage9.extra.weight"] = np.zeros(3, np.float32)
    state["linear.weight"] = np.zeros((7, 5), np.float32)
    net = create_model(ARCH, num_classes=10)
    before = {n: p.asnumpy().copy() for n, p in net.parameters_and_names()}
    with pytest.raises(WeightImportError) as caught:
        load_pytorch_weights(net, state)
    error = caught.value
    assert error.missing == ["stage1.0.rbr_dense.conv.weight"]
    assert error.unexpected == ["stage9.extra.weight"]
    assert len(error.misshaped) == 1 and error.misshaped[0].startswith("linear.weight (7, 5)")
    message = str(error)
    for key in ("stage1.0.rbr_dense.conv.weight", "stage9.extra.weight", "linear.weight"):
        assert key in message
    for name, param in net.parameters_and_names():
        np.testing.assert_array_equal(param.asnumpy(), before[name])


def test_deploy_weights_into_a_train_net_explain_the_form():
    state = numpy_state(torch_model(ARCH, "timm", deploy=True))
    with pytest.raises(WeightImportError, match=r"deploy \(fused\) form: build the network with deploy=True"):
        load_pytorch_weights(create_model(ARCH, num_classes=10), state)


def test_timm_names_follow_timm_layout():
    assert timm_name("stage0.rbr_dense.bn.gamma") == "stem.conv_kxk.bn.weight"
    assert timm_name("stage3.5.rbr_identity.moving_variance") == "stages.2.5.identity.running_var"
    assert timm_name("stage4.0.se.up.bias") == "stages.3.0.attn.fc2.bias"
    assert timm_name("linear.weight") == "head.fc.weight"


# ---- the command-line tool: real files, real subprocesses ----

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
    model = torch_model(ARCH, naming, deploy, num_classes=6)
    source = tmp_path / f"weights{suffix}"
    write_state(source, numpy_state(model, prefix="module." if suffix == ".pth" else ""))
    output = tmp_path / "out" / "imported.ckpt"
    result = run_tool("--arch", ARCH, "--pretrained", str(source), "--file_name", str(output))
    assert result.returncode == 0, result.stderr
    net = create_model(ARCH, num_classes=6, deploy=deploy)
    not_loaded, _ = ms.load_param_into_net(net, ms.load_checkpoint(str(output)), strict_load=True)
    assert not not_loaded
    x = inputs(5)
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_tool_rejects_bad_keys_without_writing_anything(tmp_path):
    state = numpy_state(torch_model(ARCH, "official"))
    state.pop("linear.bias")
    source = tmp_path / "bad.npz"
    write_state(source, state)
    output = tmp_path / "out.ckpt"
    output.write_bytes(b"previous checkpoint")
    result = run_tool("--arch", ARCH, "--pretrained", str(source), "--file_name", str(output))
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
    result = run_tool("--arch", ARCH, "--pretrained", str(source), "--file_name", str(tmp_path / "o.ckpt"))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.ckpt").exists()


def test_tool_says_how_to_read_pth_without_torch(tmp_path):
    source = tmp_path / "w.pth"
    write_state(source, numpy_state(torch_model(ARCH, "official")))
    # A None entry in sys.modules makes `import torch` fail, as on a machine without PyTorch.
    block_torch = "import sys, runpy; sys.modules['torch'] = None; sys.argv = ['import_weights'] + sys.argv[1:]; " \
                  "runpy.run_module('src.tools.import_weights', run_name='__main__')"
    result = run_tool("--arch", ARCH, "--pretrained", str(source), "--file_name", str(tmp_path / "o.ckpt"),
                      launcher=("-c", block_torch))
    assert result.returncode == 2
    assert "needs PyTorch, which is not installed" in result.stderr


def test_tool_rejects_an_unknown_arch(tmp_path):
    source = tmp_path / "w.npz"
    write_state(source, numpy_state(torch_model(ARCH, "official")))
    result = run_tool("--arch", "RepVGG-X1", "--pretrained", str(source), "--file_name", str(tmp_path / "o.ckpt"))
    assert result.returncode == 2
    assert "unknown arch 'RepVGG-X1'" in result.stderr
