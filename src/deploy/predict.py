"""What predict.py does: the top-k classes of image files, folders or globs, by a checkpoint or an exported model.

Every image goes through ``preprocess_image``, the evaluation preprocessing of eval.py. Which recipe defines it:
- a checkpoint: ``--config``, or the ``config.yaml`` its training run wrote beside it;
- an ONNX file: ``--config``, or the preprocessing recorded in its metadata at export, or (older files) the
  ImageNet preprocessing at the input size of the graph;
- a MINDIR file: ``--config``, or a ``config.yaml`` beside it.
Class names come from the model (``src.class_names``); without them labels are shown as indices.
"""

import dataclasses
import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

from src.atomic_files import check_writable_folder, write_csv_atomic, write_json_atomic
from src.checkpoint_files import read_checkpoint_class_names
from src.class_names import label_name, warn_if_classes_differ
from src.config import Config, load_config
from src.data.folders import IMAGE_EXTENSIONS, class_names, folder_class_names, image_files
from src.data.transforms import preprocess_image
from src.deploy.model_info import exported_class_names, metadata_class_names, recorded_preprocessing
from src.deploy.onnx_runtime import open_session, run_batches
from src.device import setup_device
from src.errors import UserError
from src.logger import get_logger
from src.models.from_checkpoint import load_network

RUN_CONFIG = "config.yaml"          # what a training run writes beside its checkpoints
OUTPUT_FORMATS = (".csv", ".json")
EXPORTED_SUFFIXES = (".onnx", ".mindir")
_GLOB_CHARACTERS = "*?["


@dataclass
class Classifier:
    """A model ready to classify: its preprocessing recipe, its class names, and images -> logits."""

    description: str
    cfg: Config
    class_names: list[str] | None
    logits: Callable[[np.ndarray], np.ndarray]


@dataclass
class Prediction:
    image: str
    top: list[tuple[int, float]]    # (label, probability), most probable first


def _logits_of(cell: nn.Cell) -> Callable[[np.ndarray], np.ndarray]:
    return lambda images: cell(ms.Tensor(images)).asnumpy()


def _recipe(config: str | None, model_path: Path, device_target: str) -> Config | None:
    """The recipe given with --config, else the run's config.yaml beside the model, else None."""
    path = Path(config) if config else model_path.parent / RUN_CONFIG
    if not config and not path.is_file():
        return None
    return load_config(path, {"device_target": device_target}, check_paths=False)


def open_checkpoint(path: Path, config: str | None, device_target: str) -> Classifier:
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    cfg = _recipe(config, path, device_target)
    if cfg is None:
        raise UserError(f"--config is required for {path}: the recipe it was trained with (no {RUN_CONFIG} of "
                        "a training run beside it)")
    setup_device(cfg)
    names = read_checkpoint_class_names(path)
    # A checkpoint that knows its classes knows how many: a recipe's num_classes may be another data set's.
    net, description = load_network(path, cfg.arch, len(names) if names else cfg.num_classes)
    return Classifier(f"{path} ({net.arch}, {description})", cfg, names, _logits_of(net))


def _onnx_preprocessing(session, path: Path, metadata: dict, config: str | None) -> Config:
    if config:
        return _recipe(config, path, "CPU")
    recorded = recorded_preprocessing(metadata, str(path))
    if recorded is not None:
        return dataclasses.replace(Config(), **recorded)
    side = session.get_inputs()[0].shape[-1]
    if not isinstance(side, int):
        raise UserError(f"{path} records no preprocessing and has no fixed input size: give --config, the recipe "
                        "it was exported with")
    get_logger().info(f"{path} records no preprocessing: using the ImageNet one at {side}x{side} "
                      "(give --config for the recipe's)")
    return dataclasses.replace(Config(), image_size=side)  # the built-in defaults are ImageNet's


def open_onnx(path: Path, config: str | None, device_target: str) -> Classifier:
    session = open_session(path, device_target)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    cfg = _onnx_preprocessing(session, path, metadata, config)
    side = session.get_inputs()[0].shape[-1]
    if isinstance(side, int) and side != cfg.image_size:
        raise UserError(f"{path} takes {side}x{side} images but the recipe's preprocessing makes "
                        f"{cfg.image_size}x{cfg.image_size}: use the recipe the model was exported with")
    return Classifier(f"{path} (ONNX Runtime)", cfg, metadata_class_names(metadata, str(path)),
                      lambda images: run_batches(session, images)[0])


def open_mindir(path: Path, config: str | None, device_target: str) -> Classifier:
    if not path.is_file():
        raise UserError(f"MINDIR model not found: {path}")
    cfg = _recipe(config, path, device_target)
    if cfg is None:
        raise UserError(f"--config is required for {path}: the recipe it was exported with")
    setup_device(cfg)
    try:
        graph = nn.GraphCell(ms.load(str(path)))
    except (RuntimeError, ValueError) as error:
        raise UserError(f"cannot load {path} as a MINDIR model: {str(error).splitlines()[0]}") from error
    return Classifier(f"{path} (MindSpore MINDIR)", cfg, exported_class_names(path), _logits_of(graph))


