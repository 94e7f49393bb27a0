"""RepOptimizer: momentum SGD that trains a plain RepOpt-VGG exactly as the multi-branch CSLA model would train.

Derivation (one block; ``*`` is convolution, products with per-output-channel vectors broadcast over c).
The CSLA block of the paper is ``y = s3·(W3 * x) + s1·(W1 * x) + d·x`` followed by BN: ``s3`` and ``s1`` are the
searched scales, held constant; ``W3`` (3x3), ``W1`` (1x1) and the identity weight ``d`` (a per-channel vector,
the identity branch's only parameter) are trained. Its branch sum is the single 3x3 convolution

    W' = s3·W3 + s1·P(W1) + D(d)

where ``P`` pads a 1x1 kernel to the centre of a 3x3 and ``D(d)`` puts ``d[c]`` at ``[c, c mod (C/groups), 1, 1]``.
Write ``G = dL/dW'``. The chain rule gives ``dL/dW3 = s3·G``, ``dL/dW1 = s1·G[:, :, 1, 1]`` and
``dL/dd[c] = G[c, c mod (C/groups), 1, 1]``. One SGD step with learning rate ``lr`` on the branches moves W' by

    -lr·(s3²·G + s1²·P(G[:, :, 1, 1]) + D(diag G)) = -lr·(M ⊙ G),

    M[c, k, i, j] = s3[c]² + s1[c]²·[i = j = 1] + 1·[i = j = 1 and k = c mod (C/groups)].

The plain block whose kernel equals W' computes the same function, so it sees the same ``G``; stepping it with
``M ⊙ G`` lands on the same W'. That is the paper's Grad Mult, and the "1" is the identity weight's own gradient.

Momentum (MindSpore's ``v <- mu·v + g``, ``w <- w - lr·v``, and its Nesterov form) keeps the equivalence: the
map from branch buffers to ``V = s3·v3 + s1·P(v1) + D(v_d)`` is linear, so ``V`` follows ``V <- mu·V + M ⊙ G``,
the recursion of the plain buffer. It holds at every step and for any learning-rate schedule provided that the
scales stay constant, no BN or non-linearity sits inside a branch (BN after the sum is shared by both models),
both models start from the same W' with zero momentum, and weight decay is zero: L2 on the branch weights adds
``s3·lambda·W3 + ...`` to V, which is not ``M ⊙ lambda·W'``. As in the official implementation, weight decay is
applied to the plain weight after the multiplier, which is a close approximation and not an identity.

Initialisation follows the paper: the plain kernel starts as the CSLA block's W' at its own initialisation,
``s3·W3 + s1·P(W1) + D(1)`` with ``W3``, ``W1`` freshly drawn (or ``D(s_identity)`` with ``use_identity_scales``).
"""

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from src.engine.momentum_sgd import MomentumSGD
from src.errors import UserError
from src.models.repopt import BlockScales, RepOptVGGBlock, plain_blocks
from src.models.repvgg import identity_kernel


def _per_channel(vector: np.ndarray) -> np.ndarray:
    return np.asarray(vector, np.float32).reshape(-1, 1, 1, 1)


def _pad_1x1(kernel: np.ndarray) -> np.ndarray:
    return np.pad(kernel, ((0, 0), (0, 0), (1, 1), (1, 1)))


def grad_multiplier(scales: BlockScales, kernel_shape: tuple[int, ...], groups: int) -> np.ndarray:
    """The Grad Mult ``M`` of one block's 3x3 kernel (shape ``kernel_shape``), as derived in the module doc."""
    out_channels, in_per_group = kernel_shape[0], kernel_shape[1]
    centre = np.zeros((out_channels, in_per_group, 3, 3), np.float32)
    centre[:, :, 1, 1] = 1.0
    multiplier = np.ones(kernel_shape, np.float32) * _per_channel(scales.scale_3x3) ** 2
    multiplier += centre * _per_channel(scales.scale_1x1) ** 2
    if scales.scale_identity is not None:
        multiplier += identity_kernel(out_channels, groups)
    return multiplier


def _matched_blocks(net: nn.Cell, scales: dict[str, BlockScales]) -> dict[str, tuple[RepOptVGGBlock, BlockScales]]:
    blocks = plain_blocks(net)
    if blocks.keys() != scales.keys():
        raise UserError(f"searched scales are for blocks {sorted(scales)} but the net has blocks {sorted(blocks)}")
    for name, block in blocks.items():
        if block.has_identity != (scales[name].scale_identity is not None):
            raise UserError(f"block {name}: identity branch in the scales and in the net disagree")
    return {name: (block, scales[name]) for name, block in blocks.items()}


