"""The benchmark report's parts on tiny inputs: FLOPs counts, the PyTorch deploy twin, the FP32 limit, the int8
level count, and the CSV/Markdown outputs of a real (tiny, one-repeat) run. No timing is asserted."""

import csv
import math

import mindspore as ms
import numpy as np
import pytest
import torch
from conftest import randomise_batchnorm

from benchmarks.flops import PUBLISHED_GMACS, count_macs, total_gmacs
from benchmarks.fp32_limit import Fp32Limit, measure_fp32_limit
from benchmarks.inference_speed import DEPLOY, MINDSPORE, ORT_FP32, ORT_INT8, TORCH, TRAIN, measure_inference
from benchmarks.int8_accuracy import measure_int8_accuracy, per_tensor_levels
from benchmarks.machine import describe_machine
from benchmarks.measurement import BARE_TRAIN_STEP, Measurement, speed_against_bare
from benchmarks.quantization_comparison import int8_speed_rows, qat_recipe_keys
from benchmarks.report import complexity_row, write_outputs
from benchmarks.report_markdown import ReportInputs
from benchmarks.torch_jobs import block_shapes, torch_deploy_state
from benchmarks.torch_repvgg import BlockShape, deploy_net_from_state
from benchmarks.train_throughput import measure_training
from src.checkpoint_files import save_checkpoint_atomic
from src.data import write_demo_imagefolder
from src.deploy.export import export_network
from src.deploy.quantize import quantize_int8, quantize_int8_learned
from src.models import create_model, repvgg_model_convert
from src.models.fake_quant import fake_quant_network
from src.models.repvgg import RepVGG
from src.models.variants import CIFAR_LAYOUT, RepVGGVariant
from src.timing import Timing

# Stem 8, stages 8/16/32/64 channels, one block each; CIFAR strides (1, 1, 2, 2, 2).
TINY = RepVGGVariant((1, 1, 1, 1), (0.25, 0.25, 0.25, 0.25), layout=CIFAR_LAYOUT)
TINY_GROUPED = RepVGGVariant((1, 1, 1, 1), (0.25, 0.25, 0.25, 0.25), groups=2, layout=CIFAR_LAYOUT)


def tiny_train_macs_at_9px(grouped: bool) -> dict[str, int]:
    """By hand, 9x9 input: spatial sizes 9, 9, 5, 3, 2; grouped: blocks 2 and 4 (stage2, stage4) in 2 groups."""
    groups = 2 if grouped else 1
    return {
        "stage0.rbr_dense.conv": 9 * 9 * 8 * 3 * 9, "stage0.rbr_1x1.conv": 9 * 9 * 8 * 3,
        "stage1.0.rbr_dense.conv": 9 * 9 * 8 * 8 * 9, "stage1.0.rbr_1x1.conv": 9 * 9 * 8 * 8,
        "stage2.0.rbr_dense.conv": 5 * 5 * 16 * 8 * 9 // groups, "stage2.0.rbr_1x1.conv": 5 * 5 * 16 * 8 // groups,
        "stage3.0.rbr_dense.conv": 3 * 3 * 32 * 16 * 9, "stage3.0.rbr_1x1.conv": 3 * 3 * 32 * 16,
        "stage4.0.rbr_dense.conv": 2 * 2 * 64 * 32 * 9 // groups, "stage4.0.rbr_1x1.conv": 2 * 2 * 64 * 32 // groups,
        "linear": 64 * 10,
    }


@pytest.mark.parametrize("grouped", [False, True])
def test_mac_count_of_a_tiny_net_matches_the_hand_count(grouped):
    net = RepVGG(TINY_GROUPED if grouped else TINY, num_classes=10)
    expected = tiny_train_macs_at_9px(grouped)
    assert count_macs(net, 9) == expected
    deploy_expected = {name.replace("rbr_dense.conv", "rbr_reparam"): macs for name, macs in expected.items()
                       if "rbr_1x1" not in name}
    assert count_macs(repvgg_model_convert(net), 9) == deploy_expected


