"""The oneDNN ISA cap: set by `import src`, logged once, respected when the user chose, and effective."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONV_PROGRAM = """
import src
import mindspore as ms
import numpy as np
from mindspore import nn
ms.set_device("CPU")
conv = nn.Conv2d(16, 16, 3, pad_mode="pad", padding=1)
conv(ms.Tensor(np.ones((1, 16, 32, 32), np.float32)))
"""


def run_python(program: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "ONEDNN_VERBOSE")}
    environment.update(env, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=environment)


def conv_implementations(verbose_output: str) -> list[str]:
    # onednn_verbose,v1,primitive,exec,cpu,convolution,<implementation>,...
    rows = [line.split(",") for line in verbose_output.splitlines() if line.startswith("onednn_verbose")]
    return [row[6] for row in rows if len(row) > 6 and row[3] == "exec" and row[5] == "convolution"]


def test_convolution_runs_on_a_jit_kernel_through_the_project_import():
    result = run_python(CONV_PROGRAM, ONEDNN_VERBOSE="1")
    assert result.returncode == 0, result.stderr
    implementations = conv_implementations(result.stdout + result.stderr)
    assert implementations, "oneDNN reported no convolution"
    assert all("jit" in impl and "ref" not in impl for impl in implementations), implementations


def test_guard_is_logged_exactly_once():
    result = run_python("import src; import src.models; import src.cpu_speed_guard as g; g.apply_cpu_speed_guard()")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("ONEDNN_MAX_CPU_ISA=AVX2 set") == 1


def test_a_users_own_setting_is_kept():
    result = run_python("import os, src; print(os.environ['ONEDNN_MAX_CPU_ISA'])", ONEDNN_MAX_CPU_ISA="SSE41")
    assert result.stdout.strip() == "SSE41"
    assert "ONEDNN_MAX_CPU_ISA=AVX2 set" not in result.stderr
