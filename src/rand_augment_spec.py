"""The ``auto_augment`` config key's RandAugment syntax (timm's ``rand-m9-n2-mstd0.5-inc1``), parsed into the
settings ``src.data.auto_augment`` builds MindSpore operators from. It sits below both users: ``src.config``
checks the key with this parser when a Config is built, and the data package imports the config."""

import re
from dataclasses import dataclass

from src.errors import UserError

AUTOAUGMENT = "autoaug"
# RandAugment magnitudes use timm's scale, on which 10 is each operation's strongest setting.
MAX_RAND_AUGMENT_MAGNITUDE = 10.0
DEFAULT_RAND_AUGMENT_OPS = 2
_RAND_AUGMENT_OPTION = re.compile(r"(mstd|inc|m|n)(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class RandAugmentSpec:
    """The settings of a ``rand-...`` auto_augment value; magnitudes on timm's 0-10 scale."""

    num_ops: int
    magnitude: float
    magnitude_std: float = 0.0


def parse_rand_augment(spec: str | None) -> RandAugmentSpec | None:
    """The RandAugment settings of an auto_augment value; None when it is None or "autoaug".

    timm's syntax and scale: ``rand`` then dash-separated ``m<magnitude 0-10>`` (required), ``n<ops>``
    (default 2), ``mstd<standard deviation of the magnitude>`` and ``inc1``. Magnitude 10 is each
    operation's strongest setting, as in timm, so ModelZoo strings like ``rand-m9-mstd0.5-inc1`` keep their
    meaning. MindSpore's operations (torchvision's set) grow stronger with the magnitude, which is timm's
    ``inc1``; ``inc0`` cannot be honoured and is refused.
    """
    if spec is None or spec == AUTOAUGMENT:
        return None
    name, *options = spec.split("-")
    if name != "rand":
        raise UserError(f"must be None, '{AUTOAUGMENT}' or a RandAugment spec like 'rand-m9-n2', got {spec!r}")
    values: dict[str, float] = {}
    for option in options:
        match = _RAND_AUGMENT_OPTION.fullmatch(option)
        if match is None:
            raise UserError(f"unknown option {option!r} in RandAugment spec {spec!r} (known: m, n, mstd, inc)")
        values[match[1]] = float(match[2])
    if "m" not in values:
        raise UserError(f"RandAugment spec {spec!r} needs a magnitude, e.g. 'rand-m9-n2'")
    if values["m"] > MAX_RAND_AUGMENT_MAGNITUDE:
        raise UserError(f"magnitude in {spec!r} must be in [0, {MAX_RAND_AUGMENT_MAGNITUDE:g}] (timm's scale)")
    num_ops = values.get("n", float(DEFAULT_RAND_AUGMENT_OPS))
    if num_ops < 1 or not num_ops.is_integer():
        raise UserError(f"number of ops in {spec!r} must be a whole number >= 1")
    if values.get("inc", 1) != 1:
        raise UserError(f"{spec!r}: MindSpore's RandAugment operations always grow stronger with the "
                        "magnitude (timm's inc1); inc0 cannot be honoured")
    return RandAugmentSpec(int(num_ops), values["m"], values.get("mstd", 0.0))


