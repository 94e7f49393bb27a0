"""Training throughput (images/s of the full train step) in MindSpore graph mode per AMP level, and in PyTorch.

    .venv/bin/python -m benchmarks.train_throughput [--archs RepVGG-A0-cifar RepVGG-A0] [--sizes 32 224]
        [--levels O0 O1] [--batch 32] [--warmup 3] [--steps 10] [--threads 2] [--no_torch]
        [--csv benchmarks/results/train_throughput.csv]

Random data, so only the step is timed (no data pipeline): forward, soft-target cross entropy, backward,
global-norm clipping, momentum SGD. PyTorch (eager, fp32, when installed) runs the same three-branch network and
the same step in a child process (see benchmarks.torch_jobs). Each row: warm-up steps (compilation), then the
median and spread of timed steps.
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor

from benchmarks.flops import total_gmacs
from benchmarks.measurement import TRAIN_STEP_FORWARD_PASSES, Measurement
from benchmarks.mindspore_context import use_graph_mode_on_cpu
from benchmarks.results_csv import write_rows
from benchmarks.torch_jobs import torch_installed, torch_train_step_timings
from src.config import Config
from src.engine.amp import apply_amp
from src.engine.optimizer import build_optimizer
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler
from src.models import create_model
from src.timing import Timing, time_repeats

NUM_CLASSES = 100
STRUCTURE = "train step"


def mindspore_step_timing(arch: str, size: int, level: str, batch: int, warmup: int, steps: int) -> Timing:
    ms.set_seed(0)
    net = create_model(arch, num_classes=NUM_CLASSES)
    cfg = Config(arch=arch, num_classes=NUM_CLASSES)
    optimizer = build_optimizer(cfg, net.trainable_params(), np.full(warmup + steps, 0.01, np.float32))
    step = TrainStep(NetWithLoss(apply_amp(net, level), SoftTargetCrossEntropy()), optimizer,
                     make_loss_scaler(False, 1024.0 if level != "O0" else 1.0), clip_norm=5.0)
    rng = np.random.default_rng(0)
    images = Tensor(rng.normal(size=(batch, 3, size, size)).astype(np.float32))
    targets = Tensor(np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, batch)])
    return time_repeats(lambda: step(images, targets)[0].asnumpy(), warmup, steps)


def size_fits(arch: str, size: int) -> bool:
    """CIFAR variants are for 32x32 inputs, ImageNet ones for 224."""
    return (size <= 64) == arch.endswith("-cifar")


def measure_training(archs: list[str], sizes: list[int], levels: list[str], batch: int, warmup: int, steps: int,
                     threads: int, folder: Path, with_torch: bool = True) -> list[Measurement]:
    measurements = []
    for arch in archs:
        net = create_model(arch, num_classes=NUM_CLASSES)
        for size in [s for s in sizes if size_fits(arch, s)]:
            gmacs = TRAIN_STEP_FORWARD_PASSES * total_gmacs(net, size)
            timings = {f"MindSpore graph {level}": mindspore_step_timing(arch, size, level, batch, warmup, steps)
                       for level in levels}
            if with_torch and torch_installed():
                torch_run = torch_train_step_timings(net, size, batch, threads, warmup, steps, folder)
                timings["PyTorch eager fp32"] = torch_run.seconds[batch]
            for engine, timing in timings.items():
                measurement = Measurement(arch, size, engine, STRUCTURE, batch, threads, timing, gmacs)
                measurements.append(measurement)
                print(measurement.line(), flush=True)
    return measurements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["RepVGG-A0-cifar", "RepVGG-A0"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 224])
    parser.add_argument("--levels", nargs="+", default=["O0", "O1"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no_torch", action="store_true", help="skip the PyTorch rows")
    parser.add_argument("--csv", default="benchmarks/results/train_throughput.csv")
    args = parser.parse_args()
    use_graph_mode_on_cpu(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        measurements = measure_training(args.archs, args.sizes, args.levels, args.batch, args.warmup, args.steps,
                                        args.threads, Path(scratch), with_torch=not args.no_torch)
    write_rows(args.csv, [measurement.row() for measurement in measurements])


if __name__ == "__main__":
    main()
