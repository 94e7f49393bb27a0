"""One optimisation step as a Cell: AMP forward, scaled backward, gradient mean across devices, overflow
check, global-norm clipping, optimiser update and EMA of the weights.

A step whose loss or gradients are not finite (an fp16 overflow, or a diverging run) is skipped entirely:
no update of weights, moments or EMA, and the BatchNorm running statistics, which the forward pass has
already moved, are put back. Without that, one inf activation would leave NaN statistics in every later
checkpoint.

What the step adds to the framework's bare step is kept to a handful of kernels (benchmarks/
train_throughput.py measures it against ``nn.TrainOneStepCell``). On CPU each kernel launch costs tens of
microseconds, so a pass of small operations over a RepVGG's ~170 gradients costs more than the arithmetic:
the squared global norm is computed once and serves both the finite check and the clipping; the gradients
are scaled only on the steps whose norm exceeds the bound (below it the factor is exactly 1); loss scaling is
skipped when the scale is a fixed 1; the BatchNorm statistics are backed up as one flat copy.
"""

import itertools
from collections.abc import Iterable

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
from mindspore.amp import DynamicLossScaler, StaticLossScaler

# Parameter name prefixes of the EMA shadow weights and of the BatchNorm statistics copied before each forward
# pass (never written to checkpoints): defined with the checkpoint layout.
from src.checkpoint_files import BN_BACKUP_PREFIX, EMA_PREFIX

_BN_STATISTICS = (".moving_mean", ".moving_variance")


class SoftTargetCrossEntropy(nn.Cell):
    """Cross entropy against probability targets (one-hot with smoothing, mixed by MixUp/CutMix).

    Computed in float32 whatever the network's precision.
    """

    def construct(self, logits: Tensor, targets: Tensor) -> Tensor:
        log_probs = ops.log_softmax(logits.astype(ms.float32), -1)
        return -(targets * log_probs).sum(-1).mean()


class NetWithLoss(nn.Cell):
    def __init__(self, network: nn.Cell, loss_fn: nn.Cell):
        super().__init__(auto_prefix=False)
        self.network = network
        self.loss_fn = loss_fn

    def construct(self, images: Tensor, targets: Tensor) -> Tensor:
        return self.loss_fn(self.network(images), targets)


def make_loss_scaler(dynamic: bool, scale: float) -> StaticLossScaler | DynamicLossScaler:
    # Window and factor as in MindSpore's defaults: double after 1000 finite steps, halve on overflow.
    return DynamicLossScaler(scale, 2, 1000) if dynamic else StaticLossScaler(scale)


class _EMAUpdate(nn.Cell):
    def __init__(self, decay: float):
        super().__init__()
        self.decay = decay

    def construct(self, average: Parameter, value: Parameter) -> Tensor:
        return ops.assign(average, average * self.decay + value * (1.0 - self.decay))


def _square_sum(gradient: Tensor) -> Tensor:
    return ops.square(gradient.astype(ms.float32)).sum()


def _scaled_by(factor: Tensor, gradient: Tensor) -> Tensor:
    return gradient * factor.astype(gradient.dtype)


def _slice_bounds(sizes: list[int]) -> tuple[tuple[int, int], ...]:
    ends = itertools.accumulate(sizes)
    return tuple((end - size, end) for size, end in zip(sizes, ends, strict=True))


