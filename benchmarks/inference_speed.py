"""Inference speed of re-parameterisation and deployment, one architecture at one resolution.

    .venv/bin/python -m benchmarks.inference_speed [--arch RepVGG-A0] [--image_size 224] [--batches 1 8]
        [--threads 2] [--csv benchmarks/results/inference_speed.csv]

Rows: MindSpore graph mode, training structure vs deploy net; ONNX Runtime fp32 for both structures; ONNX
Runtime int8 (QDQ, per-channel and per-tensor weights, calibrated on random images: speed only, no accuracy);
and the C++ harness (MindSpore Lite on CPU) when `.venv-lite` and `ascend310_infer/out/main` exist. Random
weights: speed does not depend on them. Warm-up runs, then the median of timed repeats.
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import mindspore as ms
import numpy as np

from benchmarks.results_csv import cpu_model, write_rows
from src.deploy.binfiles import write_input_bin
from src.deploy.export import export_network
from src.deploy.lite import convert_onnx_to_mindir, lite_venv
from src.deploy.onnx_runtime import open_session
from src.deploy.quantize import quantize_int8
from src.engine.speed import images_per_second
from src.models import create_model, repvgg_model_convert

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO / "ascend310_infer" / "out" / "main"


def onnx_images_per_second(path: Path, batch: int, size: int, threads: int, repeats: int = 20) -> float:
    session = open_session(path, threads=threads)
    x = np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)
    name = session.get_inputs()[0].name
    for _ in range(3):
        session.run(None, {name: x})
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {name: x})
        timings.append(time.perf_counter() - start)
    return batch / statistics.median(timings)


def harness_images_per_second(onnx_path: Path, size: int, threads: int, folder: Path, files: int = 20) -> float | None:
    if not HARNESS.is_file() or not (lite_venv() / "bin" / "python").is_file():
        return None
    mindir = convert_onnx_to_mindir(onnx_path, folder / "lite.mindir")
    inputs = folder / "bins"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for index in range(files):
        write_input_bin(inputs / f"{index:06d}.bin", rng.normal(size=(1, 3, size, size)).astype(np.float32))
    result = subprocess.run([str(HARNESS), f"--mindir_path={mindir}", f"--input_path={inputs}",
                             f"--result_path={folder / 'results'}", "--device_target=CPU", f"--cpu_threads={threads}"],
                            capture_output=True, text=True, timeout=600)
    match = re.search(r"mean latency: ([0-9.]+) ms/img", result.stdout + result.stderr)
    return 1000.0 / float(match[1]) if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="RepVGG-A0")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--csv", default="benchmarks/results/inference_speed.csv")
    args = parser.parse_args()
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.set_seed(0)
    size = args.image_size
    train_net = create_model(args.arch, num_classes=1000)
    train_net.set_train(False)
    deploy_net = repvgg_model_convert(train_net)
    rows = []

    def record(engine: str, structure: str, batch: int, value: float | None) -> None:
        if value is None:
            return
        rows.append({"arch": args.arch, "image_size": size, "engine": engine, "structure": structure, "batch": batch,
                     "img_per_s": f"{value:.1f}", "threads": args.threads, "cpu": cpu_model(),
                     "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "")})
        print(f"{engine:28} {structure:24} batch {batch:3}: {value:9.1f} img/s", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        onnx_train = export_network(train_net, "ONNX", folder / "train", 1, size, dynamic_batch=True)
        onnx_deploy = export_network(deploy_net, "ONNX", folder / "deploy", 1, size, dynamic_batch=True)
        calibration = [np.random.default_rng(i).normal(size=(1, 3, size, size)).astype(np.float32) for i in range(8)]
        int8 = {
            "per-channel": quantize_int8(onnx_deploy, folder / "int8_channel.onnx", calibration, per_channel=True),
            "per-tensor": quantize_int8(onnx_deploy, folder / "int8_tensor.onnx", calibration, per_channel=False),
        }
        for batch in args.batches:
            record("MindSpore graph fp32", "train (3 branches)", batch, images_per_second(train_net, batch, size))
            record("MindSpore graph fp32", "deploy (re-param.)", batch, images_per_second(deploy_net, batch, size))
            record("ONNX Runtime fp32", "train (3 branches)", batch,
                   onnx_images_per_second(onnx_train, batch, size, args.threads))
            record("ONNX Runtime fp32", "deploy (re-param.)", batch,
                   onnx_images_per_second(onnx_deploy, batch, size, args.threads))
            for kind, path in int8.items():
                record(f"ONNX Runtime int8 QDQ {kind}", "deploy (re-param.)", batch,
                       onnx_images_per_second(path, batch, size, args.threads))
        record("C++ harness (MS Lite CPU)", "deploy (re-param.)", 1,
               harness_images_per_second(onnx_deploy, size, args.threads, folder))
    write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
