"""Fuzz tests: the config loader and the readers of offline-inference files (input .bin files, the harness's result
files, labels.json, and the JPEG guard in front of MindSpore's decoder) answer any input with a result or a UserError,
never with another exception.

hypothesis runs a fixed, derandomised set of examples (the same in every run and in CI), with no deadline and no
example database written to disk.
"""

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from src.config import BASE_KEY, Config, add_config_arguments, config_from_args, load_config
from src.data.jpeg_guard import jpeg_header_problem
from src.deploy.binfiles import LABEL_FORMAT, BinEntry, LabelFile, read_float32, read_label_file, result_file
from src.deploy.result_scoring import score_results
from src.errors import UserError

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "src" / "configs" / "demo.yaml"
KEYS = [*Config.__dataclass_fields__, BASE_KEY]
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Integers beyond float range too: YAML reads a 400-digit literal as an int.
scalars = st.none() | st.booleans() | st.integers() | st.integers(-(10**400), 10**400) | st.floats() | \
    st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=6)
# Mostly real keys, so that the values reach the checks behind the key lookup.
keys = st.sampled_from(KEYS) | st.text(max_size=12)
yaml_lines = st.lists(st.tuples(keys, st.text(st.characters(codec="utf-8"), max_size=16)), max_size=6).map(
    lambda pairs: "\n".join(f"{key}: {value}" for key, value in pairs))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def loads_or_refuses(load, *args, **kwargs) -> None:
    """Call ``load``; a UserError is a fine answer, any other exception fails the test."""
    try:
        load(*args, **kwargs)
    except UserError as error:
        assert str(error), "a UserError must say what is wrong"


# ----- configuration ---------------------------------------------------------------------------------------------


@FUZZ
@given(text=yaml_lines | st.text(), check_paths=st.booleans())
def test_config_loader_answers_any_yaml_text(folder, text, check_paths):
    path = folder / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    loads_or_refuses(load_config, path, check_paths=check_paths)


@FUZZ
@given(mapping=st.dictionaries(keys, values, max_size=6), check_paths=st.booleans())
def test_config_loader_answers_any_values(folder, mapping, check_paths):
    path = folder / "fuzz.yaml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    loads_or_refuses(load_config, path, check_paths=check_paths)


@settings(FUZZ, max_examples=500)
@given(key=st.sampled_from(list(Config.__dataclass_fields__)), value=values)
def test_config_loader_answers_any_value_of_each_key(key, value):
    # One override at a time, so that every value reaches its own key's checks.
    loads_or_refuses(load_config, DEMO_CONFIG, {key: value}, check_paths=False)


@FUZZ
@given(overrides=st.dictionaries(keys, values, max_size=4))
def test_config_loader_answers_any_overrides(overrides):
    loads_or_refuses(load_config, DEMO_CONFIG, overrides, check_paths=False)


@FUZZ
@given(key=st.sampled_from(list(Config.__dataclass_fields__)), text=st.text(max_size=24))
def test_command_line_override_answers_any_text(key, text):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    # --key=value: a value that starts with '-' is still a value.
    args = parser.parse_args(["--config", str(DEMO_CONFIG), f"--{key}={text}"])
    loads_or_refuses(config_from_args, args, check_paths=False)


# ----- offline inference files -----------------------------------------------------------------------------------

shapes = st.lists(st.integers(-2, 4) | values, max_size=5)
file_records = st.fixed_dictionaries({}, optional={
    "labels": st.lists(st.integers(-1, 5), max_size=4) | values,
    "images": st.lists(st.text(max_size=8), max_size=4) | values,
})
label_records = st.fixed_dictionaries({}, optional={
    "format": st.just(LABEL_FORMAT) | st.text(max_size=8),
    "input_shape": st.just([2, 3, 8, 8]) | shapes,
    "dtype": st.just("float32") | values,
    "classes": st.lists(st.text(max_size=4), max_size=5) | values,
    "files": st.dictionaries(st.text(max_size=6), file_records | values, max_size=3) | values,
    "dataset_path": values,
})


@FUZZ
@given(record=label_records | values)
def test_label_file_reader_answers_any_json(folder, record):
    path = folder / "labels.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    loads_or_refuses(read_label_file, path)


@FUZZ
@given(data=st.binary(max_size=64))
def test_label_file_reader_answers_any_bytes(folder, data):
    path = folder / "labels.json"
    path.write_bytes(data)
    loads_or_refuses(read_label_file, path)


@FUZZ
@given(data=st.binary(max_size=64), shape=st.lists(st.integers(0, 4), min_size=1, max_size=4))
def test_raw_float32_reader_gives_the_shape_or_names_the_size(folder, data, shape):
    path = folder / "x.bin"
    path.write_bytes(data)
    try:
        array = read_float32(path, tuple(shape))
    except UserError as error:
        assert "bytes, expected" in str(error)
    else:
        assert array.shape == tuple(shape) and array.dtype == np.float32


@st.composite
def offline_runs(draw) -> tuple[LabelFile, dict[str, bytes | None], int | None]:
    """A valid label file, result files of any size (or missing), and any --num_classes."""
    batch, classes = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    entries = tuple(
        BinEntry(f"{index:06d}", tuple(labels), tuple(f"c/{index}-{row}.png" for row in range(len(labels))))
        for index, labels in enumerate(draw(st.lists(st.lists(st.integers(0, classes - 1), min_size=1,
                                                              max_size=batch), min_size=1, max_size=3))))
    label_file = LabelFile((batch, 3, 4, 4), tuple(f"class{i}" for i in range(classes)), entries, "/data")
    results = {entry.stem: draw(st.none() | st.binary(max_size=4 * batch * 8)) for entry in entries}
    return label_file, results, draw(st.none() | st.integers(-1, 8))


@FUZZ
@given(run=offline_runs())
def test_scoring_answers_any_result_files(folder, run):
    label_file, results, num_classes = run
    label_path, result_path = folder / "labels.json", folder / "results"
    label_path.write_text(label_file.to_json(), encoding="utf-8")
    result_path.mkdir(exist_ok=True)
    for stem, data in results.items():
        path = result_file(result_path, stem)
        path.unlink(missing_ok=True)
        if data is not None:
            path.write_bytes(data)
    with np.errstate(all="ignore"):  # random bytes make NaN and infinite logits: scored, not an error
        loads_or_refuses(score_results, result_path, label_path, num_classes)


# ----- the JPEG guard -------------------------------------------------------------------------------------------


def jpeg_bytes(progressive: bool) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80, progressive=progressive)
    return buffer.getvalue()


JPEGS = (jpeg_bytes(False), jpeg_bytes(True))


@settings(FUZZ, max_examples=400)
@given(which=st.sampled_from(JPEGS), edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                    max_size=6), cut=st.integers(2, 10_000))
def test_jpeg_guard_answers_any_damaged_jpeg(which, edits, cut):
    """The guard runs before MindSpore's decoder on every image: it must never raise, whatever the bytes."""
    data = bytearray(which[:cut])
    for position, value in edits:
        if data:
            data[position % len(data)] = value
    problem = jpeg_header_problem(bytes(data))
    assert problem is None or isinstance(problem, str)
