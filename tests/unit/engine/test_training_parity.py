"""Training steps equal PyTorch's, step for step: weights, BatchNorm running statistics and EMA weights.

The MindSpore side is the project's own machinery -- ``RepVGG`` with weights copied from the PyTorch reference
(``tests/torch_reference.py``) by ``load_pytorch_weights``, ``build_lr_schedule``, ``build_optimizer``,
``TrainStep`` with ``SoftTargetCrossEntropy``, label-smoothed targets from the data pipeline's ``OneHot`` and
the ``BatchMix`` mixer -- compiled in graph mode as ``train.py`` runs it. The PyTorch side is written from
PyTorch's own definitions: ``torch.optim.SGD(nesterov=True)`` / ``torch.optim.AdamW`` with weight decay only
on convolution and linear weights, ``CrossEntropyLoss(label_smoothing=...)`` on hard labels,
``clip_grad_norm_``, ``LinearLR`` warm-up followed by ``CosineAnnealingLR`` stepped every step, and an EMA of
the whole state (parameters and BatchNorm buffers) as timm's ``ModelEmaV2``.

BatchNorm needs no adjustment: MindSpore's momentum is the weight of the old running value, PyTorch's the weight
of the new batch, so MindSpore's default 0.9 is PyTorch's default 0.1; and both keep the unbiased batch variance
(divided by n - 1) in the running variance, as the running statistics compared here show.

Two MindSpore operators differed by definition and are replaced in ``src/engine``: the CPU ``ApplyMomentum``
ignores ``use_nesterov`` (``MomentumSGD``), and ``nn.AdamWeightDecay`` has no bias correction (``AdamW``).
"""

import mindspore as ms
import numpy as np
import pytest
import torch
from mindspore import Tensor
from mindspore.dataset import transforms
from torch import nn as tnn
from torch_reference import TorchRepVGG, numpy_state

from benchmarks import torch_training, training_parity
from src.cli import run_cli
from src.config import Config
from src.data.mix import batch_mix
from src.engine.lr_schedule import build_lr_schedule
from src.engine.optimizer import build_optimizer
from src.engine.train_step import EMA_PREFIX, NetWithLoss, SoftTargetCrossEntropy, TrainStep, make_loss_scaler
from src.errors import UserError
from src.models.repvgg import RepVGG
from src.models.variants import CIFAR_LAYOUT, RepVGGVariant
from src.models.weight_import import load_pytorch_weights

# A narrow RepVGG-A0-cifar-like net: stride-1 stem, identity branches in the two-block stages.
VARIANT = RepVGGVariant((2, 2, 1, 1), (0.25, 0.25, 0.25, 0.25), layout=CIFAR_LAYOUT)
CLASSES, BATCH, SIZE = 5, 8, 12
STEPS_PER_EPOCH, EPOCHS = 5, 4          # 1 warm-up epoch, then cosine: 10 steps cover both
TOLERANCE = 1e-5                        # largest difference relative to the tensor's largest magnitude
# Adam divides each gradient element by its own running RMS, so float32 rounding of small gradients reaches the
# weights at full step size: PyTorch's own float32 run of this AdamW recipe differs from its float64 run by 5e-6
# (relative, stage4.0.rbr_dense.conv.weight) after 2 steps. After 10 AdamW steps the bound is therefore 3e-5;
# after 1 step, and for momentum SGD throughout, it is 1e-5.
ADAMW_TEN_STEP_TOLERANCE = 3e-5
_BN_LEAVES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def recipe(**overrides) -> Config:
    base = dict(num_classes=CLASSES, image_size=SIZE, optimizer="momentum", nesterov=True, momentum=0.9,
                base_lr=0.2, warmup_lr=0.01, warmup_length=1, min_lr=0.001, lr_scheduler="cosine_lr",
                weight_decay=5e-4, label_smoothing=0.1, clip_global_norm_value=2.0, epochs=EPOCHS,
                batch_size=BATCH, with_ema=True, ema_decay=0.8, amp_level="O0")
    return Config(**{**base, **overrides})


