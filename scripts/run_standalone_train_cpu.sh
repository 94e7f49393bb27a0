#!/bin/bash
# Train in one CPU process; log in train_standalone/log.txt.
set -euo pipefail
USAGE="CONFIG_PATH [--key value ...]"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
check_args 1 "$@"
require_file CONFIG_PATH "$1"
choose_python
run_standalone train_standalone train.py --config "$1" --device_target CPU "${@:2}"
