"""Class names that travel with a model, so that label ``i`` can be shown as a name wherever the model goes.

Standard library only, so that scripts which never load MindSpore (postprocess.py) can show names.

Where they live (index ``i`` is label ``i``):
- a run's ``train_url``: ``classes.txt``, one name per line;
- every checkpoint we write: the string entry ``class_names`` (a JSON array), which MindSpore keeps inside the
  ``.ckpt`` file, so a checkpoint copied alone still has them (written and read by ``src.checkpoint_files``);
- an exported ONNX file: the metadata property ``class_names`` (a JSON array);
- an exported MINDIR or AIR file: ``<name>.classes.txt`` beside ``<name>.mindir``, one name per line.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path

from src.atomic_files import write_text_atomic
from src.errors import UserError
from src.logger import get_logger

CHECKPOINT_KEY = "class_names"
ONNX_METADATA_KEY = "class_names"
CLASSES_FILE = "classes.txt"
SIDECAR_SUFFIX = ".classes.txt"


def encode_class_names(names: Sequence[str]) -> str:
    """The JSON array stored in checkpoints and ONNX metadata."""
    return json.dumps(list(names), ensure_ascii=False)


def decode_class_names(text: str, where: str) -> list[str]:
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise UserError(f"{where}: the class names are not a JSON array of strings")
    return names


def write_classes_file(path: str | os.PathLike, names: Sequence[str]) -> Path:
    """Write ``names`` one per line (atomically); a name holding a line break could not be read back."""
    broken = [name for name in names if not name or "\n" in name or "\r" in name]
    if broken:
        raise UserError(f"class name {broken[0]!r} cannot be stored one per line: rename that class folder")
    return write_text_atomic(path, "".join(f"{name}\n" for name in names), what=f"class names to {path}")


def read_classes_file(path: str | os.PathLike, skip_comments: bool = False) -> list[str]:
    """One name per line; ``skip_comments`` drops ``#`` lines (the lists shipped with the project)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read class names from {path}: {getattr(error, 'strerror', None) or error}") from None
    return [line for line in lines if line and not (skip_comments and line.startswith("#"))]


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``<name>.classes.txt`` beside an exported ``<name>.mindir`` / ``<name>.air``."""
    path = Path(model_path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def difference(model_names: Sequence[str], other_names: Sequence[str]) -> str | None:
    """How two class lists differ (None when equal), short enough for one warning line."""
    if list(model_names) == list(other_names):
        return None
    if len(model_names) != len(other_names):
        return f"{len(model_names)} classes against {len(other_names)}"
    index = next(i for i, (a, b) in enumerate(zip(model_names, other_names, strict=True)) if a != b)
    return f"class {index} is {model_names[index]!r} against {other_names[index]!r}"


def warn_if_classes_differ(model_names: Sequence[str] | None, data_names: Sequence[str] | None, data: str) -> bool:
    """One warning line when the model's classes are not those of ``data`` (e.g. "the class folders of X");
    nothing to compare when either list is unknown. Returns whether they differ."""
    differs = difference(model_names, data_names) if model_names and data_names else None
    if differs:
        get_logger().warning(f"warning: the model's classes differ from {data} ({differs})")
    return differs is not None


def summary(names: Sequence[str] | None, shown: int = 10) -> str:
    """``8 classes: checkerboard, circle, ...`` for a log line."""
    if not names:
        return "no class names"
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    return f"{len(names)} classes: {listed}"


def label_name(names: Sequence[str] | None, index: int) -> str:
    """The name of label ``index``, or the index itself when the model carries no names."""
    return names[index] if names and 0 <= index < len(names) else str(index)
