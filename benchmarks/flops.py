"""Multiply-accumulates (MACs) of a RepVGG-family network, counted analytically from its Cells.

Walks the blocks of a ``VGGStages`` network in order, tracking the spatial size: every ``nn.Conv2d`` of a block
reads the block's input (a squeeze-and-excitation conv reads the pooled 1x1 map), and ``nn.Dense`` counts
in x out. A convolution costs ``H_out * W_out * C_out * (C_in / groups) * kH * kW`` MACs.

Not counted, as in the RepVGG paper's "FLOPs" column (which counts multiply-adds): BatchNorm, biases, ReLU,
the sum of the branches, the identity (BatchNorm-only) branch, the SE sigmoid and multiply, and the global mean.
Those are element-wise and together add a few percent to the training structure.

Published multiply-add counts at 224x224, in G (what the tests check against):
- Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021, Table 4 (deploy): A0 1.4, A1 2.4,
  A2 5.1, B0 3.1, B1 11.8, B3 26.2.
- OpenMMLab mmpretrain, configs/repvgg/README.md (train | deploy): A0 1.52 | 1.36, B0 3.42 | 3.06,
  B1 13.16 | 11.82. Ours are 0.2-0.7 % lower for the training structure (their counter presumably also counts
  the element-wise layers) and equal to two decimals for the deploy structure.
"""

from mindspore import nn

from src.models.repvgg import SEBlock, VGGStages

PUBLISHED_GMACS = {  # (train structure, deploy structure) at 224x224, mmpretrain's table (see above)
    "RepVGG-A0": (1.52, 1.36),
    "RepVGG-B0": (3.42, 3.06),
    "RepVGG-B1": (13.16, 11.82),
}


def conv_output_size(size: int, conv: nn.Conv2d) -> int:
    kernel, stride, dilation = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
    if conv.pad_mode == "same":
        return -(-size // stride)
    padding = conv.padding if isinstance(conv.padding, int) else conv.padding[0]
    padding = padding if conv.pad_mode == "pad" else 0
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_macs(conv: nn.Conv2d, output_size: int) -> int:
    kernel_h, kernel_w = conv.kernel_size
    return output_size * output_size * conv.out_channels * (conv.in_channels // conv.group) * kernel_h * kernel_w


def count_macs(net: VGGStages, image_size: int) -> dict[str, int]:
    """MACs of one image of ``image_size`` x ``image_size``, per Cell path (convolutions and the classifier)."""
    counts = {}
    size = image_size
    for block_name, block in net.blocks_in_order():
        se_cells = {id(cell) for _, se in block.cells_and_names() if isinstance(se, SEBlock)
                    for _, cell in se.cells_and_names()}
        output_size = size
        for name, cell in block.cells_and_names():
            if not isinstance(cell, nn.Conv2d):
                continue
            if id(cell) in se_cells:  # SE convolutions act on the globally pooled 1x1 map
                counts[f"{block_name}.{name}"] = conv_macs(cell, 1)
                continue
            output_size = conv_output_size(size, cell)
            counts[f"{block_name}.{name}"] = conv_macs(cell, output_size)
        size = output_size
    counts["linear"] = net.linear.in_channels * net.linear.out_channels
    return counts


def total_gmacs(net: VGGStages, image_size: int) -> float:
    return sum(count_macs(net, image_size).values()) / 1e9
