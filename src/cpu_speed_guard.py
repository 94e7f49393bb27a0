"""Keep MindSpore's oneDNN off its reference convolution kernel on AVX-512 CPUs.

MindSpore 2.10 bundles oneDNN 3.10, which on AVX-512 machines runs 3x3 convolutions through
``jit_uni_ncsp:conv+ref`` -- about 100x slower than the AVX2 JIT kernel (SPEC §9). Capping the ISA at
AVX2 before MindSpore is imported restores the fast kernel. A user's own setting always wins.
"""

import os
import sys

from src.logger import get_logger

ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
CAPPED_ISA = "AVX2"


def apply_cpu_speed_guard() -> bool:
    """Set ``ONEDNN_MAX_CPU_ISA=AVX2`` unless the user set it. Returns True when this call set it."""
    if ISA_VARIABLE in os.environ:
        return False
    os.environ[ISA_VARIABLE] = CAPPED_ISA
    message = (
        f"{ISA_VARIABLE}={CAPPED_ISA} set for oneDNN: on AVX-512 CPUs MindSpore's 3x3 convolutions "
        f"otherwise fall back to a ~100x slower reference kernel (set {ISA_VARIABLE} yourself to override)"
    )
    if "mindspore" in sys.modules:
        message += "; mindspore was imported before src, so the setting may come too late"
    get_logger().info(message)
    return True
