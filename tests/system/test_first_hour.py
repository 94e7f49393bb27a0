"""A newcomer's first hour, as the README tells it, with real processes: a fresh folder of images -> check_data ->
train with the small-image recipe -> predict single files with the checkpoint -> export to ONNX -> predict with
the ONNX model. The folder's class names are shown at every step and both models answer the same.

The bad inputs of that hour are tested where their code is tested: a corrupt image listed by check_data and
train.py (test_own_data.py), a recipe whose device is missing (test_recipe_devices.py), ``--resume`` with nothing
to resume (test_interruptions.py), bad predict inputs (test_predict.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import write_image_folder
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "src" / "configs" / "folder_small.yaml"
# Names a user might give, in an order that is not alphabetical, with no overlap with any built-in class list.
COLOURS = {"tomato": (220, 40, 30), "grass": (40, 180, 50), "sky": (40, 80, 220)}
CLASSES = sorted(COLOURS)  # the index order of an image folder


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, *(["-m", args[0]] if args[0].startswith("src.") else [str(REPO / args[0])]), *args[1:]]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def colour_the_images(root: Path, seed: int = 0) -> None:
    """Give each class its own hue (noisy, varying in brightness) so that a few epochs learn them apart."""
    rng = np.random.default_rng(seed)
    for path in sorted(root.glob("*/*/*.jpg")):
        base = np.array(COLOURS[path.parent.name], dtype=np.float64) * rng.uniform(0.6, 1.1)
        pixels = base + rng.normal(0, 25, size=(48, 64, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def predictions_by_image(result: subprocess.CompletedProcess, output: Path) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr[-3000:]
    return {p["image"]: p for p in json.loads(output.read_text())["predictions"]}


def test_from_a_folder_of_images_to_predictions_from_the_checkpoint_and_its_onnx_export(tmp_path):
    images = Path(write_image_folder(tmp_path / "my_images", train_per_class=12, val_per_class=3,
                                     classes=tuple(COLOURS)))
    colour_the_images(images)

    checked = run("src.tools.check_data", "--config", str(SMALL), "--data_url", str(images), "--num_classes", "3",
                  cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "train 36, val 9 readable images" in checked.stdout

    # The recipe shortened to 48 steps, its learning rate scaled down with the batch (64 -> 6). BatchNorm's running
    # statistics lag the weights of so short a run: fewer steps leave the evaluated network near chance.
    trained = run("train.py", "--config", str(SMALL), "--data_url", str(images), "--num_classes", "3",
                  "--train_url", "run", "--epochs", "8", "--warmup_length", "1", "--batch_size", "6",
                  "--base_lr", "0.02", "--eval_every", "0", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    checkpoint = tmp_path / "run" / "RepVGG-A0-cifar-epoch0008.ckpt"
    assert checkpoint.is_file(), sorted(os.listdir(tmp_path / "run"))
    assert (tmp_path / "run" / "classes.txt").read_text().split() == CLASSES

    # Single files, as a user classifies a photo: the recipe comes from the run's config.yaml beside the checkpoint.
    files = [str(path.relative_to(tmp_path)) for path in sorted(images.glob("val/*/*.jpg"))]
    from_checkpoint = run("predict.py", *files, "--pretrained", str(checkpoint), "--top_k", "3", "--output_path",
                          "ckpt.json", cwd=tmp_path)
    by_checkpoint = predictions_by_image(from_checkpoint, tmp_path / "ckpt.json")
    assert sorted(by_checkpoint) == files
    assert "warning" not in from_checkpoint.stderr
    for line, image in zip(from_checkpoint.stdout.splitlines(), files, strict=True):
        best = by_checkpoint[image]["top_k"][0]
        assert line.startswith(f"{image}: {best['name']} ")
        assert best["name"] == CLASSES[best["index"]]
    # Learnt, not guessed: most validation images land in their own folder's class (chance: 3 of 9).
    correct = sum(p["top_k"][0]["name"] == Path(image).parent.name for image, p in by_checkpoint.items())
    assert correct >= 6, {image: p["top_k"][0]["name"] for image, p in by_checkpoint.items()}

    exported = run("export.py", "--config", str(SMALL), "--num_classes", "3", "--pretrained", str(checkpoint),
                   "--file_format", "ONNX", "--file_name", "deploy/colours", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    model = tmp_path / "deploy" / "colours.onnx"
    metadata = {prop.key: prop.value for prop in onnx.load(str(model)).metadata_props}
    assert json.loads(metadata["class_names"]) == CLASSES

    # The ONNX model on its own: names and preprocessing come from the file.
    from_onnx = run("predict.py", *files, "--model", str(model), "--top_k", "3", "--output_path", "onnx.json",
                    cwd=tmp_path)
    by_onnx = predictions_by_image(from_onnx, tmp_path / "onnx.json")
    assert from_onnx.stdout.splitlines()[0].split()[:2] == from_checkpoint.stdout.splitlines()[0].split()[:2]
    for image, expected in by_checkpoint.items():
        got = by_onnx[image]["top_k"]
        assert [entry["name"] for entry in got] == [entry["name"] for entry in expected["top_k"]]
        assert [entry["probability"] for entry in got] == pytest.approx(
            [entry["probability"] for entry in expected["top_k"]], abs=1e-4)
