"""ONNX Runtime sessions: fixed-batch models fed in padded chunks, the int8 model, a GPU session without CUDA.
infer_onnx.py and scripts/run_infer_onnx.sh run as scripts in tests/system/test_infer_onnx_script.py."""

from pathlib import Path

import numpy as np
import pytest

from src.config import load_config
from src.deploy.onnx_runtime import evaluate_onnx, open_session, run_batches
from src.deploy.quantize import calibration_batches, quantize_int8
from src.errors import UserError

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "src" / "configs" / "demo.yaml"


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
