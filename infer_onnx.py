"""Evaluate an ONNX model on a validation folder with ONNX Runtime (CPU or CUDA):
python infer_onnx.py --onnx_path model.onnx --dataset_path ./dataset --device_target CPU [--config CFG]"""

import argparse
from pathlib import Path

import src  # noqa: F401  (sets the CPU speed guard before MindSpore loads)
from src.atomic_files import check_writable_folder
from src.class_names import summary, warn_if_classes_differ
from src.cli import add_flag, run_cli
from src.config import load_config
from src.data import dataset_class_names
from src.deploy.model_info import metadata_class_names, recorded_preprocessing
from src.deploy.onnx_runtime import evaluate_onnx, open_session
from src.logger import get_logger
from src.metrics import report_metrics

DEFAULT_CONFIG = Path(__file__).resolve().parent / "src" / "configs" / "RepVGG-A0.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_flag(parser, "--onnx_path", "--model", required=True, metavar="FILE",
             help="the ONNX model written by export.py")
    add_flag(parser, "--dataset_path", "--data_url", required=True,
             help="data set root (the val/ split is evaluated)")
    parser.add_argument("--device_target", default="CPU", choices=["CPU", "GPU"])
    parser.add_argument("--device_id", type=int, default=0)
    parser.add_argument("--config", default=None,
                        help="recipe whose preprocessing (set, image_size, crop_pct) and classes apply (default: the "
                             "preprocessing recorded in the ONNX file at export, else that of RepVGG-A0.yaml)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--result_json", default=None, help="default: <onnx_path>.eval.json")
    args = parser.parse_args(argv)
    session = open_session(args.onnx_path, args.device_target, args.device_id, args.threads)
    target = Path(args.result_json) if args.result_json else Path(args.onnx_path).with_suffix(".eval.json")
    check_writable_folder(target.parent)
    output_classes = session.get_outputs()[0].shape[-1]
    metadata = session.get_modelmeta().custom_metadata_map
    overrides = {"data_url": args.dataset_path, "batch_size": args.batch_size, "device_target": args.device_target}
    if isinstance(output_classes, int):
        overrides["num_classes"] = output_classes
    recorded = None if args.config else recorded_preprocessing(metadata, args.onnx_path)
    cfg = load_config(args.config or DEFAULT_CONFIG, {**(recorded or {}), **overrides})
    model_classes = metadata_class_names(metadata, args.onnx_path)
    get_logger().info(f"{args.onnx_path}: {summary(model_classes)}; preprocessing of "
                      f"{args.config or ('the export' if recorded else DEFAULT_CONFIG.name)}")
    result = evaluate_onnx(session, cfg)  # checks the data set first, so it is read for its classes after
    warn_if_classes_differ(model_classes, dataset_class_names(cfg), f"the classes of {args.dataset_path}")
    accuracy = result.accuracy
    record = {"onnx": str(args.onnx_path), **accuracy.as_dict(), "latency_ms": result.latency_ms}
    report_metrics(accuracy, record, target,
                   speed=f"images: {accuracy.images}, latency {result.latency_ms:.3f} ms/img, "
                         f"{result.images_per_second:.1f} img/s (batch {args.batch_size}, {args.device_target})")
    return 0


if __name__ == "__main__":
    run_cli(main)
