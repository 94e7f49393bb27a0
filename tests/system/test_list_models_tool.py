"""python -m src.tools.list_models run as a tool: every arch with the published parameter counts, counts at a given
resolution and class count, one clear line for a bad resolution."""

import os
import subprocess
import sys
from pathlib import Path

from src.models.complexity import TRAIN, count_complexity
from src.models.repopt import repopt_name
from src.models.variants import VARIANTS, get_variant

REPO = Path(__file__).resolve().parents[2]


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
