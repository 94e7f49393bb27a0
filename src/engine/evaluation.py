"""Evaluating a MindSpore network: ``evaluate`` runs it over a batched (image, int label) data set, and
``run_evaluation`` is what eval.py does (load a checkpoint in whatever form it is, evaluate on val, report).
Counting and reporting are ``src.metrics``, shared with the ONNX Runtime and offline evaluators."""

import time
from collections.abc import Iterable
from pathlib import Path

from mindspore import Tensor, nn

from src.atomic_files import check_writable_folder
from src.config import Config
from src.data import create_dataset, data_folder, iterate_checked
from src.device import setup_device
from src.errors import UserError
from src.logger import get_logger
from src.metrics import AccuracyCounter, EvalResult, report_metrics
from src.models.from_checkpoint import load_network


def evaluate(net: nn.Cell, batches: Iterable) -> EvalResult:
    """``batches`` yields (images NCHW float32, labels int) as numpy; the network runs in eval mode."""
    net.set_train(False)
    counter = AccuracyCounter()
    start = time.perf_counter()
    for images, labels in batches:
        counter.update(net(Tensor(images)).asnumpy(), labels)
    return counter.result(time.perf_counter() - start)


def run_evaluation(cfg: Config, result_json: str | None = None, prefer_ema: bool = True) -> EvalResult:
    if not cfg.pretrained:
        raise UserError("--pretrained CKPT is required: the checkpoint to evaluate")
    setup_device(cfg)  # first: a recipe for a device this machine lacks stops before any folder is created
    target = Path(result_json) if result_json else Path(cfg.pretrained).with_suffix(".eval.json")
    try:
        check_writable_folder(target.parent)
    except UserError as error:
        raise UserError(f"{error} (--result_json PATH writes the metrics elsewhere)") from None
    net, description = load_network(cfg.pretrained, cfg.arch, cfg.num_classes, prefer_ema)
    get_logger().info(f"evaluating {cfg.pretrained} ({net.arch}, {description}) on {cfg.set} val")
    dataset = create_dataset(cfg, "val", training=False)
    result = evaluate(net, iterate_checked(dataset, data_folder(cfg, "val")))
    record = {"checkpoint": str(cfg.pretrained), "arch": net.arch, "weights": description, **result.as_dict()}
    report_metrics(result, record, target, speed=f"images: {result.images}, {result.images_per_second:.1f} img/s")
    return result
