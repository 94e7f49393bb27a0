"""The searched-scales file: what a RepOpt hyper-search run hands to RepOpt-VGG training.

Format: a NumPy ``.npz`` holding one float32 vector per scale, named ``<block>/<scale>``, where ``<block>`` is the
block path shared by the search and plain nets (``stage0``, ``stage1.0``...) and ``<scale>`` is ``scale_3x3``,
``scale_1x1`` or, for blocks with an identity branch, ``scale_identity`` (one value per output channel), plus
``arch``, the arch the scales were searched on (a string, used in messages). Nothing is pickled.

Scales fit a net when their blocks, identity branches and channel counts are the net's; the arch name is not
compared, so scales searched on one arch serve any arch of the same shape (as the paper searches on CIFAR-100
and trains on ImageNet).
"""

import io
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
from mindspore import nn

from src.atomic_files import write_bytes_atomic
from src.errors import UserError
from src.models.repopt import BlockScales, plain_blocks

ARCH_ENTRY = "arch"
_SCALE_NAMES = ("scale_3x3", "scale_1x1", "scale_identity")
_LISTED = 8


def save_scales(path: str | os.PathLike, arch: str, scales: dict[str, BlockScales]) -> Path:
    """Write ``scales`` (block path -> BlockScales, as ``extract_scales`` returns) atomically."""
    arrays = {ARCH_ENTRY: np.array(arch)}
    for block, block_scales in scales.items():
        for scale_name in _SCALE_NAMES:
            value = getattr(block_scales, scale_name)
            if value is not None:
                arrays[f"{block}/{scale_name}"] = np.asarray(value, np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"RepOpt scales file not found: {path}")
    not_scales = f"cannot read {path}: it is damaged or not a RepOpt scales file (the .npz a repopt_search run writes)"
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded as archive:
                return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{not_scales}: {reason}") from None
    raise UserError(f"{not_scales}: it holds a single array, not an archive of named scales")


def _block_scales(path: Path, block: str, entries: dict[str, np.ndarray]) -> BlockScales:
    for scale_name in ("scale_3x3", "scale_1x1"):
        if scale_name not in entries:
            raise UserError(f"{path}: block {block} has no {scale_name}")
    lengths = set()
    for scale_name, value in entries.items():
        if value.ndim != 1 or not np.issubdtype(value.dtype, np.floating) or not np.isfinite(value).all():
            raise UserError(f"{path}: {block}/{scale_name} must be a vector of finite floats, got shape "
                            f"{value.shape} of {value.dtype}")
        lengths.add(value.size)
    if len(lengths) != 1:
        raise UserError(f"{path}: the scales of block {block} have different lengths {sorted(lengths)}")
    return BlockScales(*(None if entries.get(n) is None else entries[n].astype(np.float32) for n in _SCALE_NAMES))


def read_scales(path: str | os.PathLike) -> tuple[str, dict[str, BlockScales]]:
    """The arch the scales were searched on and the scales of every block, checked for form (not fit)."""
    path = Path(path)
    arrays = _read_arrays(path)
    if ARCH_ENTRY not in arrays or arrays[ARCH_ENTRY].dtype.kind != "U" or arrays[ARCH_ENTRY].ndim != 0:
        raise UserError(f"{path} is not a RepOpt scales file: it has no '{ARCH_ENTRY}' entry naming the arch")
    by_block: dict[str, dict[str, np.ndarray]] = {}
    for name, value in arrays.items():
        if name == ARCH_ENTRY:
            continue
        block, _, scale_name = name.rpartition("/")
        if not block or scale_name not in _SCALE_NAMES:
            raise UserError(f"{path} is not a RepOpt scales file: unexpected entry '{name}' (expected "
                            f"'<block>/<{'|'.join(_SCALE_NAMES)}>' and '{ARCH_ENTRY}')")
        by_block.setdefault(block, {})[scale_name] = value
    if not by_block:
        raise UserError(f"{path} holds no scales")
    return str(arrays[ARCH_ENTRY]), {block: _block_scales(path, block, e) for block, e in by_block.items()}


def _listed(label: str, items: list[str]) -> str:
    more = f" and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return f"{len(items)} {label}: {', '.join(items[:_LISTED])}{more}"


def check_scales_fit(path: str | os.PathLike, searched_arch: str, scales: dict[str, BlockScales],
                     net: nn.Cell) -> None:
    """Raise a UserError naming every block of ``net`` (a plain RepOpt-VGG) that ``scales`` do not fit."""
    blocks = plain_blocks(net)
    problems = []
    missing = sorted(set(blocks) - set(scales))
    unexpected = sorted(set(scales) - set(blocks))
    if missing:
        problems.append(_listed("block(s) missing from the file", missing))
    if unexpected:
        problems.append(_listed("block(s) the net does not have", unexpected))
    misfits = []
    for name in sorted(set(blocks) & set(scales)):
        block, block_scales = blocks[name], scales[name]
        if block_scales.scale_3x3.size != block.out_channels:
            misfits.append(f"{name} ({block_scales.scale_3x3.size} channels, the net has {block.out_channels})")
        elif (block_scales.scale_identity is not None) != block.has_identity:
            misfits.append(f"{name} (identity branch only in {'the net' if block.has_identity else 'the file'})")
    if misfits:
        problems.append(_listed("block(s) of another shape", misfits))
    if problems:
        raise UserError(f"the scales in {path} were searched on {searched_arch} and do not fit "
                        f"{getattr(net, 'arch', 'this net')}: {'; '.join(problems)}")


def load_scales(path: str | os.PathLike, net: nn.Cell) -> dict[str, BlockScales]:
    """The scales in ``path``, checked to fit ``net`` (a plain RepOpt-VGG)."""
    searched_arch, scales = read_scales(path)
    check_scales_fit(path, searched_arch, scales, net)
    return scales
