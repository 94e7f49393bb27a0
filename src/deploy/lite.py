"""MindSpore Lite 2.0 for the CPU run of the C++ harness: its package and its ONNX -> MINDIR converter.

Lite lives in a Python 3.7 virtual environment (``scripts/setup_mindspore_lite.sh``; default ``.venv-lite``
in the repository, or ``$MSLITE_VENV``), so the converter runs there as a subprocess. Lite 2.0 cannot load a
MINDIR written by MindSpore 2.10, so the CPU path always starts from the ONNX export.

Command line: ``python -m src.deploy.lite --onnx_path MODEL.onnx --mindir_path MODEL_LITE.mindir``.
"""

import argparse
import os
import subprocess
from pathlib import Path

from src.atomic_files import ensure_folder, staging_folder
from src.cli import run_cli
from src.errors import UserError
from src.logger import get_logger

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_mindspore_lite.sh"
MINDIR_SUFFIX = ".mindir"
# Runs under the Lite venv's Python 3.7. The converter appends ".mindir" to the output name it is given.
_CONVERT_PROGRAM = """
import sys
import mindspore_lite as mslite
mslite.Converter().convert(mslite.FmkType.ONNX, sys.argv[1], sys.argv[2])
"""
_TAIL_LINES = 15


def lite_venv() -> Path:
    return Path(os.environ.get("MSLITE_VENV") or REPO_ROOT / ".venv-lite")


def lite_python() -> Path:
    python = lite_venv() / "bin" / "python"
    if not python.is_file():
        raise UserError(f"MindSpore Lite is not set up ({python} missing): run bash {SETUP_SCRIPT}")
    return python


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_TAIL_LINES:])


def convert_onnx_to_mindir(onnx_path: str | os.PathLike, mindir_path: str | os.PathLike) -> Path:
    """Convert an ONNX model to a MINDIR that MindSpore Lite 2.0 (and so the CPU harness) can load.

    The result is written under a temporary name and renamed, so a failed conversion leaves an existing
    ``mindir_path`` as it was.
    """
    source, target = Path(onnx_path), Path(mindir_path)
    if not source.is_file():
        raise UserError(f"ONNX file not found: {source}")
    if source.suffix.lower() != ".onnx":
        raise UserError(f"the model to convert must be an .onnx file: {source}")
    if target.suffix != MINDIR_SUFFIX:
        raise UserError(f"the converted model's path must end in {MINDIR_SUFFIX}: {target}")
    python = lite_python()
    ensure_folder(target.parent)
    with staging_folder(target.parent, target.stem) as staging:
        staged = staging / "converted"
        # GLOG_v=2: Lite's C++ log keeps warnings and errors, not its per-pass info lines.
        completed = subprocess.run([str(python), "-c", _CONVERT_PROGRAM, str(source), str(staged)],
                                   capture_output=True, text=True, env={**os.environ, "GLOG_v": "2"}, check=False)
        written = staged.with_name(staged.name + MINDIR_SUFFIX)
        if completed.returncode != 0 or not written.is_file():
            get_logger().error(f"converter output:\n{_tail(completed.stderr + completed.stdout)}")
            raise UserError(f"MindSpore Lite could not convert {source} (its log is above)")
        os.replace(written, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert an ONNX model to a MindSpore Lite 2.0 MINDIR "
                                     "(for ascend310_infer on CPU).")
    parser.add_argument("--onnx_path", required=True)
    parser.add_argument("--mindir_path", required=True, help="output file, ending in .mindir")
    args = parser.parse_args(argv)
    print(convert_onnx_to_mindir(args.onnx_path, args.mindir_path))
    return 0


if __name__ == "__main__":
    run_cli(main)
