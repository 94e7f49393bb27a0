"""Atomic writers for checkpoints and small text outputs: a temp file in the same folder, then a rename,
so an interrupted write never damages the previous file at the same path."""

import os
import tempfile
from pathlib import Path

import mindspore as ms

from src.errors import UserError


def save_checkpoint_atomic(save_obj: ms.nn.Cell | list, path: str | os.PathLike,
                           append_dict: dict | None = None) -> Path:
    """Write ``save_obj`` (a Cell or a list of {"name", "data"} dicts) to ``path`` atomically."""
    target = Path(path)
    if target.suffix != ".ckpt":
        raise UserError(f"checkpoint path must end in .ckpt: {target}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp.ckpt", dir=target.parent)
    except OSError as error:
        raise UserError(f"cannot write checkpoint to {target.parent}: {error.strerror}") from error
    os.close(handle)
    # MindSpore stages its own write in a sibling file; clean up everything sharing our unique stem.
    temp_stem = Path(temp_name).name.removesuffix(".tmp.ckpt")
    try:
        ms.save_checkpoint(save_obj, temp_name, append_dict=append_dict)
        with open(temp_name, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp_name, target)
    except BaseException as error:
        for leftover in target.parent.glob(f"{temp_stem}.*"):
            leftover.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise UserError(f"cannot write checkpoint {target}: {error.strerror or error}") from error
        raise
    return target


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a small text output (JSON, CSV) without ever leaving a half-written file behind."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temp_name, target)
    except OSError as error:
        raise UserError(f"cannot write {target}: {error.strerror or error}") from error
    return target