class TrainStep(nn.Cell):
    """Returns (loss, finite). Parameters of the optimiser, loss scale and EMA live in this Cell, so one
    checkpoint of it restores a run exactly.

    Gradients whose squared global norm overflows float32 (a norm above about 1e19) count as non-finite:
    such a step would be clipped to nothing anyway.
    """

    def __init__(self, net_with_loss: nn.Cell, optimizer: nn.Optimizer, loss_scaler, clip_norm: float,
                 ema_source: Iterable[Parameter] | None = None, ema_decay: float = 0.9999,
                 grad_reducer: nn.Cell | None = None):
        super().__init__(auto_prefix=False)
        self.net_with_loss = net_with_loss
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.loss_scaler = loss_scaler
        # Registering the scaler's Parameters puts the loss scale (and its counter) into checkpoints.
        self.loss_scale = loss_scaler.scale_value
        self.dynamic_scale = isinstance(loss_scaler, DynamicLossScaler)
        if self.dynamic_scale:
            self.loss_scale_counter = loss_scaler.counter
        # A fixed scale of 1 (float32 training) needs no scaling pass over the gradients.
        self.scales_loss = self.dynamic_scale or float(loss_scaler.scale_value.asnumpy()) != 1.0
        self.grad_fn = ms.value_and_grad(self._scaled_loss, None, self.weights)
        self.clip_norm = clip_norm
        self.grad_reducer = grad_reducer if grad_reducer is not None else nn.Identity()
        self.hyper_map = ops.HyperMap()
        self.use_ema = ema_source is not None
        if self.use_ema:
            ema_source = list(ema_source)
            self.ema_source = ParameterTuple(ema_source)
            self.ema = ParameterTuple(
                [Parameter(p.data.copy(), name=EMA_PREFIX + p.name, requires_grad=False) for p in ema_source]
            )
            self.ema_update = _EMAUpdate(ema_decay)
        statistics = [p for p in net_with_loss.get_parameters() if p.name.endswith(_BN_STATISTICS)]
        self.bn_statistics = ParameterTuple(statistics)
        self.has_bn = bool(statistics)
        # One flat copy: one concatenation per step instead of a copy per statistics tensor (hundreds of
        # kernel launches in a RepVGG); it is cut back into pieces only on the rare non-finite step.
        self.bn_bounds = _slice_bounds([p.size for p in statistics])
        backup = np.concatenate([p.asnumpy().reshape(-1) for p in statistics]) if statistics else np.zeros(0)
        self.bn_backup = Parameter(Tensor(backup.astype(np.float32)), name=BN_BACKUP_PREFIX + "statistics",
                                   requires_grad=False)
        self.assign = ops.Assign()
        # BatchNorm uses batch statistics only in train mode; evaluation must switch it back off.
        self.set_train(True)

    def _scaled_loss(self, images: Tensor, targets: Tensor) -> Tensor:
        loss = self.net_with_loss(images, targets)
        return self.loss_scaler.scale(loss) if self.scales_loss else loss

    def _restore_bn_statistics(self) -> Tensor:
        pieces = tuple(self.bn_backup[start:end] for start, end in self.bn_bounds)
        return self.hyper_map(self.assign, self.bn_statistics, pieces)

    def construct(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        if self.has_bn:
            # The data dependency orders the backup before the forward pass that updates the statistics.
            images = ops.depend(images, self.assign(self.bn_backup, ops.concat(self.bn_statistics)))
        loss, grads = self.grad_fn(images, targets)
        if self.scales_loss:
            loss = self.loss_scaler.unscale(loss)
            grads = self.loss_scaler.unscale(grads)
        grads = self.grad_reducer(grads)
        # One pass over the gradients serves both the finite check and the clipping. Per gradient, not over one
        # concatenation: a single large parallel reduction summed in a varying order, and resumed runs no longer
        # equalled straight ones bit for bit.
        square_norm = ops.addn(self.hyper_map(_square_sum, grads))
        finite = ops.isfinite(square_norm + loss.astype(ms.float32))
        if self.dynamic_scale:
            self.loss_scaler.adjust(finite)
        if finite:
            # Below the bound the factor is exactly 1: those steps skip a pass of kernels over the gradients.
            if self.clip_norm > 0 and square_norm > self.clip_norm * self.clip_norm:
                factor = self.clip_norm / ops.sqrt(square_norm)
                grads = self.hyper_map(ops.partial(_scaled_by, factor), grads)
            loss = ops.depend(loss, self.optimizer(grads))
            if self.use_ema:
                loss = ops.depend(loss, self.hyper_map(self.ema_update, self.ema, self.ema_source))
        elif self.has_bn:
            loss = ops.depend(loss, self._restore_bn_statistics())
        return loss, finite
