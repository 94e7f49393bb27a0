"""Execution context: device, graph mode, and data-parallel communication when a launcher started us.

The launcher is read from the environment (the scripts in ``scripts/`` set it up):

- ``msrun`` (Ascend, GPU, CPU) sets ``MS_ROLE``, ``MS_WORKER_NUM``, ``MS_SCHED_HOST``/``MS_SCHED_PORT`` and
  ``RANK_ID`` for every process it starts. MindSpore gives each local worker its own device, so
  ``device_id`` from the config is not used. msrun also starts a scheduler process that runs the same
  script: it serves the cluster inside ``init()`` and exits there.
- An HCCL rank table (Ascend) needs ``RANK_TABLE_FILE``, ``RANK_SIZE``, ``RANK_ID`` and ``DEVICE_ID`` in each
  process; ``DEVICE_ID`` replaces the config's ``device_id``.
- Anything else is one process on ``device_id``.
"""

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import mindspore.device_context as device_context
from mindspore.communication import get_group_size, get_rank, init

from src.config import Config
from src.errors import UserError
from src.logger import get_logger

SINGLE, MSRUN, RANK_TABLE = "single process", "msrun", "rank table"
_DEVICE_MODULES = {"CPU": device_context.cpu, "GPU": device_context.gpu, "Ascend": device_context.ascend}


@dataclass(frozen=True)
class Placement:
    rank: int = 0
    group_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.group_size > 1


@dataclass(frozen=True)
class Launch:
    """How this process was started: by which launcher, and on which device (None: MindSpore chooses)."""

    launcher: str
    device_id: int | None

    @property
    def communicates(self) -> bool:
        return self.launcher != SINGLE


def _whole_number(environ: Mapping[str, str], name: str) -> int:
    value = environ.get(name)
    if value is None:
        raise UserError(f"{name} is not set: a rank-table launch needs RANK_TABLE_FILE, RANK_SIZE, RANK_ID and "
                        "DEVICE_ID in every process (scripts/run_distribute_train_ascend.sh sets them)")
    if not value.strip().isdigit():
        raise UserError(f"{name}={value!r} is not a whole number (it comes from the launcher's environment)")
    return int(value)


def detect_launch(configured_device_id: int, environ: Mapping[str, str] = os.environ) -> Launch:
    """The launcher named by ``environ``; a rank-table launch with inconsistent variables is a UserError."""
    if environ.get("MS_ROLE"):
        # Even with one worker: msrun's scheduler waits for every worker to join the cluster.
        return Launch(MSRUN, None)
    table = environ.get("RANK_TABLE_FILE")
    if table and _whole_number(environ, "RANK_SIZE") > 1:
        if not Path(table).is_file():
            raise UserError(f"RANK_TABLE_FILE={table} is not a file")
        rank_size, rank_id = _whole_number(environ, "RANK_SIZE"), _whole_number(environ, "RANK_ID")
        if rank_id >= rank_size:
            raise UserError(f"RANK_ID={rank_id} is outside 0..{rank_size - 1} (RANK_SIZE={rank_size})")
        return Launch(RANK_TABLE, _whole_number(environ, "DEVICE_ID"))
    return Launch(SINGLE, configured_device_id)


def device_available(target: str) -> bool:
    """Whether this MindSpore build can run on ``target`` (CPU, GPU or Ascend)."""
    # MindSpore logs a warning with its plugin-loading details for every device it lacks: not news here.
    logging.disable(logging.WARNING)
    try:
        return bool(_DEVICE_MODULES[target].is_available())
    finally:
        logging.disable(logging.NOTSET)


def require_device(target: str) -> None:
    """UserError, naming the way to run on CPU, when this MindSpore build cannot run on ``target``."""
    if not device_available(target):
        present = [name for name in _DEVICE_MODULES if device_available(name)]
        raise UserError(f"device_target {target}: this MindSpore build cannot run on {target} (it has "
                        f"{', '.join(present)}); add --device_target CPU to run on this machine's CPU")


def setup_device(cfg: Config, graph_mode: bool = True) -> Placement:
    require_device(cfg.device_target)
    launch = detect_launch(cfg.device_id)
    ms.set_context(mode=ms.GRAPH_MODE if graph_mode else ms.PYNATIVE_MODE)
    ms.set_device(cfg.device_target, launch.device_id)
    if not launch.communicates:
        return Placement()
    try:
        init()
    except RuntimeError as error:
        # msrun's scheduler process serves the cluster inside init() and raises when a worker is lost.
        role = os.environ.get("MS_ROLE", launch.launcher)
        raise UserError(f"{role}: the cluster failed: {str(error).splitlines()[0]}") from None
    placement = Placement(get_rank(), get_group_size())
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=placement.group_size)
    get_logger().info(f"data parallel ({launch.launcher}): rank {placement.rank} of {placement.group_size} on "
                      f"{cfg.device_target} device {ms.get_context('device_id')}")
    return placement
