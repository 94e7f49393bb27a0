"""int8 deployment: quantise an exported ONNX model (static, QDQ, per-channel by default) on a calibration
subset of the training images, then evaluate fp32 and int8 on the validation set and print the comparison.

    python -m src.tools.quantize_onnx --config src/configs/demo.yaml --onnx_path demo.onnx [--file_name int8.onnx]
        [--calibration_method minmax|entropy|percentile] [--calibration_images 256] [--per_tensor] [--threads 2]

Calibration methods are ONNX Runtime's: minmax (observed range), entropy (KL-optimal clipping, 2048 histogram
bins), percentile (99.999th percentile of absolute values, 2048 bins).

After quantisation-aware training (a recipe with ``qat: true``), no calibration: the int8 model takes the ranges
the training learned; ``--onnx_path`` is the float model export.py wrote from the QAT checkpoint, or, if that file
does not exist yet, where this tool writes it:

    python -m src.tools.quantize_onnx --config src/configs/demo_qat.yaml --pretrained QAT_CKPT --onnx_path qat.onnx
"""

import argparse
from pathlib import Path

from src.atomic_files import write_json_atomic
from src.cli import add_flag, run_cli
from src.config import EVAL_KEYS, Config, add_config_arguments, config_from_args
from src.deploy.export import export_network
from src.deploy.onnx_runtime import check_session_fits, evaluate_onnx, open_session
from src.deploy.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_METHOD,
    calibration_batches,
    check_int8_target,
    check_learned_ranges,
    load_fp32_model,
    quantize_int8,
    quantize_int8_learned,
)
from src.errors import UserError
from src.logger import get_logger
from src.models.fake_quant import FakeQuantVGG
from src.models.from_checkpoint import load_network


def _qat_network(cfg: Config) -> FakeQuantVGG:
    """The fake-quantised network of the quantisation-aware training checkpoint ``--pretrained``."""
    if not cfg.pretrained:
        raise UserError("qat: true needs --pretrained CKPT, the checkpoint of the quantisation-aware training run")
    qnet, _ = load_network(cfg.pretrained, cfg.arch, cfg.num_classes)
    if not isinstance(qnet, FakeQuantVGG):
        raise UserError(f"{cfg.pretrained} is no quantisation-aware training checkpoint (it holds a float "
                        "network): pass the checkpoint a qat: true run wrote, or drop qat to calibrate instead")
    check_learned_ranges(qnet, str(cfg.pretrained))
    return qnet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, argv, shown=(*EVAL_KEYS, "qat"))
    add_flag(parser, "--onnx_path", "--model", required=True, metavar="FILE",
             help="the fp32 model written by export.py (with qat: true, written here from --pretrained when missing)")
    add_flag(parser, "--file_name", "--output", default=None,
             help="int8 model path (default: <onnx_path stem>.int8.onnx)")
    parser.add_argument("--calibration_method", choices=list(CALIBRATION_METHODS), default=DEFAULT_CALIBRATION_METHOD,
                        help=f"how activation ranges are chosen (default: {DEFAULT_CALIBRATION_METHOD})")
    parser.add_argument("--calibration_images", type=int, default=256,
                        help="training images to calibrate on (default: 256)")
    parser.add_argument("--per_tensor", action="store_true", help="one weight scale per tensor (for comparison)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    if args.calibration_images < 1:
        raise UserError(f"--calibration_images must be at least 1, got {args.calibration_images}")
    cfg = config_from_args(args)
    fp32_path = Path(args.onnx_path)
    int8_path = Path(args.file_name) if args.file_name else fp32_path.with_name(fp32_path.stem + ".int8.onnx")
    check_int8_target(fp32_path, int8_path)
    log = get_logger()
    qnet = _qat_network(cfg) if cfg.qat else None
    if qnet is not None and not fp32_path.exists():
        if fp32_path.suffix != ".onnx":
            raise UserError(f"--onnx_path must end in .onnx: {fp32_path}")
        export_network(qnet.float_network(), "ONNX", fp32_path, 1, cfg.image_size, dynamic_batch=True)
        log.info(f"exported the float weights of {cfg.pretrained} to {fp32_path}")
    fp32 = open_session(fp32_path, threads=args.threads)
    check_session_fits(fp32, cfg)
    load_fp32_model(fp32_path)  # refuses a quantised model before any image is read
    if qnet is not None:
        log.info(f"quantising with the activation ranges learned in {cfg.pretrained}")
        quantize_int8_learned(fp32_path, int8_path, qnet, str(cfg.pretrained))
        method = "per-channel QAT"
    else:
        log.info(f"calibrating ({args.calibration_method}) on {args.calibration_images} training images")
        quantize_int8(fp32_path, int8_path, calibration_batches(cfg, args.calibration_images),
                      per_channel=not args.per_tensor, method=args.calibration_method)
        method = f"{'per-tensor' if args.per_tensor else 'per-channel'} {args.calibration_method}"
    int8 = open_session(int8_path, threads=args.threads)
    rows = []
    fp32_name = "fp32 (QAT float weights)" if cfg.qat else "fp32"
    for name, session in ((fp32_name, fp32), (f"int8 QDQ {method}", int8)):
        result = evaluate_onnx(session, cfg, name)
        rows.append({"model": name, "top1": result.accuracy.top1, "top5": result.accuracy.top5,
                     "latency_ms": result.latency_ms, "img_per_s": result.images_per_second})
    print(f"\nONNX Runtime on {cfg.set} val ({cfg.batch_size} images per run):")
    print(f"| {'model':<33} | {'top-1 (%)':>9} | {'top-5 (%)':>9} | {'ms/img':>7} | {'img/s':>8} |")
    print(f"|{'-' * 35}|{'-' * 11}|{'-' * 11}|{'-' * 9}|{'-' * 10}|")
    for row in rows:
        print(f"| {row['model']:<33} | {row['top1']:>9.2f} | {row['top5']:>9.2f} | {row['latency_ms']:>7.3f} "
              f"| {row['img_per_s']:>8.0f} |")
    report = write_json_atomic(int8_path.with_suffix(".json"), rows)
    log.info(f"int8 model: {int8_path}; comparison: {report}")
    return 0


if __name__ == "__main__":
    run_cli(main)
