"""What an exported model carries besides its graph, so that it can be used without the recipe it came from.

ONNX files hold two ``metadata_props`` entries, both JSON:
- ``class_names``: the class names in label order (``src.class_names``);
- ``preprocessing``: the recipe keys that define the evaluation preprocessing (``set``, ``image_size``,
  ``crop_pct``, ``interpolation``), from which ``eval_transforms`` is rebuilt.
MINDIR and AIR files cannot hold either: their class names go to ``<name>.classes.txt`` beside them.
Written by ``src.deploy.export``; read here without MindSpore (postprocess.py runs without it).
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path

import onnx

from src.class_names import ONNX_METADATA_KEY, decode_class_names, read_classes_file, sidecar_path
from src.errors import UserError

PREPROCESSING_KEY = "preprocessing"
# The recipe keys that define the evaluation preprocessing, and their types.
PREPROCESSING_KEYS = {"set": str, "image_size": int, "crop_pct": float, "interpolation": str}


def metadata_class_names(metadata: Mapping[str, str], where: str) -> list[str] | None:
    text = metadata.get(ONNX_METADATA_KEY)
    return None if text is None else decode_class_names(text, where)


def exported_class_names(model_path: str | os.PathLike) -> list[str] | None:
    """The class names an exported model carries: ONNX metadata, or ``<name>.classes.txt`` beside a MINDIR/AIR."""
    path = Path(model_path)
    if not path.is_file():
        raise UserError(f"model not found: {path}")
    if path.suffix.lower() == ".onnx":
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as error:  # protobuf's DecodeError and friends for a file that is not ONNX
            raise UserError(f"cannot read {path} as an ONNX model: {str(error).splitlines()[0]}") from error
        return metadata_class_names({p.key: p.value for p in model.metadata_props}, str(path))
    names_file = sidecar_path(path)
    return read_classes_file(names_file) if names_file.is_file() else None


def recorded_preprocessing(metadata: Mapping[str, str], where: str) -> dict[str, object] | None:
    """The recipe keys of the evaluation preprocessing recorded at export (config overrides), or None."""
    text = metadata.get(PREPROCESSING_KEY)
    if text is None:
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    wrong = "not a JSON object" if not isinstance(values, dict) else next(
        (f"{key} is missing or not a {kind.__name__}" for key, kind in PREPROCESSING_KEYS.items()
         if not isinstance(values.get(key), kind) or isinstance(values.get(key), bool)), None)
    if wrong:
        raise UserError(f"{where}: the recorded preprocessing is unusable ({wrong}); give --config")
    return {key: values[key] for key in PREPROCESSING_KEYS}
