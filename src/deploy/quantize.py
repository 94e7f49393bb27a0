"""Post-training static int8 quantisation of an exported ONNX model with ``onnxruntime.quantization``.

QDQ format with per-channel weights by default: after re-parameterisation each output channel of a RepVGG
kernel has its own range (the fused BatchNorm scales differ a lot between channels), which one per-tensor
scale represents badly -- RepVGG is known to lose accuracy under naive per-tensor quantisation.

Activation ranges come from ONNX Runtime's calibrators: ``minmax`` (the observed range), ``entropy`` (the clipping
threshold that minimises the KL divergence between the float and the quantised histogram, as TensorRT calibrates:
2048 histogram bins, 128 quantised levels) or ``percentile`` (ONNX Runtime's default: the 99.999th percentile of
absolute values, 2048 bins). Before any of them, a min/max pass checks that every activation is finite on the
calibration images; ``minmax`` keeps that pass. The ranges reach ``quantize_static`` through its calibration
cache, so the images run through the model once per calibrator and ONNX Runtime quantises exactly those ranges.

After quantisation-aware training no calibration runs: the ranges the fake-quantised network learned go through
the same cache (``quantize_int8_learned``), so the int8 model computes what the training simulated.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper, version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    TensorsData,
    create_calibrator,
    quantize_static,
    save_tensors_data,
)

from src.atomic_files import check_writable_folder, staging_folder
from src.config import Config
from src.data import create_dataset, data_folder, iterate_checked
from src.deploy.export import export_network
from src.errors import UserError
from src.models.fake_quant import ActivationQuantizer, FakeQuantVGG
from src.models.from_checkpoint import load_network

# onnxruntime's QDQ per-channel quantisation needs opset 13 (per-axis QuantizeLinear/DequantizeLinear).
QDQ_OPSET = 13
CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                       "percentile": CalibrationMethod.Percentile}
# Chosen by measurement on the demo model: MinMax kept int8 within 0.5 points of fp32 where percentile and entropy
# lost more (README, "ONNX Runtime evaluation and int8").
DEFAULT_CALIBRATION_METHOD = "minmax"
# quantize_static does not pass histogram sizes on, and its entropy default (128 bins for 128 quantised levels)
# leaves one candidate threshold, the full range: MinMax under another name. Hence our own calibrator call, with
# TensorRT's histogram size. ONNX Runtime's threshold search is quadratic in it: about 1.5 s per tensor at 2048.
ENTROPY_BINS = 2048
_QUANTISED_LEVELS = 128
# Operators that only a quantised graph holds (QDQ or QOperator format, static or dynamic).
_QUANTISED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                            "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd"})
_LISTED = 5


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


class ArrayReader(CalibrationDataReader):
    """Feeds ONNX Runtime's calibrators one batch at a time."""

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


def check_fp32_source(model: onnx.ModelProto, fp32_path: str | Path) -> None:
    """Refuse a model that is quantised already, or whose weights hold NaN or infinite values."""
    quantised = sorted({node.op_type for node in model.graph.node} & _QUANTISED_OPS)
    if quantised:
        raise UserError(f"{fp32_path} is quantised already (it has {', '.join(quantised)} nodes): quantise the "
                        "float32 model that export.py writes")
    non_finite = [tensor.name for tensor in model.graph.initializer
                  if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
                  and not np.isfinite(numpy_helper.to_array(tensor)).all()]
    if non_finite:
        raise UserError(f"{fp32_path} has weights with NaN or infinite values ({_listed(non_finite)}); the model it "
                        "was exported from did not train to finite weights")


def load_fp32_model(fp32_path: str | Path) -> onnx.ModelProto:
    """The float32 model at ``fp32_path``, checked to be quantisable."""
    try:
        model = onnx.load(str(fp32_path))
    except (OSError, DecodeError) as error:
        raise UserError(f"cannot load {fp32_path} as an ONNX model: {error}") from error
    check_fp32_source(model, fp32_path)
    return model


