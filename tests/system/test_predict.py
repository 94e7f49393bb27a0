"""predict.py classifies as eval.py's network does, from a checkpoint, an ONNX or a MINDIR model, with names."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
import pytest
from conftest import write_image_folder

from src.checkpoint_files import save_checkpoint_atomic
from src.class_names import read_classes_file, sidecar_path
from src.cli import run_cli
from src.config import load_config
from src.data.folders import image_files
from src.data.transforms import preprocess_image
from src.models import create_model

REPO = Path(__file__).resolve().parents[2]
ARCH = "RepVGG-A0-cifar"
CLASSES = ["cat", "dog", "emu"]


def run_script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Images of 3 classes (64x48 JPEGs: the recipe resizes and centre-crops them to 32), a recipe, and a
    random-weight checkpoint that carries the class names. Its classifier bias is centred on these images, so
    that its answers differ from image to image (an untrained net's are dominated by one class)."""
    root = tmp_path_factory.mktemp("predict")
    write_image_folder(root / "data", train_per_class=1, val_per_class=6, classes=tuple(CLASSES))
    (root / "tiny.yaml").write_text(
        f"base: {REPO / 'src' / 'configs' / 'demo.yaml'}\narch: {ARCH}\nset: ImageNet\ndata_url: ./data\n"
        "num_classes: 3\nimage_size: 32\ncrop_pct: 0.875\nbatch_size: 8\nnum_parallel_workers: 1\n")
    ms.set_seed(1)
    net = create_model(ARCH, num_classes=len(CLASSES))
    net.set_train(False)
    cfg = load_config(root / "tiny.yaml", check_paths=False)
    images = np.stack([preprocess_image(path, cfg) for path in image_files(str(root / "data" / "val"))])
    mean_logits = net(ms.Tensor(images)).asnumpy().mean(axis=0)
    net.linear.bias.set_data(ms.Tensor(net.linear.bias.asnumpy() - mean_logits))
    save_checkpoint_atomic(net, root / "model.ckpt", class_names=CLASSES)
    return root


