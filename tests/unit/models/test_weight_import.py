"""Weight import from the PyTorch ecosystem, checked against an independent PyTorch implementation. The
command-line tool runs in tests/system/test_import_weights_tool.py."""

import numpy as np
import pytest
import torch
from torch_reference import (
    TorchRepVGGBlock,
    inputs,
    mindspore_outputs,
    numpy_state,
    randomise_torch_batchnorm,
    torch_outputs,
    torch_repvgg,
)

from src.models import RepVGGBlock, create_model, repvgg_model_convert
from src.models.weight_import import WeightImportError, load_pytorch_weights, timm_name

ARCH = "RepVGG-B1g4-cifar"  # groups and identity branches, yet small
SE_ARCH = "RepVGG-D2se-cifar"


@pytest.mark.parametrize("naming", ["official", "timm"])
@pytest.mark.parametrize("deploy", [False, True])
def test_torch_state_loads_and_reproduces_torch_outputs(naming, deploy):
    model = torch_repvgg(ARCH, naming, deploy)
    net = create_model(ARCH, num_classes=10, deploy=deploy)
    load_pytorch_weights(net, numpy_state(model))
    x = inputs()
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("naming", ["official", "timm"])
def test_se_variant_loads_in_both_namings(naming):
    model = torch_repvgg(SE_ARCH, naming)
    net = create_model(SE_ARCH, num_classes=10)
    load_pytorch_weights(net, numpy_state(model))
    x = inputs(1)
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_module_prefix_of_data_parallel_checkpoints_is_accepted():
    model = torch_repvgg(ARCH, "official")
    net = create_model(ARCH, num_classes=10)
    load_pytorch_weights(net, numpy_state(model, prefix="module."))
    x = inputs(2)
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_our_fused_kernel_runs_identically_as_a_torch_convolution():
    torch.manual_seed(3)
    reference = TorchRepVGGBlock(8, 8, stride=1, groups=2).eval()
    randomise_torch_batchnorm(reference, 3)
    block = RepVGGBlock(8, 8, stride=1, groups=2)
    load_pytorch_weights(block, numpy_state(reference))
    block.set_train(False)
    kernel, bias = (t.asnumpy() for t in block.get_equivalent_kernel_bias())
    x = inputs(3, size=9)[:, :1].repeat(8, axis=1)
    with torch.no_grad():
        fused = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(kernel), torch.from_numpy(bias),
                                           padding=1, groups=2).relu().numpy()
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(fused, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mindspore_outputs(block, x), expected, rtol=1e-4, atol=1e-5)


def test_deploy_weights_from_torch_equal_our_conversion_of_torch_train_weights():
    train_model = torch_repvgg(ARCH, "official")
    net = create_model(ARCH, num_classes=10)
    load_pytorch_weights(net, numpy_state(train_model))
    x = inputs(4)
    np.testing.assert_allclose(mindspore_outputs(repvgg_model_convert(net), x), torch_outputs(train_model, x),
                               rtol=1e-4, atol=1e-5)


def test_missing_unexpected_and_misshaped_keys_are_all_listed_and_nothing_is_loaded():
    state = numpy_state(torch_repvgg(ARCH, "official"))
    del state["stage1.0.rbr_dense.conv.weight"]
    state["stage9.extra.weight"] = np.zeros(3, np.float32)
    state["linear.weight"] = np.zeros((7, 5), np.float32)
    net = create_model(ARCH, num_classes=10)
    before = {n: p.asnumpy().copy() for n, p in net.parameters_and_names()}
    with pytest.raises(WeightImportError) as caught:
        load_pytorch_weights(net, state)
    error = caught.value
    assert error.missing == ["stage1.0.rbr_dense.conv.weight"]
    assert error.unexpected == ["stage9.extra.weight"]
    assert len(error.misshaped) == 1 and error.misshaped[0].startswith("linear.weight (7, 5)")
    message = str(error)
    for key in ("stage1.0.rbr_dense.conv.weight", "stage9.extra.weight", "linear.weight"):
        assert key in message
    for name, param in net.parameters_and_names():
        np.testing.assert_array_equal(param.asnumpy(), before[name])


def test_deploy_weights_into_a_train_net_explain_the_form():
    state = numpy_state(torch_repvgg(ARCH, "timm", deploy=True))
    with pytest.raises(WeightImportError, match=r"deploy \(fused\) form: build the network with deploy=True"):
        load_pytorch_weights(create_model(ARCH, num_classes=10), state)


def test_timm_names_follow_timm_layout():
    assert timm_name("stage0.rbr_dense.bn.gamma") == "stem.conv_kxk.bn.weight"
    assert timm_name("stage3.5.rbr_identity.moving_variance") == "stages.2.5.identity.running_var"
    assert timm_name("stage4.0.se.up.bias") == "stages.3.0.attn.fc2.bias"
    assert timm_name("linear.weight") == "head.fc.weight"
