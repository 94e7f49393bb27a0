"""Simulated int8 (fake quantisation) of a plain VGG-style deploy network, for quantisation-aware training.

The simulation quantises where ONNX Runtime's QDQ format does for a RepVGG deploy graph (Conv, Relu, ..., ReduceMean,
Gemm), with its arithmetic, so that an int8 model carrying these scales computes what this network computes:

* the network input, every block output (after ReLU, which the uint8 range starting at 0 implements), the pooled
  features and the logits: per-tensor, asymmetric uint8 (``zero_point`` = round(-min / scale));
* every conv kernel and the classifier: int8, symmetric (zero point 0, levels -127..127), one scale per output
  channel, from the current weights;
* every bias: int32 with scale ``input scale * weight scale`` and zero point 0.

``quantize(x) = clamp(round(x / scale) + zero_point, qmin, qmax)``, rounding half to even as ONNX QuantizeLinear
does. Gradients pass straight through the rounding inside the representable range and are zero outside it
(clipped straight-through estimator, Bengio et al. 2013; Jacob et al., CVPR 2018). Activation ranges are
exponential moving averages of the batch min/max while training, until ``freeze_ranges`` fixes them.
BatchNorm must be folded beforehand: ``fake_quant_network`` takes any RepVGG or RepOpt-VGG form and fuses it.
"""

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from src.errors import UserError
from src.models.repopt import RepOptSearchNet, RepOptVGGBlock, merge_search_net
from src.models.repvgg import (
    RepVGG,
    RepVGGBlock,
    VGGStages,
    fuse_bn,
    has_multi_branch_blocks,
    repvgg_model_convert,
)

UINT8_RANGE = (0, 255)
WEIGHT_RANGE = (-127, 127)  # symmetric int8, as ONNX Runtime quantises weights
EMA_DECAY = 0.99


def fake_quantize(x: Tensor, scale: Tensor, zero_point: Tensor, qmin: int, qmax: int) -> Tensor:
    """``x`` quantised and dequantised; the gradient is 1 where ``x`` is representable and 0 where it clips."""
    quantized = ops.clamp(ops.round(x / scale) + zero_point, qmin, qmax)
    dequantized = (quantized - zero_point) * scale
    clipped = ops.clamp(x, (qmin - zero_point) * scale, (qmax - zero_point) * scale)
    return clipped + ops.stop_gradient(dequantized - clipped)


def asymmetric_params(range_min: Tensor, range_max: Tensor, qmin: int, qmax: int) -> tuple[Tensor, Tensor]:
    """Scale and zero point of a range widened to include 0 (so that zero is exact); scale 1 for an empty range."""
    low, high = ops.minimum(range_min, 0.0), ops.maximum(range_max, 0.0)
    scale = (high - low) / float(qmax - qmin)
    scale = ops.select(scale > 0, scale, ops.ones_like(scale))
    return scale, ops.round(qmin - low / scale)


def symmetric_weight_scale(weight: Tensor) -> Tensor:
    """One scale per output channel (axis 0): the channel's largest magnitude maps to 127."""
    absmax = ops.abs(weight).reshape(weight.shape[0], -1).max(axis=1)
    scale = absmax * 2.0 / float(WEIGHT_RANGE[1] - WEIGHT_RANGE[0])
    return ops.select(scale > 0, scale, ops.ones_like(scale))


def fake_quantize_weight(weight: Tensor) -> tuple[Tensor, Tensor]:
    """The weight on its int8 grid (per output channel) and the per-channel scale, which takes no gradient."""
    scale = ops.stop_gradient(symmetric_weight_scale(weight))
    shaped = scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return fake_quantize(weight, shaped, ops.zeros_like(shaped), *WEIGHT_RANGE), scale


def fake_quantize_bias(bias: Tensor, input_scale: Tensor, weight_scale: Tensor) -> Tensor:
    """The bias on the int32 grid of ``input_scale * weight_scale``; int32 does not clip in practice."""
    scale = input_scale * weight_scale
    return bias + ops.stop_gradient(ops.round(bias / scale) * scale - bias)


