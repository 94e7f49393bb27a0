"""PNG bar charts of the benchmark report: inference per architecture, training steps, int8 accuracy."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from benchmarks.measurement import Measurement

BAR_HEIGHT = 0.8
MIN_HEIGHT = 2.5    # inches


def _horizontal_bars(labels: list[str], series: dict[str, list[float | None]], title: str, xlabel: str,
                     path: Path, value_format: str = ".1f") -> Path:
    """One group of bars per label, one bar per series (missing values leave a gap); values written at the ends."""
    figure, axes = plt.subplots(figsize=(9, max(MIN_HEIGHT, 0.5 + 0.32 * len(labels) * max(len(series), 1))))
    height = BAR_HEIGHT / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        positions = [row + (index - (len(series) - 1) / 2) * height for row in range(len(labels))]
        bars = axes.barh(positions, [value or 0.0 for value in values], height=height, label=name)
        for bar, value in zip(bars, values, strict=True):
            if value:
                axes.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:{value_format}}", va="center",
                          fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    axes.set_title(title, fontsize=10)
    axes.margins(x=0.15)
    if len(series) > 1:
        axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def inference_chart(measurements: list[Measurement], path: Path) -> Path:
    """Images/s of every engine and structure of one architecture, one bar per batch size."""
    labels = list(dict.fromkeys(f"{m.engine} | {m.structure}" for m in measurements))
    batches = sorted({m.batch for m in measurements})
    rates = {(f"{m.engine} | {m.structure}", m.batch): m.images_per_second for m in measurements}
    first = measurements[0]
    return _horizontal_bars(labels, {f"batch {b}": [rates.get((label, b)) for label in labels] for b in batches},
                            f"{first.arch} inference at {first.image_size}x{first.image_size}, {first.threads} threads",
                            "images/s (median)", path)


def training_chart(measurements: list[Measurement], path: Path) -> Path:
    labels = [f"{m.arch} {m.image_size}px | {m.engine}" for m in measurements]
    first = measurements[0]
    return _horizontal_bars(labels, {"train step": [m.images_per_second for m in measurements]},
                            f"Training step, batch {first.batch}, {first.threads} threads", "images/s (median)", path)


def int8_chart(rows: list[dict], path: Path) -> Path:
    return _horizontal_bars([row["model"] for row in rows], {"top-1": [float(row["top1"]) for row in rows]},
                            "Top-1 on the demo set (held-out images)", "top-1 (%)", path, value_format=".2f")
