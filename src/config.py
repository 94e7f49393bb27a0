"""Training configuration: one dataclass of every key, loaded from YAML (ModelZoo key names).

``Config`` checks itself when built (types, ranges, the ``CHOICES`` table, rules between keys), so code that
receives one trusts it. ``load_config`` reads a recipe from ``src/configs/``, applies overrides and returns one
frozen ``Config``. Every check runs before any work starts and fails with one ``UserError`` line naming the
key and the file (or the command-line flag). Entry points use ``add_config_arguments`` and
``config_from_args`` so that any key can be overridden on the command line.

A recipe may start with ``base: other.yaml`` (relative to the file that names it): the base file's keys
are read first and the including file overrides them. Relative paths *inside* a config (``data_url``,
``train_url``, ``pretrained``) are relative to the working directory, as in the ModelZoo.
"""

import argparse
import difflib
import inspect
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from src.atomic_files import write_text_atomic
from src.cli import add_flag
from src.errors import UserError
from src.models.variants import resolve_arch
from src.rand_augment_spec import parse_rand_augment


@dataclass(frozen=True)
class Config:
    # ===== Architecture ===== #
    arch: str = "RepVGG-A0"                 # RepVGG-A0 ... B3g4, RepOptVGG-*; *-cifar: 32 px variants
    num_classes: int = 1000                 # outputs of the classifier
    image_size: int = 224                   # side of the training crop and of the evaluated image, in pixels
    # ===== Data set ===== #
    data_url: str = "./dataset"             # data: a folder with train/ and val/; CIFAR100: its binary folder
    set: str = "ImageNet"                   # kind of data: ImageNet (any class folders) | CIFAR100 | demo
    crop_pct: float = 0.875                 # eval: resize to image_size / crop_pct, then centre crop
    # Image folders (set ImageNet), training crop: share of the image's area and aspect ratio, as timm and mindcv
    # name them; small images want a larger share.
    scale: tuple[float, float] = (0.08, 1.0)  # random-resized crop: low, high share of the image's area
    ratio: tuple[float, float] = (0.75, 4 / 3)  # random-resized crop: low, high aspect ratio (width / height)
    check_images: bool = True               # image folders: decode every image once before training, list bad ones
    skip_bad_images: bool = False           # train without unreadable or empty image files instead of refusing
    interpolation: str = "bicubic"          # resize filter: bilinear | bicubic | nearest | area
    auto_augment: str | None = None         # None | RandAugment spec as "rand-m9-n2-mstd0.5" | "autoaug"
    re_prob: float = 0.0                    # RandomErasing probability
    re_mode: str = "pixel"                  # RandomErasing fill: const | rand | pixel
    re_count: int = 1                       # RandomErasing: rectangles erased per image
    mix_up: float = 0.0                     # MixUp alpha (0: off)
    cutmix: float = 0.0                     # CutMix alpha (0: off)
    mixup_prob: float = 1.0                 # probability of applying MixUp/CutMix to a batch
    switch_prob: float = 0.5                # probability of CutMix instead of MixUp when both are on
    mixup_mode: str = "batch"               # only "batch": one MixUp/CutMix draw per batch
    label_smoothing: float = 0.1            # cross entropy label smoothing (0: off)
    num_parallel_workers: int = 8           # data-loading workers (at most the CPUs of the machine)
    # ===== Optimiser and learning rate ===== #
    optimizer: str = "momentum"             # momentum | adamw | repopt (RepOpt-VGG with the RepOptimizer)
    # Peak learning rate, used as given. The ModelZoo code multiplied it by global batch / 512 out of
    # sight; here each recipe states the rate for its global batch (see src/configs/imagenet_base.yaml).
    base_lr: float = 0.1
    warmup_lr: float = 7e-8                 # learning rate at the start of the warm-up
    min_lr: float = 0.0                     # cosine_lr: learning rate at the end
    lr_scheduler: str = "cosine_lr"         # learning-rate schedule: cosine_lr | step_lr | constant_lr
    lr_adjust: int = 30                     # step_lr: epochs between decays
    lr_gamma: float = 0.1                   # step_lr: decay factor
    warmup_length: int = 0                  # warm-up epochs
    momentum: float = 0.9                   # momentum optimiser: momentum factor
    nesterov: bool = False                  # momentum optimiser: Nesterov momentum
    beta: tuple[float, float] = (0.9, 0.999)  # adamw: decay rates of the moment estimates
    eps: float = 1e-8                       # adamw: added to the denominator
    weight_decay: float = 1e-4              # L2 penalty on the weights
    # ===== Network training ===== #
    amp_level: str = "O1"                   # mixed precision: O0 (float32) | O1 | O2 | O3
    is_dynamic_loss_scale: bool = True      # mixed precision: adapt the loss scale (fixed on CPU)
    loss_scale: float = 1024.0              # mixed precision: the (initial) loss scale
    clip_global_norm_value: float = 5.0     # clip gradients to this global norm (0: no clipping)
    # A step whose loss or gradients are not finite is skipped; this many in a row stop the run (diverged).
    max_nonfinite_steps: int = 20
    epochs: int = 120                       # training epochs
    batch_size: int = 64                    # images per step on each device
    with_ema: bool = False                  # keep an EMA of the weights: evaluated and exported when present
    sync_bn: bool = False                   # data parallel on Ascend: BatchNorm statistics across devices
    ema_decay: float = 0.9999               # EMA decay per step
    seed: int = 0                           # seed of the initial weights, data order and augmentation
    # ===== Knowledge distillation (as in a PyTorch RepVGG with knowledge distillation) ===== #
    teacher_arch: str | None = None         # any registered arch; the teacher has the student's num_classes
    teacher_ckpt: str | None = None         # the teacher's checkpoint, train or deploy form (EMA weights preferred)
    kd_alpha: float = 0.0                   # weight of the distillation term (0: off, 1: teacher only)
    kd_temperature: float = 4.0             # softmax temperature of the distillation term
    # ===== RepOpt-VGG (Ding et al., ICLR 2023) ===== #
    # optimizer: repopt trains the plain RepOpt-VGG with the RepOptimizer, whose gradient multipliers come
    # from the scales file a repopt_search run wrote. repopt_search: true trains the hyper-search net instead.
    repopt_scales: str | None = None        # .npz of searched scales; read when optimizer is repopt
    repopt_search: bool = False             # train RepOptSearchNet and write <train_url>/RepOptVGG-<..>-scales.npz
    # ===== Quantisation-aware training ===== #
    # Activation ranges follow an EMA, then stay fixed for the last qat_freeze_epochs epochs, so that the weights
    # adapt to the ranges the int8 model will use.
    qat: bool = False                       # fine-tune the fused net of `pretrained` (any form) with simulated int8
    qat_freeze_epochs: int = 1              # QAT: last epochs with the activation ranges fixed
    # ===== Checkpoints, logs, evaluation ===== #
    train_url: str = "./output"             # output folder: checkpoints, CSV log, curves
    keep_checkpoint_max: int = 5            # epoch checkpoints kept (the best one is kept besides)
    eval_every: int = 1                     # evaluate on val every N epochs (0: only at the end)
    pretrained: str | None = None           # checkpoint: to fine-tune from (train), evaluate or export
    # ===== Hardware ===== #
    device_target: str = "CPU"              # where to run: CPU | GPU | Ascend
    device_id: int = 0                      # which device of the machine
    # Data sinking (Ascend, GPU; MindSpore cannot sink on CPU): the device runs sink_size steps per call,
    # fed from its own data queue, with no host round trip between them. Logs, the non-finite check, a
    # clean stop and checkpoints then act at sink boundaries: a stop waits for the current sink to end.
    dataset_sink_mode: bool = False         # Ascend/GPU: run sink_size steps per device call
    sink_size: int = -1                     # steps per sink; -1: a whole epoch

    def __post_init__(self) -> None:
        """Check and normalise every value (type, range, choice, registered spelling), then the rules between
        keys. Defaults go through the same checks: a Config that exists is valid, so code receiving one
        trusts it. Errors are ``InvalidConfigError``, which ``load_config`` re-words to name the file or flag."""
        for name, field in _FIELDS.items():
            try:
                value = _PARSERS[field.type](getattr(self, name))
                if name in _RULES:
                    value = _RULES[name](value)
            except UserError as error:
                raise InvalidConfigError("invalid value for ", Key(name), f": {error}") from None
            object.__setattr__(self, name, value)
        _check_relations(self)


