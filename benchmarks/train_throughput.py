"""Training throughput (images/s of the full train step) in MindSpore graph mode per AMP level, against MindSpore's
bare ``nn.TrainOneStepCell`` and PyTorch.

    .venv/bin/python -m benchmarks.train_throughput [--archs RepVGG-A0-cifar RepVGG-A0] [--sizes 32 224]
        [--levels O0 O1] [--batch 32] [--warmup 3] [--steps 10] [--threads 2] [--no_torch]
        [--csv benchmarks/results/train_throughput.csv]

Random data, so only the step is timed (no data pipeline): forward, soft-target cross entropy, backward,
global-norm clipping, momentum SGD. The bare framework step is ``nn.TrainOneStepCell`` in training mode (as
``Model.train`` sets it: BatchNorm on batch statistics) with the same network, batch and optimiser (the
project's momentum SGD, src/engine/momentum_sgd.py, with weight decay), and no clipping. The project's step
(src/engine/train_step.py) adds to it the finite check, the BatchNorm backup, global-norm clipping and loss
scaling: the two are timed in turn, step by step, so machine noise hits both alike, and their ratio is the
share of the step that is the project's own. PyTorch (eager, fp32, when installed) runs the same three-branch
network and the same step in a child process (see benchmarks.torch_jobs). Each row: warm-up steps
(compilation), then the median and spread of timed steps.
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from benchmarks.flops import total_gmacs
from benchmarks.measurement import (
    BARE_TRAIN_STEP,
    TRAIN_STEP_FORWARD_PASSES,
    Measurement,
    project_engine,
    speed_against_bare,
)
from benchmarks.mindspore_context import use_graph_mode_on_cpu
from benchmarks.results_csv import write_rows
from benchmarks.torch_jobs import torch_installed, torch_train_step_timings
from src.config import Config
from src.engine.amp import apply_amp
from src.engine.optimizer import build_optimizer
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler
from src.models import create_model
from src.timing import time_interleaved

NUM_CLASSES = 100
STRUCTURE = "train step"


def mindspore_steps(arch: str, size: int, levels: list[str], batch: int) -> dict[str, Callable[[], object]]:
    """One step per engine (the project's per AMP level, the bare framework's at O0), each on its own network
    with the same initial weights and the same random batch, as calls that block until the step is done."""
    rng = np.random.default_rng(0)
    images = Tensor(rng.normal(size=(batch, 3, size, size)).astype(np.float32))
    targets = Tensor(np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, batch)])
    cfg = Config(arch=arch, num_classes=NUM_CLASSES)

    def network_and_optimizer() -> tuple[nn.Cell, nn.Cell]:
        ms.set_seed(0)
        net = create_model(arch, num_classes=NUM_CLASSES)
        # A schedule long enough for any --warmup/--steps: the optimiser indexes it by its own step count.
        return net, build_optimizer(cfg, net.trainable_params(), np.full(100_000, 0.01, np.float32))

    steps = {}
    for level in levels:
        net, optimizer = network_and_optimizer()
        step = TrainStep(NetWithLoss(apply_amp(net, level), SoftTargetCrossEntropy()), optimizer,
                         make_loss_scaler(False, 1024.0 if level != "O0" else 1.0), clip_norm=5.0)
        steps[project_engine(level)] = lambda step=step: step(images, targets)[0].asnumpy()
    net, optimizer = network_and_optimizer()
    bare = nn.TrainOneStepCell(NetWithLoss(net, SoftTargetCrossEntropy()), optimizer)
    # A TrainOneStepCell starts in inference mode; Model.train switches it, as TrainStep switches itself.
    bare.set_train(True)
    steps[BARE_TRAIN_STEP] = lambda: bare(images, targets).asnumpy()
    return steps


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
            timings = time_interleaved(mindspore_steps(arch, size, levels, batch), warmup, steps)
            if with_torch and torch_installed():
                torch_run = torch_train_step_timings(net, size, batch, threads, warmup, steps, folder)
                timings["PyTorch eager fp32"] = torch_run.seconds[batch]
            for engine, timing in timings.items():
                measurement = Measurement(arch, size, engine, STRUCTURE, batch, threads, timing, gmacs)
                measurements.append(measurement)
                print(measurement.line(), flush=True)
            ratio = speed_against_bare(measurements).get((arch, size))
            if ratio is not None:
                print(f"{arch} {size}px: the project's O0 step runs at {ratio:.3f}x the bare TrainOneStepCell; "
                      f"{100 * (1 - ratio):.1f} % of the step is the project's own", flush=True)
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
