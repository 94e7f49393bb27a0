"""Turn a data pipeline that fails on a bad image file into a UserError that names the file.

MindSpore decodes in C++ and stops the whole pipeline with a long RuntimeError on the first file it cannot
decode. Its message usually names that file; when it does not, the split's images are checked one by one
with Pillow to find the culprits. Besides the cheap JPEG header check of ``src.data.jpeg_guard``, nothing
is checked up front, so a healthy data set costs nothing.
"""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import mindspore.dataset as ds
from PIL import Image

from src.data.folders import image_files, is_image_file
from src.errors import UserError
from src.logger import get_logger

# How MindSpore's errors from data workers (C++ operators, and Python ones such as our JPEG guard) begin.
_PIPELINE_ERRORS = ("Exception thrown from dataset pipeline",
                    "Exception thrown from user defined Python function in dataset")
_MAX_LISTED = 5


def unreadable_reason(path: str) -> str | None:
    """Why Pillow cannot fully decode ``path``, or None when it can."""
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, EOFError... per format
        return str(error) or type(error).__name__
    return None


def find_unreadable_images(folder: str) -> list[tuple[str, str]]:
    """(path, reason) for every image file under ``folder`` that Pillow cannot decode."""
    found = []
    for path in image_files(folder):
        reason = unreadable_reason(path)
        if reason is not None:
            found.append((path, reason))
    return found


def _named_images(message: str, folder: str) -> list[str]:
    """Image files under ``folder`` that a MindSpore error message names."""
    named = set()
    for candidate in re.findall(re.escape(os.path.join(folder, "")) + r"\S+", message):
        path = candidate.rstrip(".,;:'\")")
        if os.path.isfile(path) and is_image_file(path):
            named.add(path)
    return sorted(named)


def _describe(bad: list[tuple[str, str]]) -> str:
    listed = "; ".join(f"{path} ({reason})" for path, reason in bad[:_MAX_LISTED])
    more = f"; and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
    noun = "image" if len(bad) == 1 else f"{len(bad)} images"
    return f"unreadable {noun}, remove or replace: {listed}{more}"


def explain_pipeline_error(error: BaseException, folder: str) -> UserError | None:
    """A UserError naming the unreadable image(s) behind a pipeline ``error``; None if they are not to blame.

    ``folder`` is the directory the pipeline reads (the one given to the MindSpore data set).
    """
    message = str(error)
    if not any(phrase in message for phrase in _PIPELINE_ERRORS) or not os.path.isdir(folder):
        return None
    named = _named_images(message, folder)
    if named:
        bad = [(path, unreadable_reason(path) or "MindSpore cannot decode it") for path in named]
    else:
        get_logger().info(f"the data pipeline failed without naming a file; checking the images in {folder}")
        bad = find_unreadable_images(folder)
    return UserError(_describe(bad)) if bad else None


@contextmanager
def reported_image_errors(folder: str) -> Iterator[None]:
    """Re-raise a pipeline failure caused by unreadable images as a UserError naming them.

    Wrap whatever iterates the data set (a loop, ``Model.train``, ``Model.eval``); other errors pass through.
    """
    try:
        yield
    except RuntimeError as error:
        user_error = explain_pipeline_error(error, folder)
        if user_error is None:
            raise
        raise user_error from error


class CheckedBatches:
    """Epochs of a data set's batches; iterating it runs one epoch, ``num_epochs`` times at most.

    Unreadable images raise a UserError naming them. One MindSpore iterator serves every epoch, so the
    pipeline's workers start once.
    """

    def __init__(self, dataset: ds.Dataset, folder: str, num_epochs: int = 1, output_numpy: bool = True):
        self._folder = folder
        self._iterator = dataset.create_tuple_iterator(num_epochs=num_epochs, output_numpy=output_numpy)

    def __iter__(self) -> Iterator[list]:
        with reported_image_errors(self._folder):
            yield from self._iterator


def iterate_checked(dataset: ds.Dataset, folder: str, num_epochs: int = 1, output_numpy: bool = True
                    ) -> CheckedBatches:
    """``for images, labels in batches`` once per epoch; ``folder`` is ``data_folder(cfg, split)``."""
    return CheckedBatches(dataset, folder, num_epochs, output_numpy)
