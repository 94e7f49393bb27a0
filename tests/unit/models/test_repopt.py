"""RepOpt-VGG: a RepOptimizer step on the plain net equals an SGD step on the multi-branch CSLA model, merged."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from src.engine.momentum_sgd import MomentumSGD
from src.engine.repoptimizer import (
    RepOptimizer,
    grad_multiplier,
    grad_multipliers,
    initialise_from_scales,
    plain_kernel_from_scales,
)
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler
from src.errors import UserError
from src.models import create_model
from src.models.parameters import trainable_millions
from src.models.repopt import (
    BlockScales,
    RepOptSearchBlock,
    RepOptSearchNet,
    RepOptVGG,
    RepOptVGGBlock,
    create_repopt_model,
    extract_scales,
    plain_blocks,
    repopt_name,
)
from src.models.variants import CIFAR_LAYOUT, RepVGGVariant

# The RepOpt paper's ImageNet models (github.com/DingXiaoH/RepOptimizers README), millions of trainable parameters.
REPOPT_PARAMS_M = {"RepOptVGG-B1": 51.842, "RepOptVGG-B2": 80.331, "RepOptVGG-L1": 76.038, "RepOptVGG-L2": 118.133}

# Every block kind: the stem and stride-2 first blocks (no identity), stride-1 blocks with identity, and grouped
# convolutions on even-numbered blocks (stage2.0 and stage3.0 here).
TINY = RepVGGVariant((1, 2, 2, 1), (0.25, 0.25, 0.125, 0.125), groups=2, layout=CIFAR_LAYOUT)


def random_scales(net: nn.Cell, rng: np.random.Generator) -> None:
    """Searched scales are far from their init of 1; make them so, and different per channel."""
    for name, param in net.parameters_and_names():
        if name.rsplit(".", 2)[-2].startswith("scale_"):
            param.set_data(Tensor(rng.uniform(0.3, 1.5, param.shape).astype(np.float32)))


def conv3x3(x: Tensor, kernel: Tensor, groups: int) -> Tensor:
    return ops.conv2d(x, kernel, stride=1, pad_mode="pad", padding=1, groups=groups)


def grads_of(loss_fn, params: list) -> tuple[Tensor, ...]:
    return ms.grad(loss_fn, grad_position=None, weights=params)()


def test_one_sgd_step_on_branches_then_merge_equals_one_repoptimizer_step_on_merged_kernel(rng):
    csla = RepOptSearchBlock(6, 6, groups=2, freeze_conv_scales=True)
    random_scales(csla, rng)
    x = Tensor(rng.normal(size=(4, 6, 5, 5)).astype(np.float32))
    target = Tensor(rng.normal(size=(4, 6, 5, 5)).astype(np.float32))

    def branch_loss() -> Tensor:
        # A non-quadratic loss, so the gradient depends on the kernel in a non-trivial way.
        return ops.tanh(csla.linear_part(x) - target).square().mean()

    branch_params = [csla.conv.weight, csla.conv_1x1.weight, csla.scale_identity.weight]
    assert {p.name for p in csla.trainable_params()} >= {p.name for p in branch_params}
    merged_before = csla.get_equivalent_kernel().asnumpy()
    nn.Momentum(branch_params, learning_rate=0.5, momentum=0.0)(grads_of(branch_loss, branch_params))

    plain = RepOptVGGBlock(6, 6, groups=2)
    plain.conv.weight.set_data(Tensor(merged_before))

    def plain_loss() -> Tensor:
        return ops.tanh(conv3x3(x, plain.conv.weight, 2) - target).square().mean()

    scales = extract_scales(csla)[""]
    mults = {plain.conv.weight.name: grad_multiplier(scales, plain.conv.weight.shape, 2)}
    RepOptimizer([plain.conv.weight], mults, learning_rate=0.5, momentum=0.0)(grads_of(plain_loss,
                                                                                       [plain.conv.weight]))

    merged_after = csla.get_equivalent_kernel().asnumpy()
    assert np.abs(merged_after - merged_before).max() > 1e-2  # the step really moved the kernel
    np.testing.assert_allclose(plain.conv.weight.asnumpy(), merged_after, rtol=1e-5, atol=1e-6)


def plain_twin(csla_net: RepOptSearchNet) -> RepOptVGG:
    """The plain net computing what ``csla_net`` computes: merged kernels, the same BN and classifier."""
    plain = RepOptVGG(csla_net.variant, csla_net.num_classes)
    csla_params = dict(csla_net.parameters_and_names())
    csla_blocks = dict(csla_net.cells_and_names())
    for name, param in plain.parameters_and_names():
        if name.endswith(".conv.weight"):
            param.set_data(csla_blocks[name.rsplit(".", 2)[0]].get_equivalent_kernel())
        else:
            param.set_data(csla_params[name].data.copy())
    return plain


def train(net: nn.Cell, optimizer: nn.Optimizer, batches: list) -> None:
    step = TrainStep(NetWithLoss(net, SoftTargetCrossEntropy()), optimizer, make_loss_scaler(False, 1.0), 0.0)
    for images, targets in batches:
        step(images, targets)


@pytest.mark.parametrize("use_nesterov", [False, True])
def test_momentum_training_of_csla_net_equals_repoptimizer_training_of_plain_net(rng, use_nesterov):
    # Holds with constant conv scales, linear branches (BN only after the sum), zero initial momentum, a shared
    # learning rate and no weight decay; see the derivation in src/engine/repoptimizer.py.
    ms.set_seed(0)
    csla = RepOptSearchNet(TINY, num_classes=5, freeze_conv_scales=True)
    random_scales(csla, rng)
    plain = plain_twin(csla)
    baseline = plain_twin(csla)
    mults = grad_multipliers(plain, extract_scales(csla))
    batches = [(Tensor(rng.normal(size=(4, 3, 8, 8)).astype(np.float32)),
                Tensor(np.eye(5, dtype=np.float32)[rng.integers(0, 5, 4)])) for _ in range(4)]
    lr = Tensor(np.array([0.2, 0.1, 0.05, 0.05], np.float32))  # a schedule: equivalence holds step by step

    # MomentumSGD, the optimiser the RepOptimizer wraps: nn.Momentum's CPU kernel ignores use_nesterov.
    train(csla, MomentumSGD(csla.trainable_params(), lr, 0.9, use_nesterov=use_nesterov), batches)
    train(plain, RepOptimizer(plain.trainable_params(), mults, lr, 0.9, use_nesterov=use_nesterov), batches)
    train(baseline, MomentumSGD(baseline.trainable_params(), lr, 0.9, use_nesterov=use_nesterov), batches)

    expected = plain_twin(csla)
    for name, param in plain.parameters_and_names():
        np.testing.assert_allclose(param.asnumpy(), expected.parameters_dict()[name].asnumpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    # Without the multipliers the same plain net trains differently, so the comparison above has teeth.
    kernel = "stage2.1.conv.weight"
    gap = np.abs(baseline.parameters_dict()[kernel].asnumpy() - expected.parameters_dict()[kernel].asnumpy())
    assert gap.max() > 1e-3


def test_grad_multiplier_is_s3_squared_plus_s1_squared_at_centre_plus_one_on_identity_taps():
    scales = BlockScales(np.array([0.5, 2.0]), np.array([3.0, 0.1]), np.array([7.0, 7.0]))
    mult = grad_multiplier(scales, (2, 2, 3, 3), groups=1)
    np.testing.assert_allclose(mult[0, 1, 0, 2], 0.25)
    np.testing.assert_allclose(mult[1, 0, 2, 1], 4.0)
    np.testing.assert_allclose(mult[0, 1, 1, 1], 0.25 + 9.0)
    np.testing.assert_allclose(mult[1, 1, 1, 1], 4.0 + 0.01 + 1.0)
    no_identity = BlockScales(scales.scale_3x3, scales.scale_1x1, None)
    np.testing.assert_allclose(grad_multiplier(no_identity, (2, 2, 3, 3), groups=1)[1, 1, 1, 1], 4.0 + 0.01)


def test_grad_multipliers_cover_every_plain_conv_with_its_shape_and_nothing_else():
    scales = extract_scales(RepOptSearchNet(TINY, num_classes=5))
    plain = RepOptVGG(TINY, num_classes=5)
    mults = grad_multipliers(plain, scales)
    convs = {p.name: p.shape for p in plain.trainable_params() if p.name.endswith(".conv.weight")}
    assert len(convs) == 1 + sum(TINY.depths)
    assert {name: m.shape for name, m in mults.items()} == {name: tuple(shape) for name, shape in convs.items()}
    # Grouped blocks (2 and 4) have kernels of in_channels / 2 inputs.
    assert mults["stage2.0.conv.weight"].shape[1] * 2 == plain.stage2[0].in_channels


def test_search_net_and_plain_net_have_the_same_blocks_with_the_same_identity_branches():
    scales = extract_scales(RepOptSearchNet(TINY, num_classes=5))
    blocks = plain_blocks(RepOptVGG(TINY, num_classes=5))
    assert list(scales) == list(blocks) == ["stage0", "stage1.0", "stage2.0", "stage2.1", "stage3.0", "stage3.1",
                                            "stage4.0"]
    assert {name for name, s in scales.items() if s.scale_identity is not None} == {"stage1.0", "stage2.1",
                                                                                    "stage3.1"}
    assert all(blocks[name].has_identity == (s.scale_identity is not None) for name, s in scales.items())


def test_csla_model_trains_only_the_identity_scale_while_search_model_trains_all_scales():
    def scale_names(net: nn.Cell) -> set[str]:
        return {p.name for p in net.trainable_params() if ".scale_" in p.name}

    search, csla = RepOptSearchNet(TINY, 5), RepOptSearchNet(TINY, 5, freeze_conv_scales=True)
    assert scale_names(csla) == {f"{block}.scale_identity.weight" for block in ("stage1.0", "stage2.1", "stage3.1")}
    assert scale_names(search) == scale_names(csla) | {
        f"{block}.{kind}.weight" for block in extract_scales(search) for kind in ("scale_conv", "scale_1x1")
    }


@pytest.mark.parametrize("use_identity_scales", [False, True])
def test_plain_kernel_from_scales_computes_what_the_csla_block_computes_at_initialisation(rng,
                                                                                         use_identity_scales):
    csla = RepOptSearchBlock(6, 6, groups=2, freeze_conv_scales=True)
    random_scales(csla, rng)
    scales = extract_scales(csla)[""]
    if not use_identity_scales:
        # The paper's default start: the identity weight is 1, whatever the search found.
        csla.scale_identity.weight.set_data(Tensor(np.ones(6, np.float32)))
    kernel = plain_kernel_from_scales(csla.conv.weight.asnumpy(), csla.conv_1x1.weight.asnumpy(), scales, 2,
                                      use_identity_scales)
    x = Tensor(rng.normal(size=(2, 6, 7, 7)).astype(np.float32))
    np.testing.assert_allclose(conv3x3(x, Tensor(kernel), 2).asnumpy(), csla.linear_part(x).asnumpy(),
                               rtol=1e-5, atol=1e-5)


def test_initialise_from_scales_scales_the_3x3_init_and_adds_a_1x1_and_identity_at_the_centre(rng):
    search = RepOptSearchNet(TINY, 5)
    random_scales(search, rng)
    scales = extract_scales(search)
    plain = RepOptVGG(TINY, 5)
    before = {name: block.conv.weight.asnumpy().copy() for name, block in plain_blocks(plain).items()}
    initialise_from_scales(plain, scales)
    for name, block in plain_blocks(plain).items():
        expected_3x3 = before[name] * scales[name].scale_3x3.reshape(-1, 1, 1, 1)
        after = block.conv.weight.asnumpy()
        off_centre = np.ones(after.shape[2:], bool)
        off_centre[1, 1] = False
        np.testing.assert_allclose(after[:, :, off_centre], expected_3x3[:, :, off_centre], rtol=1e-6, err_msg=name)
        added = (after - expected_3x3)[:, :, 1, 1]
        if block.has_identity:
            # The identity weight 1 sits on the diagonal of the centre taps, on top of s1·W1.
            added[np.arange(block.out_channels), np.arange(block.out_channels) % added.shape[1]] -= 1.0
        assert np.abs(added).max() > 0  # a random 1x1 kernel was added, scaled by s1
        assert np.abs(added / scales[name].scale_1x1.reshape(-1, 1)).max() <= 1.0  # within nn.Conv2d's init bound


def test_scales_for_another_architecture_are_refused():
    scales = extract_scales(RepOptSearchNet(TINY, 5))
    other = RepVGGVariant((1, 1, 2, 1), TINY.width_multipliers, layout=CIFAR_LAYOUT)
    with pytest.raises(UserError, match="blocks"):
        grad_multipliers(RepOptVGG(other, 5), scales)


def test_repoptimizer_refuses_a_multiplier_of_the_wrong_shape():
    plain = RepOptVGG(TINY, 5)
    with pytest.raises(UserError, match="shape"):
        RepOptimizer(plain.trainable_params(), {"stage0.conv.weight": np.ones((1, 3, 3, 3), np.float32)}, 0.1, 0.9)


def test_repoptimizer_state_has_the_names_nn_momentum_checkpoints_so_resume_reads_either():
    plain = RepOptVGG(TINY, 5)
    repopt = RepOptimizer(plain.trainable_params(), {}, 0.1, 0.9)
    momentum = nn.Momentum(plain.trainable_params(), 0.1, 0.9)
    assert sorted(repopt.parameters_dict()) == sorted(momentum.parameters_dict())


@pytest.mark.parametrize("arch", list(REPOPT_PARAMS_M))
def test_param_counts_match_the_published_repopt_table(arch):
    # Building allocates no weights yet and runs nothing, so even L2 counts in well under a second.
    net = create_repopt_model(arch, num_classes=1000)
    assert trainable_millions(net) == pytest.approx(REPOPT_PARAMS_M[arch], abs=0.0005)
    assert net.arch == arch


def test_l_models_are_deeper_than_b_models_with_the_same_widths():
    l1, b1 = create_repopt_model("RepOptVGG-L1"), create_repopt_model("RepOptVGG-B1")
    assert [len(stage) for stage in (l1.stage1, l1.stage2, l1.stage3, l1.stage4)] == [8, 14, 24, 1]
    assert l1.variant.stage_widths == b1.variant.stage_widths == (128, 256, 512, 2048)
    assert create_repopt_model("RepOptVGG-L2").variant.stage_widths == (160, 320, 640, 2560)


def test_repopt_names_accept_the_official_spelling_and_name_their_search_net():
    assert create_repopt_model("RepOpt-VGG-L1", num_classes=10).arch == "RepOptVGG-L1"
    assert repopt_name("repopt_vgg_l2", search=True) == "RepOptVGG-L2-search"
    assert repopt_name("RepVGG-B1") == "RepOptVGG-B1"


def test_a_repopt_only_model_has_no_repvgg_form():
    with pytest.raises(UserError, match="RepOptVGG-L1 is a RepOpt-VGG model and has no RepVGG form"):
        create_model("RepOpt-VGG-L1")
