"""Shared test setup. ``import src`` comes first so the CPU speed guard runs before MindSpore loads.

Helpers used across tiers, and the expensive runs shared by the system tests (session-scoped, so built only
when a test asks): one uninterrupted training run of train.py, the reference that resumed and interrupted runs
must reproduce exactly."""

# isort: off
import src  # noqa: F401  (side effect: ONEDNN_MAX_CPU_ISA guard)

# isort: on
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from src.checkpoint_files import save_checkpoint_atomic
from src.data import write_demo_imagefolder
from src.deploy.export import export_network
from src.models import create_model, get_variant, repvgg_model_convert
from src.models.variants import RepVGGVariant

ms.set_device("CPU")
ms.set_context(mode=ms.PYNATIVE_MODE)


def randomise_batchnorm(net: ms.nn.Cell, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and moderate gains, as a trained net would have.

    Gains stay in 0.2-0.5: in a deep random net larger gains amplify float rounding chaotically.
    """
    rng = np.random.default_rng(seed)
    draws = {
        "gamma": lambda shape: rng.uniform(0.2, 0.5, shape),
        "beta": lambda shape: rng.normal(0.0, 0.1, shape),
        "moving_mean": lambda shape: rng.normal(0.0, 0.1, shape),
        "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape),
    }
    for name, param in net.parameters_and_names():
        kind = name.rsplit(".", 1)[-1]
        if kind in draws:
            param.set_data(ms.Tensor(draws[kind](param.shape).astype(np.float32)))


NARROWING = 4
SE_NARROWING = 2  # the squeeze layer has a sixteenth of the channels: a quarter would leave too few


def narrowed(arch: str) -> RepVGGVariant:
    """The arch at a quarter of its width (half with SE): same depths, groups, SE and strides. For checks whose
    property does not depend on width (fusion, export), at a fraction of the cost."""
    variant = get_variant(arch)
    factor = SE_NARROWING if variant.use_se else NARROWING
    narrow = tuple(width // factor for width in variant.layout.base_widths)
    return replace(variant, layout=replace(variant.layout, base_widths=narrow))


IMAGE_FOLDER_CLASSES = ("cat", "dog", "emu")


def write_image_folder(root, train_per_class: int = 8, val_per_class: int = 4, suffix: str = ".jpg", seed: int = 0,
                       classes: tuple[str, ...] = IMAGE_FOLDER_CLASSES) -> str:
    """ImageNet-style folder of small random 64x48 JPEGs (or PNGs), each class with its own mean brightness."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label, name in enumerate(classes):
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for index in range(count):
                pixels = rng.integers(0, 160, size=(48, 64, 3)) + 40 * label
                path = os.path.join(root, split, name, f"{index}{suffix}")
                Image.fromarray(pixels.astype(np.uint8)).save(path)
    return str(root)


def truncated_jpeg(path) -> None:
    """A JPEG cut off in the middle, as an interrupted copy leaves it."""
    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Path]:
    """A demo folder, a train-form checkpoint of a random RepVGG-A0-cifar with trained-looking BatchNorm, and its
    deploy net exported to ONNX twice (dynamic batch, and a fixed batch of 4). Shared by the ONNX Runtime unit
    tests and the infer_onnx.py runs."""
    folder = tmp_path_factory.mktemp("onnx")
    data = folder / "data"
    write_demo_imagefolder(str(data), num_train_per_class=6, num_val_per_class=5)
    ms.set_seed(3)
    net = create_model("RepVGG-A0-cifar", num_classes=8)
    randomise_batchnorm(net, seed=3)
    checkpoint = save_checkpoint_atomic(net, folder / "net.ckpt")
    deploy = repvgg_model_convert(net)
    dynamic = export_network(deploy, "ONNX", folder / "dynamic", 1, 32, dynamic_batch=True)
    fixed = export_network(deploy, "ONNX", folder / "fixed", 4, 32)
    return {"data": data, "checkpoint": checkpoint, "dynamic": dynamic, "fixed": fixed, "folder": folder}


# ----- the shared training run (system tests) -----

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "src" / "configs" / "demo.yaml"
ARCH = "RepVGG-A0-cifar"
EPOCHS = 2
STEPS_PER_EPOCH = 48  # 8 classes x 24 images, batch 4: long enough for a signal to land inside an epoch


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_imagefolder(str(root), num_train_per_class=24, num_val_per_class=2)
    return root


def train_args(data: Path, out: Path, *extra: str, epochs: int = EPOCHS) -> list[str]:
    """train.py on the demo data, EMA on, no evaluation: the run the straight reference makes."""
    return [sys.executable, "train.py", "--config", str(DEMO_CONFIG), "--data_url", str(data), "--train_url",
            str(out), "--epochs", str(epochs), "--batch_size", "4", "--warmup_length", "1", "--amp_level", "O0",
            "--with_ema", "true", "--ema_decay", "0.9", "--eval_every", "0", *extra]


@pytest.fixture(scope="session")
def straight_run(demo_data, tmp_path_factory) -> Path:
    """The train_url of ``train_args`` run to the end without interruption."""
    out = tmp_path_factory.mktemp("straight")
    completed = subprocess.run(train_args(demo_data, out), cwd=REPO, capture_output=True, text=True, timeout=900,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out
