"""Training throughput (images/s of the full train step) in MindSpore graph mode, per AMP level.

    .venv/bin/python -m benchmarks.train_throughput [--archs RepVGG-A0-cifar RepVGG-A0] [--sizes 32 224]
        [--levels O0 O1] [--batch 32] [--steps 10] [--csv benchmarks/results/train_throughput.csv]

Random data, so only the step is timed (no data pipeline). Each row: warm-up steps (compilation), then the
median of timed steps.
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import statistics
import time

import mindspore as ms
import numpy as np
from mindspore import Tensor

from benchmarks.results_csv import cpu_model, write_rows
from src.config import Config
from src.engine.amp import apply_amp
from src.engine.optimizer import build_optimizer
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler
from src.models import create_model


def measure(arch: str, size: int, level: str, batch: int, steps: int, warmup: int = 3) -> float:
    ms.set_seed(0)
    net = create_model(arch, num_classes=100)
    cfg = Config(arch=arch, num_classes=100)
    optimizer = build_optimizer(cfg, net.trainable_params(), np.full(warmup + steps, 0.01, np.float32))
    step = TrainStep(NetWithLoss(apply_amp(net, level), SoftTargetCrossEntropy()), optimizer,
                     make_loss_scaler(False, 1024.0 if level != "O0" else 1.0), clip_norm=5.0)
    rng = np.random.default_rng(0)
    images = Tensor(rng.normal(size=(batch, 3, size, size)).astype(np.float32))
    targets = Tensor(np.eye(100, dtype=np.float32)[rng.integers(0, 100, batch)])
    for _ in range(warmup):
        step(images, targets)[0].asnumpy()
    timings = []
    for _ in range(steps):
        start = time.perf_counter()
        step(images, targets)[0].asnumpy()
        timings.append(time.perf_counter() - start)
    return batch / statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["RepVGG-A0-cifar", "RepVGG-A0"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 224])
    parser.add_argument("--levels", nargs="+", default=["O0", "O1"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--csv", default="benchmarks/results/train_throughput.csv")
    args = parser.parse_args()
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    rows = []
    for arch in args.archs:
        # CIFAR variants are for 32x32 inputs, ImageNet ones for 224.
        for size in [s for s in args.sizes if (s <= 64) == arch.endswith("-cifar")]:
            for level in args.levels:
                value = measure(arch, size, level, args.batch, args.steps)
                row = {"arch": arch, "image_size": size, "amp_level": level, "batch": args.batch,
                       "img_per_s": f"{value:.1f}", "threads": os.cpu_count(), "cpu": cpu_model(),
                       "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "")}
                rows.append(row)
                print(f"{arch:18} {size:4}px {level}  batch {args.batch}: {value:8.1f} img/s", flush=True)
    write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
