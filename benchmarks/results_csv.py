"""The one CSV writer of the benchmark scripts."""

import csv
import os
from pathlib import Path


def write_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written {target}")
