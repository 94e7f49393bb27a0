"""The data pipeline does what torchvision's does: evaluation pixels, training-crop distributions, shuffling.

torchvision cannot be installed beside the pinned torch here, so the reference is
``benchmarks/torchvision_transforms.py``: torchvision's PIL-path algorithms (Resize of the shorter side with
PIL's antialiased resampling, CenterCrop's rounding, RandomResizedCrop's 10 log-uniform attempts and its
centre-crop fallback) written out from torchvision's documentation. The real photo is the one matplotlib ships
(``grace_hopper.jpg``, 512x600).
"""

import random
from pathlib import Path

import matplotlib
import mindspore.dataset as ds
import numpy as np
import pytest
from PIL import Image

from benchmarks import torchvision_transforms as tvt
from src.config import Config
from src.data import IMAGENET_MEAN, IMAGENET_STD, preprocess_image, train_transforms
from src.device import Placement
from src.engine.trainer import _train_dataset

PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
STD = np.asarray(IMAGENET_STD, np.float32).reshape(3, 1, 1)
MEAN = np.asarray(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)


def to_unit_range(chw: np.ndarray) -> np.ndarray:
    """Undo the ImageNet normalisation: pixels in [0, 1]."""
    return chw * STD + MEAN


@pytest.mark.parametrize("image_size, crop_pct, interpolation", [
    (32, 1.0, "bicubic"),        # the demo recipe on an image folder: photos shrunk 16x
    (32, 0.875, "bilinear"),
    (224, 0.875, "bicubic"),     # the ImageNet recipe
    (224, 0.875, "bilinear"),
])
def test_eval_transform_equals_torchvision_resize_center_crop_normalize(image_size, crop_pct, interpolation):
    cfg = Config(set="ImageNet", image_size=image_size, crop_pct=crop_pct, interpolation=interpolation)
    ours = to_unit_range(preprocess_image(PHOTO, cfg))
    with Image.open(PHOTO) as photo:
        resized = tvt.resize_shorter_side(photo.convert("RGB"), int(image_size / crop_pct), interpolation)
    reference = to_unit_range(tvt.normalize_chw(tvt.center_crop(resized, image_size), IMAGENET_MEAN, IMAGENET_STD))
    assert ours.shape == reference.shape == (3, image_size, image_size)
    assert np.abs(ours - reference).mean() <= 1 / 255


# ----- RandomResizedCrop: the distributions of the crop's area share and aspect ratio -----

COORDINATE_WIDTH, COORDINATE_HEIGHT, CROP_OUTPUT = 250, 200, 64
DRAWS = 1500
# Two-sample Kolmogorov-Smirnov test at alpha = 0.001: reject when D > 1.95 * sqrt(2 / n).
KS_CRITICAL = 1.95 * np.sqrt(2 / DRAWS)


