"""Wall time of the README's fine-tuning command on a small folder of one's own images, as a laptop user runs it.

    nice -n 10 .venv/bin/python -m benchmarks.finetune_wall_time [--classes 5] [--train_per_class 80]
        [--val_per_class 20] [--work ./output/finetune_wall_time] [--csv benchmarks/results/finetune_wall_time.csv]

Writes an image folder (320x240 JPEGs, one colour family per class, so the run has something to learn) and a
1000-class RepVGG-A0 checkpoint (random weights: the time does not depend on them), then runs, in that folder,

    python train.py --config src/configs/finetune.yaml --data_url ./my_images --num_classes N --pretrained a0.ckpt

with the recipe as it is (10 epochs at 128 px, batch 32, validation after every epoch). Prints and writes the wall
time of the whole process (start-up, data check and checkpoints included) and the CPU time it used, the mean
seconds per epoch from the run's log.csv, the validation top-1 of the last epoch, the CPU and the 1-minute load
average before and after: on a shared machine the load says how much of the CPU the run had."""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.machine import cpu_model
from benchmarks.results_csv import write_rows
from src.checkpoint_files import save_checkpoint_atomic
from src.data.known_classes import imagenet1k_classes
from src.models import create_model

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "src" / "configs" / "finetune.yaml"
PHOTO_SIZE = (320, 240)


def write_folder(root: Path, classes: int, per_split: dict[str, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    hues = rng.uniform(40, 220, size=(classes, 3))
    for split, count in per_split.items():
        for label in range(classes):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = hues[label] * rng.uniform(0.6, 1.1) + rng.normal(0, 30, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{index}.jpg", quality=90)


def last_epochs(log_csv: Path) -> list[dict]:
    with log_csv.open(newline="") as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--train_per_class", type=int, default=80)
    parser.add_argument("--val_per_class", type=int, default=20)
    parser.add_argument("--work", default="./output/finetune_wall_time", help="scratch folder (emptied first)")
    parser.add_argument("--csv", default="benchmarks/results/finetune_wall_time.csv")
    args = parser.parse_args()

    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    write_folder(work / "my_images", args.classes, {"train": args.train_per_class, "val": args.val_per_class})
    save_checkpoint_atomic(create_model("RepVGG-A0", num_classes=1000), work / "a0.ckpt",
                           class_names=list(imagenet1k_classes()))

    command = [sys.executable, str(REPO / "train.py"), "--config", str(RECIPE), "--data_url", "./my_images",
               "--num_classes", str(args.classes), "--pretrained", "a0.ckpt"]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_after = os.getloadavg()[0]
    if completed.returncode != 0:
        sys.exit(f"the fine-tuning run failed:\n{completed.stderr[-3000:]}")

    epochs = last_epochs(work / "output" / "finetune" / "log.csv")
    row = {"train_images": args.classes * args.train_per_class, "val_images": args.classes * args.val_per_class,
           "epochs": len(epochs), "wall_s": round(wall, 1),
           "cpu_s": round(child.ru_utime + child.ru_stime, 1),
           "mean_epoch_s": round(float(np.mean([float(epoch["epoch_seconds"]) for epoch in epochs])), 1),
           "val_top1": epochs[-1]["top1"], "cpu": cpu_model(), "cores": os.cpu_count(),
           "load_1min_before": round(load_before, 2), "load_1min_after": round(load_after, 2)}
    for key, value in row.items():
        print(f"{key}: {value}")
    write_rows(args.csv, [row])


if __name__ == "__main__":
    main()
