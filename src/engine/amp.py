"""Mixed precision through ``mindspore.amp.auto_mixed_precision``, kept out of the user's working folder.

MindSpore rewrites the network's source for AMP and imports it from a ``rewritten_network`` folder in the
current directory; graph compilation reads that source later, so the folder must outlive the call. We run
the rewrite inside a private temporary folder that is removed when the process exits.
"""

import atexit
import contextlib
import shutil
import tempfile

from mindspore import nn
from mindspore.amp import auto_mixed_precision

_rewrite_folder: str | None = None


def _private_folder() -> str:
    global _rewrite_folder
    if _rewrite_folder is None:
        _rewrite_folder = tempfile.mkdtemp(prefix="repvgg-amp-")
        atexit.register(shutil.rmtree, _rewrite_folder, ignore_errors=True)
    return _rewrite_folder


def apply_amp(net: nn.Cell, amp_level: str) -> nn.Cell:
    """The network to train at ``amp_level`` (O0-O3). It shares its Parameters with ``net``."""
    if amp_level == "O0":
        return net
    with contextlib.chdir(_private_folder()):
        return auto_mixed_precision(net, amp_level)
