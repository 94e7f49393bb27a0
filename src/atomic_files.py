"""Atomic writers for small outputs (bytes, text, JSON, CSV): a temp file in the same folder, then a rename, so
an interrupted write or a full disk never damages the previous file at the same path. Plus the staging folder
for outputs of several files, and the output-folder checks that turn a file in the way or a read-only folder
into one clear UserError. Standard library only: deployment tools without MindSpore write through it too;
the MindSpore checkpoint writer is ``src.checkpoint_files.save_checkpoint_atomic``."""

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from src.errors import UserError


def write_bytes_atomic(path: str | os.PathLike, data: bytes, what: str | None = None) -> Path:
    """Write a small output (JSON, CSV, PNG, .npz) without ever leaving a half-written file behind; an error
    says ``cannot write <what>`` (default: the path)."""
    target = Path(path)
    ensure_folder(target.parent)
    temp_name = None
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp_name, target)
    except OSError as error:
        if temp_name is not None:
            Path(temp_name).unlink(missing_ok=True)
        raise UserError(f"cannot write {what or target}: {error.strerror or error}") from error
    return target


def write_text_atomic(path: str | os.PathLike, text: str, what: str | None = None) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), what)


def write_json_atomic(path: str | os.PathLike, record: Any, what: str | None = None) -> Path:
    """``record`` as indented JSON with a final newline."""
    return write_text_atomic(path, json.dumps(record, indent=2) + "\n", what)


def write_csv_atomic(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[dict],
                     what: str | None = None) -> Path:
    """A header of ``columns`` and one line per row (missing keys empty)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), restval="")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, text.getvalue(), what)


def ensure_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and its parents if needed; UserError naming the obstacle when that is impossible."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # mkdir's own message ("File exists", "Not a directory") does not say which path is in the way.
        blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocking} is a file, not a folder" if blocking else error.strerror or str(error)
        raise UserError(f"cannot create folder {folder}: {reason}") from None
    return folder


@contextmanager
def staging_folder(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A private hidden folder ``.<name>-<random>`` inside ``parent``, removed afterwards whatever happens.

    Outputs of several files, or written by libraries that cannot write atomically, are built here and renamed
    into place once complete; being on the same file system as the target, the rename is atomic.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove that files can be created in it, before any long work starts."""
    folder = ensure_folder(folder)
    try:
        with tempfile.TemporaryFile(prefix=".write-check-", dir=folder):
            pass
    except OSError as error:
        raise UserError(f"cannot write into {folder}: {error.strerror or error}") from None
    return folder
