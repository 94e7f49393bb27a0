#!/bin/bash
# Evaluate an ONNX model with ONNX Runtime on DATASET_PATH/val; log in infer_onnx/log.txt.
set -euo pipefail
USAGE="ONNX_PATH DATASET_PATH DEVICE_TARGET(CPU|GPU) DEVICE_ID [--key value ...]"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
check_args 4 "$@"
require_file ONNX_PATH "$1"
[[ -d $2 ]] || usage_error "DATASET_PATH '$2' is not a folder"
[[ $3 == CPU || $3 == GPU ]] || usage_error "DEVICE_TARGET must be CPU or GPU, got '$3'"
require_number DEVICE_ID "$4"
choose_python
run_standalone infer_onnx infer_onnx.py --onnx_path "$1" --dataset_path "$2" --device_target "$3" --device_id "$4" "${@:5}"
