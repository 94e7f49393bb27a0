"""RepVGG: a block that trains with three branches and fuses itself into one 3x3 convolution.

Parameter names follow the official PyTorch implementation (``stageN.i.rbr_dense.conv.weight``...), with
MindSpore's BatchNorm names (gamma, beta, moving_mean, moving_variance), so checkpoints map one to one.
"""

import copy
from collections.abc import Callable

import numpy as np
from mindspore import Tensor, nn, ops

from src.errors import UserError
from src.models.variants import RepVGGVariant, get_variant, is_repopt_only, resolve_arch


class ConvBN(nn.Cell):
    """Convolution without bias followed by BatchNorm; the children are named ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad",
                              padding=kernel_size // 2, group=groups, has_bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def construct(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class SEBlock(nn.Cell):
    """Squeeze-and-excitation as in RepVGG-D2se: global mean, 1x1 down, ReLU, 1x1 up, sigmoid gate."""

    def __init__(self, channels: int, internal_channels: int):
        super().__init__()
        self.down = nn.Conv2d(channels, internal_channels, 1, pad_mode="valid", has_bias=True)
        self.up = nn.Conv2d(internal_channels, channels, 1, pad_mode="valid", has_bias=True)

    def construct(self, x: Tensor) -> Tensor:
        gate = ops.sigmoid(self.up(ops.relu(self.down(x.mean(axis=(2, 3), keep_dims=True)))))
        return x * gate


def fuse_bn(kernel: Tensor, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Kernel and bias of the convolution equal to ``kernel`` followed by ``bn`` in eval mode."""
    scale = bn.gamma / ops.sqrt(bn.moving_variance + bn.eps)
    return kernel * scale.reshape(-1, 1, 1, 1), bn.beta - bn.moving_mean * scale


def identity_kernel(channels: int, groups: int) -> np.ndarray:
    """The 3x3 kernel of a (grouped) convolution that copies its input: 1 at the centre of channel i."""
    in_per_group = channels // groups
    kernel = np.zeros((channels, in_per_group, 3, 3), dtype=np.float32)
    kernel[np.arange(channels), np.arange(channels) % in_per_group, 1, 1] = 1.0
    return kernel


