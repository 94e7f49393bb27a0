"""`make demo`: train a small RepVGG on the built-in demo set on CPU, then show what re-parameterisation and
deployment give: evaluate the training structure, convert, evaluate the deploy net, export it to ONNX,
evaluate the ONNX file with ONNX Runtime in fp32, after post-training int8 quantisation (PTQ) and after
quantisation-aware training (QAT, src/configs/demo_qat.yaml, started from the same deploy weights), and print one
table (parameters, top-1, top-5, images/s) like the Jittor RepVGG on CIFAR-100 prints."""

import argparse
import time
from pathlib import Path

from src.atomic_files import write_json_atomic
from src.checkpoint_files import save_checkpoint_atomic
from src.cli import run_cli
from src.config import Config, load_config
from src.data import create_dataset, data_folder, dataset_class_names, iterate_checked
from src.deploy.export import export_network, onnx_metadata
from src.deploy.onnx_runtime import evaluate_onnx, open_session
from src.deploy.quantize import DEFAULT_CALIBRATION_METHOD, calibration_batches, qat_int8_model, quantize_int8
from src.engine.evaluation import evaluate
from src.engine.run_checkpoints import run_checkpoints
from src.engine.trainer import RESUME_LATEST, train
from src.logger import get_logger
from src.models import repvgg_model_convert
from src.models.parameters import trainable_millions
from src.tools.throughput import images_per_second

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEMO_CONFIG = CONFIGS / "demo.yaml"
QAT_CONFIG = CONFIGS / "demo_qat.yaml"
CALIBRATION_IMAGES = 256


def quantisation_aware_training(cfg: Config, start: Path) -> tuple[Config, Path]:
    """The demo's QAT run (demo_qat.yaml on the demo run's data, in ``<train_url>/qat``) from the deploy
    checkpoint ``start``: its recipe and last checkpoint. Continued or reused as the demo's own training is."""
    qat_cfg = load_config(QAT_CONFIG, {"pretrained": str(start), "train_url": str(Path(cfg.train_url) / "qat"),
                                       "data_url": cfg.data_url})
    log = get_logger()
    resume = RESUME_LATEST if run_checkpoints(qat_cfg.train_url) else None
    start_time = time.perf_counter()
    train(qat_cfg, resume)
    log.info(f"quantisation-aware training: {qat_cfg.epochs} epochs in {time.perf_counter() - start_time:.0f} s")
    return qat_cfg, run_checkpoints(qat_cfg.train_url)[-1]  # the last epoch's, also when a finished run is reused


def run_demo(config_path: str, overrides: dict) -> list[dict]:
    cfg = load_config(config_path, overrides)
    log = get_logger()
    out = Path(cfg.train_url)
    # A second `make demo` continues (or, when finished, reuses) the first one's training instead of refusing.
    resume = RESUME_LATEST if run_checkpoints(out) else None
    if resume:
        log.info(f"continuing the demo run in {out} (delete that folder to train from scratch)")
    else:
        log.info(f"training {cfg.arch} on the demo set for {cfg.epochs} epochs (outputs in {out})")
    train_net = train(cfg, resume).network

    def validation():
        return iterate_checked(create_dataset(cfg, "val", training=False), data_folder(cfg, "val"))

    before = evaluate(train_net, validation())
    deploy_net = repvgg_model_convert(train_net)
    class_names = dataset_class_names(cfg)
    save_checkpoint_atomic(deploy_net, out / f"{cfg.arch}-deploy.ckpt", class_names=class_names)
    after = evaluate(deploy_net, validation())
    batch = cfg.batch_size
    rows = [
        {"network": "MindSpore train structure", "params_m": trainable_millions(train_net), "top1": before.top1,
         "top5": before.top5, "img_per_s": images_per_second(train_net, batch, cfg.image_size)},
        {"network": "MindSpore deploy", "params_m": trainable_millions(deploy_net), "top1": after.top1,
         "top5": after.top5, "img_per_s": images_per_second(deploy_net, batch, cfg.image_size)},
    ]
    metadata = onnx_metadata(cfg, class_names)
    onnx_path = export_network(deploy_net, "ONNX", out / cfg.arch, 1, cfg.image_size, dynamic_batch=True,
                               metadata=metadata)
    int8_path = quantize_int8(onnx_path, out / f"{cfg.arch}.int8.onnx", calibration_batches(cfg, CALIBRATION_IMAGES))
    qat_cfg, qat_checkpoint = quantisation_aware_training(cfg, out / f"{cfg.arch}-deploy.ckpt")
    qat_int8_path = qat_int8_model(qat_checkpoint, qat_cfg.arch, qat_cfg.num_classes, cfg.image_size,
                                   out / f"{cfg.arch}-qat", out / f"{cfg.arch}-qat.int8.onnx", metadata)
    onnx_models = {"ONNX Runtime fp32": onnx_path,
                   f"ONNX Runtime int8 PTQ ({DEFAULT_CALIBRATION_METHOD})": int8_path,
                   "ONNX Runtime int8 QAT": qat_int8_path}
    for name, path in onnx_models.items():
        result = evaluate_onnx(open_session(path), cfg, name)
        rows.append({"network": name, "params_m": rows[1]["params_m"], "top1": result.accuracy.top1,
                     "top5": result.accuracy.top5, "img_per_s": result.images_per_second, "onnx": path.name})

    print(f"\n{cfg.arch} on the demo set ({before.images} held-out images, {cfg.epochs} epochs), "
          f"{cfg.device_target}, batch {batch}:")
    print(f"| {'network':<31} | {'params (M)':>10} | {'top-1 (%)':>9} | {'top-5 (%)':>9} | {'img/s':>8} |")
    print(f"|{'-' * 33}|{'-' * 12}|{'-' * 11}|{'-' * 11}|{'-' * 10}|")
    for row in rows:
        print(f"| {row['network']:<31} | {row['params_m']:>10.3f} | {row['top1']:>9.2f} | {row['top5']:>9.2f} "
              f"| {row['img_per_s']:>8.0f} |")
    results_path = write_json_atomic(out / "demo_results.json", rows)
    print(f"\noutputs in {out}: checkpoints, {onnx_path.name}, {int8_path.name}, {qat_int8_path.name}, qat/, "
          f"log.csv, curves, {results_path.name}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(DEMO_CONFIG))
    parser.add_argument("--epochs", type=int, help="override the demo config's epochs")
    parser.add_argument("--train_url", help="where the run writes (default: the config's)")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if key != "config" and value is not None}
    run_demo(args.config, overrides)
    return 0


if __name__ == "__main__":
    run_cli(main)
