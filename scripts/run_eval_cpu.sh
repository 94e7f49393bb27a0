#!/bin/bash
# Evaluate a checkpoint on CPU; log in eval/log.txt.
set -euo pipefail
USAGE="CONFIG_PATH CHECKPOINT_PATH [--key value ...]"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
check_args 2 "$@"
require_file CONFIG_PATH "$1"
require_file CHECKPOINT_PATH "$2"
choose_python
run_standalone eval eval.py --config "$1" --pretrained "$2" --device_target CPU "${@:3}"