class ActivationQuantizer(nn.Cell):
    """Per-tensor uint8 fake quantisation with an EMA-tracked range.

    ``range_min``/``range_max`` are parameters without gradient, so checkpoints save them and resume restores
    them; ``observed`` is 0 until the first training batch, which sets the range outright. While ``frozen`` is 1
    the range no longer moves.
    """

    def __init__(self, decay: float = EMA_DECAY):
        super().__init__()
        self.decay = decay
        self.range_min = Parameter(Tensor(0.0), name="range_min", requires_grad=False)
        self.range_max = Parameter(Tensor(0.0), name="range_max", requires_grad=False)
        self.observed = Parameter(Tensor(0.0), name="observed", requires_grad=False)
        self.frozen = Parameter(Tensor(0.0), name="frozen", requires_grad=False)

    def params(self) -> tuple[Tensor, Tensor]:
        """Scale and zero point of the current range."""
        return asymmetric_params(self.range_min, self.range_max, *UINT8_RANGE)

    def _track(self, x: Tensor) -> None:
        batch_min, batch_max = ops.stop_gradient(x.min()), ops.stop_gradient(x.max())
        first = self.observed < 0.5
        moved_min = ops.select(first, batch_min, self.decay * self.range_min + (1 - self.decay) * batch_min)
        moved_max = ops.select(first, batch_max, self.decay * self.range_max + (1 - self.decay) * batch_max)
        frozen = self.frozen > 0.5
        ops.assign(self.range_min, ops.select(frozen, self.range_min, moved_min))
        ops.assign(self.range_max, ops.select(frozen, self.range_max, moved_max))
        ops.assign(self.observed, ops.ones_like(self.observed))

    def construct(self, x: Tensor) -> Tensor:
        if self.training:
            self._track(x)
        scale, zero_point = self.params()
        return fake_quantize(x, scale, zero_point, *UINT8_RANGE)


class FakeQuantConv(nn.Cell):
    """A 3x3 convolution (padding 1) with bias, on int8 weights and an int32 bias."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: int, groups: int):
        super().__init__()
        self.weight = Parameter(Tensor(weight.astype(np.float32)), name="weight")
        self.bias = Parameter(Tensor(bias.astype(np.float32)), name="bias")
        self.stride, self.groups = stride, groups

    def construct(self, x: Tensor, input_scale: Tensor) -> Tensor:
        weight, weight_scale = fake_quantize_weight(self.weight)
        out = ops.conv2d(x, weight, stride=self.stride, pad_mode="pad", padding=1, groups=self.groups)
        return out + fake_quantize_bias(self.bias, input_scale, weight_scale).reshape(1, -1, 1, 1)


class FakeQuantDense(nn.Cell):
    """The classifier, on int8 weights (one scale per class) and an int32 bias."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.weight = Parameter(Tensor(weight.astype(np.float32)), name="weight")
        self.bias = Parameter(Tensor(bias.astype(np.float32)), name="bias")

    def construct(self, x: Tensor, input_scale: Tensor) -> Tensor:
        weight, weight_scale = fake_quantize_weight(self.weight)
        return ops.matmul(x, weight.T) + fake_quantize_bias(self.bias, input_scale, weight_scale)


