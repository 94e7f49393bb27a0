"""One optimisation step as a Cell: AMP forward, scaled backward, gradient mean across devices, overflow
check, global-norm clipping, optimiser update and EMA of the weights.

A step whose loss or gradients are not finite (an fp16 overflow, or a diverging run) is skipped entirely:
no update of weights, moments or EMA, and the BatchNorm running statistics, which the forward pass has
already moved, are put back. Without that, one inf activation would leave NaN statistics in every later
checkpoint.
"""

from collections.abc import Iterable

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
from mindspore.amp import DynamicLossScaler, StaticLossScaler, all_finite

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


class TrainStep(nn.Cell):
    """Returns (loss, finite). Parameters of the optimiser, loss scale and EMA live in this Cell, so one
    checkpoint of it restores a run exactly."""

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
        self.bn_backup = ParameterTuple(
            [Parameter(p.data.copy(), name=BN_BACKUP_PREFIX + p.name, requires_grad=False) for p in statistics])
        self.assign = ops.Assign()
        # BatchNorm uses batch statistics only in train mode; evaluation must switch it back off.
        self.set_train(True)

    def _scaled_loss(self, images: Tensor, targets: Tensor) -> Tensor:
        return self.loss_scaler.scale(self.net_with_loss(images, targets))

    def construct(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        # The data dependency orders the backup before the forward pass that updates the statistics.
        images = ops.depend(images, self.hyper_map(self.assign, self.bn_backup, self.bn_statistics))
        scaled_loss, grads = self.grad_fn(images, targets)
        loss = self.loss_scaler.unscale(scaled_loss)
        grads = self.grad_reducer(self.loss_scaler.unscale(grads))
        finite = ops.logical_and(all_finite(grads), ops.isfinite(loss).all())
        if self.dynamic_scale:
            self.loss_scaler.adjust(finite)
        if finite:
            if self.clip_norm > 0:
                grads = ops.clip_by_global_norm(grads, self.clip_norm)
            loss = ops.depend(loss, self.optimizer(grads))
            if self.use_ema:
                loss = ops.depend(loss, self.hyper_map(self.ema_update, self.ema, self.ema_source))
        else:
            loss = ops.depend(loss, self.hyper_map(self.assign, self.bn_statistics, self.bn_backup))
        return loss, finite
