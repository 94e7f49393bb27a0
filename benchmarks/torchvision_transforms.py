"""torchvision's image transforms on PIL images, written from torchvision's documented behaviour.

torchvision cannot be installed beside the pinned torch here (its wheel fails to import with it), so the
PyTorch reference of ``benchmarks.training_parity`` and the data-parity tests use these instead. Each function
does what the named torchvision transform does on a PIL image (torchvision 0.2x, ``transforms.v1``):

- ``Resize(int)``: the shorter side becomes ``size``, the longer ``int(size * long / short)``; PIL resampling,
  which filters (antialiases) when it shrinks.
- ``CenterCrop``: top ``int(round((height - size) / 2))``, left likewise.
- ``RandomResizedCrop``: up to 10 draws of an area share uniform in ``scale`` and a log-uniform aspect ratio in
  ``ratio``; ``w = round(sqrt(area * r))``, ``h = round(sqrt(area / r))``; the first box that fits is placed
  uniformly; otherwise a centre crop clamped to ``ratio``. Then the box is resized to ``size`` x ``size``.
- ``RandomCrop(size, padding)``: zero padding on every side, then a uniformly placed crop.
- ``Normalize``: ``(x / 255 - mean) / std`` per channel, CHW.
"""

import math
import random

import numpy as np
from PIL import Image

RESAMPLING = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def resize_shorter_side(image: Image.Image, size: int, interpolation: str) -> Image.Image:
    width, height = image.size
    new_size = (size, int(size * height / width)) if width <= height else (int(size * width / height), size)
    return image.resize(new_size, RESAMPLING[interpolation])


def center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    top, left = round((height - size) / 2.0), round((width - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def random_resized_crop_box(width: int, height: int, rng: random.Random, scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) as ``RandomResizedCrop.get_params`` draws it."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_width = round(math.sqrt(target_area * aspect))
        crop_height = round(math.sqrt(target_area / aspect))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            return rng.randint(0, height - crop_height), rng.randint(0, width - crop_width), crop_height, crop_width
    in_ratio = width / height
    if in_ratio < min(ratio):
        crop_width, crop_height = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        crop_width, crop_height = round(height * max(ratio)), height
    else:
        crop_width, crop_height = width, height
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def random_resized_crop(image: Image.Image, size: int, rng: random.Random, interpolation: str) -> Image.Image:
    top, left, height, width = random_resized_crop_box(*image.size, rng)
    return image.crop((left, top, left + width, top + height)).resize((size, size), RESAMPLING[interpolation])


def random_crop_padded(image: np.ndarray, size: int, padding: int, rng: random.Random) -> np.ndarray:
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    top = rng.randint(0, padded.shape[0] - size)
    left = rng.randint(0, padded.shape[1] - size)
    return padded[top:top + size, left:left + size]


def normalize_chw(image: np.ndarray | Image.Image, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