class FakeQuantVGG(nn.Cell):
    """Input quantiser, then per block: conv, ReLU, output quantiser; mean pool, quantiser, classifier, quantiser.

    ``block_paths[i]`` is the path of ``convs[i]`` in the network it was built from (``stage0``, ``stage1.0``...).
    """

    def __init__(self, convs: list[FakeQuantConv], classifier: FakeQuantDense, block_paths: list[str]):
        super().__init__()
        self.block_paths = block_paths
        self.input_quant = ActivationQuantizer()
        self.convs = nn.CellList(convs)
        self.output_quants = nn.CellList([ActivationQuantizer() for _ in convs])
        self.pool_quant = ActivationQuantizer()
        self.classifier = classifier
        self.logits_quant = ActivationQuantizer()
        self.relu = nn.ReLU()

    def activation_quantizers(self) -> list[ActivationQuantizer]:
        return [cell for _, cell in self.cells_and_names() if isinstance(cell, ActivationQuantizer)]

    def freeze_ranges(self, frozen: bool = True) -> None:
        """Stop (or restart) the EMA of every activation range."""
        for quantizer in self.activation_quantizers():
            quantizer.frozen.set_data(Tensor(float(frozen)))

    def float_network(self) -> RepVGG:
        """The fused (deploy-form) RepVGG with this network's float weights, no quantisation: the float32 model
        that, quantised with this network's ranges, is the int8 model QAT trained for."""
        # Built from the layout, not the name: a RepOpt-VGG fuses into the same plain network as its RepVGG twin.
        net = RepVGG(self.variant, num_classes=self.num_classes, deploy=True)
        net.arch = self.arch
        weights = {"linear.weight": self.classifier.weight, "linear.bias": self.classifier.bias}
        for path, conv in zip(self.block_paths, self.convs, strict=True):
            weights[f"{path}.rbr_reparam.weight"], weights[f"{path}.rbr_reparam.bias"] = conv.weight, conv.bias
        own = dict(net.parameters_and_names())
        if set(own) != set(weights):
            raise UserError(f"the fake-quantised network does not map onto a fused {self.arch}: "
                            f"{sorted(set(own) ^ set(weights))[:3]}")
        for name, value in weights.items():
            own[name].set_data(value.data.copy())
        net.set_train(False)
        return net

    def construct(self, x: Tensor) -> Tensor:
        # Each bias is quantised with the scale of the activation its layer reads.
        x = self.input_quant(x)
        scale = self.input_quant.params()[0]
        for index in range(len(self.convs)):
            x = self.output_quants[index](self.relu(self.convs[index](x, scale)))
            scale = self.output_quants[index].params()[0]
        pooled = self.pool_quant(x.mean(axis=(2, 3)))
        return self.logits_quant(self.classifier(pooled, self.pool_quant.params()[0]))


def _kernel_and_bias(path: str, block: nn.Cell) -> tuple[np.ndarray, np.ndarray, nn.Conv2d]:
    if isinstance(block, RepVGGBlock):
        if not isinstance(block.se, nn.Identity):
            raise UserError(f"block {path} has squeeze-and-excitation, which int8 simulation does not cover yet")
        conv = block.rbr_reparam
        return conv.weight.asnumpy(), conv.bias.asnumpy(), conv
    if isinstance(block, RepOptVGGBlock):
        if not isinstance(block.se, nn.Identity):
            raise UserError(f"block {path} has squeeze-and-excitation, which int8 simulation does not cover yet")
        kernel, bias = fuse_bn(block.conv.weight, block.bn)
        return kernel.asnumpy(), bias.asnumpy(), block.conv
    raise UserError(f"block {path} ({type(block).__name__}) is neither a RepVGG nor a RepOpt-VGG block")


def fake_quant_network(net: VGGStages) -> FakeQuantVGG:
    """The fake-quantised twin of ``net`` (a RepVGG in either form, a RepOpt-VGG, or a RepOpt search net), built
    from its fused eval-mode weights: the 3x3 kernels with BatchNorm folded in, and the classifier. Ranges start
    unobserved; the first training-mode batch sets them. ``net`` is left untouched."""
    if isinstance(net, RepOptSearchNet):
        net = merge_search_net(net)
    elif has_multi_branch_blocks(net):
        net = repvgg_model_convert(net)
    convs, paths = [], []
    for path, block in net.blocks_in_order():
        kernel, bias, conv = _kernel_and_bias(path, block)
        convs.append(FakeQuantConv(kernel, bias, conv.stride[-1], conv.group))
        paths.append(path)
    classifier = FakeQuantDense(net.linear.weight.asnumpy(), net.linear.bias.asnumpy())
    quantized = FakeQuantVGG(convs, classifier, paths)
    quantized.arch = getattr(net, "arch", None)
    quantized.variant = net.variant
    quantized.num_classes = net.num_classes
    return quantized
