"""Reading our checkpoints back: for resuming a run, for evaluation/export, and for fine-tuning.

A training checkpoint is one file holding the whole train step (weights, BatchNorm statistics, optimiser
moments, loss scale, EMA shadow weights under ``ema.``) plus the run position (epoch, step, best top-1).
The same file serves eval.py and export.py, which take the EMA weights when present.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

from src.checkpoint import save_checkpoint_atomic
from src.class_names import CHECKPOINT_KEY, checkpoint_entry
from src.engine.train_step import BN_BACKUP_PREFIX, EMA_PREFIX
from src.errors import UserError
from src.logger import get_logger
from src.models import create_model
from src.models.repopt import create_repopt_model, repopt_form
from src.models.weight_import import check_weights_fit, is_deploy_state

RUN_STATE_KEYS = ("epoch", "step", "best_top1")
# The schedule is rebuilt from the config on resume, so a run may be resumed with more epochs.
_REBUILT_ON_RESUME = ("learning_rate",)
_CLASSIFIER_PREFIX = "linear."


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        return ms.load_checkpoint(str(path))
    except (RuntimeError, ValueError, OSError) as error:
        raise UserError(f"cannot read checkpoint {path}: it is damaged or not a MindSpore checkpoint "
                        f"({str(error).splitlines()[0]})") from error


def network_weights(params: dict, prefer_ema: bool = True) -> tuple[dict, bool]:
    """The network's own weights (EMA shadow when present and preferred) and whether they are EMA."""
    ema = {name.removeprefix(EMA_PREFIX): p for name, p in params.items() if name.startswith(EMA_PREFIX)}
    if prefer_ema and ema:
        return ema, True
    network_names = re.compile(r"^(stage\d|linear)\.")
    return {name: p for name, p in params.items() if network_names.match(name)}, False


def _load_checked(cell: nn.Cell, expected: dict, weights: dict, context: str) -> None:
    """Load ``weights`` into ``cell`` when they match ``expected`` (name -> shape) exactly; else one UserError
    that starts with ``context`` and lists the missing, unknown and mis-shaped names."""
    try:
        check_weights_fit(expected, {name: p.shape for name, p in weights.items()})
    except UserError as error:
        raise UserError(f"{context}: {error}") from error
    ms.load_param_into_net(cell, weights, strict_load=True)


def _fit_and_load(net: nn.Cell, weights: dict, path: Path) -> None:
    expected = {name: p.shape for name, p in net.parameters_and_names()}
    _load_checked(net, expected, weights,
                  f"{path} does not fit {getattr(net, 'arch', 'the network')} with {net.num_classes} classes")


def _network_for(weights: dict, arch: str, num_classes: int) -> tuple[nn.Cell, str]:
    """The network whose structure the weight names describe, and the name of that form."""
    form = repopt_form(weights)
    if form is not None:
        return create_repopt_model(arch, num_classes, search=form == "search"), f"RepOpt {form}"
    deploy = is_deploy_state(weights)
    return create_model(arch, num_classes=num_classes, deploy=deploy), "deploy-form" if deploy else "train-form"


def load_network(path: str | Path, arch: str, num_classes: int, prefer_ema: bool = True) -> tuple[nn.Cell, str]:
    """A network in eval mode with the checkpoint's weights, in the form the keys say: RepVGG train or deploy,
    RepOpt-VGG plain or search net."""
    path = Path(path)
    weights, used_ema = network_weights(read_checkpoint(path), prefer_ema)
    if not weights:
        raise UserError(f"{path} holds no RepVGG weights")
    net, form = _network_for(weights, arch, num_classes)
    _fit_and_load(net, weights, path)
    net.set_train(False)
    return net, f"{form} {'EMA ' if used_ema else ''}weights"


def load_pretrained(net: nn.Cell, path: str | Path) -> None:
    """Start fine-tuning from a checkpoint; a classifier of another shape is skipped, said in one line."""
    path = Path(path)
    weights, used_ema = network_weights(read_checkpoint(path))
    if is_deploy_state(weights):
        raise UserError(f"{path} is a deploy (fused) checkpoint: training needs the multi-branch form; "
                        "start from the training checkpoint instead")
    own = dict(net.parameters_and_names())
    skipped = [name for name in weights if name.startswith(_CLASSIFIER_PREFIX)
               and name in own and tuple(weights[name].shape) != tuple(own[name].shape)]
    if skipped:
        weights = {name: p for name, p in weights.items() if name not in skipped}
        own_classifier = {name for name in own if name.startswith(_CLASSIFIER_PREFIX)}
        expected = {name: p.shape for name, p in own.items() if name not in own_classifier}
        check_weights_fit(expected, {name: p.shape for name, p in weights.items()})
        ms.load_param_into_net(net, weights, strict_load=True)
        get_logger().info(f"pretrained {path.name}: classifier skipped (its shape differs: "
                          f"{net.num_classes} classes here), the rest loaded")
    else:
        _fit_and_load(net, weights, path)
        get_logger().info(f"pretrained {path.name}: all weights loaded{' (EMA)' if used_ema else ''}")


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
             if name not in (*RUN_STATE_KEYS, CHECKPOINT_KEY) and not name.endswith(_REBUILT_ON_RESUME)}
    # Checkpoints store parameters under Parameter.name (e.g. "moments.<weight>"), not their Cell paths.
    expected = {p.name: p.shape for p in train_step.get_parameters() if _saved_in_checkpoint(p.name)
                and not p.name.endswith(_REBUILT_ON_RESUME)}
    _load_checked(train_step, expected, state, f"cannot resume from {path}: it belongs to another run setup "
                  "(arch, classes, optimiser or EMA differ)")
    return RunPosition(int(params["epoch"].asnumpy()), int(params["step"].asnumpy()),
                       float(params["best_top1"].asnumpy()))


def run_checkpoints(folder: str | Path) -> list[Path]:
    """The epoch and interrupted checkpoints of any run in ``folder``: what a fresh run there would overwrite."""
    folder = Path(folder)
    return sorted([*folder.glob("*-epoch[0-9][0-9][0-9][0-9].ckpt"), *folder.glob("*-interrupted.ckpt")])


def _saved_in_checkpoint(name: str) -> bool:
    return not name.startswith(BN_BACKUP_PREFIX)


def _require_finite(train_step: nn.Cell, path: Path) -> None:
    broken = [p.name for p in train_step.get_parameters() if _saved_in_checkpoint(p.name)
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
        run_state = {"epoch": position.epoch, "step": position.step, "best_top1": float(position.best_top1),
                     **checkpoint_entry(self.class_names)}
        return save_checkpoint_atomic(train_step, path, append_dict=run_state, choice_func=_saved_in_checkpoint)

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

