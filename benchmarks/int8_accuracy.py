"""int8 accuracy on the demo set: top-1 of fp32, int8 with per-channel and with per-tensor weight scales.

A RepVGG-A0-cifar trained on the built-in demo set as `make demo` trains it (src/configs/demo.yaml), or a
checkpoint of one (``--pretrained``, train or deploy form), is converted, exported to ONNX and quantised twice
with onnxruntime (static QDQ, MinMax calibration on training images, uint8 activations, int8 weights): with one
weight scale per output channel, and with one per tensor. Both are evaluated on the held-out demo images.

Why the scales matter for RepVGG: fusing the BatchNorms into the 3x3 kernel multiplies every output channel by
its own gamma / sigma, so after conversion the channels' weight ranges differ widely. One scale per tensor is set
by the widest channel, and a narrow channel is left with a few of the 127 int8 levels; ``per_tensor_levels``
measures how many, on the fused kernels themselves.

    .venv/bin/python -m benchmarks.int8_accuracy [--pretrained CKPT] [--epochs 8] [--demo_data ./data/demo]
        [--calibration_images 256] [--threads 2] [--csv benchmarks/results/int8_accuracy.csv]
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.mindspore_context import use_graph_mode_on_cpu
from benchmarks.results_csv import write_rows
from src.cli import add_flag
from src.config import Config, load_config
from src.deploy.export import export_network
from src.deploy.onnx_runtime import evaluate_onnx, open_session
from src.deploy.quantize import calibration_batches, quantize_int8
from src.engine.trainer import train
from src.models import has_multi_branch_blocks, repvgg_model_convert
from src.models.from_checkpoint import load_network
from src.models.repvgg import VGGStages

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "src" / "configs" / "demo.yaml"
CALIBRATION_IMAGES = 256
INT8_LEVELS = 127
FEW_LEVELS = 16     # a channel left with fewer levels than this keeps under 5 bits of its weights


@dataclass(frozen=True)
class Int8Accuracy:
    rows: list[dict]            # one per model: fp32, int8 per-channel, int8 per-tensor
    network: str                # where the weights came from
    levels: dict[str, np.ndarray]   # fused conv -> int8 levels per output channel under one per-tensor scale

    def top1_drop(self, weight_scales: str) -> float:
        """Top-1 points lost against fp32 by the int8 model with ``weight_scales`` ("per-channel", "per-tensor")."""
        return float(next(row for row in self.rows if row["weight_scales"] == weight_scales)["top1_drop"])

    @property
    def median_levels(self) -> float:
        return float(np.median(np.concatenate(list(self.levels.values()))))

    @property
    def few_levels_percent(self) -> float:
        channels = np.concatenate(list(self.levels.values()))
        return 100.0 * float(np.mean(channels < FEW_LEVELS))

    @property
    def narrowest_layer(self) -> tuple[str, float]:
        """The fused conv whose median channel keeps the fewest levels, and that number."""
        name = min(self.levels, key=lambda layer: np.median(self.levels[layer]))
        return name, float(np.median(self.levels[name]))


def per_tensor_levels(kernel: np.ndarray) -> np.ndarray:
    """How many of the 127 positive int8 levels each output channel spans when one scale covers the tensor."""
    channel_max = np.abs(kernel).reshape(len(kernel), -1).max(axis=1)
    return INT8_LEVELS * channel_max / channel_max.max()


def fused_kernel_levels(deploy_net: VGGStages) -> dict[str, np.ndarray]:
    return {name: per_tensor_levels(block.rbr_reparam.weight.asnumpy()) for name, block in deploy_net.blocks_in_order()}


def demo_deploy_network(cfg: Config, checkpoint: str | None) -> tuple[VGGStages, str]:
    """The converted demo network: from ``checkpoint``, or trained now for ``cfg.epochs`` epochs."""
    if checkpoint:
        net, description = load_network(checkpoint, cfg.arch, cfg.num_classes)
        source = f"{cfg.arch} from {checkpoint} ({description})"
    else:
        print(f"training {cfg.arch} on the demo set for {cfg.epochs} epochs (as `make demo`)", flush=True)
        net = train(cfg).network
        source = f"{cfg.arch} trained on the demo set for {cfg.epochs} epochs (src/configs/demo.yaml)"
    return (repvgg_model_convert(net) if has_multi_branch_blocks(net) else net), source


def measure_int8_accuracy(checkpoint: str | None, epochs: int | None, threads: int, folder: Path,
                          calibration_images: int = CALIBRATION_IMAGES, demo_data: str | None = None) -> Int8Accuracy:
    """``demo_data``: where the demo set is, written there if missing (default: the demo config's folder)."""
    overrides = {"train_url": str(folder / "demo_run"), "epochs": epochs, "data_url": demo_data}
    cfg = load_config(DEMO_CONFIG, {key: value for key, value in overrides.items() if value is not None})
    deploy_net, source = demo_deploy_network(cfg, checkpoint)
    fp32_path = export_network(deploy_net, "ONNX", folder / cfg.arch, 1, cfg.image_size, dynamic_batch=True)
    calibration = calibration_batches(cfg, calibration_images)
    models = {"fp32": ("-", fp32_path)}
    for scales in ("per-channel", "per-tensor"):
        models[f"int8 QDQ {scales}"] = (scales, quantize_int8(fp32_path, folder / f"{cfg.arch}-{scales}.onnx",
                                                               calibration, per_channel=scales == "per-channel"))
    rows = []
    for model, (scales, path) in models.items():
        result = evaluate_onnx(open_session(path, threads=threads), cfg, model)
        top1 = result.accuracy.top1
        rows.append({"model": f"ONNX Runtime {model}", "weight_scales": scales, "top1": f"{top1:.2f}",
                     "top5": f"{result.accuracy.top5:.2f}", "top1_drop": f"{float(rows[0]['top1']) - top1:.2f}"
                     if rows else "0.00", "images": result.accuracy.images,
                     "calibration_images": calibration_images if scales != "-" else "",
                     "img_per_s": f"{result.images_per_second:.0f}"})
        print(f"{rows[-1]['model']:36} top-1 {rows[-1]['top1']:>6} %  top-5 {rows[-1]['top5']:>6} %", flush=True)
    return Int8Accuracy(rows, source, fused_kernel_levels(deploy_net))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flag(parser, "--pretrained", "--checkpoint",
             help="a trained RepVGG-A0-cifar demo checkpoint (default: train one now)")
    parser.add_argument("--epochs", type=int, help="training epochs when no checkpoint is given (default: the "
                                                   "demo config's)")
    parser.add_argument("--demo_data", help="the demo set's folder, written if missing (default: the config's)")
    parser.add_argument("--calibration_images", type=int, default=CALIBRATION_IMAGES)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--csv", default="benchmarks/results/int8_accuracy.csv")
    args = parser.parse_args()
    use_graph_mode_on_cpu(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        result = measure_int8_accuracy(args.pretrained, args.epochs, args.threads, Path(scratch),
                                       args.calibration_images, args.demo_data)
    layer, levels = result.narrowest_layer
    print(f"per-tensor scales leave the median fused-kernel channel {result.median_levels:.0f} of {INT8_LEVELS} "
          f"levels; {result.few_levels_percent:.0f} % of channels under {FEW_LEVELS}; narrowest layer {layer} "
          f"({levels:.0f})")
    write_rows(args.csv, result.rows)


if __name__ == "__main__":
    main()
