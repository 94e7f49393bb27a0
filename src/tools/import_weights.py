"""Convert PyTorch RepVGG or RepOpt-VGG weights (.pth, .safetensors or .npz) for MindSpore.

    python -m src.tools.import_weights --arch RepVGG-A0 --pretrained RepVGG-A0-train.pth --file_name a0.ckpt
    python -m src.tools.import_weights --arch RepOptVGG-L1 --pretrained RepOpt-VGG-L1-acc79.82.pth --file_name l1.ckpt
    python -m src.tools.import_weights --arch RepOptVGG-L1 --pretrained RepOpt-VGG-L1-scales.pth \
        --file_name l1-scales.npz

What the file holds is read off its keys: RepVGG weights (official or timm naming, train or deploy form) or
RepOpt-VGG weights become a MindSpore .ckpt, with the number of classes read off the classifier's shape; a
RepOpt hyper-search model (its scale layers) becomes the .npz of scales that `repopt_scales` reads. A
1000-class checkpoint gets the ImageNet-1k class names (the label order of the official and timm weights).
"""

import argparse
import zipfile
from pathlib import Path

import numpy as np

from src.checkpoint_files import CheckpointForm, checkpoint_form, save_checkpoint_atomic
from src.cli import add_flag, run_cli
from src.data.known_classes import imagenet1k_classes
from src.errors import UserError
from src.logger import get_logger
from src.models import create_model
from src.models.repopt import create_repopt_model
from src.models.repopt_scales import save_scales
from src.models.weight_import import load_pytorch_weights, scales_from_pytorch_state, strip_module_prefix

_CLASSIFIER_KEYS = ("linear.weight", "head.fc.weight")
# Training scripts wrap the state dict in a dict under one of these keys.
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
# What numpy raises for a damaged or truncated .npz (a zip archive of .npy files).
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


def _read_torch(path: Path) -> dict:
    try:
        import torch
    except ImportError as error:
        raise UserError(
            f"reading {path.name} needs PyTorch, which is not installed: `pip install torch` (the CPU build "
            "is enough), or save the weights as .safetensors/.npz"
        ) from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"cannot read {path} as a PyTorch checkpoint: {error}") from error
    while isinstance(state, dict) and not any(hasattr(v, "shape") for v in state.values()):
        inner = next((state[k] for k in _WRAPPER_KEYS if k in state), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict")
    return {k: v.detach().float().numpy() for k, v in state.items() if hasattr(v, "detach")}


def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"cannot read {path} as safetensors: {error}") from error


def _read_npz(path: Path) -> dict:
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise UserError(f"{path} is a single .npy array, not an .npz archive of named weights")
        with archive:
            return {key: archive[key] for key in archive.files}
    except _NPZ_ERRORS as error:
        raise UserError(f"cannot read {path} as .npz: {error}") from error


_READERS = {".pth": _read_torch, ".pt": _read_torch, ".safetensors": _read_safetensors, ".npz": _read_npz}


def read_state_file(path: str | Path) -> dict[str, np.ndarray]:
    """Name -> float32 array from a .pth/.pt, .safetensors or .npz file, without any ``module.`` prefix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"unsupported weights file {path.name}: expected one of {', '.join(_READERS)}")
    state = reader(path)
    if not state:
        raise UserError(f"{path} holds no tensors")
    try:
        return {k: np.asarray(v, dtype=np.float32) for k, v in strip_module_prefix(state).items()}
    except (TypeError, ValueError) as error:
        raise UserError(f"{path} holds a tensor that is not numeric: {error}") from None


def infer_num_classes(state: dict[str, np.ndarray]) -> int:
    for key in _CLASSIFIER_KEYS:
        if key in state:
            return int(state[key].shape[0])
    raise UserError(f"no classifier weights ({' or '.join(_CLASSIFIER_KEYS)}) found; pass --num_classes")


def import_scales(arch: str, input_path: str, state: dict[str, np.ndarray], output_path: str) -> Path:
    """Write the scales of a RepOpt hyper-search state as the scales file of the plain RepOpt-VGG of ``arch``."""
    if Path(output_path).suffix.lower() != ".npz":
        raise UserError(f"{input_path} holds a RepOpt hyper-search model, whose scales are written as the .npz "
                        f"that repopt_scales reads: pass a --file_name ending in .npz, not {Path(output_path).name}")
    # The classifier plays no part in the scales; any class count builds the same blocks.
    net = create_repopt_model(arch, num_classes=1)
    try:
        scales = scales_from_pytorch_state(net, state)
    except UserError as error:
        raise UserError(f"the hyper-search scales in {input_path} do not fit {net.arch}: {error}") from error
    written = save_scales(output_path, net.arch, scales)
    get_logger().info(f"wrote {written} (scales of {len(scales)} {net.arch} blocks)")
    return written


def import_weights(arch: str, input_path: str, output_path: str, num_classes: int | None = None) -> Path:
    if num_classes is not None and num_classes < 1:
        raise UserError(f"--num_classes must be at least 1, got {num_classes}")
    state = read_state_file(input_path)
    form = checkpoint_form(state)
    if form is CheckpointForm.REPOPT_SEARCH:
        return import_scales(arch, input_path, state, output_path)
    num_classes = num_classes or infer_num_classes(state)
    if form is CheckpointForm.REPOPT_PLAIN:
        net = create_repopt_model(arch, num_classes)
    else:
        net = create_model(arch, num_classes=num_classes, deploy=form is CheckpointForm.DEPLOY)
    load_pytorch_weights(net, state)
    class_names = imagenet1k_classes() if num_classes == len(imagenet1k_classes()) else None
    written = save_checkpoint_atomic(net, output_path, class_names=class_names)
    names = ", ImageNet-1k class names" if class_names else ""
    get_logger().info(f"wrote {written} ({net.arch}, {form}, {num_classes} classes{names}, {len(state)} tensors)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True,
                        help="e.g. RepVGG-A0, RepVGG-B1g4, repvgg_a2 (timm name), RepOptVGG-L1 (or RepOpt-VGG-L1)")
    add_flag(parser, "--pretrained", "--input", required=True,
             help="the PyTorch/timm weights: a .pth/.pt, .safetensors or .npz file")
    add_flag(parser, "--file_name", "--output", required=True,
             help="MindSpore checkpoint to write (.ckpt), or .npz for hyper-search scales")
    parser.add_argument("--num_classes", type=int, help="default: read off the classifier weights")
    args = parser.parse_args(argv)
    import_weights(args.arch, args.pretrained, args.file_name, args.num_classes)
    return 0


if __name__ == "__main__":
    run_cli(main)
