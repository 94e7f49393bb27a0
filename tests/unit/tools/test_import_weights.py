"""The weight-import tool attaches the ImageNet-1k class names to an ImageNet classifier it imports."""

import numpy as np
import pytest

from src.checkpoint_files import read_checkpoint_class_names
from src.data.known_classes import imagenet1k_classes
from src.models import create_model
from src.tools.import_weights import import_weights

ARCH = "RepVGG-A0-cifar"


def write_pytorch_named_weights(path, num_classes: int) -> str:
    """Weights of a fresh network under PyTorch's BatchNorm names, as the official checkpoints have them."""
    torch_names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    state = {}
    for name, param in create_model(ARCH, num_classes=num_classes).parameters_and_names():
        prefix, _, last = name.rpartition(".")
        state[f"{prefix}.{torch_names.get(last, last)}"] = param.asnumpy()
    np.savez(path, **state)
    return str(path)


@pytest.mark.parametrize(("num_classes", "names"), [(1000, list(imagenet1k_classes())), (5, None)])
def test_imported_imagenet_weights_carry_the_imagenet_names(tmp_path, num_classes, names):
    source = write_pytorch_named_weights(tmp_path / "weights.npz", num_classes)
    written = import_weights(ARCH, source, str(tmp_path / "imported.ckpt"))
    assert read_checkpoint_class_names(written) == names
