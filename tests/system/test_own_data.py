"""A user's own folder of images: the data check lists every bad file and empty class at once (the tool and
train.py), training refuses with that list or leaves the bad files out when told to, the random-resized crop
takes scale/ratio, and the small-image and fine-tuning recipes train. Real folders, real processes."""

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import truncated_jpeg, write_image_folder

from src.checkpoint_files import save_checkpoint_atomic
from src.config import Config, load_config
from src.data.image_check import check_image_folder
from src.data.transforms import train_transforms
from src.errors import UserError
from src.models import create_model

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "src" / "configs"
SMALL = CONFIGS / "folder_small.yaml"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, *(["-m", args[0]] if args[0].startswith("src.") else [str(REPO / args[0])]), *args[1:]]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture
def folder_with_bad_files(tmp_path) -> tuple[Path, list[Path]]:
    """Three classes of 4 good training images each, plus four bad files in two classes and in val/."""
    root = Path(write_image_folder(tmp_path / "images", train_per_class=4, val_per_class=2))
    bad = [root / "train" / "cat" / "cut.jpg", root / "train" / "dog" / "cut.jpg", root / "train" / "dog" / "empty.jpg",
           root / "val" / "emu" / "notes.png"]
    truncated_jpeg(bad[0])
    truncated_jpeg(bad[1])
    bad[2].write_bytes(b"")
    bad[3].write_text("not an image")
    return root, bad


def small_recipe_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train.py", "--config", str(SMALL), "--data_url", str(data), "--train_url", str(out), "--num_classes",
            "3", "--epochs", "1", "--warmup_length", "0", "--batch_size", "4", *extra]


def test_check_lists_every_bad_file_and_empty_class_at_once(folder_with_bad_files):
    root, bad = folder_with_bad_files
    (root / "train" / "fox").mkdir()
    (root / "val" / "fox").mkdir()
    report = check_image_folder(str(root), workers=2)
    assert sorted(path for path, _ in report.bad_files) == sorted(str(path.resolve()) for path in bad)
    assert dict(report.bad_files)[str(bad[2].resolve())] == "empty file"
    assert sorted(report.empty_classes) == sorted(str((root / split / "fox").resolve()) for split in ("train", "val"))
    assert report.images == {"train": 12, "val": 6}


def test_check_data_tool_refuses_with_the_whole_list_and_accepts_what_skip_bad_images_leaves_out(
        folder_with_bad_files, tmp_path):
    root, bad = folder_with_bad_files
    result = run("src.tools.check_data", "--config", str(SMALL), "--data_url", str(root), "--num_classes", "3",
                 cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "has 4 unreadable or empty file(s) (listed above); remove or replace them, or set skip_bad_images: " \
           "true" in result.stderr
    for path in bad:
        assert f"{path.resolve()}: " in result.stdout

    result = run("src.tools.check_data", "--config", str(SMALL), "--data_url", str(root), "--num_classes", "3",
                 "--skip_bad_images", "true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train 12, val 6 readable images" in result.stdout
    assert all(str(path.resolve()) in result.stdout for path in bad)


def test_an_empty_class_is_refused_even_when_bad_files_may_be_skipped(folder_with_bad_files, tmp_path):
    root, _ = folder_with_bad_files
    (root / "train" / "fox").mkdir()
    result = run("src.tools.check_data", "--config", str(SMALL), "--data_url", str(root), "--num_classes", "4",
                 "--skip_bad_images", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{(root / 'train' / 'fox').resolve()}/: no readable images" in result.stdout
    assert "remove the folder or add images" in result.stderr


def test_training_refuses_listing_every_bad_file_before_creating_train_url(folder_with_bad_files, tmp_path):
    root, bad = folder_with_bad_files
    result = run(*small_recipe_args(root, tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "has 4 unreadable or empty file(s): " in line
    assert all(f"{path.resolve()} (" in line for path in bad)
    assert not (tmp_path / "run").exists()


def test_training_with_skip_bad_images_leaves_them_out_and_trains(folder_with_bad_files, tmp_path):
    """The pipeline stops at the first bad file it meets: the run gets through only without all of them."""
    root, _ = folder_with_bad_files
    result = run(*small_recipe_args(root, tmp_path / "run", "--skip_bad_images", "true"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skip_bad_images: training without 4 unreadable or empty file(s)" in result.stderr
    assert (tmp_path / "run" / "RepVGG-A0-cifar-epoch0001.ckpt").is_file()
    assert "epoch 1/1: loss" in result.stderr and "val top-1" in result.stderr


def two_tone_image() -> np.ndarray:
    """A square image, black on the left half and white on the right: a crop's mean shows how much it took."""
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, 32:] = 255
    return pixels


def crop_means(cfg: Config, draws: int = 40) -> np.ndarray:
    to_pil, crop = train_transforms(cfg)[:2]  # the random-resized crop runs on a PIL image
    image = to_pil(two_tone_image())
    return np.array([np.asarray(crop(image)).mean() for _ in range(draws)])


def test_scale_and_ratio_set_the_random_resized_crop():
    cfg = Config(set="ImageNet", image_size=32)
    whole = crop_means(replace(cfg, scale=(1.0, 1.0), ratio=(1.0, 1.0)))
    assert np.abs(whole - 127.5).max() < 4  # always the whole image
    default = crop_means(cfg)
    assert np.abs(default - 127.5).max() > 60  # small crops often fall within one half


def test_scale_and_ratio_are_checked_with_the_config(tmp_path):
    for key, value, message in (("scale", [0.9, 0.2], "low <= high"), ("scale", [0.5, 1.5], "must be in (0, 1]"),
                                ("ratio", [0, 1], "must be > 0")):
        with pytest.raises(UserError, match=re.escape(message)):
            load_config(SMALL, {key: value}, check_paths=False)
    with pytest.raises(UserError, match=r"skip_bad_images.*check_images"):
        load_config(SMALL, {"skip_bad_images": True, "check_images": False}, check_paths=False)


def test_finetune_recipe_starts_from_an_imported_1000_class_model(tmp_path):
    root = write_image_folder(tmp_path / "images", train_per_class=4, val_per_class=2)
    imported = save_checkpoint_atomic(create_model("RepVGG-A0", num_classes=1000), tmp_path / "a0.ckpt")
    # The recipe as given, at 32 px and one epoch to keep the test short.
    result = run("train.py", "--config", str(CONFIGS / "finetune.yaml"), "--data_url", root, "--num_classes", "3",
                 "--pretrained", str(imported), "--train_url", str(tmp_path / "run"), "--image_size", "32",
                 "--epochs", "1", "--batch_size", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "classifier skipped" in result.stderr
    assert (tmp_path / "run" / "RepVGG-A0-epoch0001.ckpt").is_file()
