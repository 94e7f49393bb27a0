"""The RepVGG family as data: one table of variants, two stage layouts, no per-variant code.

Depths and width multipliers are those of the official implementation (Ding et al., "RepVGG: Making
VGG-style ConvNets Great Again", CVPR 2021, github.com/DingXiaoH/RepVGG). The CIFAR variants follow a Jittor RepVGG:
halved base widths, and a stride-1 stem and first stage for 32x32 inputs.

A second, smaller table names the RepOpt-VGG models of the RepOpt paper's ImageNet results (Ding et al.,
"Re-parameterizing Your Optimizers rather than Architectures", ICLR 2023, github.com/DingXiaoH/RepOptimizers).
Those names are RepOpt-VGG only: ``create_model`` refuses them, ``create_repopt_model`` builds them.
"""

from dataclasses import dataclass

from src.errors import UserError


@dataclass(frozen=True)
class StageLayout:
    """Input-resolution dependent part of the design: base widths and strides of stem + 4 stages, and the
    image size the layout is made for."""

    base_widths: tuple[int, int, int, int]
    stem_stride: int
    stage_strides: tuple[int, int, int, int]
    image_size: int


IMAGENET_LAYOUT = StageLayout(base_widths=(64, 128, 256, 512), stem_stride=2, stage_strides=(2, 2, 2, 2),
                              image_size=224)
CIFAR_LAYOUT = StageLayout(base_widths=(32, 64, 128, 256), stem_stride=1, stage_strides=(1, 2, 2, 2),
                           image_size=32)

# Blocks are numbered from 1 (first block of stage 1; the stem is 0). In the groupwise variants the
# even-numbered blocks use grouped 3x3/1x1 convolutions (official `optional_groupwise_layers`).
GROUPWISE_LAYERS = frozenset(range(2, 27, 2))


@dataclass(frozen=True)
class BlockSpec:
    """One block of a network: its stage (0 is the stem), channels, stride and convolution groups."""

    stage: int
    in_channels: int
    out_channels: int
    stride: int
    groups: int


@dataclass(frozen=True)
class RepVGGVariant:
    depths: tuple[int, int, int, int]
    width_multipliers: tuple[float, float, float, float]
    groups: int = 1
    use_se: bool = False
    layout: StageLayout = IMAGENET_LAYOUT

    @property
    def stem_width(self) -> int:
        base = self.layout.base_widths[0]
        return min(base, int(base * self.width_multipliers[0]))

    @property
    def stage_widths(self) -> tuple[int, ...]:
        return tuple(int(b * m) for b, m in zip(self.layout.base_widths, self.width_multipliers, strict=True))

    def groups_of(self, layer_index: int) -> int:
        return self.groups if layer_index in GROUPWISE_LAYERS else 1

    def blocks(self) -> tuple[BlockSpec, ...]:
        """Every block from the stem to the last one of stage 4, in the order the input flows through."""
        specs = [BlockSpec(0, 3, self.stem_width, self.layout.stem_stride, 1)]
        in_channels = self.stem_width
        stages = zip(self.depths, self.stage_widths, self.layout.stage_strides, strict=True)
        for stage, (depth, width, stride) in enumerate(stages, start=1):
            for block_stride in [stride] + [1] * (depth - 1):
                specs.append(BlockSpec(stage, in_channels, width, block_stride, self.groups_of(len(specs))))
                in_channels = width
        return tuple(specs)


_A_DEPTHS = (2, 4, 14, 1)
_B_DEPTHS = (4, 6, 16, 1)