class Key(NamedTuple):
    """A config key inside an error message, named by whoever reports the error."""
    name: str


class InvalidConfigError(UserError):
    """A value or a combination of values a Config refuses. The message is text and ``Key`` parts; ``describe``
    words it given how to name a key (``'epochs' in cfg.yaml``, ``--epochs``), so the loader can say where a
    value came from."""

    def __init__(self, *parts: str | Key):
        self.parts = parts
        super().__init__(self.describe(lambda key: f"'{key}'"))

    def describe(self, subject: Callable[[str], str]) -> str:
        return "".join(subject(part.name) if isinstance(part, Key) else part for part in self.parts)


BASE_KEY = "base"
# The accepted values of every key with a fixed set of choices; consumers (transforms, schedules, devices)
# read their names from here.
CHOICES: dict[str, tuple[str, ...]] = {
    "set": ("ImageNet", "CIFAR100", "demo"),
    "interpolation": ("bilinear", "bicubic", "nearest", "area"),
    "re_mode": ("const", "rand", "pixel"),
    "mixup_mode": ("batch",),
    "optimizer": ("momentum", "adamw", "repopt"),
    "lr_scheduler": ("cosine_lr", "step_lr", "constant_lr"),
    "amp_level": ("O0", "O1", "O2", "O3"),
    "device_target": ("CPU", "GPU", "Ascend"),
}
# Sets read from disk; the demo set is generated by the project, so its folder may not exist yet.
DATASETS_ON_DISK = ("ImageNet", "CIFAR100")

