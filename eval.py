"""Evaluate a checkpoint (train or deploy form, EMA weights when present) on the validation set:
python eval.py --config src/configs/RepVGG-A0.yaml --pretrained CKPT [--result_json PATH]"""

import argparse

import src  # noqa: F401  (sets the CPU speed guard before MindSpore loads)
from src.cli import run_cli
from src.config import EVAL_KEYS, add_config_arguments, config_from_args
from src.engine.evaluation import run_evaluation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_arguments(parser, argv, shown=EVAL_KEYS, required=("pretrained",))
    parser.add_argument("--result_json", default=None, help="where to write the metrics (default: next to "
                        "the checkpoint, <checkpoint>.eval.json)")
    parser.add_argument("--no_ema", action="store_true", help="evaluate the raw weights even if EMA ones exist")
    args = parser.parse_args(argv)
    run_evaluation(config_from_args(args), args.result_json, prefer_ema=not args.no_ema)
    return 0


if __name__ == "__main__":
    run_cli(main)
