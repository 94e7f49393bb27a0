"""Image transforms for training and evaluation, built from ``mindspore.dataset.vision`` operators.

Two recipes, chosen by ``cfg.set``:
- ImageNet-style folders: random-resized crop (``scale``, ``ratio``), flip, RandAugment/AutoAugment, ImageNet
  normalisation, CHW, random erasing; eval resizes the shorter side to ``int(image_size / crop_pct)`` and
  centre-crops ``image_size``. Crops and resizes run on PIL images, as torchvision's do: MindSpore's PIL path
  calls PIL's resampling, which low-pass filters when it shrinks; its OpenCV path (numpy images) does not,
  and shrinking a photo to a small ``image_size`` that way aliases badly (15/255 mean difference to PIL at 32
  px, and a top-1 several points lower than a torchvision pipeline on real photos). ``area`` stays on
  OpenCV's ``INTER_AREA``, which PIL does not offer and which already averages when it shrinks.
- CIFAR-100 and the demo set (32x32, as a Jittor RepVGG): RandAugment/AutoAugment, 4-pixel padded random crop,
  flip, CIFAR-100 normalisation, CHW, random erasing; eval only normalises. Both resize to
  ``image_size`` when it is not 32.

``eval_transforms`` is the single evaluation definition: the data set pipeline maps it, and
``preprocess_image`` applies the same operators eagerly to one image for the export and inference tools.
"""

import os

import numpy as np
from mindspore.dataset import transforms, vision
from PIL import Image

from src.config import Config
from src.data.auto_augment import auto_augment_ops
from src.data.checked import unreadable_reason
from src.data.jpeg_guard import read_image_file
from src.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR_STD = (0.2675, 0.2565, 0.2761)
SMALL_IMAGE_SIZE = 32                   # CIFAR-100 and demo images are stored at 32x32
SMALL_IMAGE_SETS = ("CIFAR100", "demo")
# One operator per name of CHOICES["interpolation"] in src.config.
INTERPOLATIONS = {
    "bilinear": vision.Inter.BILINEAR,
    "bicubic": vision.Inter.BICUBIC,
    "nearest": vision.Inter.NEAREST,
    "area": vision.Inter.AREA,
}
# timm's erasing defaults: area 2%-1/3 of the image (split between the boxes), aspect ratio 0.3-3.3.
_ERASE_AREA = (0.02, 1 / 3)
_ERASE_RATIO = (0.3, 3.3)


def uses_small_image_recipe(cfg: Config) -> bool:
    """True for the 32x32 CIFAR-style recipe (CIFAR100, demo), False for ImageNet-style folders."""
    return cfg.set in SMALL_IMAGE_SETS


