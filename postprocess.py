"""Top-1/top-5 accuracy of the C++ harness's result files (ascend310_infer/):
python postprocess.py --result_path DIR --label_path OUT/labels.json [--model MODEL] [--num_classes N]
[--result_json PATH]"""

import argparse
import os

from src.class_names import summary, warn_if_classes_differ
from src.cli import add_flag, run_cli
from src.deploy.binfiles import read_label_file
from src.deploy.model_info import exported_class_names
from src.deploy.result_scoring import score_results
from src.errors import UserError
from src.logger import get_logger
from src.metrics import report_metrics

RESULT_JSON = "accuracy.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--result_path", required=True, help="the harness's --result_path (<name>_0.bin files)")
    parser.add_argument("--label_path", required=True, help="labels.json written by preprocess.py")
    add_flag(parser, "--model", "--onnx_path", "--mindir_path", default=None, metavar="FILE",
                        help="the exported model (.mindir or .onnx) the harness ran: its class names are shown and "
                             "compared with the data set's")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="outputs of the model (default: what the result files' size implies)")
    parser.add_argument("--result_json", default=None,
                        help=f"where to write the metrics (default: <result_path>/{RESULT_JSON})")
    args = parser.parse_args(argv)
    if args.num_classes is not None and args.num_classes < 1:
        raise UserError(f"--num_classes must be at least 1, got {args.num_classes}")
    model_classes = exported_class_names(args.model) if args.model else None
    result = score_results(args.result_path, args.label_path, args.num_classes)
    data_classes = list(read_label_file(args.label_path).classes)
    if args.model:
        get_logger().info(f"{args.model}: {summary(model_classes)}")
        warn_if_classes_differ(model_classes, data_classes, f"the classes in {args.label_path}")
    else:
        get_logger().info(f"{args.label_path}: {summary(data_classes)}")
    target = args.result_json or os.path.join(args.result_path, RESULT_JSON)
    record = {"result_path": args.result_path, "label_path": args.label_path, "images": result.images,
              "top1": result.top1, "top5": result.top5, "loss": result.loss}
    report_metrics(result, record, target)
    return 0


if __name__ == "__main__":
    run_cli(main)
