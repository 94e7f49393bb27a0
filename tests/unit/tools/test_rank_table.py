"""Reading HCCL rank tables into the per-device environments of scripts/run_distribute_train_ascend.sh."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.errors import UserError
from src.tools.rank_table import local_rank_environments, read_rank_table

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "tests" / "data" / "rank_table_8p.json"


def write_table(folder: Path, table: object) -> Path:
    path = folder / "table.json"
    path.write_text(json.dumps(table))
    return path


def server(server_id: str, devices: list[tuple[int, int]]) -> dict:
    """A version 1.0 server entry from (device_id, rank_id) pairs, numbers written as strings as hccl_tools does."""
    return {"server_id": server_id, "host_nic_ip": "reserve",
            "device": [{"device_id": str(d), "device_ip": f"192.168.1.{d}", "rank_id": str(r)} for d, r in devices]}


def test_the_sample_8_device_table_lists_every_device_in_rank_order():
    devices = read_rank_table(SAMPLE)
    assert [(d.rank_id, d.device_id) for d in devices] == [(i, i) for i in range(8)]
    assert {d.server_id for d in devices} == {"10.0.0.1"}
    assert devices[3].device_ip == "192.168.100.104"


def test_each_device_gets_the_environment_the_ascend_script_sets():
    ranks = local_rank_environments(SAMPLE)
    assert len(ranks) == 8
    assert ranks[5].variables() == {"RANK_TABLE_FILE": str(SAMPLE.resolve()), "RANK_SIZE": "8", "RANK_ID": "5",
                                    "DEVICE_ID": "5"}
    assert [rank.folder for rank in ranks] == [f"train_parallel{i}" for i in range(8)]


def test_the_command_line_prints_one_tab_separated_line_per_device(tmp_path):
    # The script runs the tool from the repository root with an absolute table path.
    result = subprocess.run([sys.executable, "-m", "src.tools.rank_table", str(SAMPLE)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == 8
    assert lines[2] == ["train_parallel2", f"RANK_TABLE_FILE={SAMPLE.resolve()}", "RANK_SIZE=8", "RANK_ID=2",
                        "DEVICE_ID=2"]


def test_a_multi_server_table_starts_only_this_servers_devices(tmp_path):
    table = write_table(tmp_path, {"version": "1.0", "server_count": "2", "status": "completed", "server_list": [
        server("10.0.0.1", [(0, 0), (1, 1)]), server("10.0.0.2", [(0, 2), (1, 3)])]})
    ranks = local_rank_environments(table, "10.0.0.2")
    assert [(r.rank_id, r.device_id, r.rank_size) for r in ranks] == [(2, 0, 4), (3, 1, 4)]
    with pytest.raises(UserError, match=r"lists 2 servers \(10.0.0.1, 10.0.0.2\): set SERVER_ID"):
        local_rank_environments(table)
    with pytest.raises(UserError, match=r"server '10\.0\.0\.9' is not in rank table"):
        local_rank_environments(table, "10.0.0.9")


def test_the_older_group_list_layout_is_read(tmp_path):
    instances = [{"rank_id": str(r), "server_id": "10.0.0.1",
                  "devices": [{"device_id": str(4 + r), "device_ip": f"192.168.1.{r}"}]} for r in range(4)]
    table = write_table(tmp_path, {"board_id": "0x0000", "status": "completed", "group_count": "1", "group_list": [
        {"group_name": "", "device_num": "4", "server_num": "1", "instance_count": "4", "instance_list": instances}]})
    assert [(r.rank_id, r.device_id, r.rank_size) for r in local_rank_environments(table)] == [
        (0, 4, 4), (1, 5, 4), (2, 6, 4), (3, 7, 4)]


@pytest.mark.parametrize(("table", "message"), [
    ("[1, 2", "is not valid JSON"),
    ({"version": "1.0"}, "neither 'server_list' \\(version 1.0\\) nor 'group_list' found"),
    ({"server_list": []}, "'server_list' must be a non-empty list"),
    ({"server_list": [{"device": []}]}, r"server_list\[0\] has no 'server_id'"),
    ({"server_list": [{"server_id": "a", "device": [{"device_id": "0", "rank_id": "0"}]}]},
     r"server_list\[0\].device\[0\] has no 'device_ip'"),
    ({"server_list": [server("a", [(0, 0)]) | {"device": [{"device_id": "x", "device_ip": "1", "rank_id": "0"}]}]},
     "'device_id' must be a whole number, got 'x'"),
    ({"server_list": [server("a", [(0, 0), (1, 2)])]}, r"rank ids must be 0..1, each once; found \[0, 2\]"),
    ({"server_list": [server("a", [(0, 0), (0, 1)])]}, "device 0 of server a is listed twice"),
])
def test_a_malformed_table_is_a_clear_error_naming_the_file(tmp_path, table, message):
    path = tmp_path / "table.json"
    path.write_text(table if isinstance(table, str) else json.dumps(table))
    with pytest.raises(UserError, match=message) as raised:
        read_rank_table(path)
    assert str(path) in str(raised.value)


def test_a_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="rank table not found"):
        read_rank_table(tmp_path / "absent.json")
