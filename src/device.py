"""Execution context: device, graph mode, and data-parallel communication when a launcher started us."""

import os
from dataclasses import dataclass

import mindspore as ms
from mindspore.communication import get_group_size, get_rank, init

from src.config import Config


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


def launched_worker_count() -> int:
    """Workers the launcher announced: msrun sets MS_WORKER_NUM, rank-table launches set RANK_SIZE."""
    return int(os.environ.get("MS_WORKER_NUM") or os.environ.get("RANK_SIZE") or 1)


def setup_device(cfg: Config, graph_mode: bool = True) -> Placement:
    ms.set_context(mode=ms.GRAPH_MODE if graph_mode else ms.PYNATIVE_MODE)
    ms.set_device(cfg.device_target, cfg.device_id)
    if launched_worker_count() <= 1:
        return Placement()
    init()
    placement = Placement(get_rank(), get_group_size())
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=placement.group_size)
    return placement
