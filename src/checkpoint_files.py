"""MindSpore checkpoint files: writing one atomically, reading one back, and telling which form it holds.

Below the engine, deployment and tools, which all read the same files. What a training checkpoint holds is
written down here once: the network's own weights (``stage0.`` ... ``linear.``), EMA shadow weights under
``EMA_PREFIX``, optimiser moments and loss scale, and the run position; BatchNorm statistics backed up during
a step (``BN_BACKUP_PREFIX``) are never saved. Every checkpoint we write may also carry the model's class names
(the string entry ``class_names``, see ``src.class_names``): ``read_checkpoint`` leaves it out, so whoever walks
the entries sees tensors only, and ``read_checkpoint_class_names`` reads it. ``checkpoint_form`` is the one
answer to "which network do these weight names describe": RepVGG train or deploy form (our, official or timm
naming), RepOpt-VGG plain or search net, or the fake-quantised (int8-simulating) network of quantisation-aware
training.
"""

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from pathlib import Path

import mindspore as ms

from src.atomic_files import ensure_folder
from src.class_names import CHECKPOINT_KEY, decode_class_names, encode_class_names
from src.errors import UserError

EMA_PREFIX = "ema."
# The train step's copy of BatchNorm statistics, restored after a skipped step: scratch, never saved.
BN_BACKUP_PREFIX = "bn_backup."
# RepVGG / RepOpt-VGG, then the fake-quantised network of quantisation-aware training.
_NETWORK_NAMES = re.compile(r"^(stage\d|linear|input_quant|convs|output_quants|pool_quant|classifier|logits_quant)\.")
_FAKE_QUANT_MARKER = "input_quant.range_min"
_DEPLOY_MARKERS = ("rbr_reparam", "reparam_conv")


class CheckpointForm(StrEnum):
    """The network a set of weight names describes; the value is how logs and messages name it."""
    TRAIN = "train-form"
    DEPLOY = "deploy-form"
    REPOPT_PLAIN = "RepOpt plain"
    REPOPT_SEARCH = "RepOpt search"
    FAKE_QUANT = "int8 fake-quant"


def checkpoint_form(names: Iterable[str]) -> CheckpointForm:
    """Which network the weight names describe.

    The RepOpt search block alone has ``scale_conv``; the plain RepOpt block's conv sits right under the block
    path (``stage0.conv.weight``), where RepVGG has ``rbr_dense`` or ``rbr_reparam``. Both RepOpt nets share
    ``stage0.conv.weight``, so search is tested first. Fused RepVGG blocks hold ``rbr_reparam`` (timm:
    ``reparam_conv``). The fake-quantised network of quantisation-aware training has activation ranges.
    """
    names = list(names)
    if _FAKE_QUANT_MARKER in names:
        return CheckpointForm.FAKE_QUANT
    if any(".scale_conv." in name for name in names):
        return CheckpointForm.REPOPT_SEARCH
    if "stage0.conv.weight" in names:
        return CheckpointForm.REPOPT_PLAIN
    if any(marker in name for name in names for marker in _DEPLOY_MARKERS):
        return CheckpointForm.DEPLOY
    return CheckpointForm.TRAIN


def is_deploy_form(names: Iterable[str]) -> bool:
    return checkpoint_form(names) is CheckpointForm.DEPLOY


def save_checkpoint_atomic(save_obj: ms.nn.Cell | list, path: str | os.PathLike, append_dict: dict | None = None,
                           choice_func: Callable[[str], bool] | None = None,
                           class_names: Sequence[str] | None = None) -> Path:
    """Write ``save_obj`` (a Cell or a list of {"name", "data"} dicts) to ``path`` atomically; ``choice_func``
    selects parameters by name, as in ``mindspore.save_checkpoint``; ``class_names`` go in with the weights."""
    if class_names:
        append_dict = {**(append_dict or {}), CHECKPOINT_KEY: encode_class_names(class_names)}
    target = Path(path)
    if target.suffix != ".ckpt":
        raise UserError(f"checkpoint path must end in .ckpt: {target}")
    ensure_folder(target.parent)
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp.ckpt", dir=target.parent)
    except OSError as error:
        raise UserError(f"cannot write checkpoint to {target.parent}: {error.strerror}") from error
    os.close(handle)
    # MindSpore stages its own write in a sibling file; clean up everything sharing our unique stem.
    temp_stem = Path(temp_name).name.removesuffix(".tmp.ckpt")
    try:
        ms.save_checkpoint(save_obj, temp_name, append_dict=append_dict, choice_func=choice_func)
        with open(temp_name, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp_name, target)
    except BaseException as error:
        for leftover in target.parent.glob(f"{temp_stem}.*"):
            leftover.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise UserError(f"cannot write checkpoint {target}: {error.strerror or error}") from error
        raise
    return target


def read_checkpoint(path: str | Path) -> dict:
    """Every tensor in the checkpoint, by name (the class names entry, a string, is left out)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        params = ms.load_checkpoint(str(path))
    except (RuntimeError, ValueError, OSError) as error:
        raise UserError(f"cannot read checkpoint {path}: it is damaged or not a MindSpore checkpoint "
                        f"({str(error).splitlines()[0]})") from error
    params.pop(CHECKPOINT_KEY, None)
    return params


def read_checkpoint_class_names(path: str | os.PathLike) -> list[str] | None:
    """The class names inside the checkpoint file at ``path`` (None when it has none or cannot be read: the
    reader of its weights reports a damaged file)."""
    try:
        params = ms.load_checkpoint(os.fspath(path), choice_func=lambda name: name == CHECKPOINT_KEY)
    except (RuntimeError, ValueError, OSError):
        return None  # MindSpore raises ValueError when nothing matched the choice
    text = params.get(CHECKPOINT_KEY)
    return decode_class_names(text, str(path)) if isinstance(text, str) else None


def network_weights(params: dict, prefer_ema: bool = True) -> tuple[dict, bool]:
    """The network's own weights (EMA shadow when present and preferred) and whether they are EMA."""
    ema = {name.removeprefix(EMA_PREFIX): p for name, p in params.items() if name.startswith(EMA_PREFIX)}
    if prefer_ema and ema:
        return ema, True
    return {name: p for name, p in params.items() if _NETWORK_NAMES.match(name)}, False


def saved_in_checkpoint(name: str) -> bool:
    """Whether the train step parameter ``name`` belongs in a checkpoint (scratch copies do not)."""
    return not name.startswith(BN_BACKUP_PREFIX)
