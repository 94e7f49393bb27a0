#!/usr/bin/env bash
# Build the inference harness into ascend310_infer/out/main. CMakeLists.txt says where the MindSpore C++
# package is looked for (MINDSPORE_PATH, MS_LITE_HOME, LITE_HOME, the repository's .venv-lite, pip).
# An existing out/ is reused, so a rebuild only recompiles what changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jobs="$(nproc 2>/dev/null || echo 2)"
cmake -S "$here" -B "$here/out" -DCMAKE_BUILD_TYPE=Release
cmake --build "$here/out" -j "$jobs"
echo "built $here/out/main"
