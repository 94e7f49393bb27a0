#!/bin/bash
# Data-parallel training on DEVICE_NUM GPUs of this host (NCCL), started by msrun; logs in
# train_parallel/worker_<rank>.log.
set -euo pipefail
USAGE="DEVICE_NUM CONFIG_PATH [--key value ...]"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
check_args 2 "$@"
require_count DEVICE_NUM "$1"
require_file CONFIG_PATH "$2"
choose_python
run_msrun "$1" --config "$2" --device_target GPU "${@:3}"
