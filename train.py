"""Train a RepVGG: python train.py --config src/configs/RepVGG-A0.yaml [--device_target CPU] [--<key> value]
[--resume [CKPT]]"""

import argparse

import src  # noqa: F401  (sets the CPU speed guard before MindSpore loads)
from src.cli import run_cli
from src.config import add_config_arguments, config_from_args
from src.device import require_device
from src.engine.trainer import RESUME_LATEST, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_arguments(parser, argv)
    parser.add_argument("--resume", nargs="?", const=RESUME_LATEST, default=None, metavar="CKPT",
                        help="continue a run: from CKPT, or without a value from the newest epoch "
                             "checkpoint in train_url (a new run when there is none yet)")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    # Before train_url is created: a recipe for a device this machine lacks leaves nothing behind. train() checks
    # the data, then that train_url can be written, before it builds the network.
    require_device(cfg.device_target)
    # Non-zero after a clean stop on SIGINT/SIGTERM (128 + signal), so that job schedulers see the stop.
    return train(cfg, resume=args.resume).exit_code


if __name__ == "__main__":
    run_cli(main)
