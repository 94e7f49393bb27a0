"""SyncBatchNorm conversion keeps names, values and the block's fusion (it runs only on Ascend)."""

import numpy as np
from conftest import randomise_batchnorm
from mindspore import nn

from src.engine.sync_batchnorm import convert_to_sync_batchnorm
from src.models import RepVGGBlock, create_model, repvgg_model_convert


def test_every_batchnorm_becomes_sync_with_the_same_names_and_values():
    net = create_model("RepVGG-A0-cifar", num_classes=4)
    randomise_batchnorm(net)
    before = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    batchnorms = sum(isinstance(c, nn.BatchNorm2d) for _, c in net.cells_and_names())
    assert convert_to_sync_batchnorm(net) == batchnorms > 0
    assert not any(isinstance(c, nn.BatchNorm2d) for _, c in net.cells_and_names())
    assert sum(isinstance(c, nn.SyncBatchNorm) for _, c in net.cells_and_names()) == batchnorms
    after = {p.name: p.asnumpy() for p in net.get_parameters()}
    assert after.keys() == before.keys()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value)


def test_the_fused_kernel_is_unchanged_by_the_conversion():
    block = RepVGGBlock(8, 8, groups=2)
    randomise_batchnorm(block)
    kernel, bias = (t.asnumpy() for t in block.get_equivalent_kernel_bias())
    convert_to_sync_batchnorm(block)
    sync_kernel, sync_bias = (t.asnumpy() for t in block.get_equivalent_kernel_bias())
    np.testing.assert_array_equal(sync_kernel, kernel)
    np.testing.assert_array_equal(sync_bias, bias)
    assert repvgg_model_convert(block).rbr_reparam is not None
