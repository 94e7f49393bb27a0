"""What an exported model carries besides its graph, so that it can be used without the recipe it came from.

ONNX files hold two ``metadata_props`` entries, both JSON:
- ``class_names``: the class names in label order (``src.class_names``);
- ``preprocessing``: the recipe keys that define the evaluation preprocessing (``set``, ``image_size``,
  ``crop_pct``, ``interpolation``), from which ``eval_transforms`` is rebuilt.
MINDIR and AIR files cannot hold either: their class names go to ``<name>.classes.txt`` beside them.
"""

import dataclasses
import json
from collections.abc import Mapping, Sequence

from src.class_names import ONNX_METADATA_KEY, decode_class_names, encode_class_names
from src.config import Config
from src.errors import UserError

PREPROCESSING_KEY = "preprocessing"
_PREPROCESSING_TYPES = {"set": str, "image_size": int, "crop_pct": float, "interpolation": str}


def onnx_metadata(cfg: Config, class_names: Sequence[str] | None) -> dict[str, str]:
    preprocessing = {key: getattr(cfg, key) for key in _PREPROCESSING_TYPES}
    metadata = {PREPROCESSING_KEY: json.dumps(preprocessing)}
    if class_names:
        metadata[ONNX_METADATA_KEY] = encode_class_names(class_names)
    return metadata


def metadata_class_names(metadata: Mapping[str, str], where: str) -> list[str] | None:
    text = metadata.get(ONNX_METADATA_KEY)
    return None if text is None else decode_class_names(text, where)


def metadata_preprocessing(metadata: Mapping[str, str], where: str) -> Config | None:
    """A Config whose evaluation preprocessing is the one recorded at export, or None when none was."""
    text = metadata.get(PREPROCESSING_KEY)
    if text is None:
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    wrong = "not a JSON object" if not isinstance(values, dict) else next(
        (f"{key} is missing or not a {kind.__name__}" for key, kind in _PREPROCESSING_TYPES.items()
         if not isinstance(values.get(key), kind) or isinstance(values.get(key), bool)), None)
    if wrong:
        raise UserError(f"{where}: the recorded preprocessing is unusable ({wrong}); give --config")
    return dataclasses.replace(Config(), **{key: values[key] for key in _PREPROCESSING_TYPES})