def fixed_batches(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [(rng.normal(size=(BATCH, 3, SIZE, SIZE)).astype(np.float32), rng.integers(0, CLASSES, BATCH))
            for _ in range(count)]


def smoothed_targets(labels: np.ndarray, smoothing: float) -> np.ndarray:
    """Soft targets as the training pipeline makes them (``src.data.datasets``: OneHot with smoothing)."""
    one_hot = transforms.OneHot(CLASSES, smoothing_rate=smoothing)
    return np.stack([one_hot(np.int32(label)) for label in labels]).astype(np.float32)


def torch_name(ms_name: str) -> str:
    prefix, leaf = ms_name.rsplit(".", 1)
    return f"{prefix}.{_BN_LEAVES.get(leaf, leaf)}"


class TorchRun:
    """The PyTorch reference of the recipe."""

    def __init__(self, cfg: Config):
        torch.manual_seed(0)
        self.cfg = cfg
        self.model = TorchRepVGG(VARIANT, CLASSES).train()
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(groups, lr=cfg.base_lr, betas=cfg.beta, eps=cfg.eps)
        else:
            self.optimizer = torch.optim.SGD(groups, lr=cfg.base_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        warmup = cfg.warmup_length * STEPS_PER_EPOCH
        self.schedule = torch.optim.lr_scheduler.SequentialLR(self.optimizer, [
            torch.optim.lr_scheduler.LinearLR(self.optimizer, cfg.warmup_lr / cfg.base_lr, 1.0, warmup),
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, EPOCHS * STEPS_PER_EPOCH - warmup,
                                                       cfg.min_lr)], milestones=[warmup])
        self.loss_fn = tnn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()}
        self.clipped_steps = 0
        self.learning_rates = []

    def step(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.learning_rates.append(self.optimizer.param_groups[0]["lr"])
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(torch.from_numpy(images)), torch.from_numpy(labels).long())
        loss.backward()
        if self.cfg.clip_global_norm_value > 0:
            norm = tnn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_global_norm_value)
            self.clipped_steps += int(norm > self.cfg.clip_global_norm_value)
        self.optimizer.step()
        self.schedule.step()
        with torch.no_grad():
            state = self.model.state_dict()
            for name, average in self.ema.items():
                average.mul_(self.cfg.ema_decay).add_(state[name], alpha=1 - self.cfg.ema_decay)


def project_run(cfg: Config, model: tnn.Module) -> tuple[RepVGG, TrainStep, np.ndarray]:
    net = RepVGG(VARIANT, num_classes=CLASSES)
    load_pytorch_weights(net, numpy_state(model))
    lr = build_lr_schedule(cfg, STEPS_PER_EPOCH)
    optimizer = build_optimizer(cfg, net.trainable_params(), lr)
    step = TrainStep(NetWithLoss(net, SoftTargetCrossEntropy()), optimizer, make_loss_scaler(False, 1.0),
                     cfg.clip_global_norm_value, ema_source=net.get_parameters(), ema_decay=cfg.ema_decay)
    return net, step, lr


def relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def mismatches(net: RepVGG, step: TrainStep, reference: TorchRun, tolerance: float = TOLERANCE) -> dict[str, float]:
    torch_state = {k: v.numpy() for k, v in reference.model.state_dict().items()}
    torch_ema = {k: v.numpy() for k, v in reference.ema.items()}
    found = {}
    for param in net.get_parameters():
        found[param.name] = relative_difference(param.asnumpy(), torch_state[torch_name(param.name)])
    for param in step.ema:
        name = param.name.removeprefix(EMA_PREFIX)
        found[param.name] = relative_difference(param.asnumpy(), torch_ema[torch_name(name)])
    assert len(found) == 2 * len(torch_ema)
    return {name: diff for name, diff in found.items() if diff > tolerance}


@pytest.fixture
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.mark.parametrize("optimizer", ["momentum", "adamw"])
def test_ten_steps_equal_pytorch_in_every_weight_statistic_and_ema_weight(graph_mode, optimizer):
    cfg = recipe(optimizer=optimizer, **({"base_lr": 0.01, "warmup_lr": 0.001, "weight_decay": 0.05}
                                          if optimizer == "adamw" else {}))
    reference = TorchRun(cfg)
    net, step, lr = project_run(cfg, reference.model)
    for index, (images, labels) in enumerate(fixed_batches(10)):
        step(Tensor(images), Tensor(smoothed_targets(labels, cfg.label_smoothing)))
        reference.step(images, labels)
        if index == 0:
            assert mismatches(net, step, reference) == {}, "after 1 step"
    tolerance = ADAMW_TEN_STEP_TOLERANCE if optimizer == "adamw" else TOLERANCE
    assert mismatches(net, step, reference, tolerance) == {}, "after 10 steps"
    np.testing.assert_allclose(lr[:10], reference.learning_rates, rtol=1e-6)
    assert reference.clipped_steps > 0, "the clip threshold should bite at least once"


