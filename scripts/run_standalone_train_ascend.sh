#!/bin/bash
# Train on one Ascend device; log in train_standalone/log.txt.
set -euo pipefail
USAGE="DEVICE_ID CONFIG_PATH [--key value ...]"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
check_args 2 "$@"
require_number DEVICE_ID "$1"
require_file CONFIG_PATH "$2"
choose_python
run_standalone train_standalone train.py --config "$2" --device_target Ascend --device_id "$1" "${@:3}"
