"""Top-1/top-5 evaluation of a network over a batched (image, int label) data set."""

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from mindspore import Tensor, nn


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


def evaluate(net: nn.Cell, batches: Iterable) -> EvalResult:
    """``batches`` yields (images NCHW float32, labels int) as numpy; the network runs in eval mode."""
    net.set_train(False)
    counter = AccuracyCounter()
    start = time.perf_counter()
    for images, labels in batches:
        counter.update(net(Tensor(images)).asnumpy(), labels)
    return counter.result(time.perf_counter() - start)
