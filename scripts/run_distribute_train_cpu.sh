#!/bin/bash
# Data-parallel training in WORKER_NUM CPU processes on this host, started by msrun; logs in
# train_parallel/worker_<rank>.log. Each worker uses its own CPU threads: more workers than cores only slows down.
set -euo pipefail
USAGE="WORKER_NUM CONFIG_PATH [--key value ...]"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
check_args 2 "$@"
require_count WORKER_NUM "$1"
require_file CONFIG_PATH "$2"
choose_python
run_msrun "$1" --config "$2" --device_target CPU "${@:3}"
