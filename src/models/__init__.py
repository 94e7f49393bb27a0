"""The RepVGG model family: ``create_model``, ``repvgg_model_convert`` and PyTorch weight import."""

from src.models.repvgg import RepVGG, RepVGGBlock, create_model, repvgg_model_convert
from src.models.variants import VARIANTS, get_variant, list_models, resolve_arch

__all__ = [
    "VARIANTS",
    "RepVGG",
    "RepVGGBlock",
    "create_model",
    "get_variant",
    "list_models",
    "repvgg_model_convert",
    "resolve_arch",
]
