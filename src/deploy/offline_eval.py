"""The input end of offline inference: an image folder -> input ``.bin`` files and a label file (preprocess.py).
``binfiles`` has the formats; ``result_scoring`` the other end (result files -> top-1/top-5, postprocess.py).

Which images: ``dataset_path`` is either a data set root holding ``val/<class>/<image>`` (its ``val/`` split
is used) or a split folder itself, ``<class>/<image>``. Class indices are the sorted class folder names of
the sibling ``train/`` folder when there is one (the indices the network was trained with), else of the
split folder: the rule of ``src.data.folders``.
"""

import os
import shutil

import numpy as np
from tqdm import tqdm

from src.atomic_files import check_writable_folder, staging_folder
from src.config import Config
from src.data import preprocess_image
from src.data.folders import class_indexing, image_files
from src.deploy.binfiles import (
    INPUT_FOLDER,
    LABEL_FILE,
    BinEntry,
    LabelFile,
    input_stems,
    write_input_bin,
    write_label_file,
)
from src.errors import UserError
from src.logger import get_logger

EVAL_SPLIT = "val"


def split_folder(dataset_path: str | os.PathLike) -> tuple[str, dict[str, int]]:
    """The folder whose class folders hold the images, and its class name -> index mapping."""
    root = os.path.abspath(dataset_path)
    if not os.path.isdir(root):
        raise UserError(f"dataset_path {dataset_path} does not exist or is not a folder")
    if os.path.isdir(os.path.join(root, EVAL_SPLIT)):
        return os.path.join(root, EVAL_SPLIT), class_indexing(root, EVAL_SPLIT)
    return root, class_indexing(os.path.dirname(root), os.path.basename(root))


def list_images(folder: str, indexing: dict[str, int]) -> list[tuple[str, int]]:
    """(image path, label) of every image under ``folder``'s class folders, in class then file name order."""
    return [(path, indexing[name]) for name in sorted(indexing) if os.path.isdir(os.path.join(folder, name))
            for path in image_files(os.path.join(folder, name))]


def write_bin_dataset(cfg: Config, dataset_path: str | os.PathLike, output_path: str | os.PathLike,
                      batch_size: int = 1) -> LabelFile:
    """Preprocess every image of the data set into ``output_path/00_data/*.bin`` plus ``output_path/labels.json``.

    The images go through ``src.data.preprocess_image``, the evaluation transform. The files and the label file
    are written into a staging folder first and moved into place together at the end, so a failure (an unreadable
    image, a full disk) leaves a previous output untouched.
    """
    if batch_size < 1:
        raise UserError(f"--batch_size must be at least 1, got {batch_size}")
    folder, indexing = split_folder(dataset_path)
    images = list_images(folder, indexing)
    output = check_writable_folder(output_path)
    batches = [images[start:start + batch_size] for start in range(0, len(images), batch_size)]
    shape = (batch_size, 3, cfg.image_size, cfg.image_size)
    entries = []
    target = output / INPUT_FOLDER
    try:
        with staging_folder(output, "preprocess") as staging:
            (staging / INPUT_FOLDER).mkdir()
            with tqdm(total=len(images), desc="preprocess", unit="img", leave=False) as progress:
                for stem, batch in zip(input_stems(len(batches)), batches, strict=True):
                    # Zero images pad the last batch to the model's fixed batch size; the label file lists only
                    # the real ones.
                    tensor = np.zeros(shape, dtype=np.float32)
                    for row, (path, _) in enumerate(batch):
                        tensor[row] = preprocess_image(path, cfg)
                        progress.update()
                    write_input_bin(staging / INPUT_FOLDER / f"{stem}.bin", tensor)
                    entries.append(BinEntry(stem, tuple(label for _, label in batch),
                                            tuple(os.path.relpath(path, folder) for path, _ in batch)))
            classes = tuple(sorted(indexing, key=indexing.__getitem__))
            label_file = LabelFile(shape, classes, tuple(entries), folder)
            write_label_file(staging / LABEL_FILE, label_file)
            # Renames need no disk space: once everything is written, nothing below can fail half-way.
            if target.exists():
                shutil.rmtree(target)
            (staging / INPUT_FOLDER).rename(target)
            os.replace(staging / LABEL_FILE, output / LABEL_FILE)
    except OSError as error:
        raise UserError(f"cannot write the preprocessed files into {output}: {error.strerror or error}") from None
    get_logger().info(f"{len(images)} images of {folder} -> {len(entries)} files {target}/*.bin "
                      f"(float32 {shape}), labels in {output / LABEL_FILE}")
    return label_file
