"""Cross-device BatchNorm for data-parallel training on Ascend (MindSpore's SyncBatchNorm is Ascend-only)."""

from mindspore import nn

_STATE = ("gamma", "beta", "moving_mean", "moving_variance")


def convert_to_sync_batchnorm(net: nn.Cell) -> int:
    """Replace every ``nn.BatchNorm2d`` in ``net`` by an ``nn.SyncBatchNorm`` with the same values and parameter
    names (so checkpoints and re-parameterisation keep working); returns how many were replaced."""
    replaced = 0
    for _, parent in list(net.cells_and_names()):
        for name, child in list(parent.name_cells().items()):
            if not isinstance(child, nn.BatchNorm2d):
                continue
            sync = nn.SyncBatchNorm(child.moving_mean.shape[0], eps=child.eps, momentum=child.momentum)
            setattr(parent, name, sync)
            # After setattr: assigning a Cell renames its parameters to local names, which we replace.
            for attribute in _STATE:
                old, new = getattr(child, attribute), getattr(sync, attribute)
                new.set_data(old.data.copy())
                new.name = old.name
            replaced += 1
    return replaced
