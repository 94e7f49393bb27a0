"""ONNX Runtime sessions: fixed-batch models fed in padded chunks, the int8 model, a GPU session without CUDA.
infer_onnx.py and scripts/run_infer_onnx.sh run as scripts in tests/system/test_infer_onnx_script.py."""

from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from conftest import randomise_batchnorm

from src.config import load_config
from src.data import write_demo_imagefolder
from src.deploy.export import export_network
from src.deploy.onnx_runtime import evaluate_onnx, open_session, run_batches
from src.deploy.quantize import calibration_batches, quantize_int8
from src.errors import UserError
from src.models import create_model, repvgg_model_convert

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "src" / "configs" / "demo.yaml"
ARCH = "RepVGG-A0-cifar"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A demo folder and the deploy net of a random net exported to ONNX twice (dynamic and fixed batch)."""
    folder = tmp_path_factory.mktemp("onnx")
    data = folder / "data"
    write_demo_imagefolder(str(data), num_train_per_class=6, num_val_per_class=5)
    ms.set_seed(3)
    net = create_model(ARCH, num_classes=8)
    randomise_batchnorm(net, seed=3)
    deploy = repvgg_model_convert(net)
    dynamic = export_network(deploy, "ONNX", folder / "dynamic", 1, 32, dynamic_batch=True)
    fixed = export_network(deploy, "ONNX", folder / "fixed", 4, 32)
    return {"data": data, "dynamic": dynamic, "fixed": fixed, "folder": folder}


def test_a_fixed_batch_model_is_fed_in_padded_chunks(exported):
    images = np.random.default_rng(0).normal(size=(7, 3, 32, 32)).astype(np.float32)
    expected, _ = run_batches(open_session(exported["dynamic"]), images)
    actual, _ = run_batches(open_session(exported["fixed"]), images)
    assert actual.shape == (7, 8)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_int8_model_is_quantised_per_channel_and_agrees_with_fp32(exported):
    cfg = load_config(str(CONFIG), {"data_url": str(exported["data"]), "batch_size": 8})
    int8 = quantize_int8(exported["dynamic"], exported["folder"] / "int8.onnx", calibration_batches(cfg, 16))
    import onnx

    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32_result = evaluate_onnx(open_session(exported["dynamic"]), cfg)
    int8_result = evaluate_onnx(open_session(int8), cfg)
    assert int8_result.accuracy.images == fp32_result.accuracy.images == 40
    assert int8_result.latency_ms > 0


def test_gpu_session_without_cuda_is_a_user_error(exported):
    with pytest.raises(UserError, match="install onnxruntime-gpu"):
        open_session(exported["dynamic"], device_target="GPU")
