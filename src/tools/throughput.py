"""Inference throughput of a network on random input (the demo table, the inference benchmark): warm-up runs,
then the median of timed repeats."""

import numpy as np
from mindspore import Tensor, nn

from src.timing import Timing, time_repeats


def inference_timing(net: nn.Cell, batch_size: int, image_size: int, warmup: int = 3, repeats: int = 10) -> Timing:
    """Seconds per forward pass of a random ``batch_size`` batch, in eval mode."""
    net.set_train(False)
    x = Tensor(np.random.default_rng(0).normal(size=(batch_size, 3, image_size, image_size)).astype(np.float32))
    return time_repeats(lambda: net(x).asnumpy(), warmup, repeats)


def images_per_second(net: nn.Cell, batch_size: int, image_size: int, warmup: int = 3, repeats: int = 10) -> float:
    return batch_size / inference_timing(net, batch_size, image_size, warmup, repeats).median
