"""python -m src.tools.list_models: every arch with parameters and MACs counted from the variant table, equal to
the counts of the networks themselves (trainable parameters; MACs by the benchmarks' counter, which walks the
built Cells)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.flops import count_macs
from src.models import create_model
from src.models.complexity import DEPLOY, REPOPT, TRAIN, count_complexity
from src.models.repopt import create_repopt_model, repopt_name
from src.models.variants import VARIANTS, get_variant

REPO = Path(__file__).resolve().parents[3]


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


def list_models(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "src.tools.list_models", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def rows(stdout: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.startswith("RepOptVGG-") or
            line.startswith("RepVGG-")}


def test_the_tool_lists_every_arch_with_the_published_parameter_counts():
    result = list_models()
    assert result.returncode == 0, result.stderr
    listed = rows(result.stdout)
    assert set(listed) == set(VARIANTS) | {repopt_name(arch) for arch in VARIANTS}
    # Ding et al., RepVGG, Table 4 (train / deploy, 1000 classes at 224 px) and the paper's A0 multiply-adds.
    assert listed["RepVGG-A0"][:4] == ["224", "1000", "9.11M", "8.31M"]
    assert listed["RepVGG-B1"][2:4] == ["57.42M", "51.83M"]
    assert round(float(listed["RepVGG-A0"][5].removesuffix("G")), 1) == 1.4
    assert listed["RepVGG-A0-cifar"][:2] == ["32", "100"]


def test_the_tool_counts_at_a_given_resolution_and_class_count():
    result = list_models("--image_size", "64", "--num_classes", "10")
    assert result.returncode == 0, result.stderr
    a0 = count_complexity(get_variant("RepVGG-A0"), TRAIN, num_classes=10, image_size=64)
    assert rows(result.stdout)["RepVGG-A0"][:3] == ["64", "10", f"{a0.params / 1e6:.2f}M"]


def test_a_bad_resolution_is_one_line_and_exit_code_2():
    result = list_models("--image_size", "0")
    assert result.returncode == 2
    assert "must be a whole number of at least 1" in result.stderr and "Traceback" not in result.stderr
