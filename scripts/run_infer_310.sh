#!/usr/bin/env bash
# Offline inference with the C++ harness (ModelZoo RepVGG's Ascend 310 flow): build ascend310_infer/, preprocess the
# data set to .bin files, run the harness, score its results. Outputs go to the current directory:
#   preprocess_Result/ (00_data/*.bin, labels.json), result_Files/ (*_0.bin, accuracy.json),
#   build.log, preprocess.log, infer.log, acc.log (top-1/top-5 in percent and the mean latency).
#
# Usage: bash scripts/run_infer_310.sh MINDIR_PATH DATASET_NAME DATASET_PATH [DEVICE_ID]
#   DATASET_NAME  imagenet2012 (alias imagenet; preprocessing of src/configs/RepVGG-A0.yaml: 224 px) or demo
#                 (src/configs/demo.yaml: 32 px); CONFIG_PATH=... picks another recipe's preprocessing.
#   DATASET_PATH  a data set root with val/<class>/<image>, or a folder of class folders.
# Environment:
#   DEVICE_TARGET Ascend (default): MINDIR_PATH is export.py's MINDIR, run on Ascend device DEVICE_ID.
#                 CPU: MindSpore Lite 2.0 on this machine (scripts/setup_mindspore_lite.sh runs first);
#                 MINDIR_PATH is export.py's ONNX file (converted here) or a MINDIR written by Lite's converter.
#   CPU_THREADS   threads of the CPU run (default 2).  PYTHON  interpreter (default: the repository's .venv).
# Exit codes: 2 bad arguments (nothing is run), 1 a step failed (its log is printed).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
    echo "usage: bash $0 MINDIR_PATH DATASET_NAME DATASET_PATH [DEVICE_ID]" >&2
    echo "       DATASET_NAME: imagenet2012 | imagenet | demo; env: DEVICE_TARGET=Ascend|CPU, CPU_THREADS," \
        "CONFIG_PATH, PYTHON" >&2
}

fail_usage() {
    echo "error: $1" >&2
    usage
    exit 2
}

# run_step NAME LOG COMMAND...: run COMMAND with its output in LOG; on failure show the log's end and stop.
run_step() {
    local name="$1" log="$2"
    shift 2
    echo "== $name (log: $log)"
    if ! "$@" >"$log" 2>&1; then
        echo "error: $name failed; last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}

if [[ $# -lt 3 || $# -gt 4 ]]; then
    fail_usage "expected 3 or 4 arguments, got $#"
fi
model="$1"
dataset_name="$2"
dataset_path="$3"
device_id="${4:-0}"
device_target="${DEVICE_TARGET:-Ascend}"
cpu_threads="${CPU_THREADS:-2}"

[[ -f "$model" ]] || fail_usage "MINDIR_PATH $model is not a file"
[[ -d "$dataset_path" ]] || fail_usage "DATASET_PATH $dataset_path is not a folder"
[[ "$device_id" =~ ^[0-9]+$ ]] || fail_usage "DEVICE_ID must be a non-negative integer, got '$device_id'"
[[ "$cpu_threads" =~ ^[1-9][0-9]*$ ]] || fail_usage "CPU_THREADS must be a positive integer, got '$cpu_threads'"
case "$dataset_name" in
    imagenet2012 | imagenet) default_config="$repo/src/configs/RepVGG-A0.yaml" ;;
    demo) default_config="$repo/src/configs/demo.yaml" ;;
    *) fail_usage "unknown DATASET_NAME '$dataset_name' (imagenet2012, imagenet or demo)" ;;
esac
config="${CONFIG_PATH:-$default_config}"
[[ -f "$config" ]] || fail_usage "config $config is not a file"
case "$device_target" in
    Ascend)
        [[ "$model" != *.onnx ]] || fail_usage "on Ascend, MINDIR_PATH is the MINDIR written by export.py, not ONNX"
        ;;
    CPU) ;;
    *) fail_usage "DEVICE_TARGET must be Ascend or CPU, got '$device_target'" ;;
esac
if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif [[ -x "$repo/.venv/bin/python" ]]; then
    python="$repo/.venv/bin/python"
else
    python="python3"
fi
model="$(realpath "$model")"
exported="$model"  # the file export.py wrote: its class names are shown by postprocess.py
dataset_path="$(realpath "$dataset_path")"
config="$(realpath "$config")"

if [[ "$device_target" == CPU ]]; then
    # Lite's package is what the harness builds against on CPU, unless the caller named another one.
    lite_package="$(bash "$repo/scripts/setup_mindspore_lite.sh" | tail -n 1)"
    export MINDSPORE_PATH="${MINDSPORE_PATH:-$lite_package}"
    if [[ "$model" == *.onnx ]]; then
        # MindSpore Lite 2.0 cannot read a MINDIR written by MindSpore 2.x, so the CPU run starts from ONNX.
        run_step "convert ONNX to a Lite MINDIR" convert.log \
            env PYTHONPATH="$repo" "$python" -m src.deploy.lite --onnx_path "$model" \
            --mindir_path "$PWD/lite_model.mindir"
        model="$PWD/lite_model.mindir"
    fi
fi

run_step "build ascend310_infer" build.log bash "$repo/ascend310_infer/build.sh"
run_step "preprocess $dataset_path" preprocess.log \
    "$python" "$repo/preprocess.py" --config "$config" --dataset_path "$dataset_path" \
    --output_path ./preprocess_Result
rm -rf ./result_Files
run_step "infer on $device_target" infer.log \
    "$repo/ascend310_infer/out/main" --mindir_path="$model" --input_path=./preprocess_Result/00_data \
    --result_path=./result_Files --device_target="$device_target" --device_id="$device_id" \
    --cpu_threads="$cpu_threads"
run_step "postprocess" acc.log \
    "$python" "$repo/postprocess.py" --result_path ./result_Files \
    --label_path ./preprocess_Result/labels.json --model "$exported"
grep "mean latency" infer.log >>acc.log
grep -E "^top-[15] accuracy|mean latency" acc.log
