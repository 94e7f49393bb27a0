"""Throughput of the ImageNet training pipeline (``src.data.create_dataset``) on CPU workers.

Writes a folder of synthetic 500x375 JPEGs (smooth gradients, shapes and mild noise, so they compress
and decode like photographs rather than like noise), runs the training data set over it for a few
epochs after one warm-up epoch and reports images per second for several augmentation settings.

    .venv/bin/python -m benchmarks.data_pipeline [--images 200] [--workers 2] [--csv PATH]
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import tempfile
import time
from dataclasses import replace

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.results_csv import write_rows
from src.config import Config
from src.data import create_dataset, data_folder, iterate_checked

VARIANTS = {
    "crop+flip": {},
    "crop+flip+randaug": {"auto_augment": "rand-m9-mstd0.5-inc1"},
    "randaug+erasing+mixup/cutmix": {"auto_augment": "rand-m9-mstd0.5-inc1", "re_prob": 0.25,
                                     "mix_up": 0.8, "cutmix": 1.0},
}
CLASSES = 4


def write_photo_like_jpegs(root: str, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    height, width = 375, 500
    rows, cols = np.mgrid[0:height, 0:width]
    for index in range(count):
        folder = os.path.join(root, "train", f"class{index % CLASSES}")
        os.makedirs(folder, exist_ok=True)
        start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        mix = ((rows / height + cols / width) / 2)[..., None]
        canvas = Image.fromarray((start + (end - start) * mix).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        for _ in range(6):
            x, y = rng.integers(0, width), rng.integers(0, height)
            size = rng.integers(20, 150)
            draw.ellipse((x, y, x + size, y + size), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        noisy = np.asarray(canvas) + rng.normal(0, 6, (height, width, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f"{index:05d}.jpg"), quality=90)


def images_per_second(cfg: Config, epochs: int) -> float:
    dataset = create_dataset(cfg, "train", training=True)
    batches = iterate_checked(dataset, data_folder(cfg, "train"), num_epochs=epochs + 1)
    for _ in batches:  # warm-up epoch: worker start-up and first file reads
        pass
    start = time.perf_counter()
    images = sum(len(images) for _ in range(epochs) for images, _ in batches)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--csv", default="benchmarks/results/data_pipeline.csv")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        write_photo_like_jpegs(root, args.images)
        base = Config(set="ImageNet", data_url=root, num_classes=CLASSES, image_size=224,
                      batch_size=args.batch_size, num_parallel_workers=args.workers)
        rows = []
        for name, changes in VARIANTS.items():
            rate = images_per_second(replace(base, **changes), args.epochs)
            rows.append({"variant": name, "workers": args.workers, "image_size": 224,
                         "source": "500x375 JPEG", "images_per_second": round(rate, 1)})
            print(f"{name:32s} {rate:8.1f} img/s ({args.workers} workers, 224 crops)")

    write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
