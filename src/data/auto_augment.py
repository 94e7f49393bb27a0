"""The ``auto_augment`` config key -> MindSpore RandAugment / AutoAugment operators.

Accepted values (parsed and checked by ``src.rand_augment_spec``): ``None`` (off), ``"autoaug"`` (the
AutoAugment policy of the data set family) or a timm RandAugment string ``rand-m<magnitude>[-n<ops>][-mstd<std>]
[-inc1]`` such as ``rand-m9-mstd0.5-inc1``.

timm's magnitude runs from 0 to 10. MindSpore's ``RandAugment`` indexes ``num_magnitude_bins`` evenly
spaced strengths from 0 to the maximum, so 101 bins make bin ``10 * m`` exactly timm's strength ``m``
(with 0.1 resolution). MindSpore's operator set is torchvision's, whose strengths grow with the magnitude:
that is timm's ``inc1``; ``inc0`` cannot be expressed and is refused. timm's ``mstd`` draws the magnitude
from a normal distribution for every operation; here each image picks, uniformly, one of nine
RandAugment operators set at evenly spaced quantiles of that normal distribution (clipped to 0-10) - the
same distribution, drawn once per image instead of once per operation.
"""

from statistics import NormalDist

from mindspore.dataset import transforms, vision

from src.rand_augment_spec import AUTOAUGMENT, RandAugmentSpec, parse_rand_augment
from src.rand_augment_spec import MAX_RAND_AUGMENT_MAGNITUDE as MAX_MAGNITUDE

_MAGNITUDE_BINS = 101
_MSTD_LEVELS = 9


def _magnitude_levels(spec: RandAugmentSpec) -> list[float]:
    if spec.magnitude_std <= 0:
        return [spec.magnitude]
    normal = NormalDist(spec.magnitude, spec.magnitude_std)
    quantiles = (normal.inv_cdf((index + 0.5) / _MSTD_LEVELS) for index in range(_MSTD_LEVELS))
    return [min(max(level, 0.0), MAX_MAGNITUDE) for level in quantiles]


def auto_augment_ops(spec: str | None, interpolation: vision.Inter, policy: vision.AutoAugmentPolicy,
                     fill: tuple[int, int, int]) -> list:
    """Operators for HWC uint8 images; ``fill`` colours the area that shears and translations uncover."""
    if spec is None:
        return []
    if spec == AUTOAUGMENT:
        return [vision.AutoAugment(policy, interpolation, fill_value=fill)]
    rand = parse_rand_augment(spec)
    bins_per_level = (_MAGNITUDE_BINS - 1) / MAX_MAGNITUDE
    ops = [
        vision.RandAugment(num_ops=rand.num_ops, magnitude=round(level * bins_per_level),
                           num_magnitude_bins=_MAGNITUDE_BINS, interpolation=interpolation, fill_value=fill)
        for level in _magnitude_levels(rand)
    ]
    return ops if len(ops) == 1 else [transforms.RandomChoice(ops)]