_FIELDS = {field.name: field for field in fields(Config)}
_REQUIRED_DEST = "required_config_keys"

# ---------------------------------------------------------------------------------------------------
# Value checks. Each takes a value and returns it (possibly normalised) or raises UserError(reason);
# the caller adds which key, file or flag the value came from.
# ---------------------------------------------------------------------------------------------------

Check = Callable[[Any], Any]


def _as_int(value: Any) -> int:
    # bool is a subclass of int: `epochs: true` must not read as 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"expected an integer, got {value!r}")
    return value


_LARGEST_FLOAT = sys.float_info.max


def _as_float(value: Any) -> float:
    # PyYAML follows YAML 1.1, where `1e-4` (no dot) is a string: accept it as the number it looks like.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UserError(f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"expected a number, got {value!r}")
    # An integer beyond float range (1 followed by 400 zeros) is as unusable as infinity.
    if (isinstance(value, int) and abs(value) > _LARGEST_FLOAT) or not math.isfinite(value):
        raise UserError(f"expected a finite number, got {value!r}")
    return float(value)


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"expected true or false, got {value!r}")
    return value


def _as_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"expected a non-empty string, got {value!r}")
    return value


def _as_optional_str(value: Any) -> str | None:
    # ModelZoo recipes write `auto_augment: None`, which YAML reads as the string "None".
    if value is None or value in ("None", "null"):
        return None
    return _as_str(value)


