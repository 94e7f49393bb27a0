"""Export the deploy (re-parameterised) network of a checkpoint:
python export.py --config src/configs/RepVGG-A0.yaml --pretrained CKPT --file_format ONNX [--file_name NAME]
[--batch_size 1] [--no_convert] [--dynamic_batch]"""

import argparse
from dataclasses import replace

import src  # noqa: F401  (sets the CPU speed guard before MindSpore loads)
from src.cli import add_flag, run_cli
from src.config import EXPORT_KEYS, add_config_arguments, config_from_args
from src.deploy.export import FILE_FORMATS, export_device, run_export
from src.device import setup_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_arguments(parser, argv, shown=EXPORT_KEYS, required=("pretrained",),
                         help_overrides={"batch_size": "batch of the exported graph (default: 1)"})
    parser.add_argument("--file_format", required=True, type=str.upper, choices=FILE_FORMATS)
    add_flag(parser, "--file_name", "--output", default=None,
             help="output path without suffix (default: the arch name)")
    parser.add_argument("--no_convert", action="store_true", help="export the multi-branch training structure")
    parser.add_argument("--dynamic_batch", action="store_true", help="ONNX only: a dynamic batch dimension")
    args = parser.parse_args(argv)
    cfg = config_from_args(args, check_paths=False)
    setup_device(replace(cfg, device_target=export_device(cfg.device_target, args.file_format)))
    # --batch_size here is the exported graph's batch, 1 unless given (not the recipe's training batch).
    export_batch = cfg.batch_size if "batch_size" in vars(args) else 1
    run_export(cfg, args.file_format, args.file_name, export_batch, convert=not args.no_convert,
               dynamic_batch=args.dynamic_batch)
    return 0


if __name__ == "__main__":
    run_cli(main)
