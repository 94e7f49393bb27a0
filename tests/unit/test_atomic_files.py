"""The standard-library writers: JSON and CSV outputs land whole, and a failed write leaves nothing behind."""

import csv
import json

import pytest

from src.atomic_files import write_csv_atomic, write_json_atomic
from src.errors import UserError


def test_json_and_csv_are_written_whole_and_replace_the_previous_file(tmp_path):
    target = write_json_atomic(tmp_path / "a" / "record.json", {"top1": 50.0})
    write_json_atomic(target, {"top1": 75.0})
    assert json.loads(target.read_text()) == {"top1": 75.0}
    table = write_csv_atomic(tmp_path / "log.csv", ("epoch", "loss"), [{"epoch": 1, "loss": 0.5}, {"epoch": 2}])
    assert list(csv.DictReader(table.read_text().splitlines())) == [{"epoch": "1", "loss": "0.5"},
                                                                   {"epoch": "2", "loss": ""}]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "log.csv"]


def test_a_file_in_the_way_is_a_user_error_naming_it(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=f"{blocker} is a file, not a folder"):
        write_json_atomic(blocker / "m.json", {}, what="metrics")
    assert blocker.read_text() == "not a folder"
