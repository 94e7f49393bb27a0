"""The one CSV writer of the benchmark scripts."""

import os

from src.atomic_files import write_csv_atomic


def write_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    target = write_csv_atomic(path, list(rows[0]), rows)
    print(f"written {target}")