def open_classifier(checkpoint: str | None, model: str | None, config: str | None, device_target: str
                    ) -> Classifier:
    if (checkpoint is None) == (model is None):
        raise UserError("give either --pretrained CKPT (a checkpoint) or --model FILE (an exported .onnx/.mindir)")
    if checkpoint is not None:
        return open_checkpoint(Path(checkpoint), config, device_target)
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix not in EXPORTED_SUFFIXES:
        raise UserError(f"--model takes an exported {' or '.join(EXPORTED_SUFFIXES)} file, got {path.name} "
                        "(a checkpoint goes with --pretrained)")
    if suffix == ".onnx":
        return open_onnx(path, config, "GPU" if device_target == "GPU" else "CPU")
    return open_mindir(path, config, device_target)


def collect_images(inputs: Sequence[str]) -> tuple[list[str], list[str]]:
    """The image files that ``inputs`` (files, folders, globs) name, in order, and the folders among them."""
    images, folders = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = list(image_files(item))
            if not found:
                raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder {item}")
            images += found
            folders.append(item)
        elif os.path.exists(item):
            images.append(item)
        elif any(character in item for character in _GLOB_CHARACTERS):
            matches = sorted(path for path in glob.glob(item, recursive=True) if os.path.isfile(path))
            if not matches:
                raise UserError(f"no file matches {item}")
            images += matches
        else:
            raise UserError(f"image not found: {item}")
    return images, folders


def _folder_classes(folder: str) -> list[str]:
    """The classes a folder is labelled with: its sub-folders, or those of train/ in a train/ + val/ data set."""
    subfolders = class_names(folder)
    if subfolders and set(subfolders) <= {"train", "val"}:
        return folder_class_names(folder)
    return subfolders


def warn_on_other_classes(model_names: list[str] | None, folders: Sequence[str]) -> None:
    """One line per folder whose class sub-folders are not the model's classes."""
    for folder in folders:
        warn_if_classes_differ(model_names, _folder_classes(folder), f"the class folders of {folder}")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def predict(classifier: Classifier, images: Sequence[str], top_k: int, batch_size: int) -> list[Prediction]:
    predictions = []
    for start in range(0, len(images), batch_size):
        paths = images[start:start + batch_size]
        batch = np.stack([preprocess_image(path, classifier.cfg) for path in paths])
        probabilities = softmax(classifier.logits(batch))
        k = min(top_k, probabilities.shape[1])
        for path, row in zip(paths, probabilities, strict=True):
            order = np.argsort(-row, kind="stable")[:k]
            predictions.append(Prediction(path, [(int(label), float(row[label])) for label in order]))
    return predictions


def format_prediction(prediction: Prediction, names: list[str] | None) -> str:
    ranked = ", ".join(f"{label_name(names, label)} {100 * p:.1f}%" for label, p in prediction.top)
    return f"{prediction.image}: {ranked}"


def _csv_rows(predictions: list[Prediction], names: list[str] | None) -> tuple[list[str], list[dict]]:
    ranks = range(1, max(len(p.top) for p in predictions) + 1)
    columns = ["image"] + [f"top{r}_{field}" for r in ranks for field in ("index", "name", "probability")]
    rows = []
    for prediction in predictions:
        row = {"image": prediction.image}
        for rank, (label, probability) in enumerate(prediction.top, start=1):
            row |= {f"top{rank}_index": label, f"top{rank}_name": label_name(names, label),
                    f"top{rank}_probability": f"{probability:.6f}"}
        rows.append(row)
    return columns, rows


def _json_record(predictions: list[Prediction], names: list[str] | None, model: str) -> dict:
    return {"model": model, "predictions": [
        {"image": p.image, "top_k": [{"index": label, "name": label_name(names, label), "probability": prob}
                                     for label, prob in p.top]} for p in predictions]}


def check_output_path(output: str | None) -> None:
    if output is None:
        return
    if Path(output).suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(f"--output_path must end in {' or '.join(OUTPUT_FORMATS)}, got {output}")
    check_writable_folder(Path(output).resolve().parent)


def write_predictions(output: str, predictions: list[Prediction], names: list[str] | None, model: str) -> Path:
    what = f"predictions to {output}"
    if output.lower().endswith(".csv"):
        return write_csv_atomic(output, *_csv_rows(predictions, names), what=what)
    return write_json_atomic(output, _json_record(predictions, names, model), what=what)


def run_prediction(inputs: Sequence[str], checkpoint: str | None, model: str | None, config: str | None,
                   top_k: int = 5, batch_size: int = 32, output: str | None = None, device_target: str = "CPU"
                   ) -> list[Prediction]:
    if top_k < 1 or batch_size < 1:
        raise UserError(f"--top_k and --batch_size must be at least 1, got {top_k} and {batch_size}")
    check_output_path(output)
    images, folders = collect_images(inputs)  # bad paths fail before the model is loaded
    classifier = open_classifier(checkpoint, model, config, device_target)
    names = classifier.class_names
    if names is None:
        get_logger().info(f"{classifier.description} carries no class names: labels are shown as indices")
    warn_on_other_classes(names, folders)
    get_logger().info(f"classifying {len(images)} image(s) with {classifier.description}")
    predictions = predict(classifier, images, top_k, batch_size)
    for prediction in predictions:
        print(format_prediction(prediction, names))
    if output:
        written = write_predictions(output, predictions, names, checkpoint or model)
        get_logger().info(f"predictions written to {written}")
    return predictions