class RepVGGBlock(nn.Cell):
    """3x3 conv+BN, 1x1 conv+BN and (when shapes allow) identity BN, summed, optional SE, then ReLU.

    ``switch_to_deploy`` replaces the branches by the single equivalent 3x3 convolution ``rbr_reparam``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                 use_se: bool = False, deploy: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.groups = groups
        self.deploy = deploy
        self.se = SEBlock(out_channels, out_channels // 16) if use_se else nn.Identity()
        self.nonlinearity = nn.ReLU()
        if deploy:
            self.rbr_reparam = self._make_reparam_conv()
            self.rbr_dense = self.rbr_1x1 = self.rbr_identity = None
        else:
            self.rbr_dense = ConvBN(in_channels, out_channels, 3, stride, groups)
            self.rbr_1x1 = ConvBN(in_channels, out_channels, 1, stride, groups)
            has_identity = in_channels == out_channels and stride == 1
            self.rbr_identity = nn.BatchNorm2d(in_channels) if has_identity else None
            self.rbr_reparam = None

    def _make_reparam_conv(self) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, 3, stride=self.stride, pad_mode="pad",
                         padding=1, group=self.groups, has_bias=True)

    def construct(self, x: Tensor) -> Tensor:
        if self.deploy:
            return self.nonlinearity(self.se(self.rbr_reparam(x)))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.nonlinearity(self.se(out))

    def get_equivalent_kernel_bias(self) -> tuple[Tensor, Tensor]:
        """Kernel and bias of the one 3x3 convolution equal to the three branches (in eval mode).

        Built from MindSpore ops, so it is differentiable and can feed a regulariser or a quantiser.
        """
        kernel, bias = fuse_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        kernel_1x1, bias_1x1 = fuse_bn(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        kernel = kernel + ops.pad(kernel_1x1, (1, 1, 1, 1))
        bias = bias + bias_1x1
        if self.rbr_identity is not None:
            kernel_id, bias_id = fuse_bn(Tensor(identity_kernel(self.in_channels, self.groups)),
                                          self.rbr_identity)
            kernel = kernel + kernel_id
            bias = bias + bias_id
        return kernel, bias

    def switch_to_deploy(self) -> None:
        if self.deploy:
            return
        kernel, bias = self.get_equivalent_kernel_bias()
        self.rbr_reparam = self._make_reparam_conv()
        self.rbr_reparam.weight.set_data(kernel)
        self.rbr_reparam.bias.set_data(bias)
        self.rbr_dense = self.rbr_1x1 = self.rbr_identity = None
        self.deploy = True


class VGGStages(nn.Cell):
    """Stem block, four stages of blocks laid out by a variant, global average pool, linear classifier.

    ``make_block(in_channels, out_channels, stride, groups)`` builds every block, so RepVGG and RepOpt-VGG share
    the layout and parameter paths. The pool is a mean over axes (2, 3) rather than ``nn.AdaptiveAvgPool2d``,
    which does not export to ONNX.
    """

    def __init__(self, variant: RepVGGVariant, num_classes: int, make_block: Callable[[int, int, int, int], nn.Cell]):
        super().__init__()
        self.variant = variant
        self.num_classes = num_classes
        specs = variant.blocks()
        blocks = [make_block(spec.in_channels, spec.out_channels, spec.stride, spec.groups) for spec in specs]
        self.stage0 = blocks[0]
        self.stage1, self.stage2, self.stage3, self.stage4 = (
            nn.SequentialCell([block for block, spec in zip(blocks, specs, strict=True) if spec.stage == stage])
            for stage in (1, 2, 3, 4))
        self.num_features = specs[-1].out_channels
        self.linear = nn.Dense(self.num_features, num_classes)

    def blocks_in_order(self) -> list[tuple[str, nn.Cell]]:
        """(path, block) from the stem to the last block of stage 4, in the order the input flows through."""
        stages = (self.stage1, self.stage2, self.stage3, self.stage4)
        return [("stage0", self.stage0)] + [(f"stage{number}.{index}", block)
                                            for number, stage in enumerate(stages, start=1)
                                            for index, block in enumerate(stage)]

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.stage0(x)))))
        return x.mean(axis=(2, 3))

    def construct(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))


class RepVGG(VGGStages):
    """The RepVGG network: every block a ``RepVGGBlock`` (three branches, or fused when ``deploy``)."""

    def __init__(self, variant: RepVGGVariant, num_classes: int = 1000, deploy: bool = False):
        super().__init__(variant, num_classes, lambda in_channels, out_channels, stride, groups: RepVGGBlock(
            in_channels, out_channels, stride, groups, variant.use_se, deploy))


def create_model(arch: str, num_classes: int = 1000, deploy: bool = False) -> RepVGG:
    """Build a registered architecture, e.g. ``create_model("RepVGG-A0")`` or ``"RepVGG-B1g4-cifar"``."""
    if is_repopt_only(arch):
        raise UserError(f"{resolve_arch(arch)} is a RepOpt-VGG model and has no RepVGG form: train it with "
                        "optimizer: repopt (or repopt_search: true), or evaluate a RepOpt-VGG checkpoint of it")
    net = RepVGG(get_variant(arch), num_classes=num_classes, deploy=deploy)
    net.arch = resolve_arch(arch)
    return net


def has_multi_branch_blocks(net: nn.Cell) -> bool:
    """True when some RepVGG block in ``net`` still has its training-time branches."""
    return any(isinstance(cell, RepVGGBlock) and not cell.deploy for _, cell in net.cells_and_names())


def repvgg_model_convert(net: nn.Cell) -> nn.Cell:
    """A new Cell in which every RepVGG block, at any depth, is fused; ``net`` itself is left untouched.

    ``net`` must be a float32 network: ``auto_mixed_precision`` modifies Cells in place with operators that
    cannot be copied, so convert a float32 twin holding the trained weights.
    """
    deploy_net = copy.deepcopy(net)
    blocks = [cell for _, cell in deploy_net.cells_and_names() if isinstance(cell, RepVGGBlock)]
    for block in blocks:
        block.switch_to_deploy()
    # Cells created after construction only know their local names; give each parameter its full path.
    for name, param in deploy_net.parameters_and_names():
        param.name = name
    deploy_net.set_train(False)
    return deploy_net
