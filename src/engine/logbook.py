"""Per-epoch CSV log and PNG curves of loss, top-1 and learning rate (as the Jittor RepVGG on CIFAR-100 draws them)."""

import csv
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on training machines
import matplotlib.pyplot as plt

from src.atomic_files import write_bytes_atomic, write_csv_atomic

COLUMNS = ("epoch", "train_loss", "val_loss", "top1", "top5", "lr", "img_per_s", "epoch_seconds")


class Logbook:
    def __init__(self, folder: str | Path, title: str):
        self.folder = Path(folder)
        self.title = title
        self.csv_path = self.folder / "log.csv"

    def rows(self) -> list[dict]:
        if not self.csv_path.is_file():
            return []
        with open(self.csv_path, newline="") as handle:
            return list(csv.DictReader(handle))

    def append(self, row: dict, resume_from_epoch: int | None = None) -> None:
        """Add one epoch; on resume, rows after the resumed epoch (written before a crash) are dropped."""
        rows = self.rows()
        if resume_from_epoch is not None:
            rows = [r for r in rows if int(r["epoch"]) <= resume_from_epoch]
        rows.append({key: row.get(key, "") for key in COLUMNS})
        write_csv_atomic(self.csv_path, COLUMNS, rows)
        self.plot(rows)

    def plot(self, rows: list[dict]) -> None:
        epochs = [int(r["epoch"]) for r in rows]

        def series(key: str) -> list[float]:
            return [float(r[key]) if r[key] not in ("", None) else math.nan for r in rows]

        panels = {
            "loss": (("train_loss", "train"), ("val_loss", "val")),
            "accuracy": (("top1", "top-1"), ("top5", "top-5")),
            "learning_rate": (("lr", "learning rate"),),
        }
        for name, lines in panels.items():
            figure, axes = plt.subplots(figsize=(6, 4))
            for key, label in lines:
                axes.plot(epochs, series(key), marker="o", markersize=3, label=label)
            axes.set_xlabel("epoch")
            axes.set_ylabel(name.replace("_", " "))
            axes.set_title(f"{self.title}: {name.replace('_', ' ')}")
            axes.grid(alpha=0.3)
            axes.legend()
            figure.tight_layout()
            # Rendered in memory and written atomically: a full disk is a UserError, not a torn PNG.
            image = io.BytesIO()
            figure.savefig(image, format="png", dpi=100)
            plt.close(figure)
            write_bytes_atomic(self.folder / f"{name}.png", image.getvalue())
