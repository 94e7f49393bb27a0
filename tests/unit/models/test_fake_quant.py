"""Simulated int8: the fake-quantised network computes what an integer pipeline computes (uint8 activations, int8
per-channel weights, int32 accumulation and biases), here written in numpy; ranges follow an EMA until frozen;
gradients pass straight through the rounding."""

import mindspore as ms
import numpy as np
import pytest
from conftest import randomise_batchnorm
from mindspore import Tensor, nn, ops

from src.errors import UserError
from src.models.fake_quant import EMA_DECAY, ActivationQuantizer, fake_quant_network, fake_quantize
from src.models.repopt import RepOptVGG
from src.models.repvgg import RepVGG
from src.models.variants import CIFAR_LAYOUT, RepVGGVariant

# Stem, stride-2 blocks, identity-shaped blocks and grouped convolutions (blocks 2 and 4), on 16x16 inputs.
TINY = RepVGGVariant((1, 2, 1, 1), (0.25, 0.25, 0.125, 0.125), groups=2, layout=CIFAR_LAYOUT)
F32 = np.float32


def batches(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 3, 16, 16)).astype(F32) for _ in range(count)]


# ---- the integer reference ----

def uint8_params(low: F32, high: F32) -> tuple[F32, F32]:
    low, high = min(low, F32(0)), max(high, F32(0))
    scale = (high - low) / F32(255)
    return scale, np.round(F32(0) - low / scale)


def quantize(x: np.ndarray, scale, zero_point, qmin: int, qmax: int) -> np.ndarray:
    return np.clip(np.round(x / scale) + zero_point, qmin, qmax).astype(np.int64)


