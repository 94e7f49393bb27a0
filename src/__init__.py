"""RepVGG on MindSpore.

Importing this package applies the CPU speed guard before MindSpore is loaded, so every entry point and
test that imports ``src`` first gets fast oneDNN convolution kernels (see ``src.cpu_speed_guard``).
"""

from src.cpu_speed_guard import apply_cpu_speed_guard

apply_cpu_speed_guard()
