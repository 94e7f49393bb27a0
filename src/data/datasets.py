"""Batched MindSpore data sets for training and evaluation, by ``cfg.set``.

- ``ImageNet``: an ImageNet-style folder, ``data_url/{train,val}/<class>/<image>``.
- ``CIFAR100``: the CIFAR-100 binary version in ``data_url`` (``train.bin``, ``test.bin``; fine labels).
- ``demo``: the built-in demo set, written to ``data_url`` as an ImageNet-style folder on first use.

Batches are (image float32 NCHW, label). Evaluation labels are int32 class indices. Training labels are
float32 one-hot rows with label smoothing in timm's convention - ``1 - eps + eps / C`` for the true class,
``eps / C`` elsewhere (what MindSpore's ``OneHot(smoothing_rate=eps)`` produces) - then mixed per batch by
MixUp/CutMix as ``src.data.mix`` describes.
"""

import functools
import multiprocessing
import os

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
from mindspore.dataset import transforms, vision

from src.config import Config
from src.data.demo_dataset import DEMO_CLASSES, write_demo_imagefolder
from src.data.folders import (
    EXTENSION_VARIANTS,
    check_data_url,
    class_indexing,
    folder_class_names,
    folder_num_classes,
    image_files,
)
from src.data.jpeg_guard import read_image_file
from src.data.known_classes import cifar100_classes
from src.data.mix import batch_mix
from src.data.transforms import (
    eval_transforms,
    train_transforms,
)
from src.errors import UserError
from src.logger import get_logger

SPLITS = ("train", "val")
CIFAR100_CLASSES = 100
# MindSpore's Cifar100Dataset reads exactly 50000 train and 10000 test records of 1 + 1 + 3072 bytes.
_CIFAR_FILES = {"train": ("train.bin", "train", 50000), "val": ("test.bin", "test", 10000)}
_CIFAR_RECORD_BYTES = 3074


def data_folder(cfg: Config, split: str) -> str:
    """Absolute folder the split's pipeline reads, for ``iterate_checked`` and ``reported_image_errors``."""
    folder = cfg.data_url if cfg.set == "CIFAR100" else os.path.join(cfg.data_url, split)
    return os.path.realpath(folder)


def dataset_num_classes(cfg: Config) -> int:
    """Classes in the configured data set: class folders for image folders, 100 for CIFAR100, 8 for demo."""
    if cfg.set == "CIFAR100":
        return CIFAR100_CLASSES
    if cfg.set == "demo":
        return len(DEMO_CLASSES)
    return folder_num_classes(cfg.data_url)


def dataset_class_names(cfg: Config) -> list[str]:
    """Names of the configured data set's classes in label order: the class folders of an image folder,
    CIFAR-100's fine labels, the demo set's shapes."""
    if cfg.set == "CIFAR100":
        return list(cifar100_classes())
    if cfg.set == "demo":
        return list(DEMO_CLASSES)
    return folder_class_names(cfg.data_url)


def parallel_workers(cfg: Config) -> int:
    """``num_parallel_workers``, at most the CPUs of this machine (MindSpore refuses more), said once if fewer."""
    cpus = multiprocessing.cpu_count()
    if cfg.num_parallel_workers <= cpus:
        return cfg.num_parallel_workers
    _say_once(f"num_parallel_workers {cfg.num_parallel_workers} > {cpus} CPUs here: using {cpus}")
    return cpus


@functools.cache
def _say_once(message: str) -> None:
    get_logger().info(message)


def _ensure_demo_folder(data_url: str) -> None:
    if all(os.path.isdir(os.path.join(data_url, split)) for split in SPLITS):
        return
    write_demo_imagefolder(data_url)
    get_logger().info(f"demo data set written to {data_url} ({len(DEMO_CLASSES)} classes, 32x32 PNG)")


def _cifar_source(cfg: Config, split: str, shuffle: bool, shard: dict) -> ds.Dataset:
    check_data_url(cfg.data_url)
    name, usage, records = _CIFAR_FILES[split]
    path = os.path.join(cfg.data_url, name)
    if not os.path.isfile(path):
        raise UserError(f"missing CIFAR-100 file {path} (the binary version: train.bin, test.bin)")
    size = os.path.getsize(path)
    if size != records * _CIFAR_RECORD_BYTES:
        raise UserError(f"{path} has {size} bytes; a CIFAR-100 {name} holds {records} records of "
                        f"{_CIFAR_RECORD_BYTES} bytes ({records * _CIFAR_RECORD_BYTES} bytes)")
    dataset = ds.Cifar100Dataset(data_folder(cfg, split), usage=usage, shuffle=shuffle,
                                 num_parallel_workers=parallel_workers(cfg), **shard)
    return dataset.rename(["fine_label"], ["label"]).project(["image", "label"])


