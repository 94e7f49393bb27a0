"""The file formats of offline inference, shared by preprocess.py, ``ascend310_infer/`` and postprocess.py.

- Input files ``<output_path>/00_data/<stem>.bin``: one float32 tensor each, raw little-endian bytes in C
  order (no header), shape ``input_shape`` = (batch, 3, H, W). Stems are zero-padded indices (``000000``,
  ``000001``...), so sorting the names keeps the data set order.
- The label file ``<output_path>/labels.json`` (``LabelFile``): the input shape, the class names (index =
  label) and, per stem, the labels and source images of the batch it holds. The last batch is padded with
  zero images; its ``labels`` list only the real ones.
- Result files ``<result_path>/<stem>_<k>.bin``: the harness's output ``k`` for that input, raw float32;
  output 0 holds the logits, (batch, num_classes).
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.atomic_files import write_text_atomic
from src.errors import UserError

INPUT_FOLDER = "00_data"
LABEL_FILE = "labels.json"
LABEL_FORMAT = "repvgg-offline-labels/1"
FLOAT32 = np.dtype("<f4")
_MIN_STEM_WIDTH = 6
_MAX_LISTED = 5


def input_stems(count: int) -> list[str]:
    """Names of ``count`` input files; zero-padded so that name order is index order for any count."""
    width = max(_MIN_STEM_WIDTH, len(str(count - 1)))
    return [f"{index:0{width}d}" for index in range(count)]


def result_file(result_path: str | os.PathLike, stem: str, output_index: int = 0) -> Path:
    return Path(result_path) / f"{stem}_{output_index}.bin"


def write_input_bin(path: str | os.PathLike, batch: np.ndarray) -> None:
    """Write one (batch, 3, H, W) float32 input tensor as raw little-endian bytes."""
    if batch.ndim != 4:
        raise ValueError(f"an input .bin holds an NCHW batch, got shape {batch.shape}")
    np.ascontiguousarray(batch, dtype=FLOAT32).tofile(path)


def read_float32(path: str | os.PathLike, shape: tuple[int, ...]) -> np.ndarray:
    """Read a raw float32 file of exactly ``shape``; UserError naming the file when it is missing or mis-sized."""
    expected = int(np.prod(shape)) * FLOAT32.itemsize
    try:
        size = os.path.getsize(path)
    except OSError:
        raise UserError(f"missing file {path}") from None
    if size != expected:
        raise UserError(f"{path} has {size} bytes, expected {expected} (float32 of shape {tuple(shape)})")
    return np.fromfile(path, dtype=FLOAT32).reshape(shape)


@dataclass(frozen=True)
class BinEntry:
    """One input file: its stem, the labels of its real images and their paths (relative to the data set)."""

    stem: str
    labels: tuple[int, ...]
    images: tuple[str, ...]


@dataclass(frozen=True)
class LabelFile:
    input_shape: tuple[int, int, int, int]
    classes: tuple[str, ...]
    entries: tuple[BinEntry, ...]
    dataset_path: str

    @property
    def batch_size(self) -> int:
        return self.input_shape[0]

    @property
    def num_images(self) -> int:
        return sum(len(entry.labels) for entry in self.entries)

    def to_json(self) -> str:
        """JSON with one line per input file, so that the file stays readable for 50,000 images."""
        header = {
            "format": LABEL_FORMAT,
            "dataset_path": self.dataset_path,
            "input_shape": list(self.input_shape),
            "dtype": "float32",
            "classes": list(self.classes),
        }
        lines = [f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in header.items()]
        files = [f"    {json.dumps(entry.stem)}: "
                 f"{json.dumps({'labels': list(entry.labels), 'images': list(entry.images)})}"
                 for entry in self.entries]
        return "{\n" + "\n".join(lines) + '\n  "files": {\n' + ",\n".join(files) + "\n  }\n}\n"


def write_label_file(path: str | os.PathLike, label_file: LabelFile) -> Path:
    return write_text_atomic(path, label_file.to_json())


def _is_int_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in value)


def read_label_file(path: str | os.PathLike) -> LabelFile:
    """Read and check a label file written by preprocess.py; UserError naming the file and the problem."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"label file not found: {path} (preprocess.py writes <output_path>/{LABEL_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read label file {path}: {error}") from None

    def invalid(reason: str) -> UserError:
        return UserError(f"label file {path} is not a {LABEL_FORMAT} file written by preprocess.py: {reason}")

    if not isinstance(record, dict) or record.get("format") != LABEL_FORMAT:
        raise invalid("wrong or missing 'format'")
    shape, classes, files = record.get("input_shape"), record.get("classes"), record.get("files")
    if not _is_int_list(shape) or len(shape) != 4 or min(shape) < 1:
        raise invalid(f"'input_shape' must be 4 positive integers, got {shape!r}")
    if not isinstance(classes, list) or len(classes) < 1 or not all(isinstance(name, str) for name in classes):
        raise invalid("'classes' must be a non-empty list of names")
    if not isinstance(files, dict) or not files:
        raise invalid("'files' must map input file stems to their labels")
    entries = []
    for stem, entry in sorted(files.items()):
        labels = entry.get("labels") if isinstance(entry, dict) else None
        images = entry.get("images") if isinstance(entry, dict) else None
        if not _is_int_list(labels) or not 1 <= len(labels) <= shape[0]:
            raise invalid(f"file {stem!r}: 'labels' must be 1 to {shape[0]} (the batch size) integers")
        if not all(0 <= label < len(classes) for label in labels):
            raise invalid(f"file {stem!r}: labels {labels} outside the {len(classes)} classes")
        if not isinstance(images, list) or len(images) != len(labels):
            raise invalid(f"file {stem!r}: 'images' must name one image per label")
        entries.append(BinEntry(stem, tuple(labels), tuple(images)))
    return LabelFile(tuple(shape), tuple(classes), tuple(entries), str(record.get("dataset_path", "")))


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


def _infer_num_classes(sizes: dict[Path, int], batch_size: int) -> int:
    """Classes implied by result file sizes; all files must agree."""
    distinct = sorted(set(sizes.values()))
    if len(distinct) > 1:
        examples = [f"{path.name}: {size} bytes" for path, size in list(sizes.items())[:_MAX_LISTED]]
        raise UserError(f"result files differ in size ({_listed(examples)}); pass --num_classes to find the "
                        "wrong ones")
    row_bytes = batch_size * FLOAT32.itemsize
    if distinct[0] == 0 or distinct[0] % row_bytes:
        raise UserError(f"result files have {distinct[0]} bytes, not a whole number of float32 rows for batch "
                        f"{batch_size}: are they from this preprocessing run?")
    return distinct[0] // row_bytes


def read_results(result_path: str | os.PathLike, label_file: LabelFile, num_classes: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, num_classes) float32 and labels (N,) int64 of the N real images of ``label_file``.

    ``num_classes`` defaults to what the result files' size implies. Missing result files, files of the wrong
    size and labels the model cannot output are UserErrors that name the files.
    """
    if not Path(result_path).is_dir():
        raise UserError(f"result folder {result_path} does not exist or is not a folder")
    paths = {entry.stem: result_file(result_path, entry.stem) for entry in label_file.entries}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise UserError(f"{len(missing)} of {len(paths)} result files missing in {result_path}: {_listed(missing)} "
                        "(did the harness run on every input file?)")
    sizes = {path: path.stat().st_size for path in paths.values()}
    if num_classes is None:
        num_classes = _infer_num_classes(sizes, label_file.batch_size)
    expected = label_file.batch_size * num_classes * FLOAT32.itemsize
    wrong = [f"{path.name} ({size} bytes)" for path, size in sizes.items() if size != expected]
    if wrong:
        raise UserError(f"result files must hold {label_file.batch_size} x {num_classes} float32 logits "
                        f"({expected} bytes): {_listed(wrong)}")
    top_label = max(max(entry.labels) for entry in label_file.entries)
    if top_label >= num_classes:
        raise UserError(f"the labels go up to {top_label} but the model has {num_classes} outputs: "
                        "wrong model or wrong data set?")
    logits = [read_float32(paths[entry.stem], (label_file.batch_size, num_classes))[:len(entry.labels)]
              for entry in label_file.entries]
    labels = [label for entry in label_file.entries for label in entry.labels]
    return np.concatenate(logits), np.asarray(labels, dtype=np.int64)
