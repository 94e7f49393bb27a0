"""The class names of the public label sets, shipped as data files in ``class_lists/`` (sources cited there)."""

import functools
from pathlib import Path

from src.class_names import read_classes_file

_LISTS = Path(__file__).resolve().parent / "class_lists"


@functools.cache
def imagenet1k_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k names in label order (what PyTorch/timm ImageNet classifiers predict)."""
    return tuple(read_classes_file(_LISTS / "imagenet1k.txt", skip_comments=True))


@functools.cache
def cifar100_classes() -> tuple[str, ...]:
    """The 100 CIFAR-100 fine label names in label order."""
    return tuple(read_classes_file(_LISTS / "cifar100.txt", skip_comments=True))