@pytest.fixture(scope="module")
def checkpoint_run(workspace) -> tuple[subprocess.CompletedProcess, list[dict]]:
    result = run_script("predict.py", "data/val", "--pretrained", "model.ckpt", "--config", "tiny.yaml",
                        "--top_k", "3", "--batch_size", "5", "--output_path", "out/ckpt.json", cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads((workspace / "out" / "ckpt.json").read_text())["predictions"]


def top1_names(predictions: list[dict]) -> dict[str, str]:
    return {p["image"]: p["top_k"][0]["name"] for p in predictions}


def test_checkpoint_predictions_are_what_eval_py_scores_as_correct(workspace, checkpoint_run):
    _, predictions = checkpoint_run
    assert len(predictions) == 18
    predicted = top1_names(predictions)
    assert len(set(predicted.values())) > 1  # the model does not answer one class for everything
    # eval.py scores a copy of the images filed under the predicted classes: 100% top-1 iff it predicts the same.
    relabelled = workspace / "relabelled"
    for name in CLASSES:
        (relabelled / "train" / name).mkdir(parents=True)
    for index, (image, name) in enumerate(predicted.items()):
        (relabelled / "val" / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(workspace / image, relabelled / "val" / name / f"{index}.jpg")
    evaluated = run_script("eval.py", "--config", "tiny.yaml", "--data_url", "relabelled", "--pretrained",
                           "model.ckpt", "--result_json", "out/eval.json", cwd=workspace)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads((workspace / "out" / "eval.json").read_text())
    assert metrics["images"] == 18
    assert metrics["top1"] == pytest.approx(100.0)


def test_checkpoint_predictions_show_names_and_probabilities(checkpoint_run):
    result, predictions = checkpoint_run
    lines = result.stdout.splitlines()
    assert len(lines) == len(predictions)
    for line, prediction in zip(lines, predictions, strict=True):
        ranked = prediction["top_k"]
        assert [entry["name"] for entry in ranked] == [CLASSES[entry["index"]] for entry in ranked]
        assert sum(entry["probability"] for entry in ranked) == pytest.approx(1.0, abs=1e-5)
        best = ranked[0]
        assert line.startswith(f"{prediction['image']}: {best['name']} {100 * best['probability']:.1f}%")
    assert "warning" not in result.stderr  # the folder's classes are the model's


@pytest.fixture(scope="module")
def exported(workspace) -> dict[str, Path]:
    for file_format in ("ONNX", "MINDIR"):
        result = run_script("export.py", "--config", "tiny.yaml", "--pretrained", "model.ckpt", "--file_format",
                            file_format, "--file_name", "exported/m", cwd=workspace)
        assert result.returncode == 0, result.stderr[-3000:]
    return {"onnx": workspace / "exported" / "m.onnx", "mindir": workspace / "exported" / "m.mindir"}


def test_exports_carry_the_class_names(exported):
    metadata = {p.key: p.value for p in onnx.load(str(exported["onnx"])).metadata_props}
    assert json.loads(metadata["class_names"]) == CLASSES
    assert json.loads(metadata["preprocessing"])["image_size"] == 32
    assert read_classes_file(sidecar_path(exported["mindir"])) == CLASSES


def test_onnx_and_mindir_exports_predict_what_the_checkpoint_does(workspace, exported, checkpoint_run):
    _, expected = checkpoint_run
    # ONNX without --config: the preprocessing recorded at export applies.
    from_onnx = run_script("predict.py", "data/val/*/*.jpg", "--model", str(exported["onnx"]), "--top_k", "3",
                           "--output_path", "out/onnx.csv", cwd=workspace)
    assert from_onnx.returncode == 0, from_onnx.stderr[-3000:]
    rows = list(csv.DictReader((workspace / "out" / "onnx.csv").open()))
    # Under the names other scripts use (aliases of --model and --output_path).
    from_mindir = run_script("predict.py", "data/val", "--mindir_path", str(exported["mindir"]), "--config",
                             "tiny.yaml", "--top_k", "3", "--output", "out/mindir.json", cwd=workspace)
    assert from_mindir.returncode == 0, from_mindir.stderr[-3000:]
    mindir_predictions = json.loads((workspace / "out" / "mindir.json").read_text())["predictions"]

    assert top1_names(mindir_predictions) == top1_names(expected)
    assert {row["image"]: row["top1_name"] for row in rows} == top1_names(expected)
    probabilities = {p["image"]: p["top_k"][0]["probability"] for p in expected}
    for row in rows:
        assert float(row["top1_probability"]) == pytest.approx(probabilities[row["image"]], abs=1e-4)


def test_infer_onnx_uses_the_recorded_preprocessing_and_warns_on_other_classes(workspace, exported):
    others = workspace / "others"
    for split in ("train", "val"):
        for source, name in zip(CLASSES, ("cat", "dog", "fox"), strict=True):
            shutil.copytree(workspace / "data" / split / source, others / split / name)
    result = run_script("infer_onnx.py", "--onnx_path", str(exported["onnx"]), "--dataset_path", str(others),
                        "--result_json", "out/infer.json", cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 classes: cat, dog, emu; preprocessing of the export" in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "class 2 is 'emu' against 'fox'" in warnings[0]
    assert json.loads((workspace / "out" / "infer.json").read_text())["images"] == 18


@pytest.mark.parametrize(("args", "message"), [
    (["absent.jpg", "--pretrained", "model.ckpt", "--config", "tiny.yaml"], "image not found: absent.jpg"),
    (["empty", "--pretrained", "model.ckpt", "--config", "tiny.yaml"], "no images"),
    (["nothing/*.jpg", "--pretrained", "model.ckpt", "--config", "tiny.yaml"], "no file matches nothing/*.jpg"),
    (["data/val", "--pretrained", "model.ckpt", "--config", "tiny.yaml", "--output", "r.txt"], ".csv or .json"),
    (["data/val", "--model", "model.ckpt"], "--pretrained"),
    (["data/val", "--model", "absent.onnx"], "ONNX model not found"),
    (["data/val", "--pretrained", "model.ckpt"], "--config is required"),
    (["data/val", "--pretrained", "absent.ckpt", "--config", "tiny.yaml"], "checkpoint not found: absent.ckpt"),
    (["data/val", "--model", "absent.mindir", "--config", "tiny.yaml"], "MINDIR model not found"),
])
def test_bad_input_before_the_model_loads_is_one_line_and_exit_code_2(workspace, args, message, capsys,
                                                                      monkeypatch):
    from predict import main

    (workspace / "empty").mkdir(exist_ok=True)
    monkeypatch.chdir(workspace)
    with pytest.raises(SystemExit) as stopped:
        run_cli(main, args)
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and message in error


@pytest.mark.parametrize("case", ["unreadable image", "checkpoint of another arch"])
def test_bad_input_found_by_the_model_is_one_line_and_exit_code_2(workspace, case, tmp_path):
    checkpoint, image = workspace / "model.ckpt", workspace / "data" / "val" / "cat" / "0.jpg"
    if case == "unreadable image":
        image = tmp_path / "broken.jpg"
        image.write_bytes(b"not a JPEG at all")
    else:
        checkpoint = save_checkpoint_atomic(create_model("RepVGG-B0-cifar", num_classes=3), tmp_path / "b0.ckpt")
    result = run_script("predict.py", str(image), "--pretrained", str(checkpoint), "--config", "tiny.yaml",
                        cwd=workspace)
    assert result.returncode == 2, result.stderr[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "Traceback" not in result.stderr
    assert ("unreadable image" in error) if case == "unreadable image" else ("does not fit RepVGG-A0-cifar" in error)
