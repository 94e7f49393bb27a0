"""Knowledge distillation: the loss is Hinton's formula, the teacher stays frozen (train.py distilling end to end:
tests/system/test_distillation_run.py)."""

from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from src.checkpoint_files import save_checkpoint_atomic
from src.config import load_config
from src.engine.amp import apply_amp
from src.engine.distillation import TEACHER_PREFIX, DistillationLoss, NetWithDistillation, build_distillation
from src.engine.train_step import TrainStep, make_loss_scaler
from src.errors import UserError
from src.models import create_model

REPO = Path(__file__).resolve().parents[3]
KD_CONFIG = REPO / "src" / "configs" / "demo_kd.yaml"
DEMO_CLASSES = 8


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@pytest.mark.parametrize("alpha, temperature", [(0.0, 4.0), (1.0, 4.0), (0.5, 1.0), (0.3, 2.5), (0.9, 8.0)])
def test_distillation_loss_equals_the_formula(alpha, temperature):
    rng = np.random.default_rng(0)
    student = rng.normal(0, 3, (5, 7)).astype(np.float32)
    teacher = rng.normal(0, 3, (5, 7)).astype(np.float32)
    targets = rng.dirichlet(np.ones(7), 5).astype(np.float32)  # mixed / smoothed rows, not one-hot
    s, t = student.astype(np.float64), teacher.astype(np.float64)
    cross_entropy = -(targets * log_softmax(s)).sum(-1).mean()
    log_p_teacher, log_p_student = log_softmax(t / temperature), log_softmax(s / temperature)
    kl = (np.exp(log_p_teacher) * (log_p_teacher - log_p_student)).sum(-1).mean()
    expected = (1 - alpha) * cross_entropy + alpha * temperature ** 2 * kl
    actual = DistillationLoss(alpha, temperature)(ms.Tensor(student), ms.Tensor(teacher), ms.Tensor(targets))
    assert actual.dtype == ms.float32
    assert float(actual.asnumpy()) == pytest.approx(expected, rel=1e-5)


def test_distillation_loss_is_float32_for_float16_logits():
    logits = ms.Tensor(np.array([[1.0, 2.0, 3.0]], np.float16))
    targets = ms.Tensor(np.array([[0.0, 0.0, 1.0]], np.float32))
    assert DistillationLoss(0.5, 4.0)(logits, logits, targets).dtype == ms.float32


def conv_net(seed: int, width: int) -> nn.Cell:
    """A small classifier with BatchNorm, whose moving statistics would move if it were trained."""
    ms.set_seed(seed)
    return nn.SequentialCell([nn.Conv2d(3, width, 3), nn.BatchNorm2d(width), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dense(width, 4)])


def distillation_step(alpha: float = 0.5, amp_level: str = "O0") -> tuple[TrainStep, nn.Cell, nn.Cell]:
    student, teacher = conv_net(0, 8), conv_net(1, 16)
    optimizer = nn.Momentum(student.trainable_params(), learning_rate=0.1, momentum=0.9, weight_decay=1e-4)
    net_with_loss = NetWithDistillation(apply_amp(student, amp_level), teacher, DistillationLoss(alpha, 4.0))
    return TrainStep(net_with_loss, optimizer, make_loss_scaler(False, 1.0), 5.0), student, teacher


def batch(seed: int) -> tuple[ms.Tensor, ms.Tensor]:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(8, 3, 12, 12)).astype(np.float32)
    return ms.Tensor(images), ms.Tensor(np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)])


def state_of(net: nn.Cell) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


@pytest.mark.parametrize("amp_level", ["O0", "O1"])
def test_teacher_stays_bit_for_bit_while_the_student_trains_in_graph_mode(amp_level):
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        step, student, teacher = distillation_step(amp_level=amp_level)
        teacher_before, student_before = state_of(teacher), state_of(student)
        for seed in range(3):
            # Each epoch the trainer puts the whole step (teacher included) back into training mode.
            step.set_train(True)
            loss, finite = step(*batch(seed))
            assert bool(finite.asnumpy()) and np.isfinite(loss.asnumpy())
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    for name, value in state_of(teacher).items():
        np.testing.assert_array_equal(value, teacher_before[name], err_msg=name)  # BN statistics included
    student_after = state_of(student)
    for name in ("0.weight", "5.weight"):
        assert not np.array_equal(student_after[name], student_before[name]), name


