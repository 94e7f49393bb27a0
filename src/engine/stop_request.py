"""A clean stop on SIGINT or SIGTERM: the training loop finishes its step, writes a resumable checkpoint and
returns. A second signal interrupts at once (KeyboardInterrupt); atomic checkpoint writes keep the last good
checkpoint intact either way.

In data-parallel runs every rank must stop after the same step, or the others would wait forever in the next
gradient all-reduce: ``requested()`` then sums the ranks' flags (CPU all-reduce only sums), one tiny all-reduce
per step.
"""

import signal
from types import FrameType

import numpy as np
from mindspore import Tensor, nn, ops

from src.logger import get_logger

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _AnyRank(nn.Cell):
    def __init__(self):
        super().__init__()
        self.all_reduce = ops.AllReduce(ops.ReduceOp.SUM)

    def construct(self, flag: Tensor) -> Tensor:
        return self.all_reduce(flag)


class StopRequest:
    """Use as a context manager around training; ``requested()`` says whether to stop after this step."""

    def __init__(self, distributed: bool = False):
        self.signal_number: int | None = None
        self._signalled = False  # this process received a signal itself (not only heard of one from a peer)
        self._any_rank = _AnyRank() if distributed else None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        # Only this process's own second signal stops at once: a rank that already learned of the stop from
        # another rank through the all-reduce may still receive its own copy of the first signal.
        if self._signalled:
            raise KeyboardInterrupt
        self._signalled = True
        if self.signal_number is None:
            self.signal_number = number
        get_logger().info(f"{signal.Signals(number).name} received: stopping after this step with a resumable "
                          "checkpoint (send it again to stop at once)")

    def requested(self) -> bool:
        local = self.signal_number is not None
        if self._any_rank is None:
            return local
        # A rank that was not signalled itself stops with the others; it reports the signal as SIGTERM.
        agreed = bool(self._any_rank(Tensor(np.array([float(local)], np.float32))).asnumpy()[0] > 0)
        if agreed and not local:
            self.signal_number = signal.SIGTERM
        return agreed

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by a signal: 128 + its number."""
        return 128 + (self.signal_number or 0)