@pytest.mark.parametrize("arch", ["RepVGG-A0", "RepVGG-B0"])
def test_mac_counts_match_the_published_numbers(arch):
    train_net = create_model(arch)
    deploy_net = create_model(arch, deploy=True)
    published_train, published_deploy = PUBLISHED_GMACS[arch]
    assert total_gmacs(train_net, 224) == pytest.approx(published_train, rel=0.015)
    assert total_gmacs(deploy_net, 224) == pytest.approx(published_deploy, rel=0.015)
    paper_deploy = {"RepVGG-A0": 1.4, "RepVGG-B0": 3.1}[arch]   # Ding et al. 2021, Table 4, one decimal
    assert round(total_gmacs(deploy_net, 224), 1) == paper_deploy


def test_se_convolutions_count_on_the_pooled_map():
    variant = RepVGGVariant((1, 1, 1, 1), (1, 1, 1, 1), use_se=True, layout=CIFAR_LAYOUT)
    counts = count_macs(RepVGG(variant, num_classes=10), 32)
    assert counts["stage4.0.se.down"] == 256 * 16
    assert counts["stage4.0.se.up"] == 16 * 256


def test_pytorch_deploy_net_from_the_converted_weights_agrees_with_mindspore(rng):
    variant = RepVGGVariant((1, 2, 1, 1), (1, 1, 1, 1), groups=2, use_se=True, layout=CIFAR_LAYOUT)
    net = RepVGG(variant, num_classes=10)
    randomise_batchnorm(net)
    deploy_net = repvgg_model_convert(net)
    shapes = [BlockShape(**shape) for shape in block_shapes(deploy_net)]
    torch_net = deploy_net_from_state(shapes, 10, torch_deploy_state(deploy_net))
    x = rng.normal(size=(2, 3, 32, 32)).astype(np.float32)
    expected = deploy_net(ms.Tensor(x)).asnumpy()
    with torch.inference_mode():
        output = torch_net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_fp32_limit_is_a_positive_finite_rate():
    limit = measure_fp32_limit(threads=1, size=128, repeats=1)
    assert limit.gflops > 0 and math.isfinite(limit.gflops)
    assert limit.theoretical_gflops is None or limit.theoretical_gflops > 0


def test_the_limit_keeps_the_best_rate_of_each_backend():
    first = Fp32Limit({"numpy": 50.0, "torch": 120.0}, 160.0, "basis")
    second = Fp32Limit({"numpy": 70.0, "torch": 90.0}, 160.0, "basis")
    assert first.best_with(second).gemm_gflops == {"numpy": 70.0, "torch": 120.0}
    assert first.best_with(second).gflops == 120.0


def test_per_tensor_levels_scale_each_channel_by_the_widest():
    kernel = np.zeros((3, 2, 3, 3), np.float32)
    kernel[0, 0, 0, 0], kernel[1, 1, 2, 2], kernel[2, 0, 1, 1] = 2.0, -1.0, 0.2
    np.testing.assert_allclose(per_tensor_levels(kernel), [127.0, 63.5, 12.7], rtol=1e-6)


def test_the_project_step_is_compared_with_the_bare_step_of_the_same_arch_and_size():
    def measured(size, engine, seconds):
        return Measurement("RepVGG-A0", size, engine, "train step", 32, 2, Timing((seconds,)), 1.0)
    measurements = [measured(224, "MindSpore graph O0", 2.0), measured(224, BARE_TRAIN_STEP, 1.8),
                    measured(224, "MindSpore graph O1", 1.0), measured(32, BARE_TRAIN_STEP, 1.0)]
    assert speed_against_bare(measurements) == {("RepVGG-A0", 224): pytest.approx(0.9)}


