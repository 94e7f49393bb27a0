"""Every architecture of the table: published parameter counts (full width: the count is the property) and exact
re-parameterisation. Fusion does not depend on width, so every architecture is checked at a quarter of its
width (half with SE, whose squeeze layer has a sixteenth of the channels; same depths, groups, SE and strides),
and one of each family (A, groupwise B, SE D) at full width."""

import mindspore as ms
import numpy as np
import pytest
from conftest import narrowed, randomise_batchnorm

from src.models import RepVGG, RepVGGBlock, create_model, get_variant, list_models, repvgg_model_convert
from src.models.parameters import trainable_millions
from src.models.variants import RepVGGVariant

FULL_WIDTH_PER_FAMILY = ["RepVGG-A0", "RepVGG-B1g4", "RepVGG-D2se-cifar"]


# Official table (github.com/DingXiaoH/RepVGG README), millions of trainable parameters, train / deploy.
IMAGENET_PARAMS_M = {
    "RepVGG-A0": (9.11, 8.31), "RepVGG-A1": (14.09, 12.79), "RepVGG-A2": (28.21, 25.50),
    "RepVGG-B0": (15.82, 14.34), "RepVGG-B1": (57.42, 51.83), "RepVGG-B1g2": (45.78, 41.36),
    "RepVGG-B1g4": (39.97, 36.13), "RepVGG-B2": (89.02, 80.32), "RepVGG-B2g4": (61.76, 55.78),
    "RepVGG-B3": (123.09, 110.96), "RepVGG-B3g4": (83.83, 75.63), "RepVGG-D2se": (133.33, 120.39),
}
# Seed 000, PyTorch table, CIFAR-100 (100 classes).
CIFAR_PARAMS_M = {
    "RepVGG-A0-cifar": (2.03, 1.82), "RepVGG-A1-cifar": (3.27, 2.94), "RepVGG-A2-cifar": (6.78, 6.10),
    "RepVGG-B0-cifar": (3.71, 3.33), "RepVGG-B1-cifar": (13.96, 12.55), "RepVGG-B1g4-cifar": (9.60, 8.63),
}


def num_classes_of(arch: str) -> int:
    return 100 if arch.endswith("-cifar") else 1000


def input_size_of(arch: str) -> int:
    # ImageNet variants downsample 32x; CIFAR variants 8x.
    return 16 if arch.endswith("-cifar") else 32


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(IMAGENET_PARAMS_M) + list(CIFAR_PARAMS_M))
def test_param_counts_match_published_tables(arch):
    expected_train, expected_deploy = {**IMAGENET_PARAMS_M, **CIFAR_PARAMS_M}[arch]
    train_net = create_model(arch, num_classes=num_classes_of(arch))
    deploy_net = create_model(arch, num_classes=num_classes_of(arch), deploy=True)
    assert trainable_millions(train_net) == pytest.approx(expected_train, abs=0.005)
    assert trainable_millions(deploy_net) == pytest.approx(expected_deploy, abs=0.005)


def check_deploy_equals_train(arch: str, variant: RepVGGVariant) -> None:
    ms.set_seed(0)
    net = RepVGG(variant, num_classes=num_classes_of(arch))
    randomise_batchnorm(net)
    net.set_train(False)
    deploy_net = repvgg_model_convert(net)
    size = input_size_of(arch)
    x = ms.Tensor(np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(np.float32))
    expected = net(x).asnumpy()
    actual = deploy_net(x).asnumpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    blocks = [c for _, c in deploy_net.cells_and_names() if isinstance(c, RepVGGBlock)]
    assert blocks and all(b.deploy and b.rbr_dense is None for b in blocks)
    reference = RepVGG(variant, num_classes=num_classes_of(arch), deploy=True)
    assert {p.name: p.shape for p in deploy_net.get_parameters()} == {
        p.name: p.shape for p in reference.get_parameters()
    }


@pytest.mark.parametrize("arch", list_models())
def test_deploy_net_equals_train_net_in_eval_mode_at_reduced_width(arch):
    variant = narrowed(arch)
    assert variant.depths == get_variant(arch).depths and variant.groups == get_variant(arch).groups
    check_deploy_equals_train(arch, variant)


@pytest.mark.slow
@pytest.mark.parametrize("arch", FULL_WIDTH_PER_FAMILY)
def test_deploy_net_equals_train_net_in_eval_mode_at_full_width(arch):
    check_deploy_equals_train(arch, get_variant(arch))
