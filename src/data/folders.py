"""ImageNet-style folder layout: ``<data_url>/<split>/<class>/<image>``, its checks and its class indices.

Class indices come from the sorted class folder names of ``train/`` (of the split itself when there is
no ``train/``, e.g. an evaluation-only copy of ``val/``), so a ``val/`` with fewer classes keeps the
training indices.
"""

import os
from collections.abc import Iterator

from src.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# ImageFolderDataset matches extensions exactly; ImageNet's files end in ".JPEG".
EXTENSION_VARIANTS = tuple(variant for ext in IMAGE_EXTENSIONS for variant in (ext, ext.upper()))


def is_image_file(name: str) -> bool:
    return name.endswith(EXTENSION_VARIANTS)


def class_names(folder: str) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder``."""
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))


def image_files(folder: str) -> Iterator[str]:
    """Every image file under ``folder`` (hidden folders skipped, as ``class_names`` does), sorted."""
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in sorted(names):
            if is_image_file(name):
                yield os.path.join(directory, name)


def check_data_url(data_url: str) -> None:
    if not os.path.exists(data_url):
        raise UserError(f"data_url {data_url} does not exist")
    if not os.path.isdir(data_url):
        raise UserError(f"data_url {data_url} is not a folder")


def _index_folder(data_url: str, split: str) -> str:
    train = os.path.join(data_url, "train")
    return train if os.path.isdir(train) else os.path.join(data_url, split)


def _split_folder(data_url: str, split: str) -> str:
    check_data_url(data_url)
    folder = os.path.join(data_url, split)
    if not os.path.isdir(folder):
        raise UserError(f"missing {split}/ folder: {folder} (expected {data_url}/{split}/<class>/<image>)")
    return folder


def _indexed_classes(data_url: str, split: str) -> tuple[str, list[str]]:
    index_folder = _index_folder(data_url, split)
    names = class_names(index_folder)
    if len(names) < 2:
        raise UserError(f"{index_folder} has {len(names)} class folder(s); a classifier needs at least 2 "
                        f"(layout: {index_folder}/<class>/<image>)")
    return index_folder, names


def folder_class_names(data_url: str) -> list[str]:
    """Class names of the folder data set at ``data_url``, in label order."""
    check_data_url(data_url)
    if not any(os.path.isdir(os.path.join(data_url, split)) for split in ("train", "val")):
        raise UserError(f"data_url {data_url} has neither a train/ nor a val/ folder")
    return _indexed_classes(data_url, "val")[1]


def folder_num_classes(data_url: str) -> int:
    """Number of classes of the folder data set at ``data_url``."""
    return len(folder_class_names(data_url))


def class_indexing(data_url: str, split: str) -> dict[str, int]:
    """Check the split's folder and return its class-folder -> label mapping; UserError naming the path."""
    folder = _split_folder(data_url, split)
    index_folder, names = _indexed_classes(data_url, split)
    present = class_names(folder)
    unknown = sorted(set(present) - set(names))
    if unknown:
        raise UserError(f"{folder} has class folders that {index_folder} lacks: {', '.join(unknown[:5])}")
    if not any(next(image_files(os.path.join(folder, name)), None) for name in present):
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {folder}")
    return {name: index for index, name in enumerate(names)}
