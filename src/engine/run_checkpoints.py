"""The checkpoints of a training run: resuming the train step from one, and writing them as the run goes.

A training checkpoint is one file holding the whole train step (weights, BatchNorm statistics, optimiser
moments, loss scale, EMA shadow weights) plus the run position (epoch, step, best top-1); its layout is
described in ``src.checkpoint_files``. The same file serves eval.py and export.py through
``src.models.from_checkpoint``, which take the EMA weights when present.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mindspore import nn

from src.checkpoint_files import read_checkpoint, save_checkpoint_atomic, saved_in_checkpoint
from src.errors import UserError
from src.models.from_checkpoint import load_checked

RUN_STATE_KEYS = ("epoch", "step", "best_top1")
# The schedule is rebuilt from the config on resume, so a run may be resumed with more epochs.
_REBUILT_ON_RESUME = ("learning_rate",)


@dataclass
class RunPosition:
    epoch: int = 0          # completed epochs
    step: int = 0           # completed optimisation steps
    best_top1: float = -1.0


def restore_train_step(train_step: nn.Cell, path: str | Path) -> RunPosition:
    """Load a training checkpoint into the train step; every state tensor must fit."""
    path = Path(path)
    params = read_checkpoint(path)
    missing_keys = [key for key in RUN_STATE_KEYS if key not in params]
    if missing_keys:
        raise UserError(f"{path} is not a training checkpoint (no {', '.join(missing_keys)}): "
                        "use --pretrained to start from its weights")
    state = {name: p for name, p in params.items()
             if name not in RUN_STATE_KEYS and not name.endswith(_REBUILT_ON_RESUME)}
    # Checkpoints store parameters under Parameter.name (e.g. "moments.<weight>"), not their Cell paths.
    expected = {p.name: p.shape for p in train_step.get_parameters() if saved_in_checkpoint(p.name)
                and not p.name.endswith(_REBUILT_ON_RESUME)}
    load_checked(train_step, expected, state, f"cannot resume from {path}: it belongs to another run setup "
                 "(arch, classes, optimiser or EMA differ)")
    return RunPosition(int(params["epoch"].asnumpy()), int(params["step"].asnumpy()),
                       float(params["best_top1"].asnumpy()))


def run_checkpoints(folder: str | Path) -> list[Path]:
    """The epoch and interrupted checkpoints of any run in ``folder``: what a fresh run there would overwrite."""
    folder = Path(folder)
    return sorted([*folder.glob("*-epoch[0-9][0-9][0-9][0-9].ckpt"), *folder.glob("*-interrupted.ckpt")])


def _require_finite(train_step: nn.Cell, path: Path) -> None:
    broken = [p.name for p in train_step.get_parameters() if saved_in_checkpoint(p.name)
              and not np.isfinite(p.asnumpy()).all()]
    if broken:
        listed = ", ".join(broken[:5]) + (f" and {len(broken) - 5} more" if len(broken) > 5 else "")
        raise UserError(f"not writing {path}: non-finite values in {listed}; the run diverged (lower base_lr); "
                        "earlier checkpoints are kept")


class CheckpointKeeper:
    """Writes ``<arch>-epochNNNN.ckpt`` after each epoch, keeps the newest ``keep`` of them, and
    ``<arch>-best.ckpt`` for the best validation top-1. A run stopped mid-epoch by a signal leaves
    ``<arch>-interrupted.ckpt``, which the next epoch checkpoint replaces. Nothing non-finite is ever written.
    Every checkpoint carries ``class_names`` when given (see ``src.class_names``).
    """

    def __init__(self, folder: str | Path, arch: str, keep: int, class_names: list[str] | None = None):
        self.folder = Path(folder)
        self.arch = arch
        self.keep = keep
        self.class_names = class_names

    def epoch_path(self, epoch: int) -> Path:
        return self.folder / f"{self.arch}-epoch{epoch:04d}.ckpt"

    @property
    def best_path(self) -> Path:
        return self.folder / f"{self.arch}-best.ckpt"

    def epoch_checkpoints(self) -> list[Path]:
        return sorted(self.folder.glob(f"{self.arch}-epoch[0-9][0-9][0-9][0-9].ckpt"))

    @property
    def interrupted_path(self) -> Path:
        return self.folder / f"{self.arch}-interrupted.ckpt"

    def latest(self) -> Path | None:
        """The checkpoint to resume from: the newest epoch checkpoint, or a newer interrupted one."""
        found = self.epoch_checkpoints()[-1:]
        if self.interrupted_path.is_file():
            found.append(self.interrupted_path)
        return max(found, key=lambda path: path.stat().st_mtime_ns) if found else None

    def _write(self, train_step: nn.Cell, position: RunPosition, path: Path) -> Path:
        _require_finite(train_step, path)
        run_state = {"epoch": position.epoch, "step": position.step, "best_top1": float(position.best_top1)}
        return save_checkpoint_atomic(train_step, path, append_dict=run_state, choice_func=saved_in_checkpoint,
                                      class_names=self.class_names)

    def save(self, train_step: nn.Cell, position: RunPosition, is_best: bool) -> Path:
        path = self._write(train_step, position, self.epoch_path(position.epoch))
        if is_best:
            self._write(train_step, position, self.best_path)
        self.interrupted_path.unlink(missing_ok=True)
        for old in self.epoch_checkpoints()[:-self.keep]:
            old.unlink(missing_ok=True)
        return path

    def save_interrupted(self, train_step: nn.Cell, position: RunPosition) -> Path:
        return self._write(train_step, position, self.interrupted_path)

    def remove_staging_files(self) -> int:
        """Delete what killed writes left in the run folder: the hidden temporary files of the atomic writers
        (``.<name>.<random>.tmp`` or ``.tmp.ckpt``; checkpoints, scales, logs), never a finished file."""
        stale = list(self.folder.glob(".*.tmp*"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

