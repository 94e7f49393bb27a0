"""The RepVGG model family: ``create_model``, ``repvgg_model_convert`` and PyTorch weight import."""

from src.models.repvgg import RepVGG, RepVGGBlock, create_model, has_multi_branch_blocks, repvgg_model_convert
from src.models.variants import VARIANTS, get_variant, list_models, resolve_arch
from src.models.weight_import import WeightImportError, load_pytorch_weights

__all__ = [
    "VARIANTS",
    "RepVGG",
    "RepVGGBlock",
    "WeightImportError",
    "create_model",
    "get_variant",
    "has_multi_branch_blocks",
    "list_models",
    "load_pytorch_weights",
    "repvgg_model_convert",
    "resolve_arch",
]
