"""The offline-inference file formats (src.deploy.binfiles) and the two Python ends that write and read them
(src.deploy.offline_eval: preprocess.py; src.deploy.result_scoring: postprocess.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.config import load_config
from src.data import preprocess_image, write_demo_imagefolder
from src.data.demo_dataset import DEMO_CLASSES
from src.deploy.binfiles import (
    INPUT_FOLDER,
    LABEL_FILE,
    LABEL_FORMAT,
    BinEntry,
    LabelFile,
    input_stems,
    read_float32,
    read_label_file,
    read_results,
    result_file,
    write_input_bin,
    write_label_file,
)
from src.deploy.offline_eval import write_bin_dataset
from src.deploy.result_scoring import score_results
from src.errors import UserError

REPO = Path(__file__).resolve().parents[3]
DEMO_CONFIG = REPO / "src" / "configs" / "demo.yaml"
VAL_PER_CLASS = 2


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_imagefolder(str(root), 1, VAL_PER_CLASS)
    return root


@pytest.fixture(scope="module")
def cfg():
    return load_config(DEMO_CONFIG, check_paths=False)


def make_label_file(batch_size: int, labels_per_file: list[list[int]], num_classes: int = 4) -> LabelFile:
    stems = input_stems(len(labels_per_file))
    entries = tuple(
        BinEntry(stem, tuple(labels), tuple(f"c{label}/{stem}-{row}.png" for row, label in enumerate(labels)))
        for stem, labels in zip(stems, labels_per_file, strict=True))
    return LabelFile((batch_size, 3, 8, 8), tuple(f"c{i}" for i in range(num_classes)), entries, "/data/val")


def write_results(folder: Path, label_file: LabelFile, logits: np.ndarray) -> None:
    """Result files as the harness writes them, from (num_files, batch, classes) logits."""
    folder.mkdir(exist_ok=True)
    for entry, rows in zip(label_file.entries, logits, strict=True):
        rows.astype("<f4").tofile(result_file(folder, entry.stem))


# ----- names and raw tensors ----------------------------------------------------------------------


def test_input_stems_sort_in_index_order_for_any_count():
    assert input_stems(3) == ["000000", "000001", "000002"]
    stems = input_stems(1_000_001)
    assert len(stems[-1]) == 7
    assert stems == sorted(stems)


def test_input_bin_round_trip_is_raw_little_endian_float32(tmp_path, rng):
    batch = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    path = tmp_path / "x.bin"
    write_input_bin(path, batch)
    assert path.stat().st_size == batch.size * 4
    np.testing.assert_array_equal(np.fromfile(path, dtype="<f4").reshape(batch.shape), batch)
    np.testing.assert_array_equal(read_float32(path, batch.shape), batch)


def test_mis_sized_raw_file_is_named_with_both_sizes(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 12)
    with pytest.raises(UserError, match=r"short\.bin has 12 bytes, expected 32"):
        read_float32(path, (2, 4))
    with pytest.raises(UserError, match="missing file"):
        read_float32(tmp_path / "absent.bin", (2, 4))


# ----- label file ---------------------------------------------------------------------------------


def test_label_file_round_trip(tmp_path):
    written = make_label_file(2, [[0, 3], [1]])
    write_label_file(tmp_path / LABEL_FILE, written)
    assert read_label_file(tmp_path / LABEL_FILE) == written
    assert written.num_images == 3
    record = json.loads((tmp_path / LABEL_FILE).read_text())
    assert record["format"] == LABEL_FORMAT
    assert record["files"]["000001"] == {"labels": [1], "images": ["c1/000001-0.png"]}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda record: record.update(format="other"), "wrong or missing 'format'"),
    (lambda record: record.update(input_shape=[1, 3, 8]), "'input_shape' must be 4 positive integers"),
    (lambda record: record.update(classes=[]), "'classes' must be a non-empty list"),
    (lambda record: record.update(files={}), "'files' must map"),
    (lambda record: record["files"]["000000"].update(labels=[0, 1, 2]), r"1 to 2 \(the batch size\)"),
    (lambda record: record["files"]["000000"].update(labels=[0, 9]), r"labels \[0, 9\] outside the 4 classes"),
    (lambda record: record["files"]["000000"].update(images=["a.png"]), "one image per label"),
])
def test_invalid_label_file_is_refused_with_the_reason(tmp_path, edit, message):
    path = tmp_path / LABEL_FILE
    write_label_file(path, make_label_file(2, [[0, 3], [1]]))
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(UserError, match=message):
        read_label_file(path)


def test_missing_or_broken_label_file_is_named(tmp_path):
    with pytest.raises(UserError, match="label file not found"):
        read_label_file(tmp_path / LABEL_FILE)
    (tmp_path / LABEL_FILE).write_text("{not json")
    with pytest.raises(UserError, match="cannot read label file"):
        read_label_file(tmp_path / LABEL_FILE)


# ----- result files -------------------------------------------------------------------------------


def test_results_drop_the_padding_rows_of_the_last_batch(tmp_path, rng):
    label_file = make_label_file(2, [[0, 3], [1]])
    logits = rng.standard_normal((2, 2, 4)).astype(np.float32)
    write_results(tmp_path / "results", label_file, logits)
    read, labels = read_results(tmp_path / "results", label_file)
    np.testing.assert_array_equal(read, logits.reshape(4, 4)[:3])
    np.testing.assert_array_equal(labels, [0, 3, 1])


def test_missing_result_files_are_listed(tmp_path, rng):
    label_file = make_label_file(1, [[0], [1], [2]])
    write_results(tmp_path / "results", label_file, rng.standard_normal((3, 1, 4)))
    (tmp_path / "results" / "000001_0.bin").unlink()
    with pytest.raises(UserError, match=r"1 of 3 result files missing .*000001_0\.bin"):
        read_results(tmp_path / "results", label_file)
    with pytest.raises(UserError, match=r"result folder .* does not exist"):
        read_results(tmp_path / "nowhere", label_file)


def test_mis_sized_result_files_are_named(tmp_path, rng):
    label_file = make_label_file(1, [[0], [1]])
    write_results(tmp_path / "results", label_file, rng.standard_normal((2, 1, 4)))
    with pytest.raises(UserError, match=r"1 x 5 float32 logits \(20 bytes\): 000000_0\.bin \(16 bytes\)"):
        read_results(tmp_path / "results", label_file, num_classes=5)
    rng.standard_normal(3).astype("<f4").tofile(result_file(tmp_path / "results", "000001"))
    with pytest.raises(UserError, match="result files differ in size"):
        read_results(tmp_path / "results", label_file)


def test_labels_beyond_the_model_outputs_are_refused(tmp_path, rng):
    label_file = make_label_file(1, [[0], [3]])
    write_results(tmp_path / "results", label_file, rng.standard_normal((2, 1, 3)))
    with pytest.raises(UserError, match="labels go up to 3 but the model has 3 outputs"):
        read_results(tmp_path / "results", label_file)


def test_score_results_counts_top1_and_top5(tmp_path):
    label_file = make_label_file(1, [[0], [1], [2], [3]], num_classes=8)
    logits = np.tile(np.arange(8, dtype=np.float32)[::-1], (4, 1, 1))  # class 0 ranks first, class 7 last
    write_results(tmp_path / "results", label_file, logits)
    write_label_file(tmp_path / LABEL_FILE, label_file)
    result = score_results(tmp_path / "results", tmp_path / LABEL_FILE)
    assert (result.images, result.top1, result.top5) == (4, 25.0, 100.0)


# ----- image folder -> .bin files -----------------------------------------------------------------


def test_bins_hold_the_eval_preprocessing_in_sorted_class_order(tmp_path, demo_root, cfg):
    label_file = write_bin_dataset(cfg, demo_root, tmp_path / "out")
    assert label_file.classes == DEMO_CLASSES
    assert label_file.input_shape == (1, 3, 32, 32)
    assert [entry.labels[0] for entry in label_file.entries] == [i for i in range(8) for _ in range(VAL_PER_CLASS)]
    assert read_label_file(tmp_path / "out" / LABEL_FILE) == label_file
    bins = sorted(os.listdir(tmp_path / "out" / INPUT_FOLDER))
    assert bins == [f"{entry.stem}.bin" for entry in label_file.entries]
    last = label_file.entries[-1]
    expected = preprocess_image(demo_root / "val" / last.images[0], cfg)
    np.testing.assert_array_equal(read_float32(tmp_path / "out" / INPUT_FOLDER / bins[-1], (1, 3, 32, 32))[0],
                                  expected)


def test_a_split_folder_gives_the_same_files_as_its_root(tmp_path, demo_root, cfg):
    from_root = write_bin_dataset(cfg, demo_root, tmp_path / "root")
    from_split = write_bin_dataset(cfg, demo_root / "val", tmp_path / "split")
    assert from_root == from_split
    for entry in from_root.entries:
        name = f"{entry.stem}.bin"
        assert (tmp_path / "root" / INPUT_FOLDER / name).read_bytes() == \
            (tmp_path / "split" / INPUT_FOLDER / name).read_bytes()


def test_class_indices_come_from_the_sibling_train_folder(tmp_path, demo_root, cfg):
    # A val/ that lacks the first two classes keeps the training indices, not 0..5.
    root = tmp_path / "partial"
    (root / "train").mkdir(parents=True)
    for name in DEMO_CLASSES:
        (root / "train" / name).mkdir()
    (root / "val").mkdir()
    for name in DEMO_CLASSES[2:]:
        os.symlink(demo_root / "val" / name, root / "val" / name)
    label_file = write_bin_dataset(cfg, root, tmp_path / "out")
    assert label_file.classes == DEMO_CLASSES
    assert sorted({entry.labels[0] for entry in label_file.entries}) == list(range(2, 8))


def test_batches_pad_the_last_file_with_zero_images(tmp_path, demo_root, cfg):
    label_file = write_bin_dataset(cfg, demo_root, tmp_path / "out", batch_size=5)
    assert [len(entry.labels) for entry in label_file.entries] == [5, 5, 5, 1]
    last = read_float32(tmp_path / "out" / INPUT_FOLDER / f"{label_file.entries[-1].stem}.bin", (5, 3, 32, 32))
    assert np.abs(last[0]).sum() > 0
    assert not last[1:].any()


def test_missing_or_empty_data_set_is_a_user_error(tmp_path, cfg):
    with pytest.raises(UserError, match="does not exist"):
        write_bin_dataset(cfg, tmp_path / "absent", tmp_path / "out")
    for name in ("a", "b"):
        (tmp_path / "empty" / name).mkdir(parents=True)
    with pytest.raises(UserError, match="no images"):
        write_bin_dataset(cfg, tmp_path / "empty", tmp_path / "out")


def test_unreadable_image_is_named_and_the_previous_output_survives(tmp_path, demo_root, cfg):
    write_bin_dataset(cfg, demo_root, tmp_path / "out")
    before = sorted(os.listdir(tmp_path / "out" / INPUT_FOLDER))
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in DEMO_CLASSES[:2]:
        os.symlink(demo_root / "val" / name, broken / name)
    (broken / "zzz").mkdir()  # sorts last: the bad image comes after good ones were written
    (broken / "zzz" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"unreadable image .*zzz/bad\.png"):
        write_bin_dataset(cfg, broken, tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == [INPUT_FOLDER, LABEL_FILE]
    assert sorted(os.listdir(tmp_path / "out" / INPUT_FOLDER)) == before


# ----- entry points -------------------------------------------------------------------------------


def run_entry_point(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_preprocess_py_reports_a_missing_data_set_in_one_line(tmp_path):
    result = run_entry_point("preprocess.py", "--config", str(DEMO_CONFIG), "--dataset_path",
                             str(tmp_path / "absent"), "--output_path", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: dataset_path")
    assert "Traceback" not in result.stderr


def test_postprocess_py_prints_accuracy_and_writes_json(tmp_path):
    label_file = make_label_file(1, [[0], [1]], num_classes=8)
    logits = np.tile(np.arange(8, dtype=np.float32)[::-1], (2, 1, 1))
    write_results(tmp_path / "results", label_file, logits)
    write_label_file(tmp_path / LABEL_FILE, label_file)
    result = run_entry_point("postprocess.py", "--result_path", str(tmp_path / "results"),
                             "--label_path", str(tmp_path / LABEL_FILE))
    assert result.returncode == 0, result.stderr
    assert "top-1 accuracy: 50.000 %\ntop-5 accuracy: 100.000 %" in result.stdout
    record = json.loads((tmp_path / "results" / "accuracy.json").read_text())
    assert (record["images"], record["top1"], record["top5"]) == (2, 50.0, 100.0)
    missing = run_entry_point("postprocess.py", "--result_path", str(tmp_path / "none"),
                              "--label_path", str(tmp_path / LABEL_FILE))
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr


def test_postprocess_py_scores_without_loading_mindspore(tmp_path):
    label_file = make_label_file(1, [[0], [1]], num_classes=8)
    write_results(tmp_path / "results", label_file, np.zeros((2, 1, 8), dtype=np.float32))
    write_label_file(tmp_path / LABEL_FILE, label_file)
    # Run postprocess.py's main in a fresh interpreter, then list what it imported.
    program = (
        "import runpy, sys\n"
        f"sys.argv = ['postprocess.py', '--result_path', {str(tmp_path / 'results')!r}, "
        f"'--label_path', {str(tmp_path / LABEL_FILE)!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(REPO / 'postprocess.py')!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "print('loaded:', sorted(name for name in sys.modules if name.split('.')[0] == 'mindspore'))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                            cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results" / "accuracy.json").is_file()
    assert "loaded: []" in result.stdout
