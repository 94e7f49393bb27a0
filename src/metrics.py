"""Top-1/top-5 accuracy and cross entropy from logits, and the one way they are printed and written.

NumPy only: eval.py (MindSpore), infer_onnx.py (ONNX Runtime) and postprocess.py (the C++ harness's result
files) all count and report through here, so accuracy reads the same everywhere: percent on screen and
in the JSON record. Every record says so in ``accuracy_unit``: the ModelZoo's postprocess wrote fractions
under the same ``top1``/``top5`` names, and a reader must be able to tell the two apart.
"""

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from src.atomic_files import write_json_atomic
from src.logger import get_logger

ACCURACY_UNIT = "percent"


@dataclass
class EvalResult:
    top1: float         # percent
    top5: float         # percent
    loss: float         # cross entropy against the hard labels
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "images_per_second": self.images_per_second}


class AccuracyCounter:
    """Accumulates top-k hits and cross entropy from logits; shared by every evaluator."""

    def __init__(self):
        self.top1 = self.top5 = 0
        self.loss_sum = 0.0
        self.images = 0

    def update(self, logits: np.ndarray, labels: np.ndarray) -> None:
        logits = logits.astype(np.float64)
        labels = labels.astype(np.int64).reshape(-1)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.loss_sum += float(-log_probs[np.arange(len(labels)), labels].sum())
        top5 = np.argsort(-logits, axis=1)[:, :5]
        self.top1 += int((top5[:, 0] == labels).sum())
        self.top5 += int((top5 == labels[:, None]).any(axis=1).sum())
        self.images += len(labels)

    def result(self, seconds: float) -> EvalResult:
        count = max(self.images, 1)
        return EvalResult(100.0 * self.top1 / count, 100.0 * self.top5 / count, self.loss_sum / count,
                          self.images, seconds)


def report_metrics(result: EvalResult, record: dict, target: str | os.PathLike, speed: str | None = None) -> Path:
    """Print top-1/top-5 in percent (and ``speed``, a line about throughput, when given), then write ``record``
    (the caller's description of what was evaluated plus its metric fields) as JSON to ``target``."""
    lines = [f"top-1 accuracy: {result.top1:.3f} %", f"top-5 accuracy: {result.top5:.3f} %"]
    if speed:
        lines.append(speed)
    print("\n".join(lines))
    written = write_json_atomic(target, {**record, "accuracy_unit": ACCURACY_UNIT})
    get_logger().info(f"{result.images} images; metrics written to {written}")
    return written
