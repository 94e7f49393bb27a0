"""`make demo`: train a small RepVGG on the built-in demo set on CPU, then show what re-parameterisation and
deployment give: evaluate the training structure, convert, evaluate the deploy net, export it to ONNX,
evaluate the ONNX file with ONNX Runtime in fp32 and after int8 quantisation, and print one table
(parameters, top-1, images/s) like the Jittor RepVGG on CIFAR-100 prints."""

import argparse
from pathlib import Path

from src.atomic_files import write_json_atomic
from src.checkpoint_files import save_checkpoint_atomic
from src.cli import run_cli
from src.config import load_config
from src.data import create_dataset, data_folder, dataset_class_names, iterate_checked
from src.deploy.export import export_network, onnx_metadata
from src.deploy.onnx_runtime import evaluate_onnx, open_session
from src.deploy.quantize import calibration_batches, quantize_int8
from src.engine.evaluation import evaluate
from src.engine.run_checkpoints import run_checkpoints
from src.engine.trainer import RESUME_LATEST, train
from src.logger import get_logger
from src.models import repvgg_model_convert
from src.models.parameters import trainable_millions
from src.tools.throughput import images_per_second

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
CALIBRATION_IMAGES = 256


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
         "img_per_s": images_per_second(train_net, batch, cfg.image_size)},
        {"network": "MindSpore deploy", "params_m": trainable_millions(deploy_net), "top1": after.top1,
         "img_per_s": images_per_second(deploy_net, batch, cfg.image_size)},
    ]
    onnx_path = export_network(deploy_net, "ONNX", out / cfg.arch, 1, cfg.image_size, dynamic_batch=True,
                               metadata=onnx_metadata(cfg, class_names))
    int8_path = quantize_int8(onnx_path, out / f"{cfg.arch}.int8.onnx", calibration_batches(cfg, CALIBRATION_IMAGES))
    for name, path in (("ONNX Runtime fp32", onnx_path), ("ONNX Runtime int8 (QDQ)", int8_path)):
        result = evaluate_onnx(open_session(path), cfg, name)
        rows.append({"network": name, "params_m": rows[1]["params_m"], "top1": result.accuracy.top1,
                     "img_per_s": result.images_per_second})

    print(f"\n{cfg.arch} on the demo set ({before.images} held-out images, {cfg.epochs} epochs), "
          f"{cfg.device_target}, batch {batch}:")
    print(f"| {'network':<26} | {'params (M)':>10} | {'top-1 (%)':>9} | {'img/s':>8} |")
    print(f"|{'-' * 28}|{'-' * 12}|{'-' * 11}|{'-' * 10}|")
    for row in rows:
        print(f"| {row['network']:<26} | {row['params_m']:>10.3f} | {row['top1']:>9.2f} | {row['img_per_s']:>8.0f} |")
    results_path = write_json_atomic(out / "demo_results.json", rows)
    print(f"\noutputs in {out}: checkpoints, {onnx_path.name}, {int8_path.name}, log.csv, curves, {results_path.name}")
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
