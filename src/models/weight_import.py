"""Load PyTorch-ecosystem weights into our Cells: RepVGG (official DingXiaoH/RepVGG or timm naming) and RepOpt-VGG
(official DingXiaoH/RepOptimizers naming: plain-net weights, and the scales of a hyper-search model).

Our parameter paths follow the official implementations, so the official naming differs only in the
BatchNorm leaf names; timm renames modules as well. Instead of parsing foreign names, each of our parameters
is translated to the name it has in the source naming, and the state is checked against that list.
"""

import re
from collections.abc import Mapping

import numpy as np
from mindspore import Tensor, nn

from src.checkpoint_files import is_deploy_form
from src.errors import UserError
from src.models.repopt import BlockScales, plain_blocks

# MindSpore BatchNorm parameter -> PyTorch buffer/parameter name.
_BN_LEAF_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                  "moving_variance": "running_var"}
# (pattern, replacement) applied in order to an official-naming key to get the timm key.
_TIMM_RENAMES = (
    (r"^stage0\.", "stem."),
    (r"^stage([1-4])\.", lambda m: f"stages.{int(m[1]) - 1}."),
    (r"\.rbr_dense\.", ".conv_kxk."),
    (r"\.rbr_1x1\.", ".conv_1x1."),
    (r"\.rbr_identity\.", ".identity."),
    (r"\.rbr_reparam\.", ".reparam_conv."),
    (r"\.se\.down\.", ".attn.fc1."),
    (r"\.se\.up\.", ".attn.fc2."),
    (r"^linear\.", "head.fc."),
)
# PyTorch bookkeeping with no MindSpore counterpart.
_IGNORED_LEAVES = ("num_batches_tracked",)
_LISTED_PER_KIND = 10
# A RepOpt hyper-search block's scale layers, official name -> BlockScales field; each holds one vector ``weight``.
_SCALE_LAYERS = {"scale_conv": "scale_3x3", "scale_1x1": "scale_1x1", "scale_identity": "scale_identity"}


class WeightImportError(UserError):
    """The state does not fit the network; lists every missing, unexpected and mis-shaped key."""

    def __init__(self, missing: list[str], unexpected: list[str], misshaped: list[str], hint: str = ""):
        self.missing, self.unexpected, self.misshaped = missing, unexpected, misshaped
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if keys:
                shown = ", ".join(keys[:_LISTED_PER_KIND])
                more = f" and {len(keys) - _LISTED_PER_KIND} more" if len(keys) > _LISTED_PER_KIND else ""
                parts.append(f"{len(keys)} {label} key(s): {shown}{more}")
        super().__init__("weights do not fit the network: " + "; ".join(parts) + (f". {hint}" if hint else ""))


def strip_module_prefix(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop the ``module.`` prefix that DataParallel/DistributedDataParallel checkpoints carry."""
    return {key.removeprefix("module."): value for key, value in state.items()}


def detect_naming(names: object) -> str:
    """``"timm"`` when the keys use timm's ``stem``/``stages`` layout, else ``"official"``."""
    return "timm" if any(n.startswith(("stem.", "stages.")) for n in names) else "official"


def official_name(mindspore_name: str) -> str:
    module, _, leaf = mindspore_name.rpartition(".")
    return f"{module}.{_BN_LEAF_NAMES.get(leaf, leaf)}"


def timm_name(mindspore_name: str) -> str:
    name = official_name(mindspore_name)
    for pattern, replacement in _TIMM_RENAMES:
        name = re.sub(pattern, replacement, name)
    return name


def pytorch_names(net: nn.Cell, naming: str) -> dict[str, str]:
    """Map each source-naming key to our parameter name, for ``naming`` in {"official", "timm"}."""
    translate = timm_name if naming == "timm" else official_name
    return {translate(name): name for name, _ in net.parameters_and_names()}


def check_weights_fit(expected: Mapping[str, tuple], given: Mapping[str, tuple]) -> None:
    """Raise ``WeightImportError`` unless ``given`` (name -> shape) has exactly the ``expected`` names and shapes.

    When the two disagree on the train/deploy form, the message says which form the weights are in.
    """
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    misshaped = sorted(
        f"{key} {tuple(given[key])} != {tuple(shape)}"
        for key, shape in expected.items()
        if key in given and tuple(given[key]) != tuple(shape)
    )
    if missing or unexpected or misshaped:
        hint = ""
        given_deploy = is_deploy_form(given)
        if given_deploy != is_deploy_form(expected):
            form = "deploy (fused)" if given_deploy else "train (multi-branch)"
            hint = f"The weights are in {form} form: build the network with deploy={given_deploy}."
        raise WeightImportError(missing, unexpected, misshaped, hint)


def load_pytorch_weights(net: nn.Cell, state: Mapping[str, np.ndarray]) -> None:
    """Copy a PyTorch state (name -> array, official or timm naming, optional ``module.``) into ``net``.

    Nothing is written unless every key fits: missing, unexpected or mis-shaped keys raise
    ``WeightImportError`` listing them.
    """
    state = {k: v for k, v in strip_module_prefix(state).items() if not k.endswith(_IGNORED_LEAVES)}
    source_to_ours = pytorch_names(net, detect_naming(state))
    params = dict(net.parameters_and_names())
    check_weights_fit({key: params[ours].shape for key, ours in source_to_ours.items()},
                      {key: np.shape(value) for key, value in state.items()})
    for key, ours in source_to_ours.items():
        param = params[ours]
        param.set_data(Tensor(np.asarray(state[key]), dtype=param.dtype))


def scales_from_pytorch_state(net: nn.Cell, state: Mapping[str, np.ndarray]) -> dict[str, BlockScales]:
    """The searched scales of every block of ``net`` (a plain RepOpt-VGG) in an official hyper-search state.

    The state may hold the whole hyper-search model or only its scales: the other weights of that model (its
    convolutions, BatchNorms and classifier, trained on the search data set) are not used and not required.
    Missing scales, keys the hyper-search model of this arch does not have, and scales of the wrong length raise
    ``WeightImportError`` listing them.
    """
    state = {k: v for k, v in strip_module_prefix(state).items() if not k.endswith(_IGNORED_LEAVES)}
    expected_scales = {}
    search_net_names = {official_name(name) for name, _ in net.parameters_and_names()}
    for path, block in plain_blocks(net).items():
        prefix = f"{path}." if path else ""
        search_net_names.add(f"{prefix}conv_1x1.weight")
        for layer in ("scale_conv", "scale_1x1") + (("scale_identity",) if block.has_identity else ()):
            expected_scales[f"{prefix}{layer}.weight"] = (block.out_channels,)
    # Unused weights are expected with whatever shape they have: only their names are checked.
    unused = {key: np.shape(value) for key, value in state.items() if key in search_net_names}
    check_weights_fit({**expected_scales, **unused}, {key: np.shape(value) for key, value in state.items()})
    non_finite = sorted(key for key in expected_scales if not np.isfinite(state[key]).all())
    if non_finite:
        raise UserError(f"{len(non_finite)} scale(s) hold NaN or infinite values: {', '.join(non_finite[:10])}")
    scales = {}
    for path in plain_blocks(net):
        prefix = f"{path}." if path else ""
        fields = {field: state.get(f"{prefix}{layer}.weight") for layer, field in _SCALE_LAYERS.items()}
        scales[path] = BlockScales(**{field: None if value is None else np.asarray(value, np.float32)
                                      for field, value in fields.items()})
    return scales
