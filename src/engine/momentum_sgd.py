"""Momentum SGD whose Nesterov form is computed, not delegated to ``ApplyMomentum``.

MindSpore 2.10's CPU ``ApplyMomentum`` kernel ignores ``use_nesterov``: ``nn.Momentum(use_nesterov=True)`` takes
plain momentum steps there, silently (``tests/test_training_parity.py`` shows it). This optimizer writes the
update out, in the form PyTorch's ``SGD`` and MindSpore's documentation share (weight decay already in ``g``):

    v <- mu·v + g;    w <- w - lr·(g + mu·v)  (Nesterov)    or    w <- w - lr·v  (plain)

It keeps ``nn.Momentum``'s parameter groups and state names (``moments.<parameter>``), so checkpoints of runs
made with either read the same.
"""

from mindspore import Parameter, Tensor, nn, ops
from mindspore import dtype as mstype

_momentum_step = ops.MultitypeFuncGraph("momentum_step")


@_momentum_step.register("Bool", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _step(nesterov: bool, momentum: Tensor, learning_rate: Tensor, gradient: Tensor, weight: Parameter,
          moment: Parameter) -> Tensor:
    moment_next = moment * momentum + gradient
    update = gradient + moment_next * momentum if nesterov else moment_next
    done = ops.assign(moment, moment_next)
    return ops.depend(True, ops.assign(weight, ops.depend(weight - update * learning_rate, done)))


class MomentumSGD(nn.Optimizer):
    """``nn.Momentum``'s interface (groups, per-group weight decay and learning rate, schedules), exact Nesterov."""

    def __init__(self, params: list, learning_rate: float | Tensor, momentum: float, weight_decay: float = 0.0,
                 use_nesterov: bool = False):
        super().__init__(learning_rate, params, weight_decay)
        if momentum < 0.0:
            raise ValueError(f"momentum must be at least 0, got {momentum}")
        self.momentum = Parameter(Tensor(momentum, mstype.float32), name="momentum")
        self.use_nesterov = bool(use_nesterov)
        self.params = self._parameters
        self.moments = self.params.clone(prefix="moments", init="zeros")

    def construct(self, gradients: tuple[Tensor, ...]) -> Tensor:
        gradients = self.scale_grad(self.gradients_centralization(self.decay_weight(gradients)))
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        if self.is_group_lr:
            return self.hyper_map_reverse(ops.partial(_momentum_step, self.use_nesterov, self.momentum),
                                          lr, gradients, self.params, self.moments)
        return self.hyper_map_reverse(ops.partial(_momentum_step, self.use_nesterov, self.momentum, lr),
                                      gradients, self.params, self.moments)
