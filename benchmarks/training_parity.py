"""Accuracy parity: the project's training against an independent PyTorch run of the same recipe, N seeds each.

For every seed, ``train.py`` trains the recipe's RepVGG on the data, and ``benchmarks.torch_training`` trains
the same RepVGG structure in PyTorch with PyTorch's SGD, loss, clipping and initialisation and torchvision's
transforms (``benchmarks.torchvision_transforms``), with the same hyper-parameters. Both report the top-1 on
the validation split after the last epoch. Writes mean ± std per framework and their difference.

    python -m benchmarks.training_parity [--data FOLDER] [--seeds 3] [--epochs N] [--csv PATH]

Without ``--data`` it uses the built-in demo set with the ``make demo`` recipe and budget. A folder holds
``train/<class>/`` and ``val/<class>/`` images and is trained with the same recipe on ``set: ImageNet``
(random-resized crops, shorter-side resize and centre crop for evaluation).
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.machine import describe_machine
from benchmarks.results_csv import write_rows
from benchmarks.torch_jobs import REPO, block_shapes, run_torch_child, torch_installed
from src.cli import run_cli
from src.config import Config, load_config
from src.data.demo_dataset import write_demo_imagefolder
from src.data.folders import class_indexing, folder_num_classes, image_files
from src.data.transforms import normalization_statistics, uses_small_image_recipe
from src.errors import UserError
from src.models import create_model

DEMO_CONFIG = REPO / "src" / "configs" / "demo.yaml"
# What the PyTorch reference implements; a recipe outside it would not be compared like for like.
_REFERENCE_RECIPE = {"optimizer": "momentum", "lr_scheduler": "cosine_lr", "auto_augment": None, "re_prob": 0.0,
                     "mix_up": 0.0, "cutmix": 0.0, "with_ema": False, "kd_alpha": 0.0, "repopt_search": False}


@dataclass
class Run:
    framework: str
    seed: int
    top1: float
    epoch1_val_loss: float
    seconds: float


def check_reference_recipe(cfg: Config) -> None:
    different = [f"{key}: {getattr(cfg, key)!r}" for key, value in _REFERENCE_RECIPE.items()
                 if getattr(cfg, key) != value]
    if different:
        raise UserError("the PyTorch reference trains plain momentum SGD with a cosine schedule and crop + flip "
                        f"augmentation only; this recipe differs in {', '.join(different)}")


def samples(cfg: Config, split: str) -> list[list]:
    indexing = class_indexing(cfg.data_url, split)
    folder = Path(cfg.data_url) / split
    return [[str(Path(path).resolve()), label] for name, label in sorted(indexing.items())
            for path in sorted(image_files(str(folder / name)))]


def torch_recipe(cfg: Config) -> dict:
    mean, std = normalization_statistics(cfg)
    keys = ("image_size", "crop_pct", "interpolation", "label_smoothing", "batch_size", "base_lr", "warmup_lr",
            "warmup_length", "min_lr", "epochs", "weight_decay", "momentum", "nesterov", "clip_global_norm_value")
    return {**{key: getattr(cfg, key) for key in keys}, "mean": mean, "std": std,
            "small_image_recipe": uses_small_image_recipe(cfg)}


def run_project(cfg: Config, config_path: Path, seed: int, folder: Path) -> Run:
    train_url = folder / f"mindspore_seed{seed}"
    overrides = {"seed": seed, "epochs": cfg.epochs, "set": cfg.set, "data_url": cfg.data_url,
                 "num_classes": cfg.num_classes, "train_url": train_url, "eval_every": 1}
    command = [sys.executable, "train.py", "--config", str(config_path)]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"train.py failed:\n{completed.stderr[-2000:]}")
    with open(train_url / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return Run("mindspore", seed, float(rows[-1]["top1"]), float(rows[0]["val_loss"]), seconds)


def run_reference(cfg: Config, seed: int, threads: int, folder: Path) -> Run:
    job = {"blocks": block_shapes(create_model(cfg.arch, num_classes=cfg.num_classes)),
           "num_classes": cfg.num_classes, "recipe": torch_recipe(cfg), "seed": seed, "threads": threads,
           "train": samples(cfg, "train"), "val": samples(cfg, "val")}
    start = time.perf_counter()
    result = run_torch_child("benchmarks.torch_training", job, folder / f"torch_seed{seed}.json", timeout=None)
    history = result["history"]
    return Run("pytorch", seed, history[-1]["top1"], history[0]["val_loss"], time.perf_counter() - start)


def summary_rows(runs: list[Run], cfg: Config, data: str, threads: int) -> list[dict]:
    machine = describe_machine(threads)
    rows = []
    by_framework = {name: [run for run in runs if run.framework == name] for name in ("mindspore", "pytorch")}
    for name, group in by_framework.items():
        top1 = [run.top1 for run in group]
        rows.append({"framework": name, "arch": cfg.arch, "data": data, "epochs": cfg.epochs,
                     "seeds": " ".join(str(run.seed) for run in group), "top1_runs": " ".join(f"{v:.2f}" for v in top1),
                     "top1_mean": round(statistics.mean(top1), 2),
                     "top1_std": round(statistics.stdev(top1), 2) if len(top1) > 1 else 0.0,
                     "epoch1_val_loss_mean": round(statistics.mean(run.epoch1_val_loss for run in group), 3),
                     "seconds_per_run": round(statistics.mean(run.seconds for run in group), 1),
                     "cpu": machine["cpu"], "load_average_1min_at_start": machine["load_average_1min_at_start"]})
    difference = rows[0]["top1_mean"] - rows[1]["top1_mean"]
    rows.append({**{key: "" for key in rows[0]}, "framework": "mindspore - pytorch", "arch": cfg.arch, "data": data,
                 "epochs": cfg.epochs, "top1_mean": round(difference, 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with train/ and val/ class folders (default: the demo set)")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="recipe (default: the make demo recipe)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per framework, seeds 0..N-1 (default 3)")
    parser.add_argument("--epochs", type=int, help="default: the recipe's (make demo: 8)")
    # One thread: on a busy 2-core machine PyTorch's OpenMP pool of 2 ran a step 6x slower than 1 thread did.
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--csv", default="benchmarks/results/training_parity.csv")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}")
    if not torch_installed():
        raise UserError("the reference run needs PyTorch: pip install -r requirements-dev.txt")
    config_path = Path(args.config).resolve()
    cfg = load_config(config_path, {"epochs": args.epochs} if args.epochs else None)
    check_reference_recipe(cfg)
    if args.data:
        data = str(Path(args.data).resolve())
        cfg = replace(cfg, set="ImageNet", data_url=data, num_classes=folder_num_classes(data))
    elif not (Path(cfg.data_url) / "val").is_dir():
        write_demo_imagefolder(cfg.data_url)
    runs = []
    with tempfile.TemporaryDirectory(prefix="training-parity-") as work:
        for seed in range(args.seeds):
            for run in (run_project(cfg, config_path, seed, Path(work)),
                        run_reference(cfg, seed, args.threads, Path(work))):
                runs.append(run)
                print(f"{run.framework:9s} seed {seed}: top-1 {run.top1:.2f}%, epoch-1 val loss "
                      f"{run.epoch1_val_loss:.3f}, {run.seconds:.0f} s", flush=True)
            # Rewritten after every seed, so that a long run cut short still leaves its finished seeds.
            rows = summary_rows(runs, cfg, args.data or "demo set", args.threads)
            write_rows(args.csv, rows)
    for row in rows[:2]:
        print(f"{row['framework']:9s} top-1 {row['top1_mean']:.2f} ± {row['top1_std']:.2f} % ({row['top1_runs']})")
    print(f"difference (MindSpore - PyTorch): {rows[2]['top1_mean']:+.2f} points")
    return 0


if __name__ == "__main__":
    run_cli(main)