# ----- MixUp / CutMix: the targets PyTorch's (timm's) formula gives for the draw the operator made -----

MIX_BATCH, MIX_SIZE = 6, 8


def mixed_batch(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images out, targets out, targets in) of the project's batch mixer on a batch whose image i is filled
    with the value i + 1, so each output pixel tells which input image it came from and in what share."""
    images = np.stack([np.full((3, MIX_SIZE, MIX_SIZE), i + 1.0, np.float32) for i in range(MIX_BATCH)])
    targets = smoothed_targets(np.arange(MIX_BATCH) % CLASSES, cfg.label_smoothing)
    mixer = batch_mix(cfg)
    out_images, out_targets = mixer(images, targets.copy())
    return np.asarray(out_images), np.asarray(out_targets), targets


def test_mixup_targets_follow_the_images_mixing_draw():
    cfg = recipe(mix_up=0.8, cutmix=0.0, mixup_prob=1.0)
    images, targets, original = mixed_batch(cfg)
    assert not np.allclose(images.mean(axis=(1, 2, 3)), np.arange(1, MIX_BATCH + 1))   # something was mixed
    for i in range(MIX_BATCH):
        value = float(images[i].mean())
        assert np.allclose(images[i], value)                 # one blend per image: lam * x_i + (1 - lam) * x_j
        # Recover the draw: lam and the partner j solve value = lam * (i + 1) + (1 - lam) * (j + 1).
        candidates = [(j, (value - (j + 1)) / (i - j)) for j in range(MIX_BATCH) if j != i]
        candidates = [(j, lam) for j, lam in candidates if 0.0 <= lam <= 1.0]
        if np.isclose(value, i + 1):                        # paired with itself, or lam = 1
            expected = original[i]
        else:
            expected = None
            for j, lam in candidates:
                # timm / PyTorch: lam * y_i + (1 - lam) * y_j
                mixed = lam * original[i] + (1 - lam) * original[j]
                if np.allclose(targets[i], mixed, atol=1e-5):
                    expected = mixed
            assert expected is not None, f"image {i}: no MixUp draw explains its target"
        np.testing.assert_allclose(targets[i], expected, atol=1e-5)


def test_cutmix_targets_follow_the_pasted_area():
    cfg = recipe(mix_up=0.0, cutmix=1.0, mixup_prob=1.0)
    images, targets, original = mixed_batch(cfg)
    pasted_somewhere = False
    for i in range(MIX_BATCH):
        sources = np.rint(images[i, 0]).astype(int) - 1
        shares = np.bincount(sources.ravel(), minlength=MIX_BATCH) / sources.size
        # timm's "correct_lam": each source image's share of the target is its share of the pixels.
        expected = shares @ original
        np.testing.assert_allclose(targets[i], expected, atol=1e-5)
        pasted_somewhere |= shares[i] < 1.0
    assert pasted_somewhere


# ----- benchmarks.training_parity: the PyTorch reference run trains the recipe it is compared with -----

def test_reference_run_schedule_equals_the_project_schedule():
    cfg = recipe(epochs=3, warmup_length=1)
    reference = torch_training.learning_rates(training_parity.torch_recipe(cfg), STEPS_PER_EPOCH)
    np.testing.assert_allclose(build_lr_schedule(cfg, STEPS_PER_EPOCH), reference, rtol=1e-6)


def test_benchmark_refuses_a_recipe_the_reference_does_not_train(capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli(training_parity.main, ["--config", "src/configs/demo.yaml", "--seeds", "0"])
    assert stopped.value.code == 2 and capsys.readouterr().err.startswith("error: --seeds")
    with pytest.raises(UserError, match="mix_up"):
        training_parity.check_reference_recipe(recipe(mix_up=0.8))
