"""Evaluate an ONNX model with ONNX Runtime on the validation set, preprocessed exactly as eval.py does."""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from src.config import Config
from src.data import create_dataset, data_folder, iterate_checked
from src.errors import UserError
from src.metrics import AccuracyCounter, EvalResult

PROVIDERS = {"CPU": "CPUExecutionProvider", "GPU": "CUDAExecutionProvider"}


@dataclass
class OnnxEvalResult:
    accuracy: EvalResult
    latency_ms: float       # mean time of one session.run per image, excluding data loading

    @property
    def images_per_second(self) -> float:
        return 1000.0 / self.latency_ms if self.latency_ms > 0 else 0.0


def open_session(onnx_path: str | Path, device_target: str = "CPU", device_id: int = 0,
                 threads: int | None = None) -> ort.InferenceSession:
    path = Path(onnx_path)
    if not path.is_file():
        raise UserError(f"ONNX model not found: {path}")
    if device_target not in PROVIDERS:
        raise UserError(f"device_target must be one of {', '.join(PROVIDERS)} for ONNX Runtime, got {device_target}")
    provider = PROVIDERS[device_target]
    if provider not in ort.get_available_providers():
        raise UserError(f"{provider} is not available in this onnxruntime build "
                        f"({', '.join(ort.get_available_providers())}): install onnxruntime-gpu for GPU")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    providers = [(provider, {"device_id": device_id})] if device_target == "GPU" else [provider]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for unreadable models
        raise UserError(f"cannot load {path} with ONNX Runtime: {str(error).splitlines()[0]}") from error


def check_session_fits(session: ort.InferenceSession, cfg: Config) -> None:
    """UserError unless the model takes the config's image size and has its number of classes."""
    shape = session.get_inputs()[0].shape
    if len(shape) != 4 or any(isinstance(side, int) and side != cfg.image_size for side in shape[2:]):
        raise UserError(f"the model takes inputs of shape {shape} but the config's preprocessing makes "
                        f"{cfg.image_size}x{cfg.image_size} images: use the recipe the model was exported with")
    classes = session.get_outputs()[0].shape[-1]
    if isinstance(classes, int) and classes != cfg.num_classes:
        raise UserError(f"the model has {classes} outputs but num_classes is {cfg.num_classes}: "
                        "use the recipe the model was exported with, or set num_classes")


def run_batches(session: ort.InferenceSession, images: np.ndarray) -> tuple[np.ndarray, float]:
    """Logits for ``images`` and the seconds spent in ``session.run``. A model with a fixed batch size is
    fed in chunks of that size, the last one padded."""
    feed = session.get_inputs()[0]
    fixed = feed.shape[0] if isinstance(feed.shape[0], int) else None
    chunk = fixed or len(images)
    outputs, seconds = [], 0.0
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk]
        padded = np.concatenate([part, np.zeros((chunk - len(part), *part.shape[1:]), part.dtype)]) \
            if fixed and len(part) < chunk else part
        begin = time.perf_counter()
        (logits,) = session.run(None, {feed.name: padded})
        seconds += time.perf_counter() - begin
        outputs.append(logits[:len(part)])
    return np.concatenate(outputs), seconds


def evaluate_onnx(session: ort.InferenceSession, cfg: Config, description: str = "onnx") -> OnnxEvalResult:
    check_session_fits(session, cfg)
    dataset = create_dataset(cfg, "val", training=False)
    counter = AccuracyCounter()
    inference_seconds = 0.0
    start = time.perf_counter()
    batches = tqdm(iterate_checked(dataset, data_folder(cfg, "val")), total=dataset.get_dataset_size(),
                   desc=description, unit="batch", leave=False, mininterval=2.0)
    for images, labels in batches:
        logits, seconds = run_batches(session, images)
        inference_seconds += seconds
        counter.update(logits, labels)
    accuracy = counter.result(time.perf_counter() - start)
    return OnnxEvalResult(accuracy, 1000.0 * inference_seconds / max(accuracy.images, 1))
