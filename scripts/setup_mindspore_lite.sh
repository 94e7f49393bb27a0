#!/usr/bin/env bash
# Install MindSpore Lite 2.0.0 into a Python 3.7 virtual environment (default: .venv-lite in the repository).
# The MindSpore 2.x wheel ships no C++ headers; this wheel ships the C++ inference headers and libraries that
# ascend310_infer/ builds against on CPU, and the ONNX -> MINDIR converter. Its cp37 wheel is the one known to
# work here (pyenv provides CPython 3.7). Idempotent: a complete install is detected and left alone.
#
# Usage: bash scripts/setup_mindspore_lite.sh
# Environment: MSLITE_VENV (where to install), PYTHON37 (the Python 3.7 interpreter to use).
# Prints the package folder (headers in include/, libraries in lib/) as its last line.
set -euo pipefail

LITE_VERSION="2.0.0"
# The last numpy release for Python 3.7; `import mindspore_lite` needs numpy (its tensor module imports it).
NUMPY_VERSION="1.21.6"

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${MSLITE_VENV:-$repo/.venv-lite}"
stamp="$venv/.mindspore-lite-$LITE_VERSION"

package_dir() {
    "$venv/bin/python" -c 'import os, mindspore_lite; print(os.path.dirname(mindspore_lite.__file__))'
}

is_python37() {
    "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 7))' >/dev/null 2>&1
}

# The first working CPython 3.7 of: $PYTHON37, python3.7 on PATH (a pyenv shim there may point nowhere),
# pyenv's installed 3.7 versions.
find_python37() {
    if [[ -n "${PYTHON37:-}" ]]; then
        if ! is_python37 "$PYTHON37"; then
            echo "error: PYTHON37=$PYTHON37 is not a working Python 3.7" >&2
            exit 2
        fi
        echo "$PYTHON37"
        return
    fi
    local candidate
    for candidate in "$(command -v python3.7 || true)" "$HOME"/.pyenv/versions/3.7*/bin/python3.7; do
        if [[ -n "$candidate" ]] && is_python37 "$candidate"; then
            echo "$candidate"
            return
        fi
    done
    echo "error: MindSpore Lite $LITE_VERSION needs CPython 3.7 and none was found: set PYTHON37, or install" \
        "one (e.g. pyenv install 3.7.16)" >&2
    exit 2
}

if [[ -f "$stamp" ]] && package_dir 2>/dev/null; then
    exit 0
fi

python37="$(find_python37)"
start=$SECONDS
# No stamp means no complete install: start from a fresh venv, so an interrupted earlier setup cannot get in the way.
"$python37" -m venv --clear "$venv"
# The wheel is tagged manylinux1 for cp37, so the 3.7 venv's own pip selects it with no platform flags.
# Offline or behind a proxy, pip's many lines of retries and tracebacks become one line; its log is kept.
log="$venv/pip-install.log"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "mindspore-lite==$LITE_VERSION" "numpy==$NUMPY_VERSION" >"$log" 2>&1; then
    reason=$(grep -m1 '^ERROR' "$log" || tail -n1 "$log")
    echo "error: cannot install MindSpore Lite $LITE_VERSION from PyPI (offline, or no proxy set?): $reason" \
        "(full pip output: $log)" >&2
    exit 2
fi
package_dir >/dev/null
touch "$stamp"
echo "MindSpore Lite $LITE_VERSION installed in $venv in $((SECONDS - start)) s" >&2
package_dir
