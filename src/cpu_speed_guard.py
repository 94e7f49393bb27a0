"""Keep MindSpore's oneDNN off its reference convolution kernel on AVX-512 CPUs.

MindSpore 2.10 bundles oneDNN 3.10, which on AVX-512 machines runs 3x3 convolutions through
``jit_uni_ncsp:conv+ref`` -- about 100x slower than the AVX2 JIT kernel. Capping the ISA at
AVX2 before MindSpore is imported restores the fast kernel. A user's own setting always wins.
"""

import os
import sys

from src.logger import get_logger

ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
CAPPED_ISA = "AVX2"
# oneDNN's own word for "no cap": what a process that is not MindSpore (PyTorch in the benchmarks) should get.
UNCAPPED_ISA = "ALL"
_capped_here = False


def apply_cpu_speed_guard() -> bool:
    """Set ``ONEDNN_MAX_CPU_ISA=AVX2`` unless the user set it. Returns True when this call set it."""
    global _capped_here
    if ISA_VARIABLE in os.environ:
        return False
    os.environ[ISA_VARIABLE] = CAPPED_ISA
    _capped_here = True
    message = (
        f"{ISA_VARIABLE}={CAPPED_ISA} set for oneDNN: on AVX-512 CPUs MindSpore's 3x3 convolutions "
        f"otherwise fall back to a ~100x slower reference kernel (set {ISA_VARIABLE} yourself to override)"
    )
    if "mindspore" in sys.modules:
        message += "; mindspore was imported before src, so the setting may come too late"
    get_logger().info(message)
    return True


def environment_without_guard() -> dict[str, str]:
    """This process's environment for a child that runs another oneDNN (PyTorch's): the user's own
    ONEDNN_MAX_CPU_ISA is kept, the guard's cap is lifted, so the child gets its library's default kernels."""
    environment = dict(os.environ)
    if _capped_here:
        environment[ISA_VARIABLE] = UNCAPPED_ISA
    return environment
