"""Training configuration: one dataclass of every key, loaded from YAML (ModelZoo key names)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    # ===== Architecture ===== #
    arch: str = "RepVGG-A0"
    num_classes: int = 1000
    image_size: int = 224
    # ===== Data set ===== #
    data_url: str = "./dataset"             # ImageNet: folder with train/ and val/; CIFAR100: binary folder
    set: str = "ImageNet"                   # ImageNet | CIFAR100 | demo
    crop_pct: float = 0.875                 # eval: resize to image_size / crop_pct, then centre crop
    interpolation: str = "bicubic"          # bilinear | bicubic | nearest | area
    auto_augment: str | None = None         # None | "rand-m9-n2-mstd0.5" style RandAugment | "autoaug"
    re_prob: float = 0.0                    # RandomErasing probability
    re_mode: str = "pixel"                  # const | rand | pixel
    re_count: int = 1
    mix_up: float = 0.0                     # MixUp alpha (0: off)
    cutmix: float = 0.0                     # CutMix alpha (0: off)
    mixup_prob: float = 1.0                 # probability of applying MixUp/CutMix to a batch
    switch_prob: float = 0.5                # probability of CutMix instead of MixUp when both are on
    mixup_mode: str = "batch"
    label_smoothing: float = 0.1
    num_parallel_workers: int = 8
    # ===== Optimiser and learning rate ===== #
    optimizer: str = "momentum"             # momentum | adamw
    base_lr: float = 0.1
    warmup_lr: float = 7e-8
    min_lr: float = 0.0
    lr_scheduler: str = "cosine_lr"         # cosine_lr | step_lr | constant_lr
    lr_adjust: int = 30                     # step_lr: epochs between decays
    lr_gamma: float = 0.1                   # step_lr: decay factor
    warmup_length: int = 0                  # warm-up epochs
    momentum: float = 0.9
    nesterov: bool = False
    beta: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    # ===== Network training ===== #
    amp_level: str = "O1"                   # O0 | O1 | O2 | O3
    is_dynamic_loss_scale: bool = True
    loss_scale: float = 1024.0
    clip_global_norm_value: float = 5.0     # 0: no clipping
    epochs: int = 120
    batch_size: int = 64                    # per device
    with_ema: bool = False
    ema_decay: float = 0.9999
    seed: int = 0
    # ===== Checkpoints, logs, evaluation ===== #
    train_url: str = "./output"             # checkpoints, CSV log, curves
    keep_checkpoint_max: int = 5
    eval_every: int = 1                     # evaluate on val every N epochs (0: only at the end)
    pretrained: str | None = None
    # ===== Hardware ===== #
    device_target: str = "CPU"              # CPU | GPU | Ascend
    device_id: int = 0
