"""Shared test setup. ``import src`` comes first so the CPU speed guard runs before MindSpore loads."""

# isort: off
import src  # noqa: F401  (side effect: ONEDNN_MAX_CPU_ISA guard)

# isort: on
import mindspore as ms
import numpy as np
import pytest

ms.set_device("CPU")
ms.set_context(mode=ms.PYNATIVE_MODE)


def randomise_batchnorm(net: ms.nn.Cell, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and moderate gains, as a trained net would have.

    Gains stay in 0.2-0.5: in a deep random net larger gains amplify float rounding chaotically.
    """
    rng = np.random.default_rng(seed)
    draws = {
        "gamma": lambda shape: rng.uniform(0.2, 0.5, shape),
        "beta": lambda shape: rng.normal(0.0, 0.1, shape),
        "moving_mean": lambda shape: rng.normal(0.0, 0.1, shape),
        "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape),
    }
    for name, param in net.parameters_and_names():
        kind = name.rsplit(".", 1)[-1]
        if kind in draws:
            param.set_data(ms.Tensor(draws[kind](param.shape).astype(np.float32)))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
