# shellcheck shell=bash
# The one library behind scripts/run_*.sh: argument checks, the Python to use, log folders and launchers.
#
# Every run_*.sh sets USAGE, sources this file and calls the functions below. Arguments after the
# required ones must be --key value pairs; they are passed on to train.py / eval.py (config overrides).
# Training runs in the foreground; logs go to folders in the current directory:
#   train_standalone/log.txt                      one process (standalone scripts)
#   train_parallel/worker_<rank>.log, scheduler.log, msrun.log  msrun (CPU, GPU, Ascend msrun)
#   train_parallel<rank>/log.txt                  one folder per rank (Ascend rank table)
#   eval/log.txt                                  evaluation
# Relative paths in the config (data_url, train_url) start from the current directory, as with train.py.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT_NAME="scripts/$(basename "$0")"

usage_error() {
    echo "usage: bash $SCRIPT_NAME $USAGE" >&2
    echo "error: $1" >&2
    exit 2
}

fail() {  # MESSAGE [EXIT_CODE]
    echo "error: $1" >&2
    exit "${2:-1}"
}

# check_args COUNT "$@": COUNT required arguments, then only --key value overrides.
check_args() {
    local count=$1
    shift
    if (($# < count)); then
        usage_error "expected $count arguments, got $#"
    fi
    shift "$count"
    if (($# > 0)) && [[ $1 != --* ]]; then
        usage_error "unexpected argument '$1': after the $count required arguments only --key value overrides may follow"
    fi
}

require_number() {  # NAME VALUE: a whole number (device id)
    [[ $2 =~ ^[0-9]+$ ]] || usage_error "$1 must be a whole number, got '$2'"
}

require_count() {  # NAME VALUE: a whole number >= 1 (workers, devices)
    if ! [[ $2 =~ ^[0-9]+$ ]] || ((10#$2 < 1)); then
        usage_error "$1 must be a whole number >= 1, got '$2'"
    fi
}

require_file() {  # NAME PATH
    [[ -f $2 ]] || usage_error "$1 '$2' is not a file"
}

absolute_path() {
    echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

# The Python that runs training: $PYTHON if set, else the project's .venv, else python3 on PATH. Its folder
# goes first on PATH because msrun starts every worker with the `python` it finds there.
choose_python() {
    if [[ -z ${PYTHON:-} ]]; then
        if [[ -x $REPO_ROOT/.venv/bin/python ]]; then
            PYTHON=$REPO_ROOT/.venv/bin/python
        else
            PYTHON=$(command -v python3) || fail "no python3 on PATH (or set PYTHON=/path/to/python)" 2
        fi
    fi
    [[ -x $PYTHON ]] || fail "PYTHON=$PYTHON is not an executable" 2
    PATH="$(dirname "$PYTHON"):$PATH"
    export PATH
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

# run_standalone LOG_FOLDER SCRIPT ARGS...: one process, output on the console and in LOG_FOLDER/log.txt.
run_standalone() {
    local folder=$1 script=$2 status=0
    shift 2
    mkdir -p "$folder"
    echo "$script running, log: $folder/log.txt"
    "$PYTHON" "$REPO_ROOT/$script" "$@" 2>&1 | tee "$folder/log.txt" || status=$?
    # The Python exit code is kept: 2 is a user error (bad config value, missing data), as with train.py.
    ((status == 0)) || fail "$script failed, see $folder/log.txt" "$status"
}

# run_msrun WORKERS ARGS...: WORKERS train.py processes on this host under msrun, logs in train_parallel/.
run_msrun() {
    local workers=$1 log_dir port msrun msrun_pid status=0
    shift
    msrun=$(dirname "$PYTHON")/msrun
    [[ -x $(dirname "$PYTHON")/python ]] ||
        fail "msrun starts workers with 'python', and there is none next to $PYTHON: use a virtual environment (make test creates .venv) or set PYTHON"
    [[ -x $msrun ]] || fail "no msrun next to $PYTHON: is MindSpore installed there?"
    log_dir=$(pwd)/train_parallel
    mkdir -p "$log_dir"
    port=$(free_port)
    echo "msrun: $workers workers, master port $port, logs: $log_dir/worker_<rank>.log (rank 0 shown here)"
    # --tail_worker_log=0: rank 0 reports the epochs; the other ranks' output stays in their log files.
    # msrun's own messages go to msrun.log: it reports a failed worker with a Python traceback of its own.
    # msrun runs in its own session because on Ctrl+C it kills its workers at once; instead this script asks
    # the workers to stop cleanly (stop_workers), and msrun ends when they have.
    setsid "$msrun" --worker_num="$workers" --local_worker_num="$workers" --master_port="$port" \
        --log_dir="$log_dir" --join=True --tail_worker_log=0 "$REPO_ROOT/train.py" "$@" 2>"$log_dir/msrun.log" &
    msrun_pid=$!
    STOP_SIGNAL=""
    trap 'stop_workers "$msrun_pid" INT' INT
    trap 'stop_workers "$msrun_pid" TERM' TERM
    wait "$msrun_pid" || status=$?
    while kill -0 "$msrun_pid" 2>/dev/null; do  # a trapped signal ended `wait` early: msrun is still running
        status=0
        wait "$msrun_pid" || status=$?
    done
    trap - INT TERM
    if [[ -n $STOP_SIGNAL ]] && grep -q "stopped by SIG" "$log_dir/worker_0.log" 2>/dev/null; then
        echo "training stopped by SIG$STOP_SIGNAL; $(grep -o 'resumable checkpoint: .*' "$log_dir/worker_0.log" |
            tail -n 1)" >&2
        exit $((128 + $(kill -l "$STOP_SIGNAL")))
    fi
    ((status == 0)) || report_msrun_failure "$log_dir"
}

# stop_workers MSRUN_PID SIGNAL_NAME: SIGTERM to msrun's training workers, not to its scheduler, which must
# outlive them. Each worker finishes its step, rank 0 writes a resumable checkpoint, all exit. Again: at once.
stop_workers() {
    local pid
    STOP_SIGNAL=$2
    echo "stopping: the workers finish their step and write a resumable checkpoint (again to stop at once)" >&2
    for pid in $(pgrep -P "$1"); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'MS_ROLE=MS_WORKER'; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}

# report_msrun_failure LOG_DIR: one line on why msrun ended badly, then exit: a worker's user error exits 2 with
# that worker's message; a crashed or killed worker exits 1 naming its rank. (A clean stop exits 128 + signal.)
report_msrun_failure() {
    local log_dir=$1 pid code rank=unknown error_line
    read -r pid code < <(sed -n 's/.*Worker process \([0-9]*\) exit with exception. Error code: \(-\{0,1\}[0-9]*\).*/\1 \2/p' \
        "$log_dir/msrun.log" | head -n 1) || true
    if [[ -n ${pid:-} ]]; then
        rank=$(grep -l "($pid," "$log_dir"/worker_*.log 2>/dev/null | head -n 1 |
            sed 's/.*worker_\([0-9]*\)\.log/\1/') || true
        rank=${rank:-unknown}
    fi
    if [[ ${code:-} == 2 ]]; then
        # The worker's own message; its rank is unknown when it failed before MindSpore logged anything.
        error_line=$(grep -h '^error: ' "$log_dir"/worker_*.log 2>/dev/null | head -n 1) || true
        fail "distributed training failed: ${error_line#error: } (worker rank $rank; logs in $log_dir)" 2
    fi
    case ${code:-} in
        -*) code="killed by SIG$(kill -l "${code#-}" 2>/dev/null || echo "${code#-}")" ;;
        '') code="no exit code in msrun.log" ;;
        *) code="exit code $code" ;;
    esac
    fail "distributed training failed: worker rank $rank (pid ${pid:-?}) ended first ($code); msrun stopped the other workers. Continue from the last checkpoint with --resume; logs: $log_dir/worker_<rank>.log, msrun.log, scheduler.log"
}

# run_rank_table TABLE ARGS...: one train.py per device of this server listed in the HCCL rank table, each
# with the environment src.tools.rank_table gives it and its own folder train_parallel<rank>/ for log.txt.
run_rank_table() {
    local table ranks folder pids=() folders=() fields status index
    table=$(absolute_path "$1")
    shift
    ranks=$(cd "$REPO_ROOT" && "$PYTHON" -m src.tools.rank_table "$table" --server_id "${SERVER_ID:-}") ||
        exit 2
    # Background processes of a script ignore Ctrl+C: stopping the script must stop them too.
    trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
    while IFS=$'\t' read -r -a fields; do
        folder=$(pwd)/${fields[0]}
        mkdir -p "$folder"
        echo "${fields[*]:1}" >"$folder/log.txt"
        env "${fields[@]:1}" "$PYTHON" "$REPO_ROOT/train.py" "$@" >>"$folder/log.txt" 2>&1 &
        pids+=($!)
        folders+=("$folder")
        echo "started ${fields[*]:2}, log: $folder/log.txt"
    done <<<"$ranks"
    # When one rank fails the others would wait for it until HCCL times out: stop them at once.
    for _ in "${pids[@]}"; do
        status=0
        wait -n "${pids[@]}" || status=$?
        if ((status != 0)); then
            kill "${pids[@]}" 2>/dev/null || true
            for index in "${!pids[@]}"; do
                echo "rank log: ${folders[index]}/log.txt" >&2
            done
            fail "a rank failed with exit code $status; see the logs above"
        fi
    done
    echo "all ${#pids[@]} ranks finished"
}
