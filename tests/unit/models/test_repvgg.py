"""The model family: exact re-parameterisation, API behaviour (the every-architecture checks are in
tests/system/test_all_architectures.py)."""

import mindspore as ms
import numpy as np
import pytest
from conftest import narrowed, randomise_batchnorm
from mindspore import nn

from src.errors import UserError
from src.models import RepVGGBlock, create_model, repvgg_model_convert
from src.models.repvgg import RepVGG, identity_kernel


def test_convert_leaves_the_original_untouched():
    net = create_model("RepVGG-A0-cifar", num_classes=10)
    names_before = [p.name for p in net.get_parameters()]
    repvgg_model_convert(net)
    assert [p.name for p in net.get_parameters()] == names_before
    assert not any(b.deploy for _, b in net.cells_and_names() if isinstance(b, RepVGGBlock))


class _Detector(nn.Cell):
    """A larger network that holds a RepVGG backbone and a head of its own."""

    def __init__(self):
        super().__init__()
        self.backbone = create_model("RepVGG-A0-cifar", num_classes=8)
        self.head = nn.Dense(8, 3)

    def construct(self, x):
        return self.head(self.backbone(x))


def test_convert_works_on_a_backbone_inside_a_larger_net():
    ms.set_seed(1)
    net = _Detector()
    randomise_batchnorm(net, seed=3)
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(1).normal(size=(2, 3, 16, 16)).astype(np.float32))
    deploy_net = repvgg_model_convert(net)
    np.testing.assert_allclose(deploy_net(x).asnumpy(), net(x).asnumpy(), atol=1e-5)
    names = [p.name for p in deploy_net.get_parameters()]
    assert "backbone.stage1.0.rbr_reparam.weight" in names
    assert "head.weight" in names


def test_deploy_checkpoint_loads_into_a_deploy_model(tmp_path):
    ms.set_seed(2)
    net = create_model("RepVGG-B1g4-cifar", num_classes=5)
    randomise_batchnorm(net)
    deploy_net = repvgg_model_convert(net)
    path = str(tmp_path / "deploy.ckpt")
    ms.save_checkpoint(deploy_net, path)
    fresh = create_model("RepVGG-B1g4-cifar", num_classes=5, deploy=True)
    not_loaded, _ = ms.load_param_into_net(fresh, ms.load_checkpoint(path), strict_load=True)
    assert not not_loaded
    fresh.set_train(False)
    x = ms.Tensor(np.random.default_rng(2).normal(size=(1, 3, 16, 16)).astype(np.float32))
    np.testing.assert_array_equal(fresh(x).asnumpy(), deploy_net(x).asnumpy())


def test_identity_kernel_copies_each_channel_within_its_group():
    kernel = identity_kernel(channels=8, groups=2)
    assert kernel.shape == (8, 4, 3, 3)
    for out_channel in range(8):
        assert kernel[out_channel].sum() == 1.0
        assert kernel[out_channel, out_channel % 4, 1, 1] == 1.0


def test_equivalent_kernel_is_differentiable():
    block = RepVGGBlock(4, 4, groups=2)
    randomise_batchnorm(block)
    gamma = block.rbr_dense.bn.gamma

    def kernel_sum(_):
        kernel, bias = block.get_equivalent_kernel_bias()
        return kernel.sum() + bias.sum()

    grad = ms.grad(kernel_sum, grad_position=None, weights=[gamma])(ms.Tensor(0.0))
    assert np.abs(grad[0].asnumpy()).sum() > 0


def test_block_without_identity_when_shape_changes():
    assert RepVGGBlock(4, 8).rbr_identity is None
    assert RepVGGBlock(4, 4, stride=2).rbr_identity is None
    assert RepVGGBlock(4, 4).rbr_identity is not None


def test_se_variant_has_se_in_every_block():
    net = create_model("RepVGG-D2se-cifar", num_classes=10)
    blocks = [c for _, c in net.cells_and_names() if isinstance(c, RepVGGBlock)]
    assert len(blocks) == 1 + 8 + 14 + 24 + 1
    assert all(hasattr(b.se, "down") for b in blocks)


def test_groupwise_variant_groups_the_even_layers():
    net = create_model("RepVGG-B1g4", num_classes=10, deploy=True)
    groups = [b.rbr_reparam.group for b in [net.stage0, *net.stage1, *net.stage2, *net.stage3, *net.stage4]]
    assert groups[0] == 1
    assert groups[1:27] == [4 if i % 2 == 0 else 1 for i in range(1, 27)]
    assert groups[27] == 1


def test_arch_names_are_forgiving_about_case_and_separators():
    assert create_model("repvgg_a0_cifar", num_classes=3).arch == "RepVGG-A0-cifar"


def test_unknown_arch_is_a_user_error_listing_the_choices():
    with pytest.raises(UserError, match=r"unknown arch 'RepVGG-Z9'.*RepVGG-A0"):
        create_model("RepVGG-Z9")


def test_graph_mode_runs_both_forms():
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        net = create_model("RepVGG-A0-cifar", num_classes=4)
        randomise_batchnorm(net)
        net.set_train(False)
        x = ms.Tensor(np.random.default_rng(4).normal(size=(2, 3, 16, 16)).astype(np.float32))
        np.testing.assert_allclose(repvgg_model_convert(net)(x).asnumpy(), net(x).asnumpy(), atol=1e-5)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


# Groups and SE at reduced width: the export does not depend on it.
@pytest.mark.parametrize("arch", ["RepVGG-B1g4-cifar", "RepVGG-D2se-cifar"])
def test_deploy_net_exports_to_onnx_with_the_same_outputs(tmp_path, arch):
    import onnx
    import onnxruntime as ort

    ms.set_seed(5)
    net = RepVGG(narrowed(arch), num_classes=7)
    randomise_batchnorm(net)
    deploy_net = repvgg_model_convert(net)
    x = np.random.default_rng(5).normal(size=(2, 3, 16, 16)).astype(np.float32)
    ms.export(deploy_net, ms.Tensor(x), file_name=str(tmp_path / "net"), file_format="ONNX")
    model_path = str(tmp_path / "net.onnx")
    op_types = {node.op_type for node in onnx.load(model_path).graph.node}
    assert "BatchNormalization" not in op_types
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(onnx_out, deploy_net(ms.Tensor(x)).asnumpy(), rtol=1e-4, atol=1e-5)
