"""RepOpt-VGG import from the official PyTorch files: plain-net weights to a checkpoint, a hyper-search model to
the scales file. The files are written by an independent PyTorch RepOpt-VGG (tests/torch_reference.py); the
command-line tool runs in tests/system/test_import_weights_tool.py."""

import numpy as np
import pytest
from torch_reference import inputs, mindspore_outputs, numpy_state, torch_outputs, torch_repopt, torch_scales

from src.errors import UserError
from src.models.repopt import create_repopt_model, plain_blocks
from src.models.weight_import import WeightImportError, load_pytorch_weights, scales_from_pytorch_state

ARCH = "RepVGG-A0-cifar"  # a RepOpt-VGG of this shape: identity and stride-2 blocks, small enough to write fast
OTHER_ARCH = "RepVGG-B0-cifar"  # other depths and widths


def test_plain_weights_load_and_reproduce_the_torch_outputs():
    model = torch_repopt(ARCH)
    net = create_repopt_model(ARCH, num_classes=10)
    load_pytorch_weights(net, numpy_state(model))
    x = inputs()
    np.testing.assert_allclose(mindspore_outputs(net, x), torch_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_plain_weights_with_a_missing_and_an_unknown_key_are_refused_naming_both():
    state = numpy_state(torch_repopt(ARCH))
    del state["stage2.1.bn.running_var"]
    state["stage2.1.post_se.down.weight"] = np.zeros((4, 64, 1, 1), np.float32)
    with pytest.raises(WeightImportError) as caught:
        load_pytorch_weights(create_repopt_model(ARCH, num_classes=10), state)
    assert caught.value.missing == ["stage2.1.bn.running_var"]
    assert caught.value.unexpected == ["stage2.1.post_se.down.weight"]


@pytest.mark.parametrize("scales_only", [False, True])
def test_scales_are_read_from_a_whole_search_model_or_from_its_scales_alone(scales_only):
    model = torch_repopt(ARCH, search=True, num_classes=100)
    state = torch_scales(model) if scales_only else numpy_state(model)
    scales = scales_from_pytorch_state(create_repopt_model(ARCH, num_classes=10), state)
    expected = torch_scales(model)
    assert list(scales) == list(plain_blocks(create_repopt_model(ARCH)))
    for block, block_scales in scales.items():
        prefix = f"{block}."
        np.testing.assert_array_equal(block_scales.scale_3x3, expected[prefix + "scale_conv.weight"])
        np.testing.assert_array_equal(block_scales.scale_1x1, expected[prefix + "scale_1x1.weight"])
        identity = expected.get(prefix + "scale_identity.weight")
        assert (block_scales.scale_identity is None) == (identity is None)
        if identity is not None:
            np.testing.assert_array_equal(block_scales.scale_identity, identity)


def test_scales_of_another_arch_list_missing_unknown_and_misshaped_keys():
    state = numpy_state(torch_repopt(OTHER_ARCH, search=True))
    with pytest.raises(WeightImportError) as caught:
        scales_from_pytorch_state(create_repopt_model(ARCH), state)
    error = caught.value
    # B0 has 4/6/16 blocks where A0 has 2/4/14, and wider stages 1-3; both have a 2.5x stage 4.
    assert "stage1.2.scale_conv.weight" in error.unexpected
    assert any(key.startswith("stage1.0.scale_conv.weight (32,) != (24,)") for key in error.misshaped)
    assert not error.missing
    assert "unexpected key(s)" in str(error) and "mis-shaped key(s)" in str(error)


def test_missing_and_non_finite_scales_are_refused():
    state = torch_scales(torch_repopt(ARCH, search=True))
    del state["stage1.1.scale_identity.weight"]
    with pytest.raises(WeightImportError, match=r"1 missing key\(s\): stage1.1.scale_identity.weight"):
        scales_from_pytorch_state(create_repopt_model(ARCH), state)
    state = torch_scales(torch_repopt(ARCH, search=True))
    state["stage3.4.scale_1x1.weight"][3] = np.nan
    with pytest.raises(UserError, match=r"NaN or infinite values: stage3.4.scale_1x1.weight"):
        scales_from_pytorch_state(create_repopt_model(ARCH), state)
