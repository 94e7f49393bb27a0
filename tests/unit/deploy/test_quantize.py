"""Post-training quantisation choices (calibration method, image count, per-channel or per-tensor) on real ONNX
Runtime sessions, and the bad inputs of quantize_onnx: one line, exit code 2, no file written or replaced."""

import json
import shutil
from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
import pytest
from conftest import randomise_batchnorm
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from src.checkpoint_files import save_checkpoint_atomic
from src.cli import run_cli
from src.config import load_config
from src.data import write_demo_imagefolder
from src.deploy.export import export_network
from src.deploy.onnx_runtime import open_session, run_batches
from src.deploy.quantize import CALIBRATION_METHODS, ArrayReader, calibration_batches, quantize_int8
from src.errors import UserError
from src.models import create_model, repvgg_model_convert
from src.models.fake_quant import fake_quant_network
from src.tools import quantize_onnx

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "src" / "configs" / "demo.yaml"
ARCH = "RepVGG-A0-cifar"
CLASSES = 8
# ONNX Runtime's entropy threshold search is quadratic in the histogram size: 2048 bins take over a minute here.
TEST_ENTROPY_BINS = 256


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The demo folder, a random RepVGG exported to ONNX, calibration batches, and its int8 model."""
    folder = tmp_path_factory.mktemp("quantize")
    data = folder / "data"
    write_demo_imagefolder(str(data), num_train_per_class=2, num_val_per_class=2)
    ms.set_seed(5)
    net = create_model(ARCH, num_classes=CLASSES)
    randomise_batchnorm(net, seed=5)
    fp32 = export_network(repvgg_model_convert(net), "ONNX", folder / "fp32", 1, 32, dynamic_batch=True)
    cfg = load_config(str(CONFIG), {"data_url": str(data)})
    batches = calibration_batches(cfg, 8)
    int8 = quantize_int8(fp32, folder / "int8.onnx", batches)
    return {"folder": folder, "data": data, "fp32": fp32, "int8": int8, "batches": batches}


def initializers(path: Path) -> dict[str, np.ndarray]:
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in onnx.load(str(path)).graph.initializer}


def nodes(path: Path, op_type: str) -> list[onnx.NodeProto]:
    return [node for node in onnx.load(str(path)).graph.node if node.op_type == op_type]


def weight_scales(path: Path) -> list[np.ndarray]:
    """The scale of every weight DequantizeLinear (the ones fed by an int8 initializer)."""
    values = initializers(path)
    return [values[node.input[1]] for node in nodes(path, "DequantizeLinear")
            if values.get(node.input[0], np.zeros(0)).dtype == np.int8]


def activation_scales(path: Path) -> dict[str, float]:
    values = initializers(path)
    return {node.input[0]: float(values[node.input[1]]) for node in nodes(path, "QuantizeLinear")}


def logits(path: Path, batches: list[np.ndarray]) -> np.ndarray:
    return run_batches(open_session(path), np.concatenate(batches))[0]


@pytest.mark.parametrize("method", list(CALIBRATION_METHODS))
def test_every_method_writes_an_int8_model_that_follows_fp32(world, tmp_path, method):
    int8 = quantize_int8(world["fp32"], tmp_path / f"{method}.onnx", world["batches"], method=method,
                         entropy_bins=TEST_ENTROPY_BINS)
    expected, actual = logits(world["fp32"], world["batches"]), logits(int8, world["batches"])
    assert np.corrcoef(expected.ravel(), actual.ravel())[0, 1] > 0.9
    assert all(scale.ndim == 1 and scale.size > 1 for scale in weight_scales(int8))  # one scale per channel


def test_methods_choose_different_activation_ranges(world, tmp_path):
    scales = {method: activation_scales(quantize_int8(world["fp32"], tmp_path / f"{method}.onnx", world["batches"],
                                                      method=method, entropy_bins=TEST_ENTROPY_BINS))
              for method in CALIBRATION_METHODS}
    assert scales["minmax"].keys() == scales["entropy"].keys() == scales["percentile"].keys()
    minmax = scales["minmax"]
    for method, clipped_by_at_least in (("entropy", 0.2), ("percentile", 1e-4)):
        # Both clip outliers: no range is wider than the observed one, and some are narrower. The KL threshold
        # cuts deep into a tail; the 99.999th percentile only drops the extreme values.
        assert all(scales[method][name] <= minmax[name] * (1 + 1e-6) for name in minmax), method
        assert any(scales[method][name] < minmax[name] * (1 - clipped_by_at_least) for name in minmax), method


def test_per_tensor_gives_each_weight_one_scale(world, tmp_path):
    int8 = quantize_int8(world["fp32"], tmp_path / "t.onnx", world["batches"], per_channel=False)
    scales = weight_scales(int8)
    assert scales and all(scale.ndim == 0 for scale in scales)


def test_minmax_reuses_its_range_pass_and_equals_onnx_runtime_calibrating_alone(world, tmp_path):
    reference = tmp_path / "reference.onnx"
    quantize_static(str(world["fp32"]), str(reference),
                    ArrayReader(onnx.load(str(world["fp32"])).graph.input[0].name, world["batches"]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    ours, theirs = initializers(world["int8"]), initializers(reference)
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_more_calibration_images_are_used(world, tmp_path):
    cfg = load_config(str(CONFIG), {"data_url": str(world["data"])})
    few, many = calibration_batches(cfg, 2), calibration_batches(cfg, 12)
    assert sum(len(b) for b in few) == 2 and sum(len(b) for b in many) == 12


def test_activations_that_overflow_have_no_range_and_nothing_is_written(world, tmp_path):
    model = onnx.load(str(world["fp32"]))
    for tensor in model.graph.initializer:
        if tensor.dims and len(tensor.dims) == 4:
            # Finite weights a million times too large: the activations overflow a few layers in.
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 1e6, tensor.name))
    overflowing = tmp_path / "overflowing.onnx"
    onnx.save(model, str(overflowing))
    target = tmp_path / "int8.onnx"
    target.write_bytes(b"previous int8 model")
    with pytest.raises(UserError, match=r"activation\(s\) of the model to NaN or infinite values"):
        quantize_int8(overflowing, target, world["batches"], method="entropy")
    assert target.read_bytes() == b"previous int8 model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx", "overflowing.onnx"]


def test_weights_that_are_not_finite_are_named(world, tmp_path):
    model = onnx.load(str(world["fp32"]))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    values = numpy_helper.to_array(weight).copy()
    values.flat[0] = np.nan
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(tmp_path / "nan.onnx"))
    with pytest.raises(UserError, match=f"weights with NaN or infinite values \\({weight.name}\\)"):
        quantize_int8(tmp_path / "nan.onnx", tmp_path / "int8.onnx", world["batches"])
    assert not (tmp_path / "int8.onnx").exists()


# ---- the command-line tool, run as its script runs it ----

def run_tool(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        run_cli(quantize_onnx.main, ["--config", str(CONFIG), *args])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def test_tool_prints_fp32_and_the_chosen_int8_and_writes_the_rows(world, tmp_path, capsys):
    output = tmp_path / "int8.onnx"
    code, out, err = run_tool(capsys, "--data_url", str(world["data"]), "--onnx_path", str(world["fp32"]),
                              "--file_name", str(output), "--calibration_method", "percentile", "--per_tensor",
                              "--calibration_images", "4")
    assert code == 0, err
    rows = json.loads(output.with_suffix(".json").read_text())
    assert [row["model"] for row in rows] == ["fp32", "int8 QDQ per-tensor percentile"]
    assert all(0 <= row["top1"] <= 100 for row in rows)
    assert "int8 QDQ per-tensor percentile" in out
    assert all(scale.ndim == 0 for scale in weight_scales(output))


def assert_refused(code: int, err: str, message: str, folder: Path, before: dict[str, bytes]) -> None:
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], err[-2000:]
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing replaced, nothing left


def test_tool_refuses_a_model_that_is_quantised_already(world, tmp_path, capsys):
    (tmp_path / "again.int8.onnx").write_bytes(b"previous")
    (tmp_path / "again.int8.json").write_bytes(b"previous rows")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, _, err = run_tool(capsys, "--data_url", str(world["data"]), "--onnx_path", str(world["int8"]),
                            "--file_name", str(tmp_path / "again.int8.onnx"))
    assert_refused(code, err, "is quantised already (it has DequantizeLinear, QuantizeLinear nodes)", tmp_path,
                   before)


def test_tool_refuses_a_missing_calibration_folder(world, tmp_path, capsys):
    data = tmp_path / "val_only"
    shutil.copytree(world["data"] / "val", data / "val")
    config = tmp_path / "folder.yaml"
    config.write_text(f"base: {CONFIG}\nset: ImageNet\ndata_url: {data}\n")
    (tmp_path / "int8.onnx").write_bytes(b"previous")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(SystemExit) as stop:
        run_cli(quantize_onnx.main, ["--config", str(config), "--onnx_path", str(world["fp32"]),
                                     "--file_name", str(tmp_path / "int8.onnx")])
    err = capsys.readouterr().err
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert stop.value.code == 2 and "missing train/ folder" in err and "Traceback" not in err, err[-2000:]
    assert files == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.yaml", "int8.onnx", "val_only"]


def test_tool_refuses_learned_ranges_from_a_float_checkpoint(world, tmp_path, capsys):
    float_checkpoint = save_checkpoint_atomic(create_model(ARCH, num_classes=CLASSES), world["folder"] / "float.ckpt")
    (tmp_path / "int8.onnx").write_bytes(b"previous")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, _, err = run_tool(capsys, "--data_url", str(world["data"]), "--onnx_path", str(world["fp32"]),
                            "--output", str(tmp_path / "int8.onnx"), "--qat", "true",
                            "--pretrained", str(float_checkpoint))
    assert_refused(code, err, "is no quantisation-aware training checkpoint", tmp_path, before)


def test_tool_refuses_learned_ranges_that_are_not_finite_before_exporting_anything(world, tmp_path, capsys):
    qnet = fake_quant_network(create_model(ARCH, num_classes=CLASSES))
    qnet.set_train(True)
    qnet(ms.Tensor(world["batches"][0]))  # every range observed once
    qnet.pool_quant.range_max.set_data(ms.Tensor(np.float32(np.inf)))
    diverged = save_checkpoint_atomic(qnet, world["folder"] / "diverged_qat.ckpt")
    (tmp_path / "int8.onnx").write_bytes(b"previous")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    # --onnx_path does not exist yet: the tool would export the float model there, but refuses first.
    code, _, err = run_tool(capsys, "--data_url", str(world["data"]), "--onnx_path", str(tmp_path / "qat.onnx"),
                            "--output", str(tmp_path / "int8.onnx"), "--qat", "true", "--pretrained", str(diverged))
    assert_refused(code, err, "activation(s) of", tmp_path, before)
    assert "are not finite (pool_quant)" in err
