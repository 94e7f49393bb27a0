"""The launch scripts in scripts/: usage checks that fail fast, and what each one starts.

What a script starts is observed through ``PYTHON`` (the scripts' documented way to choose the
interpreter): a stand-in ``python`` records its arguments, working folder and rank variables instead of
training, and a stand-in ``msrun`` beside it records its command line. Real training through the scripts
is tested in test_distributed.py.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
CONFIG = str(REPO / "src" / "configs" / "demo.yaml")
TABLE = str(REPO / "tests" / "data" / "rank_table_8p.json")
TRAIN_SCRIPTS = {
    "run_standalone_train_ascend.sh": ["0", CONFIG],
    "run_standalone_train_gpu.sh": ["0", CONFIG],
    "run_standalone_train_cpu.sh": [CONFIG],
    "run_distribute_train_ascend.sh": [TABLE, CONFIG],
    "run_distribute_train_ascend_msrun.sh": ["8", CONFIG],
    "run_distribute_train_gpu.sh": ["8", CONFIG],
    "run_distribute_train_cpu.sh": ["2", CONFIG],
}
EVAL_SCRIPTS = {
    "run_eval_ascend.sh": ["0", CONFIG, CONFIG],  # any existing file passes the checkpoint check
    "run_eval_gpu.sh": ["0", CONFIG, CONFIG],
    "run_eval_cpu.sh": [CONFIG, CONFIG],
}
ALL_SCRIPTS = {**TRAIN_SCRIPTS, **EVAL_SCRIPTS}
FIRST_NUMBER = {  # scripts whose first argument is a number, and its name
    "run_standalone_train_ascend.sh": "DEVICE_ID", "run_standalone_train_gpu.sh": "DEVICE_ID",
    "run_eval_ascend.sh": "DEVICE_ID", "run_eval_gpu.sh": "DEVICE_ID",
    "run_distribute_train_ascend_msrun.sh": "DEVICE_NUM", "run_distribute_train_gpu.sh": "DEVICE_NUM",
    "run_distribute_train_cpu.sh": "WORKER_NUM",
}
COUNTS = ("run_distribute_train_ascend_msrun.sh", "run_distribute_train_gpu.sh", "run_distribute_train_cpu.sh")

# Stands in for the interpreter: tools the scripts run with -m / -c go to the real Python; a training or
# evaluation run records what it was given. RANK_ID $FAIL_RANK ("single" outside a rank-table launch) fails
# with exit code 3, the others wait $HOLD seconds.
FAKE_PYTHON = f"""#!/bin/bash
if [[ $1 == -m || $1 == -c ]]; then
    exec {sys.executable} "$@"
fi
record="$RECORDS/python-${{RANK_ID:-single}}.txt"
{{ echo "pid=$$"; echo "cwd=$PWD"; echo "args=$*"
   env | grep -E '^(RANK_TABLE_FILE|RANK_SIZE|RANK_ID|DEVICE_ID)='; }} >"$record.part"
mv "$record.part" "$record"
echo "stand-in $(basename "$1") ran"
if [[ ${{RANK_ID:-single}} == "${{FAIL_RANK:-none}}" ]]; then
    exit 3
fi
exec sleep "${{HOLD:-0}}"
"""
FAKE_MSRUN = """#!/bin/bash
{ echo "args=$*"; echo "python=$(command -v python)"; } >"$RECORDS/msrun.txt"
"""


@pytest.fixture
def stand_ins(tmp_path) -> dict[str, str]:
    """Environment with PYTHON pointing at the stand-in interpreter; records land in tmp_path/records."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("python", FAKE_PYTHON), ("msrun", FAKE_MSRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "records").mkdir()
    (tmp_path / "work").mkdir()
    return {**os.environ, "PYTHON": str(bin_dir / "python"), "RECORDS": str(tmp_path / "records")}


