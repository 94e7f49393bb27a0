"""Parameter and multiply-accumulate counts of every registered network, from the variant table alone.

No network is built, so the whole family is listed in milliseconds. Counted as the RepVGG paper counts
("FLOPs" there are multiply-adds): convolutions and the classifier; BatchNorm, biases, ReLU, the branch sum,
the identity branch, the SE gate and the global mean are element-wise and left out of the MACs. Parameters are
the trainable ones (BatchNorm gamma and beta, not its running statistics), as in the official tables.
"""

from dataclasses import dataclass

from src.models.variants import BlockSpec, RepVGGVariant


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int


# The structures a variant is built in: RepVGG training (3x3 + 1x1 + identity branches, each with BatchNorm),
# RepVGG deploy (one biased 3x3 convolution), and the plain RepOpt-VGG (one 3x3 convolution and BatchNorm).
TRAIN, DEPLOY, REPOPT = "train", "deploy", "repopt"
STRUCTURES = (TRAIN, DEPLOY, REPOPT)


def _output_size(size: int, stride: int) -> int:
    # A 3x3 convolution padded by 1 and a 1x1 unpadded one give the same size at every stride.
    return (size - 1) // stride + 1


def _block(spec: BlockSpec, structure: str, use_se: bool, output_size: int) -> Complexity:
    weights_per_tap = spec.out_channels * (spec.in_channels // spec.groups)
    batchnorm = 2 * spec.out_channels
    if structure == TRAIN:
        has_identity = spec.in_channels == spec.out_channels and spec.stride == 1
        params = weights_per_tap * 9 + batchnorm + weights_per_tap + batchnorm + (batchnorm if has_identity else 0)
        taps = 9 + 1
    elif structure == DEPLOY:
        params, taps = weights_per_tap * 9 + spec.out_channels, 9
    else:
        params, taps = weights_per_tap * 9 + batchnorm, 9
    macs = output_size * output_size * weights_per_tap * taps
    if use_se:
        internal = spec.out_channels // 16
        se_macs = 2 * spec.out_channels * internal  # two 1x1 convolutions on the pooled 1x1 map
        params += se_macs + internal + spec.out_channels
        macs += se_macs
    return Complexity(params, macs)


def count_complexity(variant: RepVGGVariant, structure: str, num_classes: int = 1000,
                     image_size: int | None = None) -> Complexity:
    """Trainable parameters and MACs of one image (default size: the one the variant's layout is made for)."""
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    size = image_size or variant.layout.image_size
    params = macs = 0
    for spec in variant.blocks():
        size = _output_size(size, spec.stride)
        block = _block(spec, structure, variant.use_se, size)
        params += block.params
        macs += block.macs
    features = variant.blocks()[-1].out_channels
    return Complexity(params + features * num_classes + num_classes, macs + features * num_classes)
