"""The output end of offline inference: the harness's result files -> top-1/top-5 (postprocess.py).

NumPy only, so scoring runs where MindSpore is not installed (next to an inference card, say).
"""

import os

from src.deploy.binfiles import read_label_file, read_results
from src.logger import get_logger
from src.metrics import AccuracyCounter, EvalResult


def score_results(result_path: str | os.PathLike, label_path: str | os.PathLike,
                  num_classes: int | None = None) -> EvalResult:
    """Top-1/top-5 of the harness's result files against the label file (seconds: not measured here, 0)."""
    label_file = read_label_file(label_path)
    logits, labels = read_results(result_path, label_file, num_classes)
    if logits.shape[1] != len(label_file.classes):
        get_logger().warning(f"the model has {logits.shape[1]} outputs but {label_file.dataset_path} has "
                             f"{len(label_file.classes)} classes: labels are indices of its sorted class folders")
    counter = AccuracyCounter()
    counter.update(logits, labels)
    return counter.result(0.0)
