"""List every architecture with its parameters and multiply-accumulates, training and deploy structure:

    python -m src.tools.list_models [--image_size N] [--num_classes N]

Counted from the variant table (no network is built) at each family's own resolution and class count unless
given: 224 px and 1000 classes for the ImageNet variants, 32 px and 100 classes for the CIFAR ones. MACs count
multiply-adds, as the RepVGG paper's "FLOPs" column does.
"""

import argparse

from src.cli import run_cli
from src.errors import UserError
from src.models.complexity import DEPLOY, REPOPT, TRAIN, count_complexity
from src.models.repopt import repopt_name
from src.models.variants import CIFAR_LAYOUT, VARIANTS, RepVGGVariant

_CLASSES_OF_LAYOUT = {CIFAR_LAYOUT: 100}  # the CIFAR-100 recipes; every other layout is ImageNet's 1000
_IMAGENET_CLASSES = 1000


def _millions(params: int) -> str:
    return f"{params / 1e6:.2f}M"


def _giga(macs: int) -> str:
    return f"{macs / 1e9:.3f}G"


def _setting(variant: RepVGGVariant, image_size: int | None, num_classes: int | None) -> tuple[int, int]:
    return (image_size or variant.layout.image_size,
            num_classes or _CLASSES_OF_LAYOUT.get(variant.layout, _IMAGENET_CLASSES))


def model_table(image_size: int | None = None, num_classes: int | None = None) -> list[str]:
    """The lines the tool prints: RepVGG (training and deploy structure), then RepOpt-VGG."""
    header = (f"{'arch':<20}{'image':>6}{'classes':>8}{'train params':>14}{'deploy params':>15}"
              f"{'train MACs':>12}{'deploy MACs':>13}")
    lines = ["RepVGG (trains with three branches per block, deploys as one 3x3 convolution per block)", header]
    for arch, variant in VARIANTS.items():
        size, classes = _setting(variant, image_size, num_classes)
        train = count_complexity(variant, TRAIN, classes, size)
        deploy = count_complexity(variant, DEPLOY, classes, size)
        lines.append(f"{arch:<20}{size:>6}{classes:>8}{_millions(train.params):>14}{_millions(deploy.params):>15}"
                     f"{_giga(train.macs):>12}{_giga(deploy.macs):>13}")
    lines += ["", "RepOpt-VGG (the RepVGG arch of the same name with optimizer: repopt; trains and deploys as the same "
              "plain network)", f"{'arch':<20}{'image':>6}{'classes':>8}{'params':>14}{'MACs':>15}"]
    for arch, variant in VARIANTS.items():
        size, classes = _setting(variant, image_size, num_classes)
        plain = count_complexity(variant, REPOPT, classes, size)
        lines.append(f"{repopt_name(arch):<20}{size:>6}{classes:>8}{_millions(plain.params):>14}"
                     f"{_giga(plain.macs):>15}")
    return lines


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=_positive, default=None,
                        help="count every arch at this resolution (default: its family's own)")
    parser.add_argument("--num_classes", type=_positive, default=None,
                        help="count every classifier with this many classes (default: its family's own)")
    args = parser.parse_args(argv)
    if args.num_classes == 1:
        raise UserError("--num_classes must be at least 2")
    print("\n".join(model_table(args.image_size, args.num_classes)))
    return 0


if __name__ == "__main__":
    run_cli(main)
