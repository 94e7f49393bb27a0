"""Check an image folder before training: every unreadable or empty file and every empty class, all at once.

MindSpore stops a pipeline at the first file it cannot decode, so a folder with 40 bad files would take 40
restarts to clean. This check decodes every image once with Pillow, on as many threads as the pipeline has
workers (Pillow decodes without holding the GIL), after the JPEG header check of ``src.data.jpeg_guard``.
Training then refuses with the whole list, or leaves the bad files out when ``skip_bad_images`` is set.
"""

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from src.config import Config
from src.data.checked import unreadable_reason
from src.data.datasets import SPLITS, parallel_workers
from src.data.folders import class_indexing, class_names, image_files
from src.data.jpeg_guard import jpeg_header_problem
from src.errors import UserError
from src.logger import get_logger

CHECKED_SETS = ("ImageNet",)  # image folders of the user's; the demo set is written by the project


def image_problem(path: str) -> str | None:
    """Why ``path`` cannot be trained on (empty, cut-short or undecodable), or None when it can."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        return f"cannot read it: {error.strerror or error}"
    if not data:
        return "empty file"
    return jpeg_header_problem(data) or unreadable_reason(path)


@dataclass(frozen=True)
class FolderReport:
    """What the check found in ``data_url``: readable images per split, bad files, classes without images."""

    data_url: str
    images: dict[str, int]
    bad_files: tuple[tuple[str, str], ...]      # (path, reason)
    empty_classes: tuple[str, ...]              # class folders with no readable image

    @property
    def clean(self) -> bool:
        return not self.bad_files and not self.empty_classes

    def summary(self) -> str:
        counts = ", ".join(f"{split} {count}" for split, count in self.images.items())
        return f"{self.data_url}: {counts} readable images"

    def problem_lines(self) -> list[str]:
        return ([f"  {path}: {reason}" for path, reason in self.bad_files]
                + [f"  {folder}/: no readable images" for folder in self.empty_classes])

    def problem_count(self) -> str:
        parts = []
        if self.bad_files:
            parts.append(f"{len(self.bad_files)} unreadable or empty file(s)")
        if self.empty_classes:
            parts.append(f"{len(self.empty_classes)} class folder(s) without readable images")
        return " and ".join(parts)


def _class_files(data_url: str) -> Iterable[tuple[str, str, list[str]]]:
    """(split, class folder, its image files) for every class folder of the splits present."""
    for split in SPLITS:
        folder = os.path.realpath(os.path.join(data_url, split))
        if os.path.isdir(folder):
            for name in class_names(folder):
                class_folder = os.path.join(folder, name)
                yield split, class_folder, list(image_files(class_folder))


def check_image_folder(data_url: str, workers: int = 1) -> FolderReport:
    """Decode every image of ``data_url``'s train/ and val/ once and report all problems together.

    The layout is checked first, as the data set checks it (UserError for a missing train/, fewer than two
    classes, class folders without any image file).
    """
    for split in SPLITS:
        if split == "train" or os.path.isdir(os.path.join(data_url, split)):
            class_indexing(data_url, split)
    classes = list(_class_files(data_url))
    files = [path for _, _, paths in classes for path in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = dict(zip(files, pool.map(image_problem, files), strict=True))
    images = {split: 0 for split in SPLITS if os.path.isdir(os.path.join(data_url, split))}
    empty = []
    for split, class_folder, paths in classes:
        readable = sum(reasons[path] is None for path in paths)
        images[split] += readable
        if readable == 0:
            empty.append(class_folder)
    bad = tuple((path, reason) for path, reason in reasons.items() if reason is not None)
    return FolderReport(data_url, images, bad, tuple(empty))


def refusal(report: FolderReport, listed_above: bool = False) -> UserError:
    """The one-line UserError naming every problem of ``report`` (unless ``listed_above``) and the remedy."""
    if report.empty_classes:
        remedy = "remove or replace them (a class folder needs a readable image: remove the folder or add images)"
    else:
        remedy = "remove or replace them, or set skip_bad_images: true to train without them"
    problems = [f"{path} ({reason})" for path, reason in report.bad_files]
    problems += [f"{folder}/ (no readable images)" for folder in report.empty_classes]
    listing = " (listed above)" if listed_above else f": {'; '.join(problems)}"
    return UserError(f"{report.data_url} has {report.problem_count()}{listing}; {remedy}")


def images_to_skip(cfg: Config) -> frozenset[str]:
    """Check the configured image folder (when ``check_images``): UserError listing every problem, or the bad
    files to leave out of training when ``skip_bad_images`` is set."""
    if cfg.set not in CHECKED_SETS or not cfg.check_images:
        return frozenset()
    log = get_logger()
    log.info(f"checking every image in {cfg.data_url} (check_images: false turns this off)")
    report = check_image_folder(cfg.data_url, parallel_workers(cfg))
    if report.empty_classes or (report.bad_files and not cfg.skip_bad_images):
        raise refusal(report)
    if report.bad_files:
        log.info(f"skip_bad_images: training without {len(report.bad_files)} unreadable or empty file(s):\n"
                 + "\n".join(report.problem_lines()))
    log.info(report.summary())
    return frozenset(path for path, _ in report.bad_files)
