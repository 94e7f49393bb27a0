#!/bin/bash
# Evaluate a checkpoint on one GPU; log in eval/log.txt.
set -euo pipefail
USAGE="DEVICE_ID CONFIG_PATH CHECKPOINT_PATH [--key value ...]"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
check_args 3 "$@"
require_number DEVICE_ID "$1"
require_file CONFIG_PATH "$2"
require_file CHECKPOINT_PATH "$3"
choose_python
run_standalone eval eval.py --config "$2" --pretrained "$3" --device_target GPU --device_id "$1" "${@:4}"
