"""AdamW as Loshchilov & Hutter define it and PyTorch's ``torch.optim.AdamW`` computes it.

MindSpore's ``nn.AdamWeightDecay`` leaves out Adam's bias correction: its first steps are ``1 / (1 - beta1)``
= 10x smaller than Adam's (with the default betas), so a warm-up behaves differently and the step-parity test
against PyTorch fails from the first step. This optimizer computes, with weight decay ``wd`` per group:

    m <- b1·m + (1 - b1)·g;   v <- b2·v + (1 - b2)·g²;   t <- t + 1
    w <- w - lr·wd·w - lr·(m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

It keeps ``nn.AdamWeightDecay``'s state names (``adam_m.<parameter>``, ``adam_v.<parameter>``).
"""

import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore import dtype as mstype

_adamw_step = ops.MultitypeFuncGraph("adamw_step")


@_adamw_step.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                      "Tensor", "Tensor")
def _step(beta1: Tensor, beta2: Tensor, eps: Tensor, correction1: Tensor, correction2: Tensor, learning_rate: Tensor,
          weight_decay: Tensor, weight: Parameter, moment1: Parameter, moment2: Parameter, gradient: Tensor) -> Tensor:
    moment1_next = beta1 * moment1 + (1.0 - beta1) * gradient
    moment2_next = beta2 * moment2 + (1.0 - beta2) * ops.square(gradient)
    denominator = ops.sqrt(moment2_next / correction2) + eps
    step = learning_rate * (moment1_next / correction1) / denominator
    weight_next = weight * (1.0 - learning_rate * weight_decay) - step
    done = ops.depend(ops.assign(moment1, moment1_next), ops.assign(moment2, moment2_next))
    return ops.depend(True, ops.assign(weight, ops.depend(weight_next, done)))


class AdamW(nn.Optimizer):
    """``nn.AdamWeightDecay``'s interface (groups with their own weight decay, schedules), with bias correction."""

    def __init__(self, params: list, learning_rate: float | Tensor = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(learning_rate, params, weight_decay)
        self.beta1 = Tensor(np.float32(beta1))
        self.beta2 = Tensor(np.float32(beta2))
        self.eps = Tensor(np.float32(eps))
        self.moments1 = self._parameters.clone(prefix="adam_m", init="zeros")
        self.moments2 = self._parameters.clone(prefix="adam_v", init="zeros")

    def construct(self, gradients: tuple[Tensor, ...]) -> Tensor:
        weight_decay = self.get_weight_decay()
        lr = self.get_lr()
        step = (self.global_step + 1).astype(mstype.float32).reshape(())
        correction1 = 1.0 - ops.pow(self.beta1, step)
        correction2 = 1.0 - ops.pow(self.beta2, step)
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        update = ops.partial(_adamw_step, self.beta1, self.beta2, self.eps, correction1, correction2)
        if self.is_group_lr:
            return self.hyper_map(update, lr, weight_decay, self._parameters, self.moments1, self.moments2,
                                  gradients)
        if self.is_group:
            return self.hyper_map(ops.partial(_adamw_step, self.beta1, self.beta2, self.eps, correction1,
                                              correction2, lr),
                                  weight_decay, self._parameters, self.moments1, self.moments2, gradients)
        return self.hyper_map(ops.partial(_adamw_step, self.beta1, self.beta2, self.eps, correction1, correction2,
                                          lr, weight_decay),
                              self._parameters, self.moments1, self.moments2, gradients)
