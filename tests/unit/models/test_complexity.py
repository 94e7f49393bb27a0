"""Parameters and MACs counted from the variant table equal the counts of the networks themselves (trainable
parameters; MACs by the benchmarks' counter, which walks the built Cells). The tool that lists them,
python -m src.tools.list_models, runs in tests/system/test_list_models_tool.py."""

import numpy as np
import pytest

from benchmarks.flops import count_macs
from src.models import create_model
from src.models.complexity import DEPLOY, REPOPT, TRAIN, count_complexity
from src.models.repopt import create_repopt_model
from src.models.variants import get_variant


def trainable(net) -> int:
    return sum(int(np.prod(p.shape)) for p in net.trainable_params())


# ImageNet and CIFAR layouts, groupwise layers and SE; ImageNet nets counted at 64 px to keep the counter quick.
@pytest.mark.parametrize(("arch", "image_size"), [("RepVGG-A0", 64), ("RepVGG-B1g2", 64), ("RepVGG-A1-cifar", 32),
                                                  ("RepVGG-B1g4-cifar", 32), ("RepVGG-D2se-cifar", 32)])
def test_table_counts_equal_the_built_networks(arch, image_size):
    variant = get_variant(arch)
    nets = {TRAIN: create_model(arch, num_classes=10), DEPLOY: create_model(arch, num_classes=10, deploy=True),
            REPOPT: create_repopt_model(arch, num_classes=10)}
    for structure, net in nets.items():
        counted = count_complexity(variant, structure, num_classes=10, image_size=image_size)
        assert counted.params == trainable(net), structure
        assert counted.macs == sum(count_macs(net, image_size).values()), structure


def test_default_resolution_is_the_family_s_own():
    a0, a0_cifar = get_variant("RepVGG-A0"), get_variant("RepVGG-A0-cifar")
    assert count_complexity(a0, DEPLOY) == count_complexity(a0, DEPLOY, image_size=224)
    assert count_complexity(a0_cifar, DEPLOY) == count_complexity(a0_cifar, DEPLOY, image_size=32)