def normalization_statistics(cfg: Config) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per RGB channel, in [0, 1] units, that the recipe of ``cfg.set`` normalises with."""
    return (CIFAR_MEAN, CIFAR_STD) if uses_small_image_recipe(cfg) else (IMAGENET_MEAN, IMAGENET_STD)


def _normalize_to_chw(cfg: Config) -> list:
    mean, std = normalization_statistics(cfg)
    # Transposing uint8 before normalising moves a quarter of the bytes that a float transpose would.
    return [vision.HWC2CHW(), vision.Normalize([255 * m for m in mean], [255 * s for s in std], is_hwc=False)]


def _mean_colour(cfg: Config) -> tuple[int, int, int]:
    mean, _ = normalization_statistics(cfg)
    return tuple(round(255 * m) for m in mean)


class _ChannelRandomErasing(vision.RandomErasing):
    """Erasing filled with one standard-normal value per channel, drawn anew for every image.

    timm's ``rand`` mode; MindSpore only offers a fixed colour or per-pixel noise, so this subclass sets a
    fresh per-channel colour before MindSpore's own box sampling and erasing run. Worker threads share the
    instance; whichever thread's draw an image gets, it is an independent normal draw.
    """

    def _execute_py(self, np_img: np.ndarray) -> np.ndarray:
        self.value = tuple(np.random.standard_normal(np_img.shape[0]))
        return super()._execute_py(np_img)


# One (operator, fill) per name of CHOICES["re_mode"] in src.config.
ERASING_MODES = {"const": (vision.RandomErasing, 0), "rand": (_ChannelRandomErasing, 0),
                 "pixel": (vision.RandomErasing, "random")}


def random_erasing_ops(cfg: Config) -> list:
    """Random erasing on normalised CHW float images, as timm's ``RandomErasing(re_prob, re_mode, re_count)``.

    With probability ``re_prob`` an image gets between 1 and ``re_count`` boxes (uniformly), each box
    covering a share of the area divided by the box count. Fill: ``const`` zeros (the mean colour after
    normalisation), ``rand`` one normal value per channel, ``pixel`` a normal value per pixel.
    """
    if cfg.re_prob <= 0:
        return []
    operator, value = ERASING_MODES[cfg.re_mode]

    def boxes(count: int, prob: float) -> list:
        area = (_ERASE_AREA[0] / count, _ERASE_AREA[1] / count)
        return [operator(prob=prob, scale=area, ratio=_ERASE_RATIO, value=value) for _ in range(count)]

    if cfg.re_count == 1:
        return boxes(1, float(cfg.re_prob))
    choices = [transforms.Compose(boxes(count, 1.0)) for count in range(1, cfg.re_count + 1)]
    return [transforms.RandomApply([transforms.RandomChoice(choices)], prob=float(cfg.re_prob))]


def _on_pil(cfg: Config, ops: list) -> list:
    """``ops`` run on a PIL image (PIL's antialiased resampling), unless the interpolation is OpenCV's area."""
    if cfg.interpolation == "area":
        return ops
    return [vision.ToPIL(), *ops, vision.ToNumpy()]


def train_transforms(cfg: Config) -> list:
    """Training operators: HWC uint8 RGB in, CHW float32 out."""
    interpolation = INTERPOLATIONS[cfg.interpolation]
    if uses_small_image_recipe(cfg):
        augment = auto_augment_ops(cfg.auto_augment, interpolation, vision.AutoAugmentPolicy.CIFAR10,
                                   _mean_colour(cfg))
        # Seed 000 order: RandAugment, padded crop, resize, flip.
        ops = [*augment, vision.RandomCrop(SMALL_IMAGE_SIZE, padding=4)]
        if cfg.image_size != SMALL_IMAGE_SIZE:
            ops.append(vision.Resize(cfg.image_size, interpolation))
        ops.append(vision.RandomHorizontalFlip())
    else:
        augment = auto_augment_ops(cfg.auto_augment, interpolation, vision.AutoAugmentPolicy.IMAGENET,
                                   _mean_colour(cfg))
        # torchvision's RandomResizedCrop: area share uniform in ``scale`` (default [0.08, 1]), aspect ratio
        # log-uniform in ``ratio`` (default [3/4, 4/3]), 10 attempts, then a centre crop (MindSpore's PIL path
        # draws exactly so).
        crop = vision.RandomResizedCrop(cfg.image_size, scale=cfg.scale, ratio=cfg.ratio,
                                        interpolation=interpolation)
        ops = [*_on_pil(cfg, [crop, vision.RandomHorizontalFlip()]), *augment]
    return [*ops, *_normalize_to_chw(cfg), *random_erasing_ops(cfg)]


def eval_transforms(cfg: Config) -> list:
    """Evaluation operators: HWC uint8 RGB in, CHW float32 out. Deterministic."""
    interpolation = INTERPOLATIONS[cfg.interpolation]
    if uses_small_image_recipe(cfg):
        resize = [] if cfg.image_size == SMALL_IMAGE_SIZE else [vision.Resize(cfg.image_size, interpolation)]
    else:
        resize = _on_pil(cfg, [vision.Resize(int(cfg.image_size / cfg.crop_pct), interpolation),
                               vision.CenterCrop(cfg.image_size)])
    return [*resize, *_normalize_to_chw(cfg)]


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to HWC uint8 RGB with the decoder the data set pipeline uses."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"image not found: {path}")
    try:
        read_image_file(path)  # refuses the cut-short JPEGs that crash MindSpore's decoder
        return vision.read_image(path, vision.ImageReadMode.COLOR)
    except (ValueError, RuntimeError):
        reason = unreadable_reason(path) or "MindSpore cannot decode it"
        raise UserError(f"unreadable image {path}: {reason}") from None


def preprocess_image(image: str | os.PathLike | np.ndarray | Image.Image, cfg: Config) -> np.ndarray:
    """One image (path, HWC uint8 RGB array or PIL image) -> (3, H, W) float32 through ``eval_transforms``."""
    if isinstance(image, (str, os.PathLike)):
        array = read_rgb(image)
    elif isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"))
    else:
        array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise UserError(f"expected an HWC uint8 RGB image, got {array.dtype} array of shape {array.shape}")
    height, width = array.shape[:2]
    for op in eval_transforms(cfg):
        array = op(array)
    if array.shape[1:] != (cfg.image_size, cfg.image_size):
        # The 32x32 recipes (CIFAR100, demo) only normalise: they take images of the size they were made for.
        where = f"{image} is" if isinstance(image, (str, os.PathLike)) else "the image is"
        raise UserError(f"{where} {width}x{height} but the {cfg.set} recipe's preprocessing does not resize "
                        f"to {cfg.image_size}x{cfg.image_size}: use a recipe of set ImageNet for images of "
                        "other sizes")
    return array
