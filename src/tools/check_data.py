"""Check a data set before training: every unreadable or empty image file and every class folder without a
readable image, listed at once (train.py runs the same check on image folders unless check_images is false):

    python -m src.tools.check_data --config src/configs/folder_small.yaml --data_url ./my_images

Exit code 0 when training can start (bad files that skip_bad_images: true leaves out are listed too), 2 when it
would refuse.
"""

import argparse

from src.cli import run_cli
from src.config import add_config_arguments, config_from_args
from src.data import create_dataset
from src.data.datasets import parallel_workers
from src.data.image_check import CHECKED_SETS, check_image_folder, refusal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    cfg = config_from_args(parser.parse_args(argv))
    if cfg.set not in CHECKED_SETS:
        # CIFAR-100 binaries and the generated demo set have no image files: check what their pipelines check.
        for split in ("train", "val"):
            create_dataset(cfg, split, training=False)
        print(f"{cfg.data_url}: the {cfg.set} data set is complete")
        return 0
    report = check_image_folder(cfg.data_url, parallel_workers(cfg))
    print(report.summary())
    if report.clean:
        return 0
    print("\n".join(report.problem_lines()))
    if report.empty_classes or not cfg.skip_bad_images:
        raise refusal(report, listed_above=True)
    print(f"skip_bad_images: training leaves out these {len(report.bad_files)} file(s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
