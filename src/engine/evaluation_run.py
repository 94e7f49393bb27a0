"""What eval.py does: load a checkpoint in whatever form it is, evaluate on val, print and write JSON."""

import json
from pathlib import Path

from src.checkpoint import check_writable_folder, write_text_atomic
from src.config import Config
from src.data import create_dataset, data_folder, iterate_checked
from src.device import setup_device
from src.engine.checkpoints import load_network
from src.engine.evaluate import EvalResult, evaluate
from src.errors import UserError
from src.logger import get_logger


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
    print(f"top-1 accuracy: {result.top1 / 100:.5f}\ntop-5 accuracy: {result.top5 / 100:.5f}\n"
          f"images: {result.images}, {result.images_per_second:.1f} img/s")
    record = {"checkpoint": str(cfg.pretrained), "arch": net.arch, "weights": description, **result.as_dict()}
    write_text_atomic(target, json.dumps(record, indent=2) + "\n")
    get_logger().info(f"metrics written to {target}")
    return result