def coordinate_image() -> np.ndarray:
    """Red is the column and green the row of each pixel, so a crop shows where it came from."""
    rows, cols = np.mgrid[0:COORDINATE_HEIGHT, 0:COORDINATE_WIDTH]
    return np.stack([cols, rows, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def crop_shape(output: np.ndarray) -> tuple[float, float]:
    """(area share, log aspect ratio) of the box a nearest-neighbour crop of the coordinate image came from.

    A nearest resize to S pixels samples the box at pixel centres, so the span of coordinates it shows is
    (S - 1) / S of the box; both sides are measured this same way."""
    cols, rows = output[..., 0].astype(float), output[..., 1].astype(float)
    stretch = CROP_OUTPUT / (CROP_OUTPUT - 1)
    width = (cols.max() - cols.min() + 1) * stretch
    height = (rows.max() - rows.min() + 1) * stretch
    return width * height / (COORDINATE_WIDTH * COORDINATE_HEIGHT), float(np.log(width / height))


def project_crops(count: int) -> np.ndarray:
    cfg = Config(set="ImageNet", image_size=CROP_OUTPUT, interpolation="nearest")
    ops = train_transforms(cfg)
    ds.config.set_seed(3)   # the PIL-path operators draw from Python's random, which this seeds
    image, shapes = coordinate_image(), []
    for _ in range(count):
        out = image
        for op in ops:
            out = op(out)
        # Undo the normalisation back to the coordinate values (flips do not change the span).
        pixels = np.rint(to_unit_range(out) * 255).transpose(1, 2, 0)
        shapes.append(crop_shape(pixels))
    return np.array(shapes)


def reference_crops(count: int, scale=(0.08, 1.0)) -> np.ndarray:
    rng, image, shapes = random.Random(11), Image.fromarray(coordinate_image()), []
    for _ in range(count):
        top, left, height, width = tvt.random_resized_crop_box(*image.size, rng, scale=scale)
        box = image.crop((left, top, left + width, top + height)).resize((CROP_OUTPUT, CROP_OUTPUT), Image.NEAREST)
        shapes.append(crop_shape(np.asarray(box)))
    return np.array(shapes)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    values = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), values, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), values, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def test_random_resized_crop_scale_and_aspect_ratio_follow_torchvision():
    ours, reference = project_crops(DRAWS), reference_crops(DRAWS)
    for column, what in ((0, "area share"), (1, "log aspect ratio")):
        statistic = ks_statistic(ours[:, column], reference[:, column])
        assert statistic < KS_CRITICAL, f"{what}: KS statistic {statistic:.3f} >= {KS_CRITICAL:.3f}"
    # The test can tell distributions apart: a crop scale of (0.25, 1) is rejected.
    assert ks_statistic(ours[:, 0], reference_crops(DRAWS, scale=(0.25, 1.0))[:, 0]) > KS_CRITICAL


# ----- Shuffling: a global shuffle of the whole split, different every epoch -----

def write_numbered_folder(root: Path, classes: int, per_class: int) -> None:
    """Flat 32x32 PNGs whose grey level is the image's number, class folders in order."""
    for label in range(classes):
        folder = root / "train" / f"class{label}"
        folder.mkdir(parents=True)
        (root / "val" / f"class{label}").mkdir(parents=True)
        for index in range(per_class):
            number = label * per_class + index
            Image.fromarray(np.full((32, 32, 3), 4 * number, np.uint8)).save(folder / f"{index:03d}.png")
            if index == 0:
                Image.fromarray(np.full((32, 32, 3), 0, np.uint8)).save(root / "val" / f"class{label}" / "0.png")


def epoch_order(cfg: Config, epoch: int) -> np.ndarray:
    numbers = []
    for images, _ in _train_dataset(cfg, epoch, Placement()).create_tuple_iterator(output_numpy=True, num_epochs=1):
        numbers.extend(np.rint(to_unit_range(images).mean(axis=(1, 2, 3)) * 255 / 4).astype(int))
    return np.array(numbers)


def test_every_epoch_is_a_new_global_shuffle_of_the_whole_split(tmp_path):
    classes, per_class = 4, 16
    write_numbered_folder(tmp_path, classes, per_class)
    cfg = Config(set="ImageNet", data_url=str(tmp_path), num_classes=classes, image_size=32, batch_size=8,
                 num_parallel_workers=2, label_smoothing=0.0)
    first, second = epoch_order(cfg, 0), epoch_order(cfg, 1)
    total = classes * per_class
    for order in (first, second):
        assert sorted(order) == list(range(total))          # every image once per epoch
        labels = order // per_class
        # Class-ordered batches would repeat the class at nearly every step; a shuffle at 1/classes.
        assert np.mean(labels[1:] == labels[:-1]) < 0.45
        assert all(len(set(labels[start:start + 8])) > 1 for start in range(0, total, 8))
        # No trace of the file order: rank correlation with it near 0.
        assert abs(np.corrcoef(order, np.arange(total))[0, 1]) < 0.35
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(epoch_order(cfg, 0), first)   # seeded by the epoch: a resume sees the same
