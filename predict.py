"""Classify images with a checkpoint or an exported model, showing the top classes by name:
python predict.py IMAGE|FOLDER|GLOB [...] --pretrained CKPT [--config CFG] [--top_k 5] [--output_path results.csv]
python predict.py IMAGE|FOLDER|GLOB [...] --model model.onnx|model.mindir [--config CFG]"""

import argparse

import src  # noqa: F401  (sets the CPU speed guard before MindSpore loads)
from src.cli import add_flag, run_cli
from src.deploy.predict import run_prediction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, folders (searched recursively) or glob patterns such as 'photos/*.jpg'")
    add_flag(parser, "--pretrained", "--checkpoint", metavar="CKPT",
             help="a checkpoint: trained, converted or imported")
    add_flag(parser, "--model", "--onnx_path", "--mindir_path", metavar="FILE",
             help="an exported model: .onnx or .mindir")
    parser.add_argument("--config", metavar="PATH",
                        help="the model's recipe (for its preprocessing); default: the config.yaml of the "
                             "training run beside a checkpoint, or the preprocessing recorded in an ONNX file")
    parser.add_argument("--top_k", type=int, default=5, help="classes shown per image (default: 5)")
    parser.add_argument("--batch_size", type=int, default=32, help="images per inference call (default: 32)")
    add_flag(parser, "--output_path", "--output", metavar="PATH",
             help="also write the predictions to a .csv or .json file")
    parser.add_argument("--device_target", default="CPU", choices=["CPU", "GPU", "Ascend"],
                        help="where the model runs (default: CPU)")
    args = parser.parse_args(argv)
    run_prediction(args.images, args.pretrained, args.model, args.config, args.top_k, args.batch_size,
                   args.output_path, args.device_target)
    return 0


if __name__ == "__main__":
    run_cli(main)