def test_teacher_is_outside_the_optimiser_and_gets_no_gradient():
    step, student, teacher = distillation_step(alpha=1.0)
    teacher_names = {p.name for p in teacher.get_parameters()}
    assert all(name.startswith(TEACHER_PREFIX) for name in teacher_names)
    assert {p.name for p in student.get_parameters()}.isdisjoint(teacher_names)  # student keeps its own names
    assert {p.name for p in step.weights}.isdisjoint(teacher_names)
    assert not any(p.requires_grad for p in teacher.get_parameters())
    # requires_grad=False alone zeroes these gradients; with it switched back on, the stop_gradient on the
    # teacher's output must still cut every path into the teacher.
    teacher_weights = ms.ParameterTuple(list(teacher.get_parameters()))
    for param in teacher_weights:
        param.requires_grad = True
    grads = ms.grad(step.net_with_loss, grad_position=None, weights=teacher_weights)(*batch(0))
    assert len(grads) == len(teacher_weights)
    for grad in grads:
        assert not np.any(grad.asnumpy())


@pytest.mark.parametrize("deploy", [False, True], ids=["train-form", "deploy-form"])
def test_teacher_loads_from_either_form_with_the_students_classes(tmp_path, deploy):
    path = save_checkpoint_atomic(create_model("RepVGG-A0-cifar", num_classes=4, deploy=deploy), tmp_path / "t.ckpt")
    cfg = load_config(KD_CONFIG, {"num_classes": 4, "teacher_arch": "repvgg_a0_cifar", "teacher_ckpt": str(path)})
    net_with_loss = build_distillation(cfg, conv_net(0, 8))
    images = ms.Tensor(np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32))
    loss = net_with_loss(images, ms.Tensor(np.eye(4, dtype=np.float32)[[0, 3]]))
    assert np.isfinite(loss.asnumpy())
    wrong_classes = load_config(KD_CONFIG, {"num_classes": 5, "teacher_arch": "RepVGG-A0-cifar",
                                            "teacher_ckpt": str(path)})
    with pytest.raises(UserError, match="5 classes"):
        build_distillation(wrong_classes, conv_net(0, 8))


def config_error(overrides: dict) -> str:
    with pytest.raises(UserError) as error:
        load_config(KD_CONFIG, {"teacher_ckpt": None, **overrides}, check_paths=True)
    return str(error.value)


def test_config_refuses_distillation_without_a_teacher():
    message = config_error({"kd_alpha": 0.5, "teacher_arch": None})
    assert "--kd_alpha" in message and "'teacher_arch' and 'teacher_ckpt'" in message
    assert "'teacher_ckpt'" in config_error({"kd_alpha": 0.5})
    assert load_config(KD_CONFIG, {"kd_alpha": 0, "teacher_ckpt": None}).teacher_ckpt is None  # off: no teacher


@pytest.mark.parametrize("key, value, reason", [
    ("kd_alpha", -0.1, "in [0, 1]"), ("kd_alpha", 1.5, "in [0, 1]"), ("kd_temperature", 0, "> 0"),
    ("teacher_arch", "RepVGG-Z9", "unknown arch"),
])
def test_config_refuses_out_of_range_distillation_values(key, value, reason):
    message = config_error({key: value})
    assert f"--{key}" in message and reason in message


def test_config_refuses_a_missing_teacher_checkpoint(tmp_path):
    message = config_error({"teacher_ckpt": str(tmp_path / "missing.ckpt")})
    assert "--teacher_ckpt" in message and "an existing checkpoint file" in message