def _as_float_pair(value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise UserError(f"expected a list of 2 numbers, got {value!r}")
    return (_as_float(value[0]), _as_float(value[1]))


_PARSERS: dict[Any, Check] = {
    int: _as_int,
    float: _as_float,
    bool: _as_bool,
    str: _as_str,
    str | None: _as_optional_str,
    tuple[float, float]: _as_float_pair,
}
# Command-line values of these types are taken verbatim rather than read as YAML, so that
# `--train_url 2024` or `--data_url yes` stay the paths the user typed.
_TEXT_TYPES = (str, str | None)


def _interval(low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False) -> Check:
    if high is None:
        bound = f"{'>' if low_open else '>='} {low}"
    else:
        bound = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"

    def check(value: float) -> float:
        too_low = value <= low if low_open else value < low
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise UserError(f"must be {bound}, got {value!r}")
        return value

    return check


def _one_of(*choices: str) -> Check:
    by_lower = {choice.lower(): choice for choice in choices}

    def check(value: str) -> str:
        # Case does not matter (`imagenet`, `o1`); the canonical spelling is stored.
        if value.lower() not in by_lower:
            raise UserError(f"must be one of {', '.join(choices)}, got {value!r}")
        return by_lower[value.lower()]

    return check


def _check_sink_size(value: int) -> int:
    if value != -1 and value < 1:
        raise UserError(f"must be -1 (a whole epoch) or a number of steps >= 1, got {value!r}")
    return value


def _check_mixup_mode(value: str) -> str:
    if value.lower() in ("pair", "elem"):
        raise UserError(f"mode {value!r} is not implemented; only 'batch' is (one MixUp/CutMix draw per batch)")
    return _one_of(*CHOICES["mixup_mode"])(value)


def _check_auto_augment(value: str | None) -> str | None:
    parse_rand_augment(value)
    return value


def _optional(check: Check) -> Check:
    def check_unless_none(value: Any) -> Any:
        return None if value is None else check(value)

    return check_unless_none


def _check_beta(value: tuple[float, float]) -> tuple[float, float]:
    return tuple(_FRACTION(b) for b in value)


def _ordered_range(check: Check) -> Check:
    """A [low, high] pair whose ends pass ``check`` and come in order."""

    def check_pair(value: tuple[float, float]) -> tuple[float, float]:
        low, high = (check(end) for end in value)
        if low > high:
            raise UserError(f"expected [low, high] with low <= high, got {list(value)}")
        return (low, high)

    return check_pair


_POSITIVE = _interval(0, low_open=True)
_NON_NEGATIVE = _interval(0)
_PROBABILITY = _interval(0, 1)
_FRACTION = _interval(0, 1, high_open=True)

# Per-key checks, run after the value has the right type. Keys without an entry only need their type.
_RULES: dict[str, Check] = {
    "arch": resolve_arch,  # stores the registered spelling
    "num_classes": _interval(2),
    "image_size": _interval(1),
    "set": _one_of(*CHOICES["set"]),
    "crop_pct": _interval(0, 1, low_open=True),
    "scale": _ordered_range(_interval(0, 1, low_open=True)),
    "ratio": _ordered_range(_interval(0, low_open=True)),
    "interpolation": _one_of(*CHOICES["interpolation"]),
    "auto_augment": _check_auto_augment,
    "re_prob": _PROBABILITY,
    "re_mode": _one_of(*CHOICES["re_mode"]),
    "re_count": _interval(1),
    "mix_up": _NON_NEGATIVE,
    "cutmix": _NON_NEGATIVE,
    "mixup_prob": _PROBABILITY,
    "switch_prob": _PROBABILITY,
    "mixup_mode": _check_mixup_mode,
    "label_smoothing": _FRACTION,
    "num_parallel_workers": _interval(1),
    "optimizer": _one_of(*CHOICES["optimizer"]),
    "base_lr": _POSITIVE,
    "warmup_lr": _NON_NEGATIVE,
    "min_lr": _NON_NEGATIVE,
    "lr_scheduler": _one_of(*CHOICES["lr_scheduler"]),
    "lr_adjust": _interval(1),
    "lr_gamma": _interval(0, 1, low_open=True),
    "warmup_length": _NON_NEGATIVE,
    "momentum": _FRACTION,
    "beta": _check_beta,
    "eps": _POSITIVE,
    "weight_decay": _NON_NEGATIVE,
    "amp_level": _one_of(*CHOICES["amp_level"]),
    "loss_scale": _POSITIVE,
    "clip_global_norm_value": _NON_NEGATIVE,
    "max_nonfinite_steps": _interval(1),
    "epochs": _interval(1),
    "batch_size": _interval(1),
    "ema_decay": _interval(0, 1, low_open=True, high_open=True),
    "seed": _NON_NEGATIVE,
    "teacher_arch": _optional(resolve_arch),
    "kd_alpha": _PROBABILITY,
    "kd_temperature": _POSITIVE,
    "qat_freeze_epochs": _NON_NEGATIVE,
    "keep_checkpoint_max": _interval(1),
    "eval_every": _NON_NEGATIVE,
    "device_target": _one_of(*CHOICES["device_target"]),
    "device_id": _NON_NEGATIVE,
    "sink_size": _check_sink_size,
}

# Pairs (a, b) that must satisfy a <= b.
_NOT_ABOVE = (
    ("warmup_length", "epochs"),
    ("min_lr", "base_lr"),
    ("qat_freeze_epochs", "epochs"),
)

# Settings that need other keys: (key, whether the setting is on, keys that must then be set, why).
_NEEDS = (
    ("kd_alpha", lambda cfg: cfg.kd_alpha > 0, ("teacher_arch", "teacher_ckpt"), "distillation needs a teacher"),
    ("optimizer", lambda cfg: cfg.optimizer == "repopt", ("repopt_scales",),
     "the RepOptimizer's gradient multipliers come from the scales a repopt_search run wrote"),
    ("qat", lambda cfg: cfg.qat, ("pretrained",), "quantisation-aware training fine-tunes a trained network"),
)

# Settings that cannot be combined: (key, other key, whether this config combines them, why).
_CONFLICTS = (
    ("skip_bad_images", "check_images", lambda cfg: cfg.skip_bad_images and not cfg.check_images,
     "the bad files to skip are found by the image check"),
    ("repopt_search", "optimizer", lambda cfg: cfg.repopt_search and cfg.optimizer == "repopt",
     "the search trains the multi-branch search net with momentum or adamw and writes the scales that "
     "optimizer: repopt then uses on the plain net"),
    ("qat", "repopt_search", lambda cfg: cfg.qat and cfg.repopt_search,
     "quantisation-aware training fine-tunes the fused plain network, which has no branch scales to search"),
    ("qat", "optimizer", lambda cfg: cfg.qat and cfg.optimizer == "repopt",
     "the fused network has no RepOptimizer gradient multipliers; fine-tune it with momentum or adamw"),
    ("qat", "with_ema", lambda cfg: cfg.qat and cfg.with_ema,
     "an EMA of the weights would also average the activation ranges and the flags that say they were observed "
     "and frozen, so the EMA network would not be the int8 model; the fine-tuning is short: set with_ema false"),
    ("qat", "kd_alpha", lambda cfg: cfg.qat and cfg.kd_alpha > 0,
     "distillation into the fake-quantised network is not supported: distil the float network first, then run "
     "quantisation-aware training from its checkpoint"),
)

# Paths that must exist: (key, whether it applies to this config, test, what the path should be).
_PATH_RULES: tuple[tuple[str, Callable[[Config], bool], Callable[[Path], bool], str], ...] = (
    ("pretrained", lambda cfg: cfg.pretrained is not None, Path.is_file, "an existing checkpoint file"),
    ("data_url", lambda cfg: cfg.set in DATASETS_ON_DISK, Path.is_dir, "an existing data set folder"),
    ("teacher_ckpt", lambda cfg: cfg.teacher_ckpt is not None, Path.is_file, "an existing checkpoint file"),
    ("repopt_scales", lambda cfg: cfg.optimizer == "repopt", Path.is_file,
     "an existing scales file (the .npz a repopt_search run writes)"),
)

# ---------------------------------------------------------------------------------------------------
# Reading YAML files
# ---------------------------------------------------------------------------------------------------

# Where a value came from: a file path, or _OVERRIDE for a command-line flag; absent keys keep defaults.
_OVERRIDE = object()


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys; plain PyYAML silently keeps the last one."""


def _construct_unique_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_mapping(path: Path) -> dict[Any, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read config file {path}: {error}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"invalid YAML in {path}{where}: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise UserError(f"invalid YAML in {path}: {error}") from None
    if not isinstance(data, dict):
        found = "nothing" if data is None else f"a {type(data).__name__}"
        raise UserError(f"config file {path} must hold a mapping of keys to values, found {found}")
    return data


def _reject_unknown(keys: list[Any], where: str) -> None:
    for key in keys:
        if key not in _FIELDS:
            close = difflib.get_close_matches(str(key), list(_FIELDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"unknown key '{key}' {where}{hint}")


def _read_recipe(path: Path, including: tuple[Path, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """Key -> (value, path of the file that set it), following ``base:`` files first."""
    resolved = path.resolve()
    if resolved in including:
        loop = " -> ".join(str(p) for p in (*including, resolved))
        raise UserError(f"config files include each other in a loop: {loop}")
    data = _read_mapping(path)
    _reject_unknown([key for key in data if key != BASE_KEY], f"in {path}")
    values: dict[str, tuple[Any, Any]] = {}
    if BASE_KEY in data:
        base = data.pop(BASE_KEY)
        if not isinstance(base, str) or not base:
            raise UserError(f"'{BASE_KEY}' in {path} must be a YAML file name, got {base!r}")
        base_path = path.parent / base
        if not base_path.is_file():
            raise UserError(f"base file '{base}' named in {path} not found (looked for {base_path})")
        values = _read_recipe(base_path, (*including, resolved))
    values.update({key: (value, path) for key, value in data.items()})
    return values


# ---------------------------------------------------------------------------------------------------
# Building and validating the Config
# ---------------------------------------------------------------------------------------------------


def _subject(key: str, origin: Any, config_path: Path) -> str:
    """How an error names a value: by key and file, or by flag."""
    if origin is _OVERRIDE:
        return f"--{key} (config {config_path})"
    if origin is None:
        return f"'{key}' (built-in default, config {config_path})"
    return f"'{key}' in {origin}"


def _check_relations(cfg: Config) -> None:
    for low_key, high_key in _NOT_ABOVE:
        low, high = getattr(cfg, low_key), getattr(cfg, high_key)
        if low > high:
            raise InvalidConfigError(Key(low_key), " must not exceed ", Key(high_key), f": {low} > {high}")
    for key, applies, needed, why in _NEEDS:
        unset = [name for name in needed if getattr(cfg, name) is None]
        if applies(cfg) and unset:
            raise InvalidConfigError(Key(key), f" = {getattr(cfg, key)} needs "
                                     f"{' and '.join(repr(name) for name in unset)} to be set: {why}")
    for key, other, combined, why in _CONFLICTS:
        if combined(cfg):
            raise InvalidConfigError(Key(key), f" = {getattr(cfg, key)} cannot be combined with ", Key(other),
                                     f" = {getattr(cfg, other)}: {why}")


def _build(values: dict[str, tuple[Any, Any]], config_path: Path) -> Config:
    origins = {key: origin for key, (_, origin) in values.items()}
    try:
        return Config(**{key: value for key, (value, _) in values.items()})
    except InvalidConfigError as error:
        raise UserError(error.describe(lambda key: _subject(key, origins.get(key), config_path))) from None


def _check_paths(cfg: Config, origins: dict[str, Any], config_path: Path) -> None:
    for key, applies, exists, expected in _PATH_RULES:
        value = getattr(cfg, key)
        if applies(cfg) and not exists(Path(value)):
            raise UserError(f"{_subject(key, origins.get(key), config_path)}: '{value}' is not {expected} "
                            f"(relative paths start from {Path.cwd()})")


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, object] | None = None, *,
                check_paths: bool = True) -> Config:
    """Read the YAML recipe at ``path``, apply ``overrides`` (key -> value), validate, return the Config.

    Override values are checked like file values; errors name them as command-line flags (``--key``).
    ``check_paths=False`` skips the checks that ``pretrained``, ``teacher_ckpt`` and ``repopt_scales`` are files
    and that ``data_url`` is a folder, for tools (eval, export, tests) that load a recipe without needing its
    data or weights.
    """
    config_path = Path(path)
    values = _read_recipe(config_path)
    overrides = dict(overrides or {})
    _reject_unknown(list(overrides), f"given as an override of {config_path}")
    values.update({key: (value, _OVERRIDE) for key, value in overrides.items()})
    cfg = _build(values, config_path)
    if check_paths:
        _check_paths(cfg, {key: origin for key, (_, origin) in values.items()}, config_path)
    return cfg


def save_config(cfg: Config, path: str | os.PathLike[str]) -> None:
    """Write ``cfg`` as a complete YAML recipe (so a run records what it used); ``load_config`` reads it back.

    The file is replaced atomically, so an interrupted write never leaves half a record behind.
    """
    data = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(cfg).items()}
    text = "# Resolved configuration of a run, written by src.config.save_config.\n"
    text += yaml.safe_dump(data, sort_keys=False)
    write_text_atomic(path, text, what=f"config to {path}")


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


# The keys that matter when a trained model is used rather than trained: eval.py shows these in --help,
# export.py those that shape the exported graph and its recorded preprocessing. The others stay accepted.
EXPORT_KEYS = ("arch", "num_classes", "image_size", "set", "crop_pct", "interpolation", "batch_size", "pretrained",
               "device_target", "device_id")
EVAL_KEYS = (*EXPORT_KEYS, "data_url", "num_parallel_workers")
# Names other scripts (and the ModelZoo's offline-inference scripts) use for a key, accepted as aliases.
FLAG_ALIASES = {"data_url": ("--dataset_path",), "pretrained": ("--checkpoint",)}


def key_help() -> dict[str, str]:
    """Each key's description, read from the comments of ``Config``: the comment on its line, else the comment
    lines right above it (section titles are not descriptions)."""
    described, above = {}, []
    for line in inspect.getsource(Config).splitlines():
        text = line.strip()
        if text.startswith("# ====="):
            above = []
        elif text.startswith("#"):
            above.append(text.lstrip("# "))
        elif (field := re.match(r"(\w+): [^=]+=[^#]*(?:#\s*(.*))?$", text)) and field[1] in _FIELDS:
            described[field[1]] = field[2] or " ".join(above)
            above = []
    return described


def _recipe_values(argv: Sequence[str] | None) -> dict[str, Any]:
    """The values of the recipe named by --config in ``argv``, to show as defaults in --help; nothing when there
    is none or it cannot be read (parsing then reports the problem)."""
    finder = argparse.ArgumentParser(add_help=False)
    finder.add_argument("--config")
    config = finder.parse_known_args(argv)[0].config
    try:
        return {key: value for key, (value, _) in _read_recipe(Path(config)).items()} if config else {}
    except UserError:
        return {}


def add_config_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None,
                         shown: Sequence[str] | None = None, required: Sequence[str] = (),
                         help_overrides: Mapping[str, str] | None = None) -> None:
    """Add ``--config PATH`` (required) and one ``--<key> VALUE`` override per Config key.

    Help for each key is its comment in ``Config``, with the default of the recipe ``--config`` names in
    ``argv`` (else the built-in one). ``shown`` limits --help to those keys (the others are still accepted);
    ``required`` keys are marked so (``config_from_args`` checks them); ``help_overrides`` replaces a key's
    help where a script reads it differently. Entry points must not add flags of their own with a Config key's
    name (e.g. ``--pretrained``): those already exist here and are validated with the rest of the config.
    """
    parser.add_argument("--config", required=True, metavar="PATH",
                        help="YAML recipe, e.g. src/configs/RepVGG-A0.yaml")
    listed = "any config key" if shown is None else "the config keys used here (the others are accepted too)"
    group = parser.add_argument_group(
        "config overrides", f"{listed}; values are read as YAML: --epochs 3, --with_ema true, "
        "--beta '[0.9, 0.99]', --auto_augment None")
    recipe, described, overrides = _recipe_values(argv), key_help(), dict(help_overrides or {})
    for name, field in _FIELDS.items():
        default = f"recipe: {recipe[name]}" if name in recipe else f"built-in default: {field.default}"
        if name in overrides:
            text = overrides[name]
        elif name in required:
            text = f"{described[name]} (required{'' if recipe.get(name) is None else f'; {default}'})"
        else:
            text = f"{described[name]} ({default})"
        hidden = shown is not None and name not in shown
        # SUPPRESS leaves flags that were not given out of the namespace, so they override nothing.
        add_flag(group, f"--{name}", *FLAG_ALIASES.get(name, ()), metavar="VALUE", default=argparse.SUPPRESS,
                 help=argparse.SUPPRESS if hidden else text.replace("%", "%%"))
    parser.set_defaults(**{_REQUIRED_DEST: tuple(required)})


def _parse_flag(name: str, text: str) -> Any:
    if _FIELDS[name].type in _TEXT_TYPES:
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or error
        raise UserError(f"cannot read the value of --{name} {text!r} as YAML: {problem}") from None


def config_from_args(args: argparse.Namespace, check_paths: bool = True) -> Config:
    """The Config named by ``args.config`` with every ``--<key>`` flag given applied on top; a key the script
    requires must have a value, from the flag or the recipe."""
    overrides = {name: _parse_flag(name, getattr(args, name)) for name in _FIELDS if hasattr(args, name)}
    cfg = load_config(args.config, overrides, check_paths=check_paths)
    missing = [name for name in getattr(args, _REQUIRED_DEST, ()) if getattr(cfg, name) is None]
    if missing:
        raise UserError(f"--{missing[0]} is required (on the command line or in {args.config})")
    return cfg
