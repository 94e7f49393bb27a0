"""What the numbers were measured on: CPU model and vector ISA, thread count, library versions."""

import os
import platform
from importlib import metadata
from pathlib import Path

from src.cpu_speed_guard import ISA_VARIABLE

CPUINFO = Path("/proc/cpuinfo")
LIBRARIES = ("mindspore", "onnxruntime", "onnx", "numpy", "torch")


def cpuinfo_field(name: str) -> str | None:
    """The first value of ``name`` in /proc/cpuinfo (None off Linux or when absent)."""
    if not CPUINFO.is_file():
        return None
    for line in CPUINFO.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor()


def cpu_flags() -> set[str]:
    return set((cpuinfo_field("flags") or "").split())


def isa_summary(flags: set[str]) -> str:
    """The widest vector ISA and the extensions that matter here: VNNI for int8, BF16."""
    if "avx512f" in flags:
        extras = [name for flag, name in (("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16")) if flag in flags]
        return "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
    if "avx2" in flags:
        return "AVX2" + (" (AVX-VNNI)" if "avx_vnni" in flags else "")
    return "SSE/AVX"


def has_vnni(flags: set[str]) -> bool:
    return bool({"avx512_vnni", "avx_vnni"} & flags)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_machine(threads: int) -> dict[str, str]:
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "logical_cpus": str(os.cpu_count()),
        "isa": isa_summary(flags),
        "threads": str(threads),
        "onednn_isa_mindspore": os.environ.get(ISA_VARIABLE, "default"),
        # Other work on the machine slows every engine; a load near the core count makes the numbers unreliable.
        "load_average_1min_at_start": f"{os.getloadavg()[0]:.1f}",
        **{f"version_{name}": version for name, version in library_versions().items()},
    }