_IMAGENET_VARIANTS = {
    "RepVGG-A0": RepVGGVariant(_A_DEPTHS, (0.75, 0.75, 0.75, 2.5)),
    "RepVGG-A1": RepVGGVariant(_A_DEPTHS, (1, 1, 1, 2.5)),
    "RepVGG-A2": RepVGGVariant(_A_DEPTHS, (1.5, 1.5, 1.5, 2.75)),
    "RepVGG-B0": RepVGGVariant(_B_DEPTHS, (1, 1, 1, 2.5)),
    "RepVGG-B1": RepVGGVariant(_B_DEPTHS, (2, 2, 2, 4)),
    "RepVGG-B1g2": RepVGGVariant(_B_DEPTHS, (2, 2, 2, 4), groups=2),
    "RepVGG-B1g4": RepVGGVariant(_B_DEPTHS, (2, 2, 2, 4), groups=4),
    "RepVGG-B2": RepVGGVariant(_B_DEPTHS, (2.5, 2.5, 2.5, 5)),
    "RepVGG-B2g2": RepVGGVariant(_B_DEPTHS, (2.5, 2.5, 2.5, 5), groups=2),
    "RepVGG-B2g4": RepVGGVariant(_B_DEPTHS, (2.5, 2.5, 2.5, 5), groups=4),
    "RepVGG-B3": RepVGGVariant(_B_DEPTHS, (3, 3, 3, 5)),
    "RepVGG-B3g2": RepVGGVariant(_B_DEPTHS, (3, 3, 3, 5), groups=2),
    "RepVGG-B3g4": RepVGGVariant(_B_DEPTHS, (3, 3, 3, 5), groups=4),
    "RepVGG-D2se": RepVGGVariant((8, 14, 24, 1), (2.5, 2.5, 2.5, 5), use_se=True),
}

_L_DEPTHS = (8, 14, 24, 1)

# B1 and B2 have the shapes of RepVGG-B1 and RepVGG-B2; L1 and L2 are deeper (RepVGG-D2's depths, without SE).
REPOPT_VARIANTS: dict[str, RepVGGVariant] = {
    "RepOptVGG-B1": _IMAGENET_VARIANTS["RepVGG-B1"],
    "RepOptVGG-B2": _IMAGENET_VARIANTS["RepVGG-B2"],
    "RepOptVGG-L1": RepVGGVariant(_L_DEPTHS, (2, 2, 2, 4)),
    "RepOptVGG-L2": RepVGGVariant(_L_DEPTHS, (2.5, 2.5, 2.5, 5)),
}

# Seed 000 trained these six on CIFAR-100; the others are valid too and are registered alike.
CIFAR_SUFFIX = "-cifar"

VARIANTS: dict[str, RepVGGVariant] = {
    **_IMAGENET_VARIANTS,
    **{
        name + CIFAR_SUFFIX: RepVGGVariant(v.depths, v.width_multipliers, v.groups, v.use_se, CIFAR_LAYOUT)
        for name, v in _IMAGENET_VARIANTS.items()
    },
}


def _canonical(name: str) -> str:
    # The RepOpt repository spells its models "RepOpt-VGG-B1"; we write "RepOptVGG-B1". Both are accepted.
    return name.strip().lower().replace("_", "-").replace("repopt-vgg", "repoptvgg")


_ALL_VARIANTS = {**VARIANTS, **REPOPT_VARIANTS}
_BY_CANONICAL_NAME = {_canonical(name): name for name in _ALL_VARIANTS}


def resolve_arch(arch: str) -> str:
    """The registered spelling of ``arch``; case and ``_``/``-`` do not matter (``repvgg_a0`` works)."""
    name = _BY_CANONICAL_NAME.get(_canonical(arch))
    if name is None:
        raise UserError(f"unknown arch '{arch}'; available: {', '.join(_ALL_VARIANTS)}")
    return name


def is_repopt_only(arch: str) -> bool:
    """True for the names of the RepOpt-VGG table, which have no RepVGG network."""
    return resolve_arch(arch) in REPOPT_VARIANTS


def get_variant(arch: str) -> RepVGGVariant:
    return _ALL_VARIANTS[resolve_arch(arch)]


def list_models() -> list[str]:
    return list(VARIANTS)
