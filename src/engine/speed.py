"""Inference throughput of a network on random input: warm-up runs, then the median of timed repeats."""

import statistics
import time

import numpy as np
from mindspore import Tensor, nn


def images_per_second(net: nn.Cell, batch_size: int, image_size: int, warmup: int = 3, repeats: int = 10) -> float:
    net.set_train(False)
    x = Tensor(np.random.default_rng(0).normal(size=(batch_size, 3, image_size, image_size)).astype(np.float32))
    for _ in range(warmup):
        net(x).asnumpy()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        net(x).asnumpy()
        timings.append(time.perf_counter() - start)
    return batch_size / statistics.median(timings)
