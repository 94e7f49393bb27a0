"""export.py run as a script: the deploy net goes out as ONNX/MINDIR with the same outputs; AIR on CPU is a clear
error."""

import os
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import randomise_batchnorm

from src.checkpoint_files import save_checkpoint_atomic
from src.models import RepVGGBlock, create_model, repvgg_model_convert

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "src" / "configs" / "demo.yaml"
ARCH = "RepVGG-B1g4-cifar"  # grouped layers and identity branches


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    ms.set_seed(7)
    net = create_model(ARCH, num_classes=8)
    randomise_batchnorm(net, seed=7)
    net.set_train(False)
    checkpoint = save_checkpoint_atomic(net, folder / "train.ckpt")
    return net, checkpoint, folder


def run_export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "export.py", "--config", str(CONFIG), "--arch", ARCH, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def images(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)


def test_onnx_export_is_the_deploy_net_with_data_and_output_names(trained):
    net, checkpoint, folder = trained
    result = run_export("--pretrained", str(checkpoint), "--file_format", "ONNX",
                        "--file_name", str(folder / "deploy"), "--dynamic_batch")
    assert result.returncode == 0, result.stderr[-2000:]
    model = onnx.load(str(folder / "deploy.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 11
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == ["output"]
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    blocks = sum(isinstance(c, RepVGGBlock) for _, c in net.cells_and_names())
    assert len(convs) == blocks  # one convolution per block, nothing else
    for conv in convs:
        kernel = next(a for a in conv.attribute if a.name == "kernel_shape").ints
        assert list(kernel) == [3, 3]
    session = ort.InferenceSession(str(folder / "deploy.onnx"), providers=["CPUExecutionProvider"])
    deploy = repvgg_model_convert(net)
    for batch in (1, 3):  # dynamic batch
        x = images(batch)
        (actual,) = session.run(None, {"data": x})
        np.testing.assert_allclose(actual, deploy(ms.Tensor(x)).asnumpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(actual, net(ms.Tensor(x)).asnumpy(), rtol=1e-4, atol=1e-4)


def test_mindir_export_runs_with_the_same_outputs(trained):
    net, checkpoint, folder = trained
    result = run_export("--pretrained", str(checkpoint), "--file_format", "MINDIR",
                        "--file_name", str(folder / "deploy"), "--batch_size", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    graph = ms.nn.GraphCell(ms.load(str(folder / "deploy.mindir")))
    x = images(2)
    np.testing.assert_allclose(graph(ms.Tensor(x)).asnumpy(), net(ms.Tensor(x)).asnumpy(), rtol=1e-4, atol=1e-4)


def test_no_convert_exports_the_multi_branch_structure(trained):
    net, checkpoint, folder = trained
    result = run_export("--pretrained", str(checkpoint), "--file_format", "ONNX",
                        "--file_name", str(folder / "train"), "--no_convert")
    assert result.returncode == 0, result.stderr[-2000:]
    model = onnx.load(str(folder / "train.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    blocks = sum(isinstance(c, RepVGGBlock) for _, c in net.cells_and_names())
    assert len(convs) == 2 * blocks  # a 3x3 and a 1x1 per block


def test_air_on_cpu_is_a_clear_error(trained):
    _, checkpoint, folder = trained
    result = run_export("--pretrained", str(checkpoint), "--file_format", "AIR", "--file_name", str(folder / "x"))
    assert result.returncode == 2
    assert "AIR export needs an Ascend device" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(folder.glob("x*"))


@pytest.mark.parametrize(("args", "message"), [
    (["--pretrained", "/nonexistent/model.ckpt", "--file_format", "ONNX"], "checkpoint not found"),
    (["--file_format", "ONNX"], "--pretrained is required (on the command line or in "),
])
def test_bad_paths_are_clear_errors(args, message):
    result = run_export(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
