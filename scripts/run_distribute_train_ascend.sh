#!/bin/bash
# Data-parallel training on the Ascend devices of an HCCL rank table (made by ModelZoo's hccl_tools.py): one
# process per device of this server, each logging to train_parallel<rank>/log.txt. A table of several
# servers: run this on each of them with SERVER_ID set to that host's server_id.
set -euo pipefail
USAGE="RANK_TABLE_FILE CONFIG_PATH [--key value ...]"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
check_args 2 "$@"
require_file RANK_TABLE_FILE "$1"
require_file CONFIG_PATH "$2"
choose_python
run_rank_table "$1" --config "$2" --device_target Ascend "${@:3}"