def weight_codes(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.abs(weight).reshape(len(weight), -1).max(axis=1) * F32(2) / F32(254)
    return quantize(weight, scale.reshape((-1,) + (1,) * (weight.ndim - 1)), 0, -127, 127), scale


def integer_conv(x: np.ndarray, w: np.ndarray, stride: int, groups: int) -> np.ndarray:
    """3x3, padding 1, on integers; the zero padding is the zero point, i.e. 0 after subtracting it."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::stride, ::stride]
    per_group_in, per_group_out = x.shape[1] // groups, w.shape[0] // groups
    outputs = []
    for g in range(groups):
        patch = windows[:, g * per_group_in:(g + 1) * per_group_in]
        kernel = w[g * per_group_out:(g + 1) * per_group_out]
        outputs.append(np.einsum("nchwij,ocij->nohw", patch, kernel))
    return np.concatenate(outputs, axis=1)


def integer_reference(qnet, x: np.ndarray) -> np.ndarray:
    """The logits' uint8 codes, computed with integers between the (de)quantisation points."""
    def params(quantizer):
        return uint8_params(quantizer.range_min.asnumpy(), quantizer.range_max.asnumpy())

    scale, zero_point = params(qnet.input_quant)
    codes = quantize(x, scale, zero_point, 0, 255)
    for conv, out_quant in zip(qnet.convs, qnet.output_quants, strict=True):
        w_codes, w_scale = weight_codes(conv.weight.asnumpy())
        bias_scale = scale * w_scale
        accumulator = integer_conv(codes - zero_point, w_codes, conv.stride, conv.groups)
        accumulator += np.round(conv.bias.asnumpy() / bias_scale).astype(np.int64).reshape(1, -1, 1, 1)
        real = np.maximum(accumulator * bias_scale.reshape(1, -1, 1, 1), 0)
        scale, zero_point = params(out_quant)
        codes = quantize(real, scale, zero_point, 0, 255)
    pooled = ((codes - zero_point) * scale).astype(F32).mean(axis=(2, 3))
    scale, zero_point = params(qnet.pool_quant)
    codes = quantize(pooled, scale, zero_point, 0, 255)
    w_codes, w_scale = weight_codes(qnet.classifier.weight.asnumpy())
    bias_scale = scale * w_scale
    accumulator = (codes - zero_point) @ w_codes.T + np.round(qnet.classifier.bias.asnumpy() / bias_scale)
    scale, zero_point = params(qnet.logits_quant)
    return quantize(accumulator * bias_scale, scale, zero_point, 0, 255)


def calibrated(net: nn.Cell, steps: int = 2):
    qnet = fake_quant_network(net)
    qnet.set_train(True)
    for batch in batches(steps, seed=1):
        qnet(Tensor(batch))
    qnet.set_train(False)
    return qnet


@pytest.mark.parametrize("kind", ["RepVGG", "RepOpt-VGG"])
def test_fake_quant_forward_equals_the_integer_pipeline(kind):
    ms.set_seed(0)
    net = RepVGG(TINY, num_classes=5) if kind == "RepVGG" else RepOptVGG(TINY, num_classes=5)
    randomise_batchnorm(net, seed=2)
    # A random net's logits hardly depend on its input: the classifier's bias dominates and small BatchNorm gains
    # shrink the features. Gains near 1 and a larger classifier make the logits input-dependent, as trained ones are.
    for param in net.get_parameters():
        if param.name.endswith("gamma"):
            param.set_data(param * 3)
    net.linear.weight.set_data(net.linear.weight * 10)
    qnet = calibrated(net)
    x = batches(1, seed=7)[0]
    scale, zero_point = uint8_params(qnet.logits_quant.range_min.asnumpy(), qnet.logits_quant.range_max.asnumpy())
    simulated = np.round(qnet(Tensor(x)).asnumpy() / scale) + zero_point
    expected = integer_reference(qnet, x)
    np.testing.assert_array_equal(simulated.astype(np.int64), expected)
    # A meaningful case: every image gets its own logits, spread over many codes.
    assert len(np.unique(expected, axis=0)) == len(x) and len(np.unique(expected)) > 8


def test_fake_quant_net_stays_close_to_the_float_net():
    ms.set_seed(0)
    net = RepVGG(TINY, num_classes=5)
    randomise_batchnorm(net, seed=2)
    qnet = calibrated(net)
    net.set_train(False)
    x = Tensor(batches(1, seed=1)[0])
    floats, simulated = net(x).asnumpy(), qnet(x).asnumpy()
    assert np.abs(simulated - floats).max() < 0.1 * np.abs(floats).max()


def test_range_follows_an_ema_of_batch_extremes_until_frozen():
    quantizer = ActivationQuantizer()
    quantizer.set_train(True)
    first, second = Tensor(np.array([-1.0, 2.0], F32)), Tensor(np.array([-3.0, 4.0], F32))
    quantizer(first)
    assert (quantizer.range_min.asnumpy(), quantizer.range_max.asnumpy()) == (-1.0, 2.0)  # first batch: outright
    quantizer(second)
    np.testing.assert_allclose(quantizer.range_max.asnumpy(), EMA_DECAY * 2.0 + (1 - EMA_DECAY) * 4.0, rtol=1e-6)
    np.testing.assert_allclose(quantizer.range_min.asnumpy(), EMA_DECAY * -1.0 + (1 - EMA_DECAY) * -3.0, rtol=1e-6)
    moved = quantizer.range_max.asnumpy().copy()
    quantizer.frozen.set_data(Tensor(1.0))
    quantizer(Tensor(np.array([-30.0, 40.0], F32)))
    assert quantizer.range_max.asnumpy() == moved
    quantizer.frozen.set_data(Tensor(0.0))
    quantizer.set_train(False)
    quantizer(Tensor(np.array([-30.0, 40.0], F32)))
    assert quantizer.range_max.asnumpy() == moved  # evaluation never moves a range


def test_freeze_ranges_freezes_every_quantiser_of_the_network():
    qnet = fake_quant_network(RepVGG(TINY, num_classes=5))
    qnet.freeze_ranges()
    assert len(qnet.activation_quantizers()) == 1 + sum(TINY.depths) + 1 + 2
    assert all(q.frozen.asnumpy() == 1.0 for q in qnet.activation_quantizers())


def test_gradient_passes_straight_through_inside_the_range_and_stops_outside():
    x = Tensor(np.array([-2.0, -0.26, 0.0, 0.3, 0.74, 1.0, 3.0], F32))
    scale, zero_point = Tensor(F32(1 / 255)), Tensor(F32(0))
    grad = ms.grad(lambda t: (fake_quantize(t, scale, zero_point, 0, 255) * Tensor(np.arange(7, dtype=F32))).sum())(x)
    np.testing.assert_array_equal(grad.asnumpy(), [0, 0, 2, 3, 4, 5, 0])
    np.testing.assert_allclose(fake_quantize(x, scale, zero_point, 0, 255).asnumpy(),
                               np.clip(np.round(x.asnumpy() * 255), 0, 255) / 255, rtol=1e-6)


def test_weights_and_biases_receive_gradients():
    qnet = calibrated(RepVGG(TINY, num_classes=5))
    qnet.set_train(True)
    qnet.freeze_ranges()
    labels = Tensor(np.array([0, 1, 2], np.int32))
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    params = qnet.trainable_params()
    grads = ms.grad(lambda x: loss_fn(qnet(x), labels), grad_position=None, weights=params)(Tensor(batches(1)[0]))
    assert {p.name.rsplit(".", 1)[-1] for p in params} == {"weight", "bias"}  # ranges are not trained
    assert all(float(ops.abs(g).sum()) > 0 for g in grads)


def test_se_blocks_are_refused():
    with pytest.raises(UserError, match="squeeze-and-excitation"):
        fake_quant_network(RepVGG(RepVGGVariant(TINY.depths, (0.5, 0.5, 0.5, 0.5), use_se=True,
                                                layout=CIFAR_LAYOUT), num_classes=5))


def tracked_ranges(mode: int) -> np.ndarray:
    ms.set_context(mode=mode)
    try:
        ms.set_seed(0)
        qnet = fake_quant_network(RepVGG(TINY, num_classes=5))
        qnet.set_train(True)
        for scale, batch in enumerate(batches(2, seed=3), start=1):
            qnet(Tensor(batch * scale))
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    return np.array([[q.range_min.asnumpy(), q.range_max.asnumpy()] for q in qnet.activation_quantizers()])


def test_graph_mode_tracks_the_ranges_pynative_tracks():
    # Training compiles the step into a graph; the in-place EMA updates must survive that.
    pynative, graph = tracked_ranges(ms.PYNATIVE_MODE), tracked_ranges(ms.GRAPH_MODE)
    assert np.abs(pynative).max() > 0
    np.testing.assert_allclose(graph, pynative, rtol=1e-5, atol=1e-6)
