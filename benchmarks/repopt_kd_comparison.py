"""RepVGG vs RepOpt-VGG vs knowledge distillation on the demo set, same epochs, same recipe (demo.yaml).

    .venv/bin/python -m benchmarks.repopt_kd_comparison [--epochs 3] [--out ./output/repopt_kd_comparison]
        [--csv benchmarks/results/repopt_kd_comparison.csv]

Four trainings of the A0 CIFAR-width family, in order: RepVGG-A0-cifar with momentum SGD (demo.yaml); the RepOpt
hyper-search net (demo_repopt_search.yaml); the plain RepOpt-VGG-A0-cifar with the RepOptimizer and the scales just
searched (demo_repopt.yaml); a RepVGG-A0-cifar student distilled (demo_kd.yaml, alpha 0.5, T 4) from the RepVGG of
the first run, a teacher of the student's own size (self-distillation), so that no extra, larger run is needed.

Each row: validation top-1 after the last epoch (400 held-out images), training images/s of the last epoch as the
trainer logs it (data pipeline included, graph compilation excluded), trainable parameters of the trained network
and of the network that is deployed (RepVGG re-parameterised, search net merged, RepOpt-VGG as it is).
"""

# isort: off
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore loads)

# isort: on
import argparse
import os
import shutil
import time
from pathlib import Path

from mindspore import nn

from benchmarks.machine import cpu_model
from benchmarks.results_csv import write_rows
from src.config import Config, load_config
from src.engine.logbook import Logbook
from src.engine.networks import searched_scales_path
from src.engine.trainer import train
from src.models import has_multi_branch_blocks, repvgg_model_convert
from src.models.parameters import trainable_millions
from src.models.repopt import RepOptSearchNet, merge_search_net

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "configs"


def deployed(net: nn.Cell) -> nn.Cell:
    if has_multi_branch_blocks(net):
        return repvgg_model_convert(net)
    return merge_search_net(net) if isinstance(net, RepOptSearchNet) else net


def run(method: str, cfg: Config) -> dict:
    # A fresh run each time: the folder is this benchmark's scratch space (an old log.csv would be appended to).
    shutil.rmtree(cfg.train_url, ignore_errors=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = train(cfg)
    minutes = (time.perf_counter() - start) / 60
    last_epoch = Logbook(cfg.train_url, "").rows()[-1]
    row = {"method": method, "network": result.network.arch, "epochs": cfg.epochs,
           "top1": f"{result.last_eval.top1:.2f}", "train_img_per_s": last_epoch["img_per_s"],
           "train_params_m": f"{trainable_millions(result.network):.3f}",
           "deploy_params_m": f"{trainable_millions(deployed(result.network)):.3f}", "minutes": f"{minutes:.1f}",
           "load_avg_at_start": f"{load:.1f}", "cpu": cpu_model()}
    print(f"{method}: top-1 {row['top1']}%, {row['train_img_per_s']} img/s, {minutes:.1f} min", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="./output/repopt_kd_comparison")
    parser.add_argument("--csv", default="benchmarks/results/repopt_kd_comparison.csv")
    args = parser.parse_args()
    out = Path(args.out)

    def recipe(name: str, run_name: str, **overrides) -> Config:
        return load_config(CONFIGS / name, {"epochs": args.epochs, "train_url": str(out / run_name), **overrides})

    repvgg = recipe("demo.yaml", "repvgg")
    search = recipe("demo_repopt_search.yaml", "repopt_search")
    rows = [run("RepVGG, momentum SGD", repvgg), run("RepOpt hyper-search net", search)]
    rows.append(run("RepOpt-VGG, RepOptimizer", recipe("demo_repopt.yaml", "repopt",
                                                       repopt_scales=str(searched_scales_path(search)))))
    teacher = Path(repvgg.train_url) / "RepVGG-A0-cifar-best.ckpt"
    rows.append(run("RepVGG, KD from the RepVGG above", recipe("demo_kd.yaml", "kd", teacher_arch=repvgg.arch,
                                                               teacher_ckpt=str(teacher))))

    size = repvgg.image_size
    print(f"\nDemo set, {args.epochs} epochs each, batch {repvgg.batch_size} at {size}x{size}:")
    print("| method | network | top-1 (%) | train img/s | params train (M) | params deployed (M) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['method']} | {row['network']} | {row['top1']} | {row['train_img_per_s']} | "
              f"{row['train_params_m']} | {row['deploy_params_m']} |")
    write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