def _calibrate(model_path: Path, input_name: str, batches: list[np.ndarray], method: str, work_folder: Path,
               entropy_bins: int = ENTROPY_BINS) -> TensorsData:
    options = {"num_bins": entropy_bins, "num_quantized_bins": _QUANTISED_LEVELS} if method == "entropy" else {}
    calibrator = create_calibrator(model_path, augmented_model_path=work_folder / f"{method}_augmented.onnx",
                                   calibrate_method=CALIBRATION_METHODS[method], extra_options=options)
    calibrator.collect_data(ArrayReader(input_name, batches))
    return calibrator.compute_data()


def activation_ranges(model_path: Path, input_name: str, batches: list[np.ndarray], method: str,
                      work_folder: Path, entropy_bins: int = ENTROPY_BINS) -> TensorsData:
    """The int8 range of every activation on ``batches`` by ``method``; a UserError names the tensors whose
    observed range is not finite, since no method gives those a usable scale."""
    ranges = _calibrate(model_path, input_name, batches, "minmax", work_folder)
    non_finite = sorted(name for name in ranges if not np.isfinite(np.asarray(ranges[name].range_value)).all())
    if non_finite:
        raise UserError(f"the calibration images drive {len(non_finite)} activation(s) of the model to NaN or "
                        f"infinite values ({_listed(non_finite)}), so they have no int8 range; check the model "
                        "on these images in float32")
    if method == "minmax":
        return ranges
    return _calibrate(model_path, input_name, batches, method, work_folder, entropy_bins)


def _quantize_with_cache(model: onnx.ModelProto, int8_path: Path, per_channel: bool, method: CalibrationMethod,
                         ranges_of: Callable[[Path, str, Path], TensorsData]) -> Path:
    """Quantise ``model`` with the activation ranges ``ranges_of(opset-13 model path, input name, work folder)``
    gives, handed to ``quantize_static`` as its calibration cache; written atomically to ``int8_path``."""
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < QDQ_OPSET:
        model = version_converter.convert_version(model, QDQ_OPSET)
    input_name = model.graph.input[0].name
    try:
        with staging_folder(int8_path.parent, int8_path.name) as staging:
            staged = staging / f"opset{QDQ_OPSET}.onnx"
            onnx.save(model, str(staged))
            cache = staging / "ranges.json"
            save_tensors_data(ranges_of(staged, input_name, staging), cache)
            quantized = staging / "int8.onnx"
            # With a calibration cache, ONNX Runtime quantises with its ranges and runs no images itself.
            quantize_static(str(staged), str(quantized), None, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=method, calibration_cache_path=cache)
            os.replace(quantized, int8_path)
    except OSError as error:
        raise UserError(f"cannot write {int8_path}: {error.strerror or error}") from error
    return int8_path


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, batches: list[np.ndarray], per_channel: bool = True,
                  method: str = DEFAULT_CALIBRATION_METHOD, entropy_bins: int = ENTROPY_BINS) -> Path:
    """Write the int8 model to ``int8_path``; a failure (a full disk) leaves a file already there as it was.

    ``method`` is a key of ``CALIBRATION_METHODS``; ``per_channel`` gives each output channel of a weight its own
    scale (activations are always per tensor); ``entropy_bins`` is the histogram size of entropy calibration.
    """
    if method not in CALIBRATION_METHODS:
        raise UserError(f"unknown calibration method '{method}'; choose one of {', '.join(CALIBRATION_METHODS)}")
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    check_int8_target(fp32_path, int8_path)
    model = load_fp32_model(fp32_path)
    return _quantize_with_cache(
        model, int8_path, per_channel, CALIBRATION_METHODS[method],
        lambda staged, input_name, work: activation_ranges(staged, input_name, batches, method, work, entropy_bins))


