"""Evaluate an ONNX model on a validation folder with ONNX Runtime (CPU or CUDA):
python infer_onnx.py --onnx_path model.onnx --dataset_path ./dataset --device_target CPU [--config CFG]"""

import argparse
from pathlib import Path

import src  # noqa: F401  (sets the CPU speed guard before MindSpore loads)
from src.atomic_files import check_writable_folder
from src.cli import run_cli
from src.config import load_config
from src.deploy.onnx_runtime import evaluate_onnx, open_session
from src.metrics import report_metrics

DEFAULT_CONFIG = Path(__file__).resolve().parent / "src" / "configs" / "RepVGG-A0.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--onnx_path", required=True)
    parser.add_argument("--dataset_path", required=True, help="data set root (the val/ split is evaluated)")
    parser.add_argument("--device_target", default="CPU", choices=["CPU", "GPU"])
    parser.add_argument("--device_id", type=int, default=0)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="recipe whose preprocessing (set, image_size, crop_pct) and classes apply")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--result_json", default=None, help="default: <onnx_path>.eval.json")
    args = parser.parse_args(argv)
    session = open_session(args.onnx_path, args.device_target, args.device_id, args.threads)
    target = Path(args.result_json) if args.result_json else Path(args.onnx_path).with_suffix(".eval.json")
    check_writable_folder(target.parent)
    output_classes = session.get_outputs()[0].shape[-1]
    overrides = {"data_url": args.dataset_path, "batch_size": args.batch_size, "device_target": args.device_target}
    if isinstance(output_classes, int):
        overrides["num_classes"] = output_classes
    cfg = load_config(args.config, overrides)
    result = evaluate_onnx(session, cfg)
    accuracy = result.accuracy
    record = {"onnx": str(args.onnx_path), **accuracy.as_dict(), "latency_ms": result.latency_ms}
    report_metrics(accuracy, record, target,
                   speed=f"images: {accuracy.images}, latency {result.latency_ms:.3f} ms/img, "
                         f"{result.images_per_second:.1f} img/s (batch {args.batch_size}, {args.device_target})")
    return 0


if __name__ == "__main__":
    run_cli(main)
