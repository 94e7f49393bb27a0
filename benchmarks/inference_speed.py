"""Inference speed of re-parameterisation and deployment, one architecture at one resolution.

    .venv/bin/python -m benchmarks.inference_speed [--arch RepVGG-A0] [--image_size 224] [--batches 1 32]
        [--threads 2] [--warmup 3] [--repeats 10] [--no_torch] [--no_harness]
        [--csv benchmarks/results/inference_speed.csv]

Rows: MindSpore graph mode, training structure vs deploy net; ONNX Runtime fp32 for both structures; ONNX
Runtime int8 (QDQ, per-channel and per-tensor weights, calibrated on random images: speed only, accuracy is
benchmarks.int8_accuracy's job); PyTorch eager fp32 running the same deploy weights (when torch is installed);
and the C++ harness (MindSpore Lite on CPU) when `.venv-lite` and `ascend310_infer/out/main` exist. Random
weights: speed does not depend on them. Warm-up runs, then the median and spread of timed repeats.
`benchmarks.report` runs this for several architectures and adds FLOPs and the FP32 limit.
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mindspore import Tensor

from benchmarks.flops import total_gmacs
from benchmarks.measurement import Measurement
from benchmarks.mindspore_context import use_graph_mode_on_cpu
from benchmarks.results_csv import write_rows
from benchmarks.torch_jobs import TorchTimings, torch_deploy_timings, torch_installed
from src.deploy.binfiles import write_input_bin
from src.deploy.export import export_network
from src.deploy.lite import convert_onnx_to_mindir, lite_venv
from src.deploy.onnx_runtime import open_session
from src.deploy.quantize import quantize_int8
from src.models import create_model, repvgg_model_convert
from src.models.repvgg import VGGStages
from src.timing import Timing, time_repeats
from src.tools.throughput import inference_timing

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO / "ascend310_infer" / "out" / "main"
TRAIN, DEPLOY = "train (3 branches)", "deploy (re-param.)"
MINDSPORE, ORT_FP32, TORCH = "MindSpore graph fp32", "ONNX Runtime fp32", "PyTorch eager fp32"
ORT_INT8 = {"per-channel": "ONNX Runtime int8 QDQ per-channel", "per-tensor": "ONNX Runtime int8 QDQ per-tensor"}
HARNESS_ENGINE = "C++ harness (MS Lite CPU)"
HARNESS_FILES = 20


@dataclass(frozen=True)
class InferenceRun:
    measurements: list[Measurement]
    agreement: dict[str, float]     # engine -> largest difference of its deploy output from MindSpore's (relative)
    torch: TorchTimings | None      # what ran the PyTorch rows, when they ran


def onnx_timing(path: Path, batch: int, size: int, threads: int, warmup: int, repeats: int) -> Timing:
    session = open_session(path, threads=threads)
    x = np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)
    name = session.get_inputs()[0].name
    return time_repeats(lambda: session.run(None, {name: x}), warmup, repeats)


def onnx_relative_difference(path: Path, net: VGGStages, size: int, threads: int) -> float:
    x = np.random.default_rng(1).normal(size=(2, 3, size, size)).astype(np.float32)
    session = open_session(path, threads=threads)
    (output,) = session.run(None, {session.get_inputs()[0].name: x})
    expected = net(Tensor(x)).asnumpy()
    return float(np.abs(output - expected).max() / np.abs(expected).max())


def harness_timing(onnx_path: Path, size: int, threads: int, folder: Path) -> Timing | None:
    """Mean latency the C++ harness reports over ``HARNESS_FILES`` inputs (one value, so no spread)."""
    if not HARNESS.is_file() or not (lite_venv() / "bin" / "python").is_file():
        return None
    mindir = convert_onnx_to_mindir(onnx_path, folder / "lite.mindir")
    inputs = folder / "bins"
    inputs.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(HARNESS_FILES):
        write_input_bin(inputs / f"{index:06d}.bin", rng.normal(size=(1, 3, size, size)).astype(np.float32))
    result = subprocess.run([str(HARNESS), f"--mindir_path={mindir}", f"--input_path={inputs}",
                             f"--result_path={folder / 'results'}", "--device_target=CPU", f"--cpu_threads={threads}"],
                            capture_output=True, text=True, timeout=600)
    match = re.search(r"mean latency: ([0-9.]+) ms/img", result.stdout + result.stderr)
    return Timing((float(match[1]) / 1000.0,)) if match else None


def measure_inference(arch: str, image_size: int, batches: list[int], threads: int, warmup: int, repeats: int,
                      folder: Path, with_torch: bool = True, with_harness: bool = True) -> InferenceRun:
    """Every engine at every batch size, printing each result as it comes."""
    train_net = create_model(arch, num_classes=1000)
    train_net.set_train(False)
    deploy_net = repvgg_model_convert(train_net)
    gmacs = {TRAIN: total_gmacs(train_net, image_size), DEPLOY: total_gmacs(deploy_net, image_size)}
    measurements = []

    def record(engine: str, structure: str, batch: int, timing: Timing | None) -> None:
        if timing is None:
            return
        measurement = Measurement(arch, image_size, engine, structure, batch, threads, timing, gmacs[structure])
        measurements.append(measurement)
        print(measurement.line(), flush=True)

    onnx_train = export_network(train_net, "ONNX", folder / f"{arch}-train", 1, image_size, dynamic_batch=True)
    onnx_deploy = export_network(deploy_net, "ONNX", folder / f"{arch}-deploy", 1, image_size, dynamic_batch=True)
    calibration = [np.random.default_rng(i).normal(size=(1, 3, image_size, image_size)).astype(np.float32)
                   for i in range(8)]
    int8 = {kind: quantize_int8(onnx_deploy, folder / f"{arch}-int8-{kind}.onnx", calibration,
                                per_channel=kind == "per-channel") for kind in ORT_INT8}
    agreement = {ORT_FP32: onnx_relative_difference(onnx_deploy, deploy_net, image_size, threads)}
    for batch in batches:
        record(MINDSPORE, TRAIN, batch, inference_timing(train_net, batch, image_size, warmup, repeats))
        record(MINDSPORE, DEPLOY, batch, inference_timing(deploy_net, batch, image_size, warmup, repeats))
        record(ORT_FP32, TRAIN, batch, onnx_timing(onnx_train, batch, image_size, threads, warmup, repeats))
        record(ORT_FP32, DEPLOY, batch, onnx_timing(onnx_deploy, batch, image_size, threads, warmup, repeats))
        for kind, path in int8.items():
            record(ORT_INT8[kind], DEPLOY, batch, onnx_timing(path, batch, image_size, threads, warmup, repeats))
    torch_run = None
    if with_torch and torch_installed():
        torch_run = torch_deploy_timings(deploy_net, image_size, batches, threads, warmup, repeats, folder)
        agreement[TORCH] = torch_run.max_relative_difference
        for batch, timing in torch_run.seconds.items():
            record(TORCH, DEPLOY, batch, timing)
    if with_harness:
        record(HARNESS_ENGINE, DEPLOY, 1, harness_timing(onnx_deploy, image_size, threads, folder))
    for engine, difference in agreement.items():
        print(f"{arch}: {engine} deploy output vs MindSpore's: max relative difference {difference:.1e}", flush=True)
    return InferenceRun(measurements, agreement, torch_run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="RepVGG-A0")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no_torch", action="store_true", help="skip the PyTorch eager rows")
    parser.add_argument("--no_harness", action="store_true", help="skip the C++ harness row")
    parser.add_argument("--csv", default="benchmarks/results/inference_speed.csv")
    args = parser.parse_args()
    use_graph_mode_on_cpu(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        run = measure_inference(args.arch, args.image_size, args.batches, args.threads, args.warmup, args.repeats,
                                Path(scratch), not args.no_torch, not args.no_harness)
    write_rows(args.csv, [measurement.row() for measurement in run.measurements])


if __name__ == "__main__":
    main()
