"""The built-in demo data set: 32x32 RGB shapes and textures of 8 classes, drawn from a seed with numpy.

Every image puts one foreground pattern (random colour, centre and size) on a random background colour
and adds Gaussian noise, so a classifier has to learn shape and texture, not colour. Train and val come
from different random streams of the same seed. ``write_demo_imagefolder`` stores the set as an ordinary
ImageNet-style folder (``train/<class>/*.png``, ``val/<class>/*.png``) that every tool can read.
"""

import os

import numpy as np
from PIL import Image

from src.atomic_files import staging_folder
from src.errors import UserError

# Alphabetical, so that the sorted class folders of the written set give the same label indices.
DEMO_CLASSES = (
    "checkerboard", "circle", "cross", "horizontal_stripes", "ring", "square", "triangle", "vertical_stripes",
)
DEMO_IMAGE_SIZE = 32
DEMO_PER_CLASS = {"train": 250, "val": 50}
_SPLIT_STREAM = {"train": 0, "val": 1}
_NOISE_STD = 12.0


def _pattern_masks(name: str, dx: np.ndarray, dy: np.ndarray, half: np.ndarray, rng: np.random.Generator
                   ) -> np.ndarray:
    """Boolean (N, S, S) foreground masks; dx, dy are pixel offsets from each image's pattern centre."""
    dist2 = dx**2 + dy**2
    box = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    # Textures fill the same box as the square; stripe width 2-3 px stays resolvable at 32x32.
    width = rng.integers(2, 4, size=half.shape)
    phase = rng.integers(0, 6, size=half.shape)
    if name == "circle":
        return dist2 <= half**2
    if name == "ring":
        return (dist2 <= half**2) & (dist2 >= (0.55 * half) ** 2)
    if name == "square":
        return (np.abs(dx) <= 0.8 * half) & (np.abs(dy) <= 0.8 * half)
    if name == "triangle":
        # Apex up, base down: symmetric, so a horizontal flip keeps the class.
        return (dy >= -half) & (dy <= 0.8 * half) & (np.abs(dx) <= (dy + half) / 2)
    if name == "cross":
        bar = half / 3.5
        return ((np.abs(dx) <= bar) & (np.abs(dy) <= half)) | ((np.abs(dy) <= bar) & (np.abs(dx) <= half))
    if name == "horizontal_stripes":
        return box & (((dy + phase) // width) % 2 == 0)
    if name == "vertical_stripes":
        return box & (((dx + phase) // width) % 2 == 0)
    if name == "checkerboard":
        return box & ((((dx + phase) // width) + ((dy + phase) // width)) % 2 == 0)
    raise ValueError(f"unknown demo class {name!r}")


def _render_class(name: str, count: int, rng: np.random.Generator) -> np.ndarray:
    size = DEMO_IMAGE_SIZE
    centre = rng.integers(10, size - 10, size=(count, 2))[:, :, None, None]
    half = rng.uniform(6.0, 11.0, size=count)[:, None, None]
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    dx = grid_x[None] - centre[:, 0]
    dy = grid_y[None] - centre[:, 1]
    mask = _pattern_masks(name, dx, dy, half, rng)
    background = rng.integers(0, 256, size=(count, 3))
    # Every channel differs from the background by 80-175 levels (mod 256): the pattern always shows.
    foreground = (background + rng.integers(80, 176, size=(count, 3))) % 256
    images = np.where(mask[..., None], foreground[:, None, None, :], background[:, None, None, :])
    images = images + rng.normal(0.0, _NOISE_STD, size=images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def generate_demo_split(split: str, num_per_class: int | None = None, seed: int = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) int32, class by class in ``DEMO_CLASSES`` order.

    The same (split, num_per_class, seed) always gives the same arrays; train and val use different
    random streams, so no val image is a train image.
    """
    if split not in _SPLIT_STREAM:
        raise ValueError(f"split must be one of {sorted(_SPLIT_STREAM)}, got {split!r}")
    count = DEMO_PER_CLASS[split] if num_per_class is None else num_per_class
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    images = np.concatenate([_render_class(name, count, rng) for name in DEMO_CLASSES])
    labels = np.repeat(np.arange(len(DEMO_CLASSES), dtype=np.int32), count)
    return images, labels


def write_demo_imagefolder(root: str, num_train_per_class: int | None = None,
                           num_val_per_class: int | None = None, seed: int = 0) -> None:
    """Write ``root/train/<class>/NNNNN.png`` and ``root/val/<class>/NNNNN.png`` (lossless PNG).

    A split folder that already exists is left untouched. Each split is written into a temporary folder
    inside ``root`` and renamed into place, so an interrupted run never leaves a half-written split and
    ranks that generate the set at the same time all end up reading one complete copy.
    """
    if os.path.exists(root) and not os.path.isdir(root):
        raise UserError(f"demo data folder {root} is a file, not a folder")
    try:
        os.makedirs(root, exist_ok=True)
        for split, count in (("train", num_train_per_class), ("val", num_val_per_class)):
            _write_split(root, split, count, seed)
    except OSError as error:  # a read-only folder, a full disk
        raise UserError(f"cannot write the demo data set into {root}: {error.strerror or error}") from None


def _write_split(root: str, split: str, count: int | None, seed: int) -> None:
    target = os.path.join(root, split)
    if os.path.exists(target):
        return
    images, labels = generate_demo_split(split, count, seed)
    with staging_folder(root, split) as staging:
        for name in DEMO_CLASSES:
            (staging / name).mkdir()
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            Image.fromarray(image).save(staging / DEMO_CLASSES[label] / f"{index:05d}.png", compress_level=1)
        try:
            os.replace(staging, target)
        except OSError:
            # Another process (another rank of a distributed run) wrote the same split first.
            if not os.path.isdir(target):
                raise
