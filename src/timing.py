"""Wall-clock timing of a repeated call: warm-up runs, then timed repeats summarised by median and spread.

Free of MindSpore, so a PyTorch-only process (benchmarks.torch_repvgg) times with the same code.
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    seconds: tuple[float, ...]      # one entry per timed repeat

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def quantile(self, fraction: float) -> float:
        ordered = sorted(self.seconds)
        position = fraction * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    @property
    def spread_percent(self) -> float:
        """Interquartile range relative to the median: how much the repeats disagree."""
        return 100.0 * (self.quantile(0.75) - self.quantile(0.25)) / self.median


def time_repeats(run: Callable[[], object], warmup: int, repeats: int) -> Timing:
    """Call ``run`` ``warmup`` times untimed (compilation, caches, thread pools), then time ``repeats`` calls.
    ``run`` must block until its result is ready (e.g. call ``.asnumpy()`` on a MindSpore output)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return Timing(tuple(seconds))


def time_interleaved(runs: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, Timing]:
    """Like ``time_repeats`` for several calls taken in turn (A, B, A, B, ...), so a machine whose load
    changes (other jobs) slows them alike and their ratio stays meaningful."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for run in runs.values():
        for _ in range(warmup):
            run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: Timing(tuple(values)) for name, values in seconds.items()}