def read_csv(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_tiny_run_writes_the_expected_csv_rows_and_report(tmp_path):
    arch, size = "RepVGG-A0-cifar", 16
    run = measure_inference(arch, size, [1], threads=1, warmup=0, repeats=1, folder=tmp_path, with_harness=False)
    training = measure_training([arch], [size], ["O0"], batch=2, warmup=0, steps=1, threads=1, folder=tmp_path)
    data = tmp_path / "demo"
    write_demo_imagefolder(str(data), num_train_per_class=2, num_val_per_class=2)
    checkpoint = save_checkpoint_atomic(create_model(arch, num_classes=8), tmp_path / "demo.ckpt")
    int8 = measure_int8_accuracy(str(checkpoint), None, 1, tmp_path, calibration_images=4, demo_data=str(data))
    inputs = ReportInputs(describe_machine(1), measure_fp32_limit(1, 128, 1), [complexity_row(arch, size)],
                          run.measurements, {arch: run.agreement}, 0, training, int8)
    out = tmp_path / "results"
    write_outputs(out, inputs)

    rows = read_csv(out / "inference_speed.csv")
    expected_engines = {(MINDSPORE, TRAIN), (MINDSPORE, DEPLOY), (ORT_FP32, TRAIN), (ORT_FP32, DEPLOY),
                        (ORT_INT8["per-channel"], DEPLOY), (ORT_INT8["per-tensor"], DEPLOY), (TORCH, DEPLOY)}
    assert {(row["engine"], row["structure"]) for row in rows} == expected_engines
    assert all(row["batch"] == "1" and row["repeats"] == "1" and float(row["img_per_s"]) > 0
               and float(row["pct_of_fp32_limit"]) > 0 for row in rows)
    assert run.agreement[TORCH] < 1e-4 and run.agreement[ORT_FP32] < 1e-4
    assert [row["engine"] for row in read_csv(out / "train_throughput.csv")] == [
        "MindSpore graph O0", BARE_TRAIN_STEP, "PyTorch eager fp32"]
    assert [row["weight_scales"] for row in read_csv(out / "int8_accuracy.csv")] == ["-", "per-channel",
                                                                                    "per-tensor"]
    (complexity,) = read_csv(out / "complexity.csv")
    assert complexity["arch"] == arch and float(complexity["gmacs_deploy"]) < float(complexity["gmacs_train"])
    report = (out / "report.md").read_text()
    for heading in ("### Machine and FP32 limit", "### Parameters and multiply-accumulates",
                    f"### Inference, {arch} at 16x16", "### Training step, batch 2", "### int8 accuracy",
                    "### Targets"):
        assert heading in report
    assert f"| {ORT_FP32} | {DEPLOY} |" in report
    assert f"{arch} {size} px: " in report and "of the step is the project's own" in report
    assert all((out / name).stat().st_size > 0 for name in (f"inference_{arch}.png", "training.png",
                                                             "int8_accuracy.png"))


def test_qat_recipe_keys_say_how_to_fine_tune_not_which_run():
    keys = qat_recipe_keys()
    assert keys["qat"] is True and keys["epochs"] >= keys["qat_freeze_epochs"] >= 1
    assert not {"base", "pretrained", "train_url"} & set(keys)


def test_ptq_and_qat_int8_models_are_timed_in_turn_with_their_speed_ratio(tmp_path):
    ms.set_seed(0)
    net = create_model("RepVGG-A0-cifar", num_classes=8)
    randomise_batchnorm(net)
    qnet = fake_quant_network(net)
    images = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    qnet.set_train(True)
    qnet(ms.Tensor(images))  # observes every activation range
    qnet.set_train(False)
    fp32 = export_network(qnet.float_network(), "ONNX", tmp_path / "fp32", 1, 32, dynamic_batch=True)
    ptq = quantize_int8(fp32, tmp_path / "ptq.onnx", [images])
    qat = quantize_int8_learned(fp32, tmp_path / "qat.onnx", qnet, "the test network")
    rows = int8_speed_rows(ptq, qat, 32, [1, 4], threads=1)
    assert [(row["model"], row["file"], row["batch"]) for row in rows] == [
        ("int8 PTQ per-channel", "ptq.onnx", 1), ("int8 QAT per-channel", "qat.onnx", 1),
        ("int8 PTQ per-channel", "ptq.onnx", 4), ("int8 QAT per-channel", "qat.onnx", 4)]
    for ptq_row, qat_row in (rows[:2], rows[2:]):
        assert ptq_row["qat_over_ptq_speed"] == qat_row["qat_over_ptq_speed"]
        measured = float(ptq_row["latency_ms"]) / float(qat_row["latency_ms"])
        assert float(qat_row["qat_over_ptq_speed"]) == pytest.approx(measured, rel=0.02)