def _check_exported_from(model: onnx.ModelProto, qnet: FakeQuantVGG, fp32_path: Path, source: str) -> None:
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    same = len(convs) == len(qnet.convs) and all(
        node.input[1] in initializers and numpy_helper.to_array(initializers[node.input[1]]).shape == conv.weight.shape
        and np.allclose(numpy_helper.to_array(initializers[node.input[1]]), conv.weight.asnumpy(), atol=1e-6)
        for node, conv in zip(convs, qnet.convs, strict=False))
    if not same:
        raise UserError(f"{fp32_path} was not exported from {source}: export that checkpoint with export.py first "
                        "(its convolution weights must be the ones the learned ranges belong to)")


def check_learned_ranges(qnet: FakeQuantVGG, source: str) -> None:
    """Refuse a fake-quantised network whose activation ranges were never observed or are not finite: no int8
    model can carry them. Checked before anything is exported or written."""
    quantizers = dict((name, cell) for name, cell in qnet.cells_and_names() if isinstance(cell, ActivationQuantizer))
    unobserved = [name for name, q in quantizers.items() if float(q.observed.asnumpy()) < 0.5]
    if unobserved:
        raise UserError(f"{len(unobserved)} activation range(s) of {source} were never observed: the checkpoint did "
                        "not come out of a quantisation-aware training run")
    non_finite = [name for name, q in quantizers.items()
                  if not np.isfinite([q.range_min.asnumpy(), q.range_max.asnumpy()]).all()]
    if non_finite:
        raise UserError(f"the learned ranges of {len(non_finite)} activation(s) of {source} are not finite "
                        f"({_listed(non_finite)}): the quantisation-aware training diverged")


def learned_ranges(model: onnx.ModelProto, qnet: FakeQuantVGG, source: str = "the fake-quantised network"
                   ) -> TensorsData:
    """The activation ranges quantisation-aware training learned, named by the ONNX tensors they quantise: the
    input, each Conv output and the ReLU after it (ONNX Runtime fuses the pair; both get the block's output
    range, which starts at 0), the pooled features (ReduceMean) and the logits (Gemm)."""
    def range_of(quantizer: ActivationQuantizer) -> tuple[np.ndarray, np.ndarray]:
        return quantizer.range_min.asnumpy().astype(np.float32), quantizer.range_max.asnumpy().astype(np.float32)

    check_learned_ranges(qnet, source)
    ranges = {model.graph.input[0].name: range_of(qnet.input_quant)}
    block = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "Relu"):
            ranges[node.output[0]] = range_of(qnet.output_quants[block])
            block += node.op_type == "Relu"
        elif node.op_type == "ReduceMean":
            ranges[node.output[0]] = range_of(qnet.pool_quant)
        elif node.op_type == "Gemm":
            ranges[node.output[0]] = range_of(qnet.logits_quant)
    return TensorsData(CalibrationMethod.MinMax, ranges)


def quantize_int8_learned(fp32_path: str | Path, int8_path: str | Path, qnet: FakeQuantVGG, source: str) -> Path:
    """Write the int8 model of a quantisation-aware training run: ``fp32_path`` is the float network of ``qnet``
    (export.py on its checkpoint ``source``), quantised per channel with the ranges ``qnet`` learned."""
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    check_int8_target(fp32_path, int8_path)
    model = load_fp32_model(fp32_path)
    _check_exported_from(model, qnet, fp32_path, source)
    return _quantize_with_cache(model, int8_path, True, CalibrationMethod.MinMax,
                                lambda staged, input_name, work: learned_ranges(onnx.load(str(staged)), qnet, source))


def qat_int8_model(checkpoint: str | Path, arch: str, num_classes: int, image_size: int, fp32_target: str | Path,
                   int8_path: str | Path, metadata: dict | None = None) -> Path:
    """The int8 ONNX model of the quantisation-aware training checkpoint ``checkpoint``: its float network
    exported to ``fp32_target`` (``.onnx`` added), then quantised with the ranges it learned into ``int8_path``."""
    qnet, _ = load_network(checkpoint, arch, num_classes)
    fp32 = export_network(qnet.float_network(), "ONNX", fp32_target, 1, image_size, dynamic_batch=True,
                          metadata=metadata)
    return quantize_int8_learned(fp32, int8_path, qnet, str(checkpoint))
