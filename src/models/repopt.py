"""RepOpt-VGG (Ding et al., "Re-parameterizing Your Optimizers rather than Architectures", ICLR 2023).

Two networks are built from the same ``RepVGGVariant`` table as RepVGG:

* ``RepOptSearchNet``, the hyper-search model: every block sums a scaled 3x3 conv, a scaled 1x1 conv and (when
  shapes allow) a scaled identity, then applies BN and ReLU. No BN sits inside the branches, so each branch is
  linear in its kernel and the per-channel scales learnt here become the RepOptimizer's hyper-parameters.
  With ``freeze_conv_scales=True`` it is the paper's CSLA model (constant-scale linear addition), the model
  whose training a RepOptimizer reproduces on the plain net.
* ``RepOptVGG``, the plain VGG trained and deployed as is: one 3x3 conv, BN, ReLU per block.

Names follow the official implementation (github.com/DingXiaoH/RepOptimizers): the search block owns ``conv``,
``scale_conv``, ``conv_1x1``, ``scale_1x1``, ``scale_identity`` and ``bn``; the plain block owns ``conv`` and
``bn``. Block paths (``stage0``, ``stage1.0``...) are the same in both nets, which is how searched scales find
the plain conv they belong to.
"""

from dataclasses import dataclass

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from src.models.repvgg import SEBlock, VGGStages, identity_kernel
from src.models.variants import RepVGGVariant, get_variant, resolve_arch

# Display names (checkpoint files, logs): RepVGG-A0-cifar -> RepOptVGG-A0-cifar and RepOptVGG-A0-cifar-search.
_FAMILY_PREFIX = "RepVGG-"
REPOPT_PREFIX = "RepOptVGG-"
SEARCH_SUFFIX = "-search"


class ScaleLayer(nn.Cell):
    """Per-channel multiplier ``weight`` (no bias), broadcast over an NCHW tensor."""

    def __init__(self, channels: int, init: float, trainable: bool = True):
        super().__init__()
        self.weight = Parameter(Tensor(np.full(channels, init, np.float32)), requires_grad=trainable)

    def construct(self, x: Tensor) -> Tensor:
        return x * self.weight.reshape(1, -1, 1, 1)


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad",
                     padding=kernel_size // 2, group=groups, has_bias=False)