def run(script: str, args: list[str], env: dict, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def record(tmp_path: Path, name: str) -> dict[str, str]:
    lines = (tmp_path / "records" / name).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def running(pid: int) -> bool:
    """Whether a process runs; a killed child of an exited script may linger as a zombie until reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def bad_arguments() -> list[tuple[str, list[str], str]]:
    cases = []
    for script, good in ALL_SCRIPTS.items():
        cases += [
            (script, [], f"expected {len(good)} arguments, got 0"),
            (script, good[:-1], f"expected {len(good)} arguments, got {len(good) - 1}"),
            (script, [*good, "stray"], "unexpected argument 'stray'"),
        ]
        config_position = good.index(CONFIG)
        missing_config = [*good[:config_position], "/no/such/config.yaml", *good[config_position + 1:]]
        cases.append((script, missing_config, "CONFIG_PATH '/no/such/config.yaml' is not a file"))
        if script in FIRST_NUMBER:
            cases.append((script, ["x1", *good[1:]], f"{FIRST_NUMBER[script]} must be a whole number"))
        if script in COUNTS:
            cases.append((script, ["0", *good[1:]], f"{FIRST_NUMBER[script]} must be a whole number >= 1, got '0'"))
    cases += [
        ("run_distribute_train_ascend.sh", ["/no/t.json", CONFIG], "RANK_TABLE_FILE '/no/t.json' is not a file"),
        ("run_eval_cpu.sh", [CONFIG, "/no/model.ckpt"], "CHECKPOINT_PATH '/no/model.ckpt' is not a file"),
        ("run_eval_ascend.sh", ["0", CONFIG, "/no/model.ckpt"], "CHECKPOINT_PATH '/no/model.ckpt' is not a file"),
    ]
    return cases


@pytest.mark.parametrize(("script", "args", "message"), bad_arguments())
def test_bad_arguments_stop_at_once_with_the_usage_line(stand_ins, tmp_path, script, args, message):
    start = time.perf_counter()
    result = run(script, args, stand_ins, tmp_path / "work")
    assert time.perf_counter() - start < 3
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: bash scripts/{script} ")
    assert message in result.stderr
    assert not list((tmp_path / "records").iterdir()), "nothing may start"
    assert not list((tmp_path / "work").iterdir()), "no log folder either"


def test_a_malformed_rank_table_stops_before_any_rank_starts(stand_ins, tmp_path):
    table = tmp_path / "table.json"
    table.write_text('{"server_list": [{"server_id": "a", "device": [{"device_id": "0"}]}]}')
    result = run("run_distribute_train_ascend.sh", [str(table), CONFIG], stand_ins, tmp_path / "work")
    assert result.returncode == 2
    assert "malformed rank table" in result.stderr and "has no 'rank_id'" in result.stderr
    assert not list((tmp_path / "records").iterdir())


@pytest.mark.parametrize(("script", "args", "expected"), [
    ("run_standalone_train_ascend.sh", ["3", CONFIG, "--epochs", "2"],
     f"train.py --config {CONFIG} --device_target Ascend --device_id 3 --epochs 2"),
    ("run_standalone_train_gpu.sh", ["1", CONFIG], f"train.py --config {CONFIG} --device_target GPU --device_id 1"),
    ("run_standalone_train_cpu.sh", [CONFIG, "--resume"], f"train.py --config {CONFIG} --device_target CPU --resume"),
])
def test_standalone_training_runs_train_py_on_the_chosen_device(stand_ins, tmp_path, script, args, expected):
    work = tmp_path / "work"
    result = run(script, args, stand_ins, work)
    assert result.returncode == 0, result.stderr
    ran = record(tmp_path, "python-single.txt")
    assert ran["args"] == f"{REPO}/{expected}"
    assert ran["cwd"] == str(work)  # relative paths in the config mean what they mean for train.py
    assert "stand-in train.py ran" in (work / "train_standalone" / "log.txt").read_text()
    assert "stand-in train.py ran" in result.stdout


def test_a_failing_run_keeps_its_exit_code_and_names_its_log(stand_ins, tmp_path):
    result = run("run_standalone_train_cpu.sh", [CONFIG], {**stand_ins, "FAIL_RANK": "single"}, tmp_path / "work")
    assert result.returncode == 3
    assert "error: train.py failed, see train_standalone/log.txt" in result.stderr


@pytest.mark.parametrize(("script", "args", "expected"), [
    ("run_eval_ascend.sh", ["2", CONFIG, TABLE], f"--pretrained {TABLE} --device_target Ascend --device_id 2"),
    ("run_eval_gpu.sh", ["0", CONFIG, TABLE], f"--pretrained {TABLE} --device_target GPU --device_id 0"),
    ("run_eval_cpu.sh", [CONFIG, TABLE, "--no_ema"], f"--pretrained {TABLE} --device_target CPU --no_ema"),
])
def test_evaluation_runs_eval_py_with_the_checkpoint(stand_ins, tmp_path, script, args, expected):
    result = run(script, args, stand_ins, tmp_path / "work")
    assert result.returncode == 0, result.stderr
    assert record(tmp_path, "python-single.txt")["args"] == f"{REPO}/eval.py --config {CONFIG} {expected}"
    assert (tmp_path / "work" / "eval" / "log.txt").is_file()


@pytest.mark.parametrize(("script", "count", "target"), [
    ("run_distribute_train_ascend_msrun.sh", "8", "Ascend"),
    ("run_distribute_train_gpu.sh", "4", "GPU"),
    ("run_distribute_train_cpu.sh", "2", "CPU"),
])
def test_msrun_launches_start_one_worker_per_device_with_our_python(stand_ins, tmp_path, script, count, target):
    work = tmp_path / "work"
    result = run(script, [count, CONFIG, "--epochs", "1"], stand_ins, work)
    assert result.returncode == 0, result.stderr
    msrun = record(tmp_path, "msrun.txt")
    options, _, task = msrun["args"].partition(f" {REPO}/train.py ")
    port = options.split("--master_port=")[1].split()[0]
    assert options.split() == [f"--worker_num={count}", f"--local_worker_num={count}", f"--master_port={port}",
                               f"--log_dir={work}/train_parallel", "--join=True", "--tail_worker_log=0"]
    assert 1024 <= int(port) <= 65535
    assert task == f"--config {CONFIG} --device_target {target} --epochs 1"
    # msrun starts every worker with the `python` found first on PATH: it must be the chosen interpreter.
    assert msrun["python"] == stand_ins["PYTHON"]


def test_msrun_launches_need_a_python_named_python_beside_the_interpreter(stand_ins, tmp_path):
    lonely = tmp_path / "lonely" / "python3"
    lonely.parent.mkdir()
    shutil.copy(stand_ins["PYTHON"], lonely)
    result = run("run_distribute_train_cpu.sh", ["2", CONFIG], {**stand_ins, "PYTHON": str(lonely)}, tmp_path / "work")
    assert result.returncode == 1
    assert "msrun starts workers with 'python'" in result.stderr


def test_the_rank_table_launch_starts_each_device_with_its_environment_and_folder(stand_ins, tmp_path):
    work = tmp_path / "work"
    result = run("run_distribute_train_ascend.sh", [TABLE, CONFIG, "--epochs", "3"], stand_ins, work)
    assert result.returncode == 0, result.stderr
    assert "all 8 ranks finished" in result.stdout
    for rank in range(8):
        ran = record(tmp_path, f"python-{rank}.txt")
        assert ran["args"] == f"{REPO}/train.py --config {CONFIG} --device_target Ascend --epochs 3"
        assert (ran["RANK_TABLE_FILE"], ran["RANK_SIZE"], ran["RANK_ID"], ran["DEVICE_ID"]) == (
            TABLE, "8", str(rank), str(rank))
        assert ran["cwd"] == str(work)
        log = (work / f"train_parallel{rank}" / "log.txt").read_text()
        assert log.startswith(f"RANK_TABLE_FILE={TABLE} RANK_SIZE=8 RANK_ID={rank} DEVICE_ID={rank}\n")
        assert "stand-in train.py ran" in log


def test_when_one_rank_fails_the_others_are_stopped_and_the_script_fails(stand_ins, tmp_path):
    start = time.perf_counter()
    result = run("run_distribute_train_ascend.sh", [TABLE, CONFIG], {**stand_ins, "FAIL_RANK": "3", "HOLD": "60"},
                 tmp_path / "work")
    assert time.perf_counter() - start < 30  # the other seven would otherwise hold for a minute
    assert result.returncode == 1
    assert "a rank failed with exit code 3" in result.stderr
    assert f"{tmp_path / 'work'}/train_parallel3/log.txt" in result.stderr


def test_stopping_the_rank_table_launch_stops_every_rank(stand_ins, tmp_path):
    script = subprocess.Popen(["bash", str(SCRIPTS / "run_distribute_train_ascend.sh"), TABLE, CONFIG],
                              cwd=tmp_path / "work", env={**stand_ins, "HOLD": "60"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    records = tmp_path / "records"
    deadline = time.monotonic() + 30
    # Only finished records count: each rank writes a ".part" file first and renames it when complete.
    while len(list(records.glob("python-*.txt"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [int(record(tmp_path, f"python-{rank}.txt")["pid"]) for rank in range(8)]
    script.send_signal(signal.SIGTERM)
    assert script.wait(timeout=10) == 130
    time.sleep(0.5)
    assert not [pid for pid in pids if running(pid)]


def test_shellcheck_finds_nothing():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian/Ubuntu: apt-get install -y shellcheck)")
    scripts = sorted(str(path) for path in SCRIPTS.glob("*.sh"))
    result = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
