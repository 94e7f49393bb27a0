"""Knowledge distillation (Hinton et al. 2015, as in a PyTorch RepVGG-KD): a frozen teacher's softened outputs as extra
targets for the student.

The loss is ``(1 - alpha) * CE(student, targets) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``.
CE is the soft-target cross entropy of plain training, so MixUp, CutMix and label smoothing work unchanged: the
teacher sees the same mixed images as the student. T^2 keeps the gradient of the distillation term on the scale
of the cross entropy's as T changes.
"""

import mindspore as ms
from mindspore import Tensor, nn, ops

from src.config import Config
from src.engine.train_step import SoftTargetCrossEntropy
from src.logger import get_logger
from src.models.from_checkpoint import load_network

# Teacher parameters live in the train step (and so in its checkpoints) under this prefix; the student's
# names stay unprefixed, so eval.py and export.py read a distilled student's checkpoint like any other.
TEACHER_PREFIX = "teacher."


class DistillationLoss(nn.Cell):
    """``(1 - alpha) * soft-target CE + alpha * T^2 * KL(teacher || student)`` at temperature T, in float32."""

    def __init__(self, alpha: float, temperature: float):
        super().__init__()
        self.alpha = alpha
        self.temperature = temperature
        self.cross_entropy = SoftTargetCrossEntropy()

    def construct(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> Tensor:
        student_log_probs = ops.log_softmax(student_logits.astype(ms.float32) / self.temperature, -1)
        teacher_log_probs = ops.log_softmax(teacher_logits.astype(ms.float32) / self.temperature, -1)
        kl = (ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs)).sum(-1).mean()
        soft = self.alpha * self.temperature * self.temperature * kl
        return (1.0 - self.alpha) * self.cross_entropy(student_logits, targets) + soft


def freeze(net: nn.Cell) -> nn.Cell:
    """``net`` in eval mode for good: no gradients, and BatchNorm on its moving statistics even after a parent's
    ``set_train(True)`` (TrainStep sets the whole tree to training mode each epoch)."""
    net.set_train(False)
    for param in net.get_parameters():
        param.requires_grad = False
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            cell.use_batch_statistics = False
    return net


class NetWithDistillation(nn.Cell):
    """The student's distillation loss; the teacher only runs forward. Used in place of ``NetWithLoss``."""

    def __init__(self, network: nn.Cell, teacher: nn.Cell, loss_fn: DistillationLoss):
        # No prefix for the student, as in NetWithLoss: its parameter names are the checkpoint keys.
        super().__init__(auto_prefix=False)
        self.network = network
        teacher.update_parameters_name(TEACHER_PREFIX)
        self.teacher = freeze(teacher)
        self.loss_fn = loss_fn

    def construct(self, images: Tensor, targets: Tensor) -> Tensor:
        teacher_logits = ops.stop_gradient(self.teacher(images))
        return self.loss_fn(self.network(images), teacher_logits, targets)


def build_distillation(cfg: Config, network: nn.Cell) -> NetWithDistillation:
    """The loss Cell of ``network`` (the student, AMP applied) distilled from ``cfg.teacher_ckpt``.

    The teacher runs in float32 whatever ``amp_level``: it is forward-only, and its logits are targets.
    """
    teacher, weights = load_network(cfg.teacher_ckpt, cfg.teacher_arch, cfg.num_classes)
    get_logger().info(f"knowledge distillation: teacher {cfg.teacher_arch} ({weights} from {cfg.teacher_ckpt}), "
                      f"alpha {cfg.kd_alpha:g}, temperature {cfg.kd_temperature:g}")
    return NetWithDistillation(network, teacher, DistillationLoss(cfg.kd_alpha, cfg.kd_temperature))
