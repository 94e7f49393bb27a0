"""Setup as the README says: `make demo` installs only the demo's requirements, `make test` checks up front what
it cannot install (cmake, g++, CPython 3.7 and PyPI for MindSpore Lite) with one line each, and what the scripts
write into the working folder is ignored by git. Real make, bash and git processes."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP_LITE = REPO / "scripts" / "setup_mindspore_lite.sh"


def dry_run(target: str) -> str:
    """The commands `make TARGET` would run from scratch (-B: as if nothing were installed yet)."""
    result = subprocess.run(["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_demo_installs_only_the_runtime_requirements():
    commands = dry_run("demo")
    assert "-r requirements.txt" in commands and "src.tools.demo" in commands
    assert "requirements-dev.txt" not in commands and "shellcheck" not in commands


def test_make_test_installs_the_test_tools_and_checks_its_prerequisites_first():
    commands = dry_run("test")
    assert "-r requirements-dev.txt" in commands
    assert commands.index("setup_mindspore_lite.sh") < commands.index("pytest")


def tools_folder(tmp_path: Path, *names: str) -> Path:
    """A folder of links to the named tools, to be the whole PATH: anything not named is missing."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("make", "bash", "dirname", "env", "grep", "tail", *names):
        (folder / name).symlink_to(shutil.which(name))
    return folder


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(("present", "missing"), [(("g++",), "cmake"), (("cmake",), "g++")])
def test_make_test_names_a_missing_build_tool_in_one_line(tmp_path, present, missing):
    env = {"PATH": str(tools_folder(tmp_path, *present)), "HOME": str(tmp_path)}
    result = subprocess.run(["make", "test-prerequisites"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: make test needs {missing}")


def test_make_test_without_python37_says_so_in_one_line(tmp_path):
    # No pyenv in HOME, no python3.7 on PATH, and a Lite install location that holds nothing yet.
    env = {"PATH": str(tools_folder(tmp_path, "cmake", "g++")), "HOME": str(tmp_path),
           "MSLITE_VENV": str(tmp_path / "lite")}
    result = subprocess.run(["make", "test-prerequisites"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    [line] = error_lines(result.stderr)
    assert "needs CPython 3.7 and none was found" in line and "pyenv install 3.7" in line


def python37() -> str | None:
    candidates = [shutil.which("python3.7"), *map(str, Path.home().glob(".pyenv/versions/3.7*/bin/python3.7"))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def test_offline_mindspore_lite_setup_is_one_line(tmp_path):
    interpreter = python37()
    if interpreter is None:
        pytest.skip("no CPython 3.7 here: the offline case needs one to get as far as pip")
    # An index nobody answers at stands in for a machine without network access.
    env = {**os.environ, "PYTHON37": interpreter, "MSLITE_VENV": str(tmp_path / "lite"), "PIP_RETRIES": "0",
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_TIMEOUT": "2", "PIP_NO_CACHE_DIR": "1"}
    result = subprocess.run(["bash", str(SETUP_LITE)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    [line] = error_lines(result.stderr)
    assert "cannot install MindSpore Lite 2.0.0 from PyPI" in line
    assert (tmp_path / "lite" / "pip-install.log").is_file()
    assert not list((tmp_path / "lite").glob(".mindspore-lite-*"))  # no stamp: the next run tries again


@pytest.mark.parametrize("path", ["train_standalone/log.txt", "train_parallel/worker_0.log",
                                  "train_parallel3/log.txt", "eval/log.txt", "output/demo/log.csv",
                                  "data/demo/train/a.png", ".venv", ".venv-lite/bin/python"])
def test_what_the_scripts_write_into_the_working_folder_is_ignored_by_git(path):
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, timeout=30)
    assert result.returncode == 0, f"{path} is not ignored"
