"""This machine's FP32 limit, so every throughput can be read as a fraction of what the cores can do.

Measured: the best of several large single-precision GEMMs (numpy's BLAS and, when installed, PyTorch's MKL)
at the benchmark's thread count -- a GEMM is the most FMA-bound kernel there is, so its rate is a practical
ceiling for convolutions too. Beside it, a nominal theoretical peak: cores x clock x FP32 FLOP per cycle, with
the FLOP per cycle taken from the vendor and vector ISA (an assumption written next to the number). The
report divides achieved GFLOP/s (2 FLOP per multiply-accumulate) by the measured limit.

    .venv/bin/python -m benchmarks.fp32_limit [--threads 2] [--size 2048]
"""

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_flags, cpuinfo_field
from src.timing import time_repeats

CPUFREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


@dataclass(frozen=True)
class Fp32Limit:
    gemm_gflops: dict[str, float]           # GEMM backend -> best GFLOP/s
    theoretical_gflops: float | None
    theoretical_basis: str

    @property
    def gflops(self) -> float:
        return max(self.gemm_gflops.values())

    def best_with(self, other: "Fp32Limit") -> "Fp32Limit":
        """The better rate of each backend over two measurements: other work on the machine can only lower a
        measured limit, so measuring before and after a long run and keeping the best makes it more robust."""
        rates = {name: max(rate, other.gemm_gflops.get(name, 0.0)) for name, rate in self.gemm_gflops.items()}
        return Fp32Limit(rates, self.theoretical_gflops, self.theoretical_basis)


def gemm_gflops(matmul: Callable[[], object], size: int, repeats: int) -> float:
    """Best rate of ``repeats`` square ``size`` GEMMs: the limit is an upper bound, so the fastest run counts."""
    return 2.0 * size**3 / min(time_repeats(matmul, warmup=2, repeats=repeats).seconds) / 1e9


def numpy_gemm_gflops(size: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    return gemm_gflops(lambda: a @ b, size, repeats)


def torch_gemm_gflops(size: int, repeats: int, threads: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    a, b = torch.rand(size, size), torch.rand(size, size)
    return gemm_gflops(lambda: a @ b, size, repeats)


def fp32_flops_per_cycle(vendor: str, family: int, flags: set[str]) -> tuple[int, str]:
    """FP32 FLOP per cycle per core (2 FMA pipes x lanes x 2) and the assumption it rests on."""
    if vendor == "AuthenticAMD" and family >= 0x1A and "avx512f" in flags:
        return 64, "Zen 5: two 512-bit FMA pipes"
    if vendor == "AuthenticAMD" and family >= 0x17:
        return 32, "Zen 2-4: two 256-bit FMA pipes, AVX-512 split in halves"
    if "avx512f" in flags:
        return 64, "two 512-bit FMA units assumed, half on one-unit parts"
    if "fma" in flags:
        return 32, "two 256-bit FMA units"
    return 16, "SSE: two 128-bit add/multiply units"


def clock_ghz() -> tuple[float, str] | None:
    if CPUFREQ_MAX.is_file():
        return int(CPUFREQ_MAX.read_text()) / 1e6, "maximum clock from cpufreq"
    mhz = cpuinfo_field("cpu MHz")
    return (float(mhz) / 1e3, "clock from /proc/cpuinfo, nominal under a hypervisor") \
        if mhz else None


def theoretical_peak_gflops(cores: int) -> tuple[float | None, str]:
    clock = clock_ghz()
    family = cpuinfo_field("cpu family")
    if clock is None or family is None:
        return None, "clock or CPU family unknown"
    per_cycle, assumption = fp32_flops_per_cycle(cpuinfo_field("vendor_id") or "", int(family), cpu_flags())
    ghz, clock_source = clock
    return (cores * ghz * per_cycle,
            f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle; {assumption}; {clock_source}")


def measure_fp32_limit(threads: int, size: int = 2048, repeats: int = 5) -> Fp32Limit:
    rates = {"numpy (OpenBLAS) sgemm": numpy_gemm_gflops(size, repeats)}
    torch_rate = torch_gemm_gflops(size, repeats, threads)
    if torch_rate is not None:
        rates["torch (MKL) sgemm"] = torch_rate
    peak, basis = theoretical_peak_gflops(min(threads, os.cpu_count() or threads))
    return Fp32Limit(rates, peak, basis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args()
    limit = measure_fp32_limit(args.threads, args.size)
    for backend, rate in limit.gemm_gflops.items():
        print(f"{backend:24} {rate:8.1f} GFLOP/s ({args.size}^3, {args.threads} threads)")
    peak = f"{limit.theoretical_gflops:.1f} GFLOP/s" if limit.theoretical_gflops else "unknown"
    print(f"{'theoretical peak':24} {peak} -- {limit.theoretical_basis}")


if __name__ == "__main__":
    main()
