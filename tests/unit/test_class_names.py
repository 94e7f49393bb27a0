"""Class names travel with the model: one name per line beside it, and one warning line when a model's classes
are not a data set's."""

import numpy as np
import pytest

from src.class_names import read_classes_file, warn_if_classes_differ, write_classes_file
from src.deploy.binfiles import BinEntry, LabelFile, result_file, write_label_file
from src.deploy.predict import warn_on_other_classes
from src.errors import UserError


def test_classes_file_round_trips_and_refuses_names_it_could_not_read_back(tmp_path):
    names = ["n01440764", "with space", "#hash first"]
    assert read_classes_file(write_classes_file(tmp_path / "classes.txt", names)) == names
    with pytest.raises(UserError, match="cannot be stored one per line"):
        write_classes_file(tmp_path / "bad.txt", ["ok", "two\nlines"])


def test_a_folder_with_other_class_folders_gets_one_warning_line(tmp_path, caplog):
    for name in ("cat", "dog", "fox"):
        (tmp_path / name).mkdir()
    warn_on_other_classes(["cat", "dog", "emu"], [str(tmp_path)])
    warn_on_other_classes(["cat", "dog", "fox"], [str(tmp_path)])
    assert not warn_if_classes_differ(None, ["cat"], "unnamed")
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "class 2 is 'emu' against 'fox'" in warnings[0]


def test_postprocess_names_the_models_classes_and_warns_when_the_data_has_others(tmp_path, caplog):
    from postprocess import main

    entries = (BinEntry("000000", (0,), ("cat/0.jpg",)), BinEntry("000001", (2,), ("fox/0.jpg",)))
    labels = write_label_file(tmp_path / "labels.json",
                              LabelFile((1, 3, 32, 32), ("cat", "dog", "fox"), entries, str(tmp_path)))
    results = tmp_path / "results"
    results.mkdir()
    for entry, logits in zip(entries, ([3.0, 1.0, 0.0], [0.0, 1.0, 3.0]), strict=True):
        np.asarray(logits, "<f4").tofile(result_file(results, entry.stem))
    model = tmp_path / "m.mindir"
    model.write_bytes(b"stands for the exported graph; postprocess.py only reads the names beside it")
    write_classes_file(tmp_path / "m.classes.txt", ["cat", "dog", "emu"])
    assert main(["--result_path", str(results), "--label_path", str(labels), "--model", str(model)]) == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("3 classes: cat, dog, emu" in message for message in messages)
    assert [m for m in messages if m.startswith("warning")] == [
        f"warning: the model's classes differ from the classes in {labels} (class 2 is 'emu' against 'fox')"]
