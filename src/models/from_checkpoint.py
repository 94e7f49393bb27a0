"""Networks built from our checkpoints: for evaluation and export (``load_network``, in whatever form the
checkpoint holds) and for fine-tuning (``load_pretrained``). Reading the file and telling its form is
``src.checkpoint_files``; this module builds the matching network and loads it, checked name by name."""

from pathlib import Path

import mindspore as ms
from mindspore import nn

from src.checkpoint_files import CheckpointForm, checkpoint_form, is_deploy_form, network_weights, read_checkpoint
from src.errors import UserError
from src.logger import get_logger
from src.models.repopt import create_repopt_model
from src.models.repvgg import create_model
from src.models.weight_import import check_weights_fit

_CLASSIFIER_PREFIX = "linear."


def load_checked(cell: nn.Cell, expected: dict, weights: dict, context: str) -> None:
    """Load ``weights`` into ``cell`` when they match ``expected`` (name -> shape) exactly; else one UserError
    that starts with ``context`` and lists the missing, unknown and mis-shaped names."""
    try:
        check_weights_fit(expected, {name: p.shape for name, p in weights.items()})
    except UserError as error:
        raise UserError(f"{context}: {error}") from error
    ms.load_param_into_net(cell, weights, strict_load=True)


def _fit_and_load(net: nn.Cell, weights: dict, path: Path) -> None:
    expected = {name: p.shape for name, p in net.parameters_and_names()}
    load_checked(net, expected, weights,
                 f"{path} does not fit {getattr(net, 'arch', 'the network')} with {net.num_classes} classes")


def _network_for(form: CheckpointForm, arch: str, num_classes: int) -> nn.Cell:
    if form in (CheckpointForm.REPOPT_PLAIN, CheckpointForm.REPOPT_SEARCH):
        return create_repopt_model(arch, num_classes, search=form is CheckpointForm.REPOPT_SEARCH)
    return create_model(arch, num_classes=num_classes, deploy=form is CheckpointForm.DEPLOY)


def load_network(path: str | Path, arch: str, num_classes: int, prefer_ema: bool = True) -> tuple[nn.Cell, str]:
    """A network in eval mode with the checkpoint's weights, in the form the keys say: RepVGG train or deploy,
    RepOpt-VGG plain or search net."""
    path = Path(path)
    weights, used_ema = network_weights(read_checkpoint(path), prefer_ema)
    if not weights:
        raise UserError(f"{path} holds no RepVGG weights")
    form = checkpoint_form(weights)
    net = _network_for(form, arch, num_classes)
    _fit_and_load(net, weights, path)
    net.set_train(False)
    return net, f"{form} {'EMA ' if used_ema else ''}weights"


def load_pretrained(net: nn.Cell, path: str | Path) -> None:
    """Start fine-tuning from a checkpoint; a classifier of another shape is skipped, said in one line."""
    path = Path(path)
    weights, used_ema = network_weights(read_checkpoint(path))
    if is_deploy_form(weights):
        raise UserError(f"{path} is a deploy (fused) checkpoint: training needs the multi-branch form; "
                        "start from the training checkpoint instead")
    own = dict(net.parameters_and_names())
    skipped = [name for name in weights if name.startswith(_CLASSIFIER_PREFIX)
               and name in own and tuple(weights[name].shape) != tuple(own[name].shape)]
    if skipped:
        weights = {name: p for name, p in weights.items() if name not in skipped}
        own_classifier = {name for name in own if name.startswith(_CLASSIFIER_PREFIX)}
        expected = {name: p.shape for name, p in own.items() if name not in own_classifier}
        check_weights_fit(expected, {name: p.shape for name, p in weights.items()})
        ms.load_param_into_net(net, weights, strict_load=True)
        get_logger().info(f"pretrained {path.name}: classifier skipped (its shape differs: "
                          f"{net.num_classes} classes here), the rest loaded")
    else:
        _fit_and_load(net, weights, path)
        get_logger().info(f"pretrained {path.name}: all weights loaded{' (EMA)' if used_ema else ''}")
