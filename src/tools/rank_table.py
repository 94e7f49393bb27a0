"""Read an HCCL rank table (the JSON written by ModelZoo's hccl_tools.py) into one environment per device.

    python -m src.tools.rank_table RANK_TABLE_FILE [--server_id ID]

prints one line per device of this server, tab-separated: the rank's log folder, then the variables its
training process needs (``RANK_TABLE_FILE RANK_SIZE RANK_ID DEVICE_ID``) as ``NAME=value``.
``scripts/run_distribute_train_ascend.sh`` starts one ``train.py`` per line with exactly that environment.

Two layouts are read:

- version 1.0: ``server_list[].device[]`` with ``device_id``, ``device_ip`` and ``rank_id`` per device;
- the older one: ``group_list[].instance_list[]``, each instance with ``rank_id``, ``server_id`` and one
  entry in ``devices[]`` (``device_id``, ``device_ip``).

A table that lists several servers needs ``--server_id`` (the script passes ``$SERVER_ID``) to say which
server's devices to start here.
"""

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.cli import run_cli
from src.errors import UserError

RANK_FOLDER_PREFIX = "train_parallel"


@dataclass(frozen=True)
class Device:
    server_id: str
    device_id: int
    device_ip: str
    rank_id: int


@dataclass(frozen=True)
class RankEnvironment:
    """What one training process of a rank-table launch needs: its variables and its log folder."""

    rank_table_file: str
    rank_size: int
    rank_id: int
    device_id: int

    @property
    def folder(self) -> str:
        return f"{RANK_FOLDER_PREFIX}{self.rank_id}"

    def variables(self) -> dict[str, str]:
        return {"RANK_TABLE_FILE": self.rank_table_file, "RANK_SIZE": str(self.rank_size),
                "RANK_ID": str(self.rank_id), "DEVICE_ID": str(self.device_id)}


def _field(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise UserError(f"{where} has no '{key}'")
    return entry[key]


def _number(entry: Any, key: str, where: str) -> int:
    # hccl_tools.py writes numbers as strings ("0"); accept both spellings.
    value = _field(entry, key, where)
    if isinstance(value, bool) or not str(value).isdigit():
        raise UserError(f"{where}: '{key}' must be a whole number, got {value!r}")
    return int(value)


def _list(entry: Any, key: str, where: str) -> list:
    value = _field(entry, key, where)
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: '{key}' must be a non-empty list")
    return value


def _device(server_id: str, entry: Any, rank_id: int, where: str) -> Device:
    return Device(server_id, _number(entry, "device_id", where), str(_field(entry, "device_ip", where)), rank_id)


def _server_list_devices(table: dict) -> list[Device]:
    devices = []
    for s, server in enumerate(_list(table, "server_list", "the table")):
        server_id = str(_field(server, "server_id", f"server_list[{s}]"))
        for d, entry in enumerate(_list(server, "device", f"server_list[{s}]")):
            where = f"server_list[{s}].device[{d}]"
            devices.append(_device(server_id, entry, _number(entry, "rank_id", where), where))
    return devices


def _group_list_devices(table: dict) -> list[Device]:
    devices = []
    for g, group in enumerate(_list(table, "group_list", "the table")):
        for i, instance in enumerate(_list(group, "instance_list", f"group_list[{g}]")):
            where = f"group_list[{g}].instance_list[{i}]"
            entries = _list(instance, "devices", where)
            if len(entries) != 1:
                raise UserError(f"{where}: one device per instance expected, found {len(entries)}")
            server_id = str(_field(instance, "server_id", where))
            devices.append(_device(server_id, entries[0], _number(instance, "rank_id", where), f"{where}.devices[0]"))
    return devices


def _check_ranks(devices: list[Device]) -> None:
    ranks = sorted(device.rank_id for device in devices)
    if ranks != list(range(len(devices))):
        raise UserError(f"rank ids must be 0..{len(devices) - 1}, each once; found {ranks}")
    seen: set[tuple[str, int]] = set()
    for device in devices:
        key = (device.server_id, device.device_id)
        if key in seen:
            raise UserError(f"device {device.device_id} of server {device.server_id} is listed twice")
        seen.add(key)


def read_rank_table(path: str | Path) -> list[Device]:
    """Every device of the table, in rank order; a missing, unreadable or malformed table is a UserError."""
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"rank table not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read rank table {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise UserError(f"rank table {path} is not valid JSON (line {error.lineno}, column {error.colno}): "
                        f"{error.msg}") from None
    try:
        if isinstance(table, dict) and "server_list" in table:
            devices = _server_list_devices(table)
        elif isinstance(table, dict) and "group_list" in table:
            devices = _group_list_devices(table)
        else:
            raise UserError("neither 'server_list' (version 1.0) nor 'group_list' found")
        _check_ranks(devices)
    except UserError as error:
        raise UserError(f"malformed rank table {path}: {error}") from None
    return sorted(devices, key=lambda device: device.rank_id)


def local_rank_environments(path: str | Path, server_id: str | None = None) -> list[RankEnvironment]:
    """The environments of the processes to start on ``server_id`` (the only server when None)."""
    devices = read_rank_table(path)
    servers = list(dict.fromkeys(device.server_id for device in devices))
    if server_id is None:
        if len(servers) > 1:
            raise UserError(f"rank table {path} lists {len(servers)} servers ({', '.join(servers)}): "
                            "set SERVER_ID to the server_id of this host")
        server_id = servers[0]
    elif server_id not in servers:
        raise UserError(f"server {server_id!r} is not in rank table {path} (it lists {', '.join(servers)})")
    table_file = str(Path(path).resolve())
    return [RankEnvironment(table_file, len(devices), device.rank_id, device.device_id)
            for device in devices if device.server_id == server_id]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rank_table_file")
    parser.add_argument("--server_id", default=None, help="which server of a multi-server table is this host")
    args = parser.parse_args(argv)
    for rank in local_rank_environments(args.rank_table_file, args.server_id or None):
        print("\t".join([rank.folder, *(f"{name}={value}" for name, value in rank.variables().items())]))
    return 0


if __name__ == "__main__":
    run_cli(main)