class _ImageFiles:
    """Random-access (encoded bytes, label) of listed image files, for GeneratorDataset."""

    def __init__(self, files: list[tuple[str, int]]):
        self.files = files

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path, label = self.files[index]
        return np.frombuffer(read_image_file(path), np.uint8), np.array(label, np.int32)

    def __len__(self) -> int:
        return len(self.files)


def _listed_folder_source(folder: str, indexing: dict[str, int], skipped: frozenset[str],
                          shuffle: bool, workers: int, shard: dict) -> ds.Dataset:
    """The folder's images without the ``skipped`` ones, in the columns ImageFolderDataset gives."""
    files = [(path, label) for name, label in indexing.items() if os.path.isdir(os.path.join(folder, name))
             for path in image_files(os.path.join(folder, name)) if path not in skipped]
    source = ds.GeneratorDataset(_ImageFiles(files), ["image", "label"], shuffle=shuffle,
                                 num_parallel_workers=workers, python_multiprocessing=False, **shard)
    return source.map(vision.Decode(), "image", num_parallel_workers=workers)


def _folder_source(cfg: Config, split: str, shuffle: bool, shard: dict, skipped: frozenset[str]) -> ds.Dataset:
    if cfg.set == "demo":
        _ensure_demo_folder(cfg.data_url)
    indexing = class_indexing(cfg.data_url, split)
    folder = data_folder(cfg, split)
    if any(path.startswith(os.path.join(folder, "")) for path in skipped):
        return _listed_folder_source(folder, indexing, skipped, shuffle, parallel_workers(cfg), shard)
    # Decoding in the source rather than with vision.Decode also keeps MindSpore from dumping each image it
    # fails to decode into ./abnormal_image.jpg. read_image_file refuses cut-short JPEGs, which crash it.
    return ds.ImageFolderDataset(folder, decode=True, shuffle=shuffle,
                                 extensions=list(EXTENSION_VARIANTS), class_indexing=indexing,
                                 num_parallel_workers=parallel_workers(cfg), decrypt=read_image_file,
                                 **shard)


def create_dataset(cfg: Config, split: str, training: bool, rank_id: int = 0, rank_size: int = 1,
                   shuffle: bool | None = None, skipped: frozenset[str] = frozenset()) -> ds.Dataset:
    """Batched data set of ``split`` ("train" or "val"), sharded ``rank_id`` of ``rank_size``.

    ``training`` selects the augmenting transforms, one-hot smoothed labels, MixUp/CutMix and
    ``drop_remainder``; ``shuffle`` defaults to ``training``. Image files in ``skipped`` (absolute paths, see
    ``src.data.image_check``) are left out. Iterate it through ``iterate_checked`` (or inside
    ``reported_image_errors``) so that an unreadable image becomes a UserError naming the file.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0 <= rank_id < rank_size:
        raise ValueError(f"rank_id {rank_id} is outside 0..{rank_size - 1}")
    shuffle = training if shuffle is None else shuffle
    shard = {"num_shards": rank_size, "shard_id": rank_id} if rank_size > 1 else {}
    if cfg.set == "CIFAR100":
        source = _cifar_source(cfg, split, shuffle, shard)
    else:
        source = _folder_source(cfg, split, shuffle, shard, skipped)
    found = dataset_num_classes(cfg)
    if found != cfg.num_classes:
        raise UserError(f"num_classes is {cfg.num_classes} but the {cfg.set} data at {cfg.data_url} has "
                        f"{found} classes")

    image_ops = train_transforms(cfg) if training else eval_transforms(cfg)
    dataset = source.map(image_ops, "image", num_parallel_workers=parallel_workers(cfg))
    label_ops = [transforms.TypeCast(ms.int32)]
    if training:
        label_ops += [transforms.OneHot(cfg.num_classes, smoothing_rate=float(cfg.label_smoothing)),
                      transforms.TypeCast(ms.float32)]
    dataset = dataset.map(label_ops, "label").batch(cfg.batch_size, drop_remainder=training)
    mixer = batch_mix(cfg) if training else None
    if mixer is not None:
        # One worker: the mixer's random choices then follow the batch order and the data set seed.
        dataset = dataset.map(mixer, ["image", "label"], num_parallel_workers=1)
    return dataset
