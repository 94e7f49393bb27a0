"""Write an image folder as float32 .bin inputs for the C++ harness (ascend310_infer/) and a label file:
python preprocess.py --config src/configs/RepVGG-A0.yaml --dataset_path DIR --output_path OUT [--batch_size 1]

DIR is a data set root with val/<class>/<image>, or a split folder <class>/<image>. Writes OUT/00_data/*.bin
(one (batch, 3, H, W) tensor each, the evaluation preprocessing of the config) and OUT/labels.json."""

import argparse

import src  # noqa: F401  (sets the CPU speed guard before MindSpore loads)
from src.cli import add_flag, run_cli
from src.config import load_config
from src.deploy.offline_eval import write_bin_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, metavar="PATH",
                        help="YAML recipe: its image_size, crop_pct, interpolation and set define the preprocessing")
    add_flag(parser, "--dataset_path", "--data_url", required=True,
             help="data set root (with val/) or a class-folder split")
    add_flag(parser, "--output_path", "--output", required=True, help="where 00_data/ and labels.json go")
    parser.add_argument("--batch_size", type=int, default=1,
                        help="images per .bin file: the batch size the model was exported with (default 1)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, check_paths=False)
    write_bin_dataset(cfg, args.dataset_path, args.output_path, args.batch_size)
    return 0


if __name__ == "__main__":
    run_cli(main)
