"""Export a checkpoint's network (re-parameterised unless told otherwise) to MINDIR, AIR or ONNX.

A RepOpt-VGG is plain already and goes out as it is; a RepOpt search net is merged into the plain RepOpt-VGG that
computes the same function (its branches are linear), as a RepVGG is fused into its deploy form.

ONNX files follow the usual edge-deployment convention: opset 11, one input named ``data`` and one
output named ``output``, optionally with a dynamic batch dimension. They carry the class names and the
evaluation preprocessing in their metadata; MINDIR and AIR files get their class names beside them
(``src.deploy.model_info``).
"""

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
from mindspore import nn

from src.atomic_files import check_writable_folder, staging_folder
from src.checkpoint_files import read_checkpoint_class_names
from src.class_names import ONNX_METADATA_KEY, encode_class_names, sidecar_path, write_classes_file
from src.config import Config
from src.deploy.model_info import PREPROCESSING_KEY, PREPROCESSING_KEYS
from src.device import device_available
from src.errors import UserError
from src.logger import get_logger
from src.models import has_multi_branch_blocks, repvgg_model_convert
from src.models.fake_quant import FakeQuantVGG
from src.models.from_checkpoint import load_network
from src.models.repopt import RepOptSearchNet, merge_search_net

FILE_FORMATS = ("MINDIR", "AIR", "ONNX")
ONNX_INPUT_NAME = "data"
ONNX_OUTPUT_NAME = "output"
_SUFFIXES = {"MINDIR": ".mindir", "AIR": ".air", "ONNX": ".onnx"}
_AIR_NEEDS_ASCEND = ("AIR export needs an Ascend device (MindSpore builds AIR with the Ascend toolkit); "
                     "use --file_format MINDIR or ONNX here, or export on an Ascend machine")


def export_device(recipe_device: str, file_format: str) -> str:
    """The device an export runs on: Ascend for AIR; the CPU for MINDIR and ONNX, whatever the recipe trains on,
    since writing a graph needs no accelerator."""
    if file_format.upper() == "AIR":
        if not device_available("Ascend"):
            raise UserError(_AIR_NEEDS_ASCEND)
        return "Ascend"
    if recipe_device != "CPU":
        get_logger().info(f"exporting on the CPU: an export needs no accelerator (the recipe's device_target "
                          f"{recipe_device} is not used)")
    return "CPU"


def _rename_onnx_io(model: onnx.ModelProto, dynamic_batch: bool) -> None:
    graph = model.graph
    renames = {graph.input[0].name: ONNX_INPUT_NAME, graph.output[0].name: ONNX_OUTPUT_NAME}
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    graph.input[0].name = ONNX_INPUT_NAME
    graph.output[0].name = ONNX_OUTPUT_NAME
    if dynamic_batch:
        for value in (graph.input[0], graph.output[0]):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        # Intermediate shapes recorded at the export batch size would contradict a dynamic batch.
        del graph.value_info[:]


def export_path(file_format: str, file_name: str | Path, dynamic_batch: bool = False) -> Path:
    """The file an export writes; UserError for a format that cannot be written here or a folder that cannot."""
    file_format = file_format.upper()
    if file_format not in FILE_FORMATS:
        raise UserError(f"file_format must be one of {', '.join(FILE_FORMATS)}, got {file_format!r}")
    if file_format == "AIR" and ms.get_context("device_target") != "Ascend":
        raise UserError(_AIR_NEEDS_ASCEND)
    if dynamic_batch and file_format != "ONNX":
        raise UserError("--dynamic_batch is only supported for ONNX")
    suffix = _SUFFIXES[file_format]
    target = Path(file_name)
    target = target.with_name(target.name.removesuffix(suffix) + suffix)
    check_writable_folder(target.parent)
    return target


