"""Train a RepVGG: python train.py --config src/configs/RepVGG-A0.yaml [--device_target CPU] [--<key> value]
[--resume [CKPT]]"""

import argparse

import src  # noqa: F401  (sets the CPU speed guard before MindSpore loads)
from src.atomic_files import check_writable_folder
from src.cli import run_cli
from src.config import add_config_arguments, config_from_args
from src.engine.trainer import RESUME_LATEST, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_arguments(parser, argv)
    parser.add_argument("--resume", nargs="?", const=RESUME_LATEST, default=None, metavar="CKPT",
                        help="continue a run: from CKPT, or without a value from the newest epoch "
                             "checkpoint in train_url")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    # A train_url that cannot be written would otherwise fail only once the data and the network are built.
    check_writable_folder(cfg.train_url)
    # Non-zero after a clean stop on SIGINT/SIGTERM (128 + signal), so that job schedulers see the stop.
    return train(cfg, resume=args.resume).exit_code


if __name__ == "__main__":
    run_cli(main)
