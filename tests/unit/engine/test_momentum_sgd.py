"""Momentum SGD on MindSpore's fused SGD operator: the update is the written-out formula, per group."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor

from src.engine.momentum_sgd import MomentumSGD

LR, MOMENTUM, DECAY = 0.1, 0.9, 0.05


def reference_steps(weight: np.ndarray, gradients: list[np.ndarray], decay: float, nesterov: bool):
    """v <- mu·v + g + wd·w;  w <- w - lr·(g + wd·w + mu·v) (Nesterov) or w - lr·v, in float64."""
    weight, moment = weight.astype(np.float64), np.zeros(weight.shape)
    for gradient in gradients:
        decayed = gradient + decay * weight
        moment = MOMENTUM * moment + decayed
        weight = weight - LR * (decayed + MOMENTUM * moment if nesterov else moment)
    return weight, moment


@pytest.mark.parametrize("nesterov", [False, True])
def test_each_group_takes_the_formulas_step_with_its_own_weight_decay(nesterov):
    rng = np.random.default_rng(0)
    start = {"decayed": rng.normal(size=(3, 4)), "kept": rng.normal(size=(4,))}
    params = {name: Parameter(Tensor(value.astype(np.float32)), name=name) for name, value in start.items()}
    groups = [{"params": [params["decayed"]], "weight_decay": DECAY}, {"params": [params["kept"]], "weight_decay": 0.0}]
    optimizer = MomentumSGD(groups, learning_rate=LR, momentum=MOMENTUM, use_nesterov=nesterov)
    gradients = [{name: rng.normal(size=value.shape) for name, value in start.items()} for _ in range(3)]
    for step in gradients:
        optimizer(tuple(Tensor(step[p.name].astype(np.float32)) for p in optimizer.parameters))

    moments = {m.name: m.asnumpy() for m in optimizer.moments}
    for name, decay in (("decayed", DECAY), ("kept", 0.0)):
        weight, moment = reference_steps(start[name], [g[name] for g in gradients], decay, nesterov)
        np.testing.assert_allclose(params[name].asnumpy(), weight, rtol=1e-5, atol=1e-6)
        # The moments keep nn.Momentum's names, so checkpoints read the same.
        np.testing.assert_allclose(moments[f"moments.{name}"], moment, rtol=1e-5, atol=1e-6)


def test_a_weight_decay_schedule_is_refused():
    param = Parameter(Tensor(np.zeros(2, np.float32)), name="w")
    schedule = ms.nn.ExponentialDecayLR(0.01, 0.9, 10)
    with pytest.raises(ValueError, match="fixed weight decay"):
        MomentumSGD([param], learning_rate=LR, momentum=MOMENTUM, weight_decay=schedule)