def _write_class_names_beside(target: Path, class_names: Sequence[str] | None) -> None:
    sidecar = sidecar_path(target)
    if class_names:
        write_classes_file(sidecar, class_names)
    else:
        sidecar.unlink(missing_ok=True)  # an earlier export's names would not belong to this model


def onnx_metadata(cfg: Config, class_names: Sequence[str] | None) -> dict[str, str]:
    """The ``metadata_props`` of an exported ONNX file (see ``src.deploy.model_info``)."""
    metadata = {PREPROCESSING_KEY: json.dumps({key: getattr(cfg, key) for key in PREPROCESSING_KEYS})}
    if class_names:
        metadata[ONNX_METADATA_KEY] = encode_class_names(class_names)
    return metadata


def export_network(net: nn.Cell, file_format: str, file_name: str | Path, batch_size: int, image_size: int,
                   dynamic_batch: bool = False, class_names: Sequence[str] | None = None,
                   metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``net`` (in eval mode) and return the path of the file written. ``metadata`` goes into an ONNX
    file's ``metadata_props``; ``class_names`` into it or, for MINDIR/AIR, beside the file."""
    target = export_path(file_format, file_name, dynamic_batch)
    file_format, suffix = file_format.upper(), target.suffix
    net.set_train(False)
    example = ms.Tensor(np.zeros((batch_size, 3, image_size, image_size), np.float32))
    # MindSpore writes in place, read-only (0400), and chmods the file's folder to 0700: it works in a private
    # staging folder, and the file we write from its output replaces the target only once complete.
    try:
        with staging_folder(target.parent, target.name) as staging:
            exported = staging / f"exported{suffix}"
            ms.export(net, example, file_name=str(exported.with_suffix("")), file_format=file_format)
            final = staging / f"final{suffix}"
            if file_format == "ONNX":
                model = onnx.load(str(exported))
                _rename_onnx_io(model, dynamic_batch)
                onnx.helper.set_model_props(model, dict(metadata or {}))
                onnx.checker.check_model(model)
                onnx.save(model, str(final))
            else:
                shutil.copyfile(exported, final)
            os.replace(final, target)
    except (OSError, RuntimeError) as error:
        raise UserError(f"cannot write {target}: {str(error).splitlines()[0]}") from error
    if file_format != "ONNX":
        _write_class_names_beside(target, class_names)
    return target


def run_export(cfg: Config, file_format: str, file_name: str | None, batch_size: int, convert: bool = True,
               dynamic_batch: bool = False) -> Path:
    """What export.py does: checkpoint -> (re-parameterised) network -> file."""
    if not cfg.pretrained:
        raise UserError("--pretrained CKPT is required: the checkpoint to export")
    if batch_size < 1:
        raise UserError(f"--batch_size must be >= 1, got {batch_size}")
    export_path(file_format, file_name or cfg.arch, dynamic_batch)  # fails before the checkpoint is read
    net, description = load_network(cfg.pretrained, cfg.arch, cfg.num_classes)
    if convert and has_multi_branch_blocks(net):
        net = repvgg_model_convert(net)
        description += ", re-parameterised"
    elif isinstance(net, FakeQuantVGG) and file_format.upper() == "ONNX":
        # ONNX gets the float network; quantize_onnx quantises it with the learned ranges (its --qat route).
        net = net.float_network()
        description += ", its float weights (quantise them with the learned ranges: src.tools.quantize_onnx)"
    elif convert and isinstance(net, RepOptSearchNet):
        net = merge_search_net(net)
        description += ", search branches merged into the plain net"
    class_names = read_checkpoint_class_names(cfg.pretrained)
    target = export_network(net, file_format, file_name or net.arch, batch_size, cfg.image_size, dynamic_batch,
                            class_names, onnx_metadata(cfg, class_names))
    names = f"{len(class_names)} class names" if class_names else "no class names (the checkpoint has none)"
    get_logger().info(f"exported {cfg.pretrained} ({net.arch}, {description}) to {target} with {names}")
    return target
