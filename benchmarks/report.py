"""The benchmark report: one command that measures and writes CSV files, a Markdown report and PNG charts.

    .venv/bin/python -m benchmarks.report --archs RepVGG-A0 RepVGG-B0 --batches 1 8 32 --out benchmarks/results

For every architecture: parameters and multiply-accumulates of the training and deploy structures, then images/s
and latency per batch size in MindSpore graph mode (both structures), ONNX Runtime fp32 (both) and int8 (deploy,
per-channel and per-tensor weights), PyTorch eager fp32 on the same deploy weights (when torch is installed, with
an output check) and the C++ harness when built. Beside them: this machine's FP32 limit, so each rate is also a
share of it; the training step of RepVGG-A0 (CIFAR at 32 px and ImageNet at 224) in MindSpore O0/O1 and PyTorch;
top-1 of fp32, int8 per-channel and int8 per-tensor on the demo set; and the targets, met or not.

Outputs in --out: machine.csv, complexity.csv, inference_speed.csv, train_throughput.csv, int8_accuracy.csv,
report.md, inference_<arch>.png, training.png, int8_accuracy.png. Batch 8 is in the default batches because the
re-parameterisation target is defined there. RepVGG-A0 with the defaults took 16 minutes on 2 cores shared with
other jobs (less on a quiet machine); --pretrained skips the demo training (a few minutes), and --repeats,
--train_steps and --warmup trade precision for time.
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import tempfile
import time
from pathlib import Path

from mindspore import nn

from benchmarks.charts import inference_chart, int8_chart, training_chart
from benchmarks.flops import PUBLISHED_GMACS, total_gmacs
from benchmarks.fp32_limit import measure_fp32_limit
from benchmarks.inference_speed import measure_inference
from benchmarks.int8_accuracy import CALIBRATION_IMAGES, measure_int8_accuracy
from benchmarks.machine import cpu_flags, describe_machine, has_vnni
from benchmarks.mindspore_context import use_graph_mode_on_cpu
from benchmarks.report_markdown import ReportInputs, render_report
from benchmarks.results_csv import write_rows
from benchmarks.targets import check_targets
from benchmarks.train_throughput import measure_training
from src.atomic_files import write_text_atomic
from src.cli import add_flag
from src.models import create_model, repvgg_model_convert
from src.models.parameters import trainable_millions

PUBLISHED_SIZE = 224


class Stages:
    """Progress: a numbered heading with the elapsed time for every stage of the run."""

    def __init__(self, count: int):
        self.count, self.done, self.start = count, 0, time.perf_counter()

    def begin(self, title: str) -> None:
        self.done += 1
        minutes, seconds = divmod(int(time.perf_counter() - self.start), 60)
        print(f"\n[{self.done}/{self.count}, {minutes:02d}:{seconds:02d}] {title}", flush=True)


def millions(net: nn.Cell) -> str:
    return f"{trainable_millions(net):.2f}"


def complexity_row(arch: str, image_size: int) -> dict:
    train_net = create_model(arch)
    deploy_net = repvgg_model_convert(train_net)
    published = PUBLISHED_GMACS.get(arch) if image_size == PUBLISHED_SIZE else None
    return {"arch": arch, "image_size": image_size, "params_train_m": millions(train_net),
            "params_deploy_m": millions(deploy_net), "gmacs_train": f"{total_gmacs(train_net, image_size):.3f}",
            "gmacs_deploy": f"{total_gmacs(deploy_net, image_size):.3f}",
            "published_gmacs": " / ".join(f"{value:.2f}" for value in published) if published else ""}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["RepVGG-A0"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before each timing")
    parser.add_argument("--repeats", type=int, default=10, help="timed inference runs per row")
    parser.add_argument("--gemm_size", type=int, default=2048, help="matrix size of the FP32-limit GEMM")
    parser.add_argument("--no_torch", action="store_true", help="skip the PyTorch rows")
    parser.add_argument("--no_harness", action="store_true", help="skip the C++ harness row")
    training = parser.add_argument_group("training step")
    training.add_argument("--skip_training", action="store_true")
    training.add_argument("--train_archs", nargs="+", default=["RepVGG-A0-cifar", "RepVGG-A0"])
    training.add_argument("--train_sizes", nargs="+", type=int, default=[32, 224])
    training.add_argument("--levels", nargs="+", default=["O0", "O1"])
    training.add_argument("--train_batch", type=int, default=32)
    training.add_argument("--train_steps", type=int, default=5, help="timed steps per row")
    int8 = parser.add_argument_group("int8 accuracy on the demo set")
    int8.add_argument("--skip_int8", action="store_true")
    add_flag(int8, "--pretrained", "--checkpoint",
             help="a trained RepVGG-A0-cifar demo checkpoint (default: train one now)")
    int8.add_argument("--demo_epochs", type=int, help="epochs when training it (default: the demo config's)")
    int8.add_argument("--demo_data", help="the demo set's folder, written if missing (default: the config's)")
    int8.add_argument("--calibration_images", type=int, default=CALIBRATION_IMAGES)
    parser.add_argument("--out", default="benchmarks/results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    out = Path(args.out)
    with_torch = not args.no_torch
    use_graph_mode_on_cpu(args.threads)
    stages = Stages(3 + len(args.archs) + (not args.skip_training) + (not args.skip_int8))
    machine = describe_machine(args.threads)
    print("  ".join(f"{key}: {value}" for key, value in machine.items()), flush=True)

    stages.begin(f"FP32 limit: {args.gemm_size}^3 SGEMM")
    limit = measure_fp32_limit(args.threads, args.gemm_size)
    print(", ".join(f"{backend} {rate:.1f} GFLOP/s" for backend, rate in limit.gemm_gflops.items()), flush=True)

    stages.begin("parameters and multiply-accumulates")
    complexity = [complexity_row(arch, args.image_size) for arch in args.archs]
    for row in complexity:
        print(row, flush=True)

    inference, agreement, training, int8 = [], {}, [], None
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for arch in args.archs:
            stages.begin(f"inference {arch} at {args.image_size}px, batches {args.batches}")
            run = measure_inference(arch, args.image_size, args.batches, args.threads, args.warmup, args.repeats,
                                    folder, with_torch, not args.no_harness)
            inference += run.measurements
            agreement[arch] = run.agreement
        if not args.skip_training:
            stages.begin(f"training step, batch {args.train_batch}")
            training = measure_training(args.train_archs, args.train_sizes, args.levels, args.train_batch,
                                        args.warmup, args.train_steps, args.threads, folder, with_torch)
        if not args.skip_int8:
            stages.begin("int8 accuracy on the demo set")
            int8 = measure_int8_accuracy(args.pretrained, args.demo_epochs, args.threads, folder,
                                         args.calibration_images, args.demo_data)

    stages.begin("FP32 limit again: the best of both measurements is kept")
    limit = limit.best_with(measure_fp32_limit(args.threads, args.gemm_size))
    print(", ".join(f"{backend} {rate:.1f} GFLOP/s" for backend, rate in limit.gemm_gflops.items()), flush=True)
    write_outputs(out, ReportInputs(machine, limit, complexity, inference, agreement, args.warmup, training, int8))


def machine_rows(inputs: ReportInputs) -> list[dict]:
    limit = inputs.limit
    values = {**inputs.machine, **{f"gemm_gflops {name}": f"{rate:.1f}" for name, rate in limit.gemm_gflops.items()},
              "fp32_limit_gflops": f"{limit.gflops:.1f}",
              "theoretical_peak_gflops": f"{limit.theoretical_gflops:.1f}" if limit.theoretical_gflops else "",
              "theoretical_peak_basis": limit.theoretical_basis}
    return [{"key": key, "value": value} for key, value in values.items()]


def write_outputs(out: Path, inputs: ReportInputs) -> None:
    """The CSV files, the charts and report.md (with the targets checked) into ``out``."""
    limit_gflops = inputs.limit.gflops
    write_rows(out / "machine.csv", machine_rows(inputs))
    write_rows(out / "complexity.csv", inputs.complexity)
    write_rows(out / "inference_speed.csv", [m.row(limit_gflops) for m in inputs.inference])
    charts = {arch: inference_chart([m for m in inputs.inference if m.arch == arch],
                                    out / f"inference_{arch}.png").name for arch in inputs.agreement}
    if inputs.training:
        write_rows(out / "train_throughput.csv", [m.row(limit_gflops) for m in inputs.training])
        charts["training"] = training_chart(inputs.training, out / "training.png").name
    if inputs.int8:
        write_rows(out / "int8_accuracy.csv", inputs.int8.rows)
        charts["int8"] = int8_chart(inputs.int8.rows, out / "int8_accuracy.png").name
    targets = check_targets(inputs.inference, limit_gflops, has_vnni(cpu_flags()),
                            inputs.int8.top1_drop("per-channel") if inputs.int8 else None)
    print(f"written {write_text_atomic(out / 'report.md', render_report(inputs, targets, charts))}")


if __name__ == "__main__":
    main()
