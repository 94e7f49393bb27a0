"""RepVGG against RepOpt-VGG under int8, the comparison of the RepOpt paper (Ding et al., "Re-parameterizing Your
Optimizers rather than Architectures", ICLR 2023), measured on the demo set or on a folder of your own images.

    .venv/bin/python -m benchmarks.quantization_comparison [--data FOLDER] [--config src/configs/demo.yaml]
        [--seeds 0 1] [--epochs 8] [--networks RepVGG RepOpt-VGG] [--calibration_methods minmax percentile]
        [--threads 2] [--out ./output/quantization_comparison] [--csv benchmarks/results/quantization_comparison.csv]
        [--speed_csv benchmarks/results/quantization_speed.csv]
    .venv/bin/python -m benchmarks.quantization_comparison --speed_of PTQ_INT8.onnx QAT_INT8.onnx

For every seed, two networks of the same size (the recipe's arch) are trained with the same recipe and the same
number of epochs: RepVGG with momentum SGD, and RepOpt-VGG with the RepOptimizer, whose scales come from a
hyper-search run of the same length beforehand (the paper's two stages; demo_repopt_search.yaml, demo_repopt.yaml).
Each trained network is fused into its plain deploy form (one 3x3 conv with bias per block), exported to ONNX and
evaluated on the validation images with ONNX Runtime:

* fp32;
* post-training int8 (static QDQ, uint8 activations, int8 weights, ranges calibrated on training images) with one
  weight scale per tensor, and with one per output channel, for each calibration method asked for;
* quantisation-aware training: the recipe of demo_qat.yaml (its keys on top of the chosen recipe), started from
  the trained checkpoint, then the int8 ONNX model with the learned ranges (its top-1, and the top-1 the
  fake-quantised network had at the end of training, which it should equal).

Then, on the first seed's first network (RepVGG by default), the PTQ per-channel int8 model and the QAT int8
model (the same graph shape) are timed in turn (A, B, A, B, ...) in ONNX Runtime at batch 1 and at the recipe's batch
size, and their speed ratio printed. Every training row records its minutes and the load average when it started (a
shared machine is slower). The CSV is rewritten after every row, so a run stopped early keeps what it measured.
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks.machine import cpu_model
from benchmarks.mindspore_context import use_graph_mode_on_cpu
from benchmarks.results_csv import write_rows
from src.config import Config, load_config
from src.deploy.export import export_network
from src.deploy.onnx_runtime import evaluate_onnx, open_session
from src.deploy.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_METHOD,
    calibration_batches,
    qat_int8_model,
    quantize_int8,
)
from src.engine.networks import searched_scales_path
from src.engine.trainer import train
from src.models.fake_quant import fake_quant_network
from src.models.from_checkpoint import load_network
from src.timing import time_interleaved

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "configs"
DEMO_CONFIG = CONFIGS / "demo.yaml"
QAT_RECIPE = CONFIGS / "demo_qat.yaml"
# demo_qat.yaml's keys that say which run it continues, not how QAT trains.
_RUN_KEYS = ("base", "pretrained", "train_url")
CALIBRATION_IMAGES = 256
SPEED_WARMUP, SPEED_REPEATS = 5, 30
NETWORKS = ("RepVGG", "RepOpt-VGG")


def qat_recipe_keys() -> dict:
    """How demo_qat.yaml fine-tunes (qat, epochs, freeze, learning rate...), to put on top of any recipe."""
    keys = yaml.safe_load(QAT_RECIPE.read_text())
    return {key: value for key, value in keys.items() if key not in _RUN_KEYS}


def data_overrides(folder: str | None) -> dict:
    """A user's ImageNet-style folder instead of the recipe's data: its class count from train/."""
    if folder is None:
        return {}
    train_folder = Path(folder) / "train"
    classes = sorted(p.name for p in train_folder.iterdir() if p.is_dir()) if train_folder.is_dir() else []
    if not classes:
        raise SystemExit(f"error: {folder} has no train/ folder with class folders")
    return {"set": "ImageNet", "data_url": str(folder), "num_classes": len(classes)}


def timed_training(cfg: Config) -> tuple[Path, float, float, float | None]:
    """Train ``cfg`` from scratch in its train_url: (last checkpoint, minutes, load average at the start, the
    validation top-1 after the last epoch)."""
    # A fresh run each time: the folder is this benchmark's scratch space.
    shutil.rmtree(cfg.train_url, ignore_errors=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = train(cfg)
    if result.exit_code:
        # Stopped by a signal: the trainer saved where it was; measuring a half-trained network would mislead.
        raise SystemExit(result.exit_code)
    minutes = (time.perf_counter() - start) / 60
    top1 = result.last_eval.top1 if result.last_eval else None
    print(f"trained {result.network.arch} ({Path(cfg.train_url).name}, seed {cfg.seed}): {minutes:.1f} min, "
          f"load {load:.1f}, top-1 {top1}", flush=True)
    return result.checkpoint, minutes, load, top1


class Comparison:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.data = data_overrides(args.data)
        self.rows: list[dict] = []
        self.speed_models: dict[str, Path] = {}

    def recipe(self, seed: int, run: str, **overrides) -> Config:
        epochs = {"epochs": self.args.epochs} if self.args.epochs else {}
        return load_config(self.args.config, {**epochs, **self.data, "seed": seed,
                                              "train_url": str(self.out / f"seed{seed}" / run), **overrides})

    def add_row(self, seed: int, network: str, model: str, path: Path, cfg: Config, **extra) -> float:
        result = evaluate_onnx(open_session(path, threads=self.args.threads), cfg, model)
        fp32 = next((float(row["top1"]) for row in self.rows
                     if row["seed"] == seed and row["network"] == network and row["model"] == "fp32"), None)
        top1 = result.accuracy.top1
        self.rows.append({"seed": seed, "network": network, "model": model, "top1": f"{top1:.2f}",
                          "top5": f"{result.accuracy.top5:.2f}",
                          "top1_drop": f"{fp32 - top1:.2f}" if fp32 is not None else "0.00",
                          "images": result.accuracy.images, "train_minutes": "", "load_avg_at_start": "",
                          "simulated_top1": "", **extra, "cpu": cpu_model()})
        print(f"seed {seed} {network:12} {model:36} top-1 {top1:6.2f} %", flush=True)
        write_rows(self.args.csv, self.rows)   # after every row: a long run stopped early keeps what it measured
        return top1

    def measure(self, seed: int, network: str, checkpoint: Path, cfg: Config, minutes: float, load: float) -> None:
        """fp32, PTQ per-tensor and per-channel, and QAT rows of the network trained into ``checkpoint``."""
        folder = self.out / f"seed{seed}" / f"{network}-onnx"
        folder.mkdir(parents=True, exist_ok=True)
        trained, _ = load_network(checkpoint, cfg.arch, cfg.num_classes)
        # The plain deploy network both families ship: every block one 3x3 conv with BatchNorm folded in.
        fused = fake_quant_network(trained).float_network()
        fp32 = export_network(fused, "ONNX", folder / "fp32", 1, cfg.image_size, dynamic_batch=True)
        self.add_row(seed, network, "fp32", fp32, cfg, train_minutes=f"{minutes:.1f}",
                     load_avg_at_start=f"{load:.1f}")
        calibration = calibration_batches(cfg, self.args.calibration_images)
        default = DEFAULT_CALIBRATION_METHOD
        per_tensor = quantize_int8(fp32, folder / "per-tensor.onnx", calibration, per_channel=False, method=default)
        self.add_row(seed, network, f"PTQ per-tensor {default}", per_tensor, cfg)
        for method in self.args.calibration_methods:
            path = quantize_int8(fp32, folder / f"per-channel-{method}.onnx", calibration, method=method)
            self.add_row(seed, network, f"PTQ per-channel {method}", path, cfg)
            if method == default:
                self.speed_models.setdefault("PTQ per-channel", path)

        qat_cfg = self.recipe(seed, f"{network}-qat", **qat_recipe_keys(), pretrained=str(checkpoint))
        qat_checkpoint, qat_minutes, qat_load, simulated = timed_training(qat_cfg)
        qat_int8 = qat_int8_model(qat_checkpoint, qat_cfg.arch, qat_cfg.num_classes, cfg.image_size,
                                  folder / "qat-fp32", folder / "qat-int8.onnx")
        self.add_row(seed, network, f"QAT ({qat_cfg.epochs} epochs) per-channel", qat_int8, cfg,
                     train_minutes=f"{qat_minutes:.1f}", load_avg_at_start=f"{qat_load:.1f}",
                     simulated_top1=f"{simulated:.2f}" if simulated is not None else "")
        self.speed_models.setdefault("QAT per-channel", qat_int8)

    def run_network(self, seed: int, network: str) -> None:
        if network == "RepVGG":
            repvgg = self.recipe(seed, "repvgg")
            checkpoint, minutes, load, _ = timed_training(repvgg)
            self.measure(seed, network, checkpoint, repvgg, minutes, load)
            return
        search = self.recipe(seed, "repopt-search", repopt_search=True)
        _, search_minutes, _, _ = timed_training(search)
        repopt = self.recipe(seed, "repopt", optimizer="repopt", repopt_scales=str(searched_scales_path(search)))
        checkpoint, minutes, load, _ = timed_training(repopt)
        # The RepOpt-VGG's budget: its hyper-search and its training.
        self.measure(seed, network, checkpoint, repopt, search_minutes + minutes, load)

    def speed_rows(self, cfg: Config) -> list[dict]:
        """The PTQ and QAT int8 models of the first network measured, timed in turn."""
        return int8_speed_rows(self.speed_models["PTQ per-channel"], self.speed_models["QAT per-channel"],
                               cfg.image_size, sorted({1, cfg.batch_size}), self.args.threads)


def int8_speed_rows(ptq: Path, qat: Path, image_size: int, batches: list[int], threads: int) -> list[dict]:
    """The PTQ int8 model ``ptq`` and the QAT int8 model ``qat`` timed in turn (A, B, A, B, ...) in ONNX Runtime
    at each batch size; every row carries the ratio of their speeds."""
    sessions = {"PTQ per-channel": open_session(ptq, threads=threads),
                "QAT per-channel": open_session(qat, threads=threads)}
    rows = []
    for batch in batches:
        images = np.random.default_rng(0).normal(size=(batch, 3, image_size, image_size)).astype(np.float32)
        runs = {name: _runner(session, images) for name, session in sessions.items()}
        timings = time_interleaved(runs, SPEED_WARMUP, SPEED_REPEATS)
        ratio = timings["PTQ per-channel"].median / timings["QAT per-channel"].median
        load = os.getloadavg()[0]
        for name, timing in timings.items():
            rows.append({"model": f"int8 {name}", "file": (ptq if name.startswith("PTQ") else qat).name,
                         "batch": batch, "threads": threads, "repeats": SPEED_REPEATS,
                         "latency_ms": f"{1000 * timing.median:.3f}", "spread_pct": f"{timing.spread_percent:.1f}",
                         "img_per_s": f"{batch / timing.median:.1f}", "qat_over_ptq_speed": f"{ratio:.3f}",
                         "load_avg": f"{load:.1f}", "cpu": cpu_model()})
        print(f"batch {batch}: QAT int8 runs at {ratio:.3f}x the speed of PTQ int8 (medians of {SPEED_REPEATS} "
              "alternating runs)", flush=True)
    return rows


def _runner(session, images: np.ndarray):
    feed = {session.get_inputs()[0].name: images}
    return lambda: session.run(None, feed)


def summary(rows: list[dict]) -> None:
    """The table: mean top-1 per network and model over the seeds."""
    seeds = sorted({row["seed"] for row in rows})
    print(f"\nTop-1 (%) on {rows[0]['images']} validation images, mean over seeds {seeds} (each seed in brackets):")
    print("| model | " + " | ".join(dict.fromkeys(row["network"] for row in rows)) + " |")
    models = list(dict.fromkeys(row["model"] for row in rows))
    for model in models:
        cells = []
        for network in dict.fromkeys(row["network"] for row in rows):
            values = [float(row["top1"]) for row in rows if row["network"] == network and row["model"] == model]
            cells.append(f"{np.mean(values):.2f}" + (f" ({', '.join(f'{v:.2f}' for v in values)})"
                                                     if len(values) > 1 else ""))
        print(f"| {model} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="an ImageNet-style folder (train/, val/) instead of the recipe's data")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="the training recipe (default: the demo's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, help="training epochs of each network (default: the recipe's)")
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS),
                        help="which families to train (default: both)")
    parser.add_argument("--calibration_methods", nargs="+", choices=list(CALIBRATION_METHODS),
                        default=[DEFAULT_CALIBRATION_METHOD, "percentile"])
    parser.add_argument("--calibration_images", type=int, default=CALIBRATION_IMAGES)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default="./output/quantization_comparison")
    parser.add_argument("--csv", default="benchmarks/results/quantization_comparison.csv")
    parser.add_argument("--speed_csv", default="benchmarks/results/quantization_speed.csv")
    parser.add_argument("--speed_of", nargs=2, metavar=("PTQ_INT8", "QAT_INT8"),
                        help="only time these two int8 ONNX models in turn (e.g. the ones make demo writes) and exit")
    args = parser.parse_args()
    if args.speed_of:
        cfg = load_config(args.config, data_overrides(args.data))
        ptq, qat = (Path(path) for path in args.speed_of)
        write_rows(args.speed_csv, int8_speed_rows(ptq, qat, cfg.image_size, sorted({1, cfg.batch_size}),
                                                   args.threads))
        return
    use_graph_mode_on_cpu(args.threads)
    comparison = Comparison(args)
    for seed in args.seeds:
        for network in args.networks:
            comparison.run_network(seed, network)
            if (seed, network) == (args.seeds[0], args.networks[0]):
                write_rows(args.speed_csv, comparison.speed_rows(comparison.recipe(seed, "repvgg")))
        summary(comparison.rows)


if __name__ == "__main__":
    main()