class RepOptSearchBlock(nn.Cell):
    """``scale_conv * conv3x3(x) + scale_1x1 * conv1x1(x) [+ scale_identity * x]``, then BN, optional SE, ReLU.

    ``freeze_conv_scales`` makes the two conv scales constants, as in the paper's CSLA block; the identity scale
    stays trainable either way, because in CSLA it plays the role of the identity branch's weight.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                 use_se: bool = False, conv_scale_init: float = 1.0, freeze_conv_scales: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.conv = _conv(in_channels, out_channels, 3, stride, groups)
        self.scale_conv = ScaleLayer(out_channels, conv_scale_init, trainable=not freeze_conv_scales)
        self.conv_1x1 = _conv(in_channels, out_channels, 1, stride, groups)
        self.scale_1x1 = ScaleLayer(out_channels, conv_scale_init, trainable=not freeze_conv_scales)
        has_identity = in_channels == out_channels and stride == 1
        self.scale_identity = ScaleLayer(out_channels, 1.0) if has_identity else None
        self.bn = nn.BatchNorm2d(out_channels)
        self.se = SEBlock(out_channels, out_channels // 16) if use_se else nn.Identity()
        self.nonlinearity = nn.ReLU()

    def linear_part(self, x: Tensor) -> Tensor:
        """The branch sum before BN: the part a single 3x3 convolution can replace exactly."""
        out = self.scale_conv(self.conv(x)) + self.scale_1x1(self.conv_1x1(x))
        if self.scale_identity is not None:
            out = out + self.scale_identity(x)
        return out

    def construct(self, x: Tensor) -> Tensor:
        return self.nonlinearity(self.se(self.bn(self.linear_part(x))))

    def get_equivalent_kernel(self) -> Tensor:
        """The one 3x3 kernel whose convolution equals ``linear_part``; differentiable, built from ops."""
        kernel = self.conv.weight * self.scale_conv.weight.reshape(-1, 1, 1, 1)
        kernel = kernel + ops.pad(self.conv_1x1.weight * self.scale_1x1.weight.reshape(-1, 1, 1, 1), (1, 1, 1, 1))
        if self.scale_identity is not None:
            identity = Tensor(identity_kernel(self.out_channels, self.groups))
            kernel = kernel + identity * self.scale_identity.weight.reshape(-1, 1, 1, 1)
        return kernel


class RepOptVGGBlock(nn.Cell):
    """The plain block: 3x3 conv (``conv``), BN (``bn``), optional SE, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                 use_se: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        # An identity branch exists in the searched block exactly when shapes allow it; the optimizer needs
        # to know, since that branch adds to the gradient multiplier of this conv.
        self.has_identity = in_channels == out_channels and stride == 1
        self.conv = _conv(in_channels, out_channels, 3, stride, groups)
        self.bn = nn.BatchNorm2d(out_channels)
        self.se = SEBlock(out_channels, out_channels // 16) if use_se else nn.Identity()
        self.nonlinearity = nn.ReLU()

    def construct(self, x: Tensor) -> Tensor:
        return self.nonlinearity(self.se(self.bn(self.conv(x))))


class RepOptSearchNet(VGGStages):
    """The hyper-search model (trainable scales) or, with ``freeze_conv_scales``, the CSLA model."""

    def __init__(self, variant: RepVGGVariant, num_classes: int = 1000, conv_scale_init: float = 1.0,
                 freeze_conv_scales: bool = False):
        super().__init__(variant, num_classes, lambda cin, cout, stride, groups: RepOptSearchBlock(
            cin, cout, stride, groups, variant.use_se, conv_scale_init, freeze_conv_scales))


class RepOptVGG(VGGStages):
    """The plain VGG-style network that a RepOptimizer trains."""

    def __init__(self, variant: RepVGGVariant, num_classes: int = 1000):
        super().__init__(variant, num_classes, lambda cin, cout, stride, groups: RepOptVGGBlock(
            cin, cout, stride, groups, variant.use_se))


@dataclass(frozen=True)
class BlockScales:
    """The searched per-output-channel scales of one block; ``scale_identity`` is None without identity."""

    scale_3x3: np.ndarray
    scale_1x1: np.ndarray
    scale_identity: np.ndarray | None


def extract_scales(net: nn.Cell) -> dict[str, BlockScales]:
    """The scales of every search block in ``net``, keyed by block path (``"stage0"``, ``"stage1.0"``...)."""
    return {
        name: BlockScales(
            block.scale_conv.weight.asnumpy().copy(),
            block.scale_1x1.weight.asnumpy().copy(),
            None if block.scale_identity is None else block.scale_identity.weight.asnumpy().copy(),
        )
        for name, block in net.cells_and_names()
        if isinstance(block, RepOptSearchBlock)
    }


def plain_blocks(net: nn.Cell) -> dict[str, RepOptVGGBlock]:
    """Every plain block of ``net`` keyed by the same block paths as ``extract_scales``."""
    return {name: block for name, block in net.cells_and_names() if isinstance(block, RepOptVGGBlock)}


def repopt_name(arch: str, search: bool = False) -> str:
    """``RepOptVGG-A0-cifar`` for the plain net of ``arch`` (``RepVGG-A0-cifar``), with ``-search`` for the
    search net; a RepOpt-VGG name (``RepOptVGG-L1``) stays as it is."""
    name = resolve_arch(arch)
    if not name.startswith(REPOPT_PREFIX):
        name = REPOPT_PREFIX + name.removeprefix(_FAMILY_PREFIX)
    return name + SEARCH_SUFFIX if search else name


def create_repopt_model(arch: str, num_classes: int = 1000, search: bool = False) -> VGGStages:
    """The plain RepOpt-VGG of a registered arch (same widths and depths as the RepVGG), or its search net."""
    variant = get_variant(arch)
    net = RepOptSearchNet(variant, num_classes) if search else RepOptVGG(variant, num_classes)
    net.arch = repopt_name(arch, search)
    return net


def merge_search_net(net: RepOptSearchNet) -> RepOptVGG:
    """The plain RepOpt-VGG that computes what ``net`` computes: each block's branches merged into its 3x3 conv.

    Exact in every mode, since the branches are linear and BN comes after their sum. ``net`` is left untouched.
    """
    plain = RepOptVGG(net.variant, net.num_classes)
    plain.arch = net.arch.removesuffix(SEARCH_SUFFIX)
    search_params = dict(net.parameters_and_names())
    search_blocks = dict(net.cells_and_names())
    for name, param in plain.parameters_and_names():
        block_path, _, leaf = name.rpartition(".conv.")
        if leaf == "weight" and isinstance(search_blocks.get(block_path), RepOptSearchBlock):
            param.set_data(search_blocks[block_path].get_equivalent_kernel())
        else:
            param.set_data(search_params[name].data.copy())
    plain.set_train(False)
    return plain
