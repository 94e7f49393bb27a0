"""Post-training static int8 quantisation of an exported ONNX model with ``onnxruntime.quantization``.

QDQ format with per-channel weights by default: after re-parameterisation each output channel of a RepVGG
kernel has its own range (the fused BatchNorm scales differ a lot between channels), which one per-tensor
scale represents badly -- RepVGG is known to lose accuracy under naive per-tensor quantisation.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from src.atomic_files import check_writable_folder, staging_folder
from src.config import Config
from src.data import create_dataset, data_folder, iterate_checked
from src.errors import UserError

# onnxruntime's QDQ per-channel quantisation needs opset 13 (per-axis QuantizeLinear/DequantizeLinear).
QDQ_OPSET = 13


class _ArrayReader(CalibrationDataReader):
    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self._feeds: Iterator[dict] = iter([{input_name: batch} for batch in batches])

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def calibration_batches(cfg: Config, count: int, batch_size: int = 1) -> list[np.ndarray]:
    """``count`` training images with the evaluation preprocessing (val images stay unseen)."""
    dataset = create_dataset(cfg, "train", training=False, shuffle=True)
    images = []
    for batch, _ in iterate_checked(dataset, data_folder(cfg, "train")):
        images.extend(batch)
        if len(images) >= count:
            break
    if not images:
        raise UserError(f"no calibration images found in {data_folder(cfg, 'train')}")
    stacked = np.stack(images[:count]).astype(np.float32)
    return [stacked[i:i + batch_size] for i in range(0, len(stacked), batch_size)]


def check_int8_target(fp32_path: str | Path, int8_path: str | Path) -> None:
    """Refuse, before any calibration work, an int8 path that is no .onnx, replaces its source or cannot be written."""
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if int8_path.suffix != ".onnx":
        raise UserError(f"the int8 model's path must end in .onnx: {int8_path}")
    if int8_path.resolve() == fp32_path.resolve():
        raise UserError(f"the int8 model would replace its fp32 source {fp32_path}: choose another --file_name")
    check_writable_folder(int8_path.parent)


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, batches: list[np.ndarray],
                  per_channel: bool = True) -> Path:
    """Write the int8 model to ``int8_path``; a failure (a full disk) leaves a file already there as it was."""
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    check_int8_target(fp32_path, int8_path)
    model = onnx.load(str(fp32_path))
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < QDQ_OPSET:
        model = version_converter.convert_version(model, QDQ_OPSET)
    try:
        with staging_folder(int8_path.parent, int8_path.name) as staging:
            staged = staging / f"opset{QDQ_OPSET}.onnx"
            onnx.save(model, str(staged))
            quantized = staging / "int8.onnx"
            quantize_static(str(staged), str(quantized), _ArrayReader(model.graph.input[0].name, batches),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
            os.replace(quantized, int8_path)
    except OSError as error:
        raise UserError(f"cannot write {int8_path}: {error.strerror or error}") from error
    return int8_path
