"""Data sinking (Ascend and GPU) and the running sums of the train step that make it possible.

With sinking, one host call runs ``sink_size`` steps on the device, each fed from the device's own data
queue (``mindspore.data_sink``), and returns only the last step's outputs. The host therefore reads what
the epoch log and the divergence check need from sums the device keeps over every step (``StepTally``):
the loss summed over finite steps, their count, and the longest run of consecutive non-finite steps. A
non-finite step changes no state (see src/engine/train_step.py), so finding a divergence one sink late
saves nothing broken. MindSpore 2.10 refuses to sink on CPU (``data_sink`` raises; ``Model.train`` falls
back to step by step); there the trainer steps one batch per call.
"""

from collections.abc import Callable
from dataclasses import dataclass

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

SINKING_DEVICES = ("Ascend", "GPU")


@dataclass(frozen=True)
class Tally:
    steps: int                  # steps since the last read
    finite_steps: int
    finite_loss_sum: float
    nonfinite_streak: int       # non-finite steps in a row at the end, counted across reads
    longest_streak: int         # the longest such run that ended or went on since the last read

    @property
    def skipped_steps(self) -> int:
        return self.steps - self.finite_steps


def _counter(name: str, dtype=ms.int32) -> Parameter:
    return Parameter(Tensor(0, dtype), name=f"tally.{name}", requires_grad=False)


class StepTally(nn.Cell):
    """The train step plus sums kept on the device. Its own Parameters are not part of the train step, so
    checkpoints of the train step are unchanged."""

    def __init__(self, train_step: nn.Cell):
        super().__init__(auto_prefix=False)
        self.train_step = train_step
        self.steps = _counter("steps")
        self.finite_steps = _counter("finite_steps")
        self.finite_loss_sum = _counter("finite_loss_sum", ms.float32)
        self.streak = _counter("nonfinite_streak")
        self.longest_streak = _counter("longest_streak")

    def construct(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        loss, finite = self.train_step(images, targets)
        finite_count = finite.astype(ms.int32)
        streak = (self.streak + 1) * (1 - finite_count)
        loss = ops.depend(loss, ops.assign_add(self.steps, ops.ones((), ms.int32)))
        loss = ops.depend(loss, ops.assign_add(self.finite_steps, finite_count))
        loss = ops.depend(loss, ops.assign_add(self.finite_loss_sum,
                                               ops.select(finite, loss.astype(ms.float32), ops.zeros((), ms.float32))))
        loss = ops.depend(loss, ops.assign(self.streak, streak))
        loss = ops.depend(loss, ops.assign(self.longest_streak, ops.maximum(self.longest_streak, streak)))
        return loss, finite

    def read(self) -> Tally:
        """The sums since the last read, which restarts them (the streak goes on across reads)."""
        tally = Tally(int(self.steps.asnumpy()), int(self.finite_steps.asnumpy()),
                      float(self.finite_loss_sum.asnumpy()), int(self.streak.asnumpy()),
                      int(self.longest_streak.asnumpy()))
        for counter in (self.steps, self.finite_steps):
            counter.set_data(Tensor(0, ms.int32))
        self.finite_loss_sum.set_data(Tensor(0, ms.float32))
        self.longest_streak.set_data(Tensor(np.int32(tally.nonfinite_streak)))
        return tally


def device_sink(step: nn.Cell, dataset: ds.Dataset, sink_size: int) -> Callable[[], object]:
    """A call that runs ``sink_size`` steps of ``step`` on the device over ``dataset`` (Ascend, GPU)."""
    return ms.data_sink(step, dataset, sink_size=sink_size, jit_config=ms.JitConfig())


def steps_per_sink(sink_size: int, steps_per_epoch: int) -> int:
    """``sink_size`` of the config: -1 (or more than an epoch) means one sink per epoch."""
    return steps_per_epoch if sink_size == -1 else min(sink_size, steps_per_epoch)