def grad_multipliers(net: nn.Cell, scales: dict[str, BlockScales]) -> dict[str, np.ndarray]:
    """``M`` for every plain conv of ``net``, keyed by the parameter's name (``stage1.0.conv.weight``...)."""
    return {
        block.conv.weight.name: grad_multiplier(block_scales, block.conv.weight.shape, block.groups)
        for block, block_scales in _matched_blocks(net, scales).values()
    }


def plain_kernel_from_scales(kernel_3x3: np.ndarray, kernel_1x1: np.ndarray, scales: BlockScales, groups: int,
                             use_identity_scales: bool = False) -> np.ndarray:
    """The CSLA block's equivalent kernel ``s3·W3 + s1·P(W1) + D(d)`` at initialisation.

    ``d`` is 1 (the paper's default) or the searched identity scale; the paper reports almost no difference.
    """
    kernel = kernel_3x3 * _per_channel(scales.scale_3x3) + _pad_1x1(kernel_1x1) * _per_channel(scales.scale_1x1)
    if scales.scale_identity is not None:
        identity = identity_kernel(kernel.shape[0], groups)
        kernel += identity * _per_channel(scales.scale_identity) if use_identity_scales else identity
    return kernel.astype(np.float32)


def initialise_from_scales(net: nn.Cell, scales: dict[str, BlockScales], use_identity_scales: bool = False) -> None:
    """Set each plain conv to its CSLA block's initial equivalent kernel; ``W3`` is the conv's own random init
    and ``W1`` is drawn as ``nn.Conv2d`` draws a 1x1 kernel, so the start matches a freshly built CSLA model."""
    for block, block_scales in _matched_blocks(net, scales).values():
        kernel_1x1 = nn.Conv2d(block.in_channels, block.out_channels, 1, group=block.groups, has_bias=False)
        kernel = plain_kernel_from_scales(block.conv.weight.asnumpy(), kernel_1x1.weight.asnumpy(), block_scales,
                                          block.groups, use_identity_scales)
        block.conv.weight.set_data(Tensor(kernel))


_multiply_gradient = ops.MultitypeFuncGraph("multiply_gradient")


@_multiply_gradient.register("Tensor", "Tensor")
def _multiply(multiplier: Tensor, gradient: Tensor) -> Tensor:
    return gradient * multiplier


class RepOptimizer(nn.Cell):
    """``MomentumSGD`` whose gradients are first multiplied by ``grad_mults[parameter name]``.

    Parameters without a multiplier (BN, classifier, SE) get plain momentum SGD. Accepts ``nn.Momentum``'s
    parameter groups, so the project's no-decay split applies unchanged. ``TrainStep`` calls it as
    ``optimizer(grads)`` with gradients in ``self.parameters`` order; clipping there sees the raw gradients, as in
    the official implementation. A wrapper rather than a subclass, so that ``MomentumSGD.construct`` stays the
    one update rule.
    """

    def __init__(self, params: list, grad_mults: dict[str, np.ndarray], learning_rate: float | Tensor,
                 momentum: float, weight_decay: float = 0.0, use_nesterov: bool = False):
        # No prefix: the moments keep nn.Momentum's names, so checkpoints read the same with either optimizer.
        super().__init__(auto_prefix=False)
        self.momentum_sgd = MomentumSGD(params, learning_rate, momentum, weight_decay=weight_decay,
                                        use_nesterov=use_nesterov)
        self.parameters = self.momentum_sgd.parameters
        unknown = sorted(set(grad_mults) - {p.name for p in self.parameters})
        if unknown:
            raise UserError(f"gradient multipliers for parameters the optimizer does not train: {unknown}")
        for p in self.parameters:
            if p.name in grad_mults and tuple(grad_mults[p.name].shape) != tuple(p.shape):
                raise UserError(f"multiplier of {p.name} has shape {grad_mults[p.name].shape}, not {p.shape}")
        # One multiplier per parameter, so that graph mode maps them over the gradients in one HyperMap; the
        # others get 1, and multiplying by 1 leaves a float32 gradient bit for bit as it was.
        self.grad_mults = tuple(Tensor(grad_mults[p.name]) if p.name in grad_mults else Tensor(1.0, ms.float32)
                                for p in self.parameters)
        self.hyper_map = ops.HyperMap()

    def construct(self, gradients: tuple[Tensor, ...]) -> Tensor:
        return self.momentum_sgd(self.hyper_map(_multiply_gradient, self.grad_mults, gradients))
