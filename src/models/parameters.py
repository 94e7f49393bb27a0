"""How big a network is: its trainable parameters, counted one way for tests, the demo and the benchmarks."""

from mindspore import nn


def trainable_parameters(net: nn.Cell) -> int:
    return sum(int(p.size) for p in net.trainable_params())


def trainable_millions(net: nn.Cell) -> float:
    return trainable_parameters(net) / 1e6
