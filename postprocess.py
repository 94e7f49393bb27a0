"""Top-1/top-5 accuracy of the C++ harness's result files (ascend310_infer/):
python postprocess.py --result_path DIR --label_path OUT/labels.json [--num_classes N] [--result_json PATH]"""

import argparse
import os

from src.cli import run_cli
from src.deploy.result_scoring import score_results
from src.errors import UserError
from src.metrics import report_metrics

RESULT_JSON = "accuracy.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--result_path", required=True, help="the harness's --result_path (<name>_0.bin files)")
    parser.add_argument("--label_path", required=True, help="labels.json written by preprocess.py")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="outputs of the model (default: what the result files' size implies)")
    parser.add_argument("--result_json", default=None,
                        help=f"where to write the metrics (default: <result_path>/{RESULT_JSON})")
    args = parser.parse_args(argv)
    if args.num_classes is not None and args.num_classes < 1:
        raise UserError(f"--num_classes must be at least 1, got {args.num_classes}")
    result = score_results(args.result_path, args.label_path, args.num_classes)
    target = args.result_json or os.path.join(args.result_path, RESULT_JSON)
    record = {"result_path": args.result_path, "label_path": args.label_path, "images": result.images,
              "top1": result.top1, "top5": result.top5, "loss": result.loss}
    report_metrics(result, record, target)
    return 0


if __name__ == "__main__":
    run_cli(main)
