"""Data-parallel training for real: scripts/run_distribute_train_cpu.sh starts two msrun workers of train.py.

The data set is 16 classes of one image each, so the class of a sample names the file it came from. Every
image is one uniform colour (a different colour per class): random-resized crops and flips leave such an
image unchanged, so the exact tensors each rank trained on are known from the classes it consumed. Each rank
reports those classes, its losses and its final weights, and every file a process writes into ``train_url``
is logged: recorders that ``worker_hooks/sitecustomize.py``, put on the workers' PYTHONPATH, wraps around the
trainer from outside. One run trains one epoch (one step of 8 images per rank); a second run resumes it for
a second epoch. Both take 70-100 s together on 2 cores (graph compilation is most of it).
"""

import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from PIL import Image

from src.config import load_config
from src.data import IMAGENET_MEAN, IMAGENET_STD, write_demo_imagefolder
from src.device import MSRUN, RANK_TABLE, SINGLE, detect_launch
from src.engine.lr_schedule import build_lr_schedule
from src.engine.optimizer import build_optimizer
from src.engine.train_step import NetWithLoss, SoftTargetCrossEntropy
from src.errors import UserError
from src.models import create_model

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "src" / "configs" / "demo.yaml"
ARCH = "RepVGG-A0-cifar"  # the demo recipe's
CLASSES = 16
BATCH = 8  # per rank: one epoch of 16 images is one step on two ranks
WEIGHT = "weight:"
# Clipping off: a clipped update has the same norm whether gradients are averaged or summed across ranks.
OVERRIDES = {"set": "ImageNet", "num_classes": CLASSES, "batch_size": BATCH, "warmup_length": 0,
             "eval_every": 0, "clip_global_norm_value": 0, "num_parallel_workers": 1}

# Recorders loaded into every process of a launch (see its docstring): file writes and per-rank traces.
WORKER_HOOKS = Path(__file__).resolve().parent / "worker_hooks"
RANK_TRACE_VARIABLE = "REPVGG_RANK_TRACE_DIR"


@dataclass
class Run:
    logs: list[str]                 # worker_<rank>.log text
    traces: list[dict]              # rank<r>.npz contents
    writers: set[str]               # "<MS_ROLE> <RANK_ID>" of every process that wrote into train_url


def run_script(args: list[str], cwd: Path, env: dict, timeout: int) -> subprocess.CompletedProcess:
    """Run a launch script in its own process group; on a timeout, SIGINT makes msrun stop its workers."""
    process = subprocess.Popen(["bash", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        pytest.fail(f"{args[0]} did not finish in {timeout} s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(args, process.returncode, output, "")


@pytest.fixture(scope="module")
def colours() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(CLASSES, 3))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, colours) -> tuple[Run, Run, Path]:
    root = tmp_path_factory.mktemp("distributed")
    data = root / "data"
    for split in ("train", "val"):
        for label, colour in enumerate(colours):
            (data / split / f"class{label:02d}").mkdir(parents=True)
            Image.fromarray(np.full((32, 32, 3), colour, np.uint8)).save(data / split / f"class{label:02d}" / "a.png")
    train_url = root / "train_url"
    flags = [f"--{key}={value}" for key, value in OVERRIDES.items()]
    runs = []
    for name, extra in (("first", ["--epochs", "1"]), ("resumed", ["--epochs", "2", "--resume"])):
        folder = root / name
        for sub in ("trace", "audit"):
            (folder / sub).mkdir(parents=True)
        env = {**os.environ, RANK_TRACE_VARIABLE: str(folder / "trace"), "REPVGG_AUDIT_TREE": str(train_url),
               "REPVGG_AUDIT_LOG": str(folder / "audit"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(WORKER_HOOKS), os.environ.get("PYTHONPATH")]))}
        result = run_script([str(REPO / "scripts" / "run_distribute_train_cpu.sh"), "2", str(DEMO_CONFIG),
                             "--data_url", str(data), "--train_url", str(train_url), *flags, *extra],
                            cwd=folder, env=env, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:]
        logs = [(folder / "train_parallel" / f"worker_{rank}.log").read_text(errors="replace") for rank in (0, 1)]
        traces = [dict(np.load(folder / "trace" / f"rank{rank}.npz")) for rank in (0, 1)]
        audit_lines = [line for audit in (folder / "audit").glob("*.txt") for line in audit.read_text().splitlines()]
        writers = {" ".join(line.split()[:2]) for line in audit_lines}
        runs.append(Run(logs, traces, writers))
    return runs[0], runs[1], train_url


def test_both_ranks_finish_and_the_resumed_run_starts_every_rank_from_the_checkpoint(runs):
    first, resumed, _ = runs
    for run in (first, resumed):
        for rank, log in enumerate(run.logs):
            assert f"data parallel (msrun): rank {rank} of 2" in log
            assert f"rank {rank} of 2 finished training" in log
    for log in resumed.logs:
        assert "resumed from" in log and "after epoch 1" in log


def test_each_rank_trains_on_its_own_half_of_the_data(runs):
    for run in runs[:2]:
        halves = [set(trace["classes"].tolist()) for trace in run.traces]
        assert [len(trace["classes"]) for trace in run.traces] == [BATCH, BATCH]
        assert halves[0].isdisjoint(halves[1])
        assert halves[0] | halves[1] == set(range(CLASSES))


def test_ranks_end_with_identical_trainable_weights(runs):
    """Gradients are averaged across ranks, so every rank applies the same update. BatchNorm's moving
    statistics are not trainable: without SyncBN each rank keeps its own (rank 0's are saved)."""
    for run in runs[:2]:
        rank0, rank1 = run.traces
        trainable = [key for key in rank0 if key.startswith(WEIGHT) and ".moving_" not in key]
        assert len(trainable) > 100
        for key in trainable:
            np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)


def test_only_rank_0_writes_into_train_url(runs):
    for run in runs[:2]:
        assert run.writers == {"MS_WORKER 0"}


def test_two_ranks_take_the_step_one_process_takes_on_the_same_global_batch(runs, colours):
    """The reference is computed here, in one process, on the same global batch of 16 images.

    A plain one-process run with batch 16 is not an exact reference: its BatchNorm normalises over all 16
    images, while each rank normalises over its own 8 (no SyncBN), so the losses differ by an amount that
    depends on the data. Data parallelism promises something exact instead: each rank's forward and backward
    on its half with that half's statistics, the mean of the two gradients, one optimiser step. The reference
    computes exactly that with the project's optimiser and schedule: for the first run from the seed's
    initial weights, for the resumed run from the epoch-1 checkpoint (weights and optimiser state) that
    every rank must have loaded.

    - Each rank's loss equals the reference loss of its half: the same float32 computation on the same
      weights (measured agreement 1e-7; tolerance 1e-5). A rank that had not loaded the checkpoint would
      be off by far more.
    - The weight update (all trainable parameters, after minus before) equals the reference update to within
      1% of its norm. The residue is float32 rounding in different kernels (graph mode in the runs,
      PyNative here), amplified by the backward pass through BatchNorm over 8 uniform images: measured
      2e-4 (first step) and 5e-4 (resumed step). Wrong reductions are far away: summing the gradients is off
      by 50%, a rank stepping on its own gradient alone by 70-100% (checked below, so the test can fail).
    """
    first, resumed, train_url = runs
    cfg = load_config(DEMO_CONFIG, {**OVERRIDES, "epochs": 2}, check_paths=False)
    mean = np.array(IMAGENET_MEAN)[:, None, None] * 255
    std = np.array(IMAGENET_STD)[:, None, None] * 255
    images = np.broadcast_to((colours[:, :, None, None] - mean) / std, (CLASSES, 3, 32, 32)).astype(np.float32)
    eps = cfg.label_smoothing
    targets = (np.eye(CLASSES) * (1 - eps) + eps / CLASSES).astype(np.float32)

    def data_parallel_step(start: Path | None, rank_classes: list[np.ndarray], average: bool = True
                           ) -> tuple[list[float], dict, dict]:
        """Each half's loss, and the trainable weights before and after one step from the seed's initial
        weights (``start`` None) or from a training checkpoint (weights and optimiser state)."""
        ms.set_seed(cfg.seed)
        net = create_model(cfg.arch, num_classes=CLASSES)
        net.set_train(True)
        optimizer = build_optimizer(cfg, net.trainable_params(), build_lr_schedule(cfg, steps_per_epoch=1))
        if start is not None:
            # Parameter by parameter: load_param_into_net strips unknown prefixes such as "moments." and
            # would load the optimiser's moments into the weights.
            saved = ms.load_checkpoint(str(start))
            for param in (*net.get_parameters(), *optimizer.moments, optimizer.global_step):
                param.set_data(saved[param.name])
        before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
        grad_fn = ms.value_and_grad(NetWithLoss(net, SoftTargetCrossEntropy()), None, optimizer.parameters)
        halves = [grad_fn(Tensor(images[classes]), Tensor(targets[classes])) for classes in rank_classes]
        grads = [(g0 + g1) / 2 for g0, g1 in zip(halves[0][1], halves[1][1], strict=True)] if average else halves[0][1]
        optimizer(tuple(grads))
        after = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
        return [float(loss) for loss, _ in halves], before, after

    def flat(weights: dict, names: list[str]) -> np.ndarray:
        return np.concatenate([weights[name].ravel() for name in names])

    for run, start in ((first, None), (resumed, train_url / f"{cfg.arch}-epoch0001.ckpt")):
        classes = [trace["classes"] for trace in run.traces]
        losses, before, after = data_parallel_step(start, classes)
        np.testing.assert_allclose([trace["losses"][0] for trace in run.traces], losses, rtol=1e-5)
        names = list(before)
        reference = flat(after, names) - flat(before, names)
        trained = flat({name: run.traces[0][WEIGHT + name] for name in names}, names) - flat(before, names)
        assert np.linalg.norm(trained - reference) <= 1e-2 * np.linalg.norm(reference)
        # What rank 0 would do without the all-reduce: a step on its own half. The check must tell it apart.
        _, _, alone = data_parallel_step(start, classes, average=False)
        assert np.linalg.norm(flat(alone, names) - flat(before, names) - reference) > 0.3 * np.linalg.norm(reference)


@pytest.mark.parametrize(("environ", "launcher", "device"), [
    ({}, SINGLE, 3),
    ({"MS_ROLE": "MS_WORKER", "MS_WORKER_NUM": "2", "RANK_ID": "1"}, MSRUN, None),
    ({"MS_ROLE": "MS_SCHED", "MS_WORKER_NUM": "1"}, MSRUN, None),
    ({"RANK_TABLE_FILE": str(REPO / "tests" / "data" / "rank_table_8p.json"), "RANK_SIZE": "8", "RANK_ID": "5",
      "DEVICE_ID": "5"}, RANK_TABLE, 5),
    ({"RANK_TABLE_FILE": "whatever.json", "RANK_SIZE": "1"}, SINGLE, 3),
])
def test_the_launcher_is_read_from_the_environment(environ, launcher, device):
    launch = detect_launch(3, environ)
    assert (launch.launcher, launch.device_id) == (launcher, device)


@pytest.mark.parametrize(("environ", "message"), [
    ({"RANK_SIZE": "8", "RANK_ID": "0", "DEVICE_ID": "0"}, "RANK_TABLE_FILE=missing.json is not a file"),
    ({"RANK_SIZE": "8", "DEVICE_ID": "0"}, "RANK_ID is not set"),
    ({"RANK_SIZE": "8", "RANK_ID": "0"}, "DEVICE_ID is not set"),
    ({"RANK_SIZE": "eight", "RANK_ID": "0", "DEVICE_ID": "0"}, "RANK_SIZE='eight' is not a whole number"),
    ({"RANK_SIZE": "8", "RANK_ID": "8", "DEVICE_ID": "0"}, "RANK_ID=8 is outside 0..7"),
])
def test_an_inconsistent_rank_table_environment_is_a_clear_error(environ, message):
    table = str(REPO / "tests" / "data" / "rank_table_8p.json") if "missing" not in message else "missing.json"
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        detect_launch(0, {"RANK_TABLE_FILE": table, **environ})


@dataclass
class Ended:
    code: int | None  # None: killed by the test after its timeout
    output: str
    at: float  # time.monotonic() when the launch had ended


class Launch:
    """run_distribute_train_cpu.sh in its own session (as from a terminal), watched through its worker logs."""

    def __init__(self, root: Path, data: Path):
        root.mkdir(parents=True)
        self.root = root
        self.log_dir = root / "train_parallel"
        self.train_url = root / "train_url"
        self.marker = str(root)
        env = {**os.environ, "REPVGG_TEST_LAUNCH": self.marker}
        self.process = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "run_distribute_train_cpu.sh"), "2", str(DEMO_CONFIG), "--data_url",
             str(data), "--train_url", str(self.train_url), "--epochs", "50", "--batch_size", "4",
             "--eval_every", "0", "--num_parallel_workers", "1", "--amp_level", "O0"],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def worker_log(self, rank: int) -> str:
        path = self.log_dir / f"worker_{rank}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def wait_for_epoch_1(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while "epoch 1/50: loss" not in self.worker_log(0):
            assert self.process.poll() is None and time.monotonic() < deadline, self.worker_log(0)[-3000:]
            time.sleep(0.5)

    def workers(self) -> dict[int, int]:
        """rank -> pid of this launch's training workers (msrun's scheduler runs train.py too: left out)."""
        found = {}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                environ = dict(line.split("=", 1) for line in (proc / "environ").read_text().split("\0") if "=" in line)
            except OSError:
                continue
            if environ.get("REPVGG_TEST_LAUNCH") == self.marker and environ.get("MS_ROLE") == "MS_WORKER":
                found[int(environ["RANK_ID"])] = int(proc.name)
        return found

    def finish(self, timeout: float) -> Ended:
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            output, _ = self.process.communicate()
            return Ended(None, output + f"\n[the launch did not end within {timeout} s]", time.monotonic())
        return Ended(self.process.returncode, output, time.monotonic())


@dataclass
class FailureCases:
    ctrl_c: Launch
    ctrl_c_ended: Ended
    dead_worker: Launch
    dead_worker_ended: Ended
    victim: int  # pid of the killed rank-1 worker
    killed_at: float  # time.monotonic() of the SIGKILL
    epoch_1_checkpoint: bytes  # the dead-worker launch's epoch-1 checkpoint before the kill


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_imagefolder(str(root), num_train_per_class=8, num_val_per_class=1)
    return root


@pytest.fixture(scope="module")
def failure_cases(demo_data, tmp_path_factory) -> FailureCases:
    """Both failure cases, on two launches started side by side.

    Each case ends its launch (Ctrl+C stops it, a killed worker makes msrun stop the rest), so they cannot share
    one; run together, their graph compilation and msrun's wait for the dead worker's heartbeat overlap instead
    of adding up. Both are stopped after epoch 1 and awaited in parallel, so each end time is its own."""
    root = tmp_path_factory.mktemp("failures")
    ctrl_c, dead_worker = Launch(root / "ctrl_c", demo_data), Launch(root / "dead_worker", demo_data)
    try:
        ctrl_c.wait_for_epoch_1()
        dead_worker.wait_for_epoch_1()
        saved = (dead_worker.train_url / f"{ARCH}-epoch0001.ckpt").read_bytes()
        victim = dead_worker.workers()[1]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        os.killpg(ctrl_c.process.pid, signal.SIGINT)  # what Ctrl+C in a terminal does
    except BaseException:
        for launch in (ctrl_c, dead_worker):  # a failed wait must not leave a launch running
            os.killpg(launch.process.pid, signal.SIGKILL)
            launch.process.communicate()
        raise
    with ThreadPoolExecutor(2) as pool:
        ctrl_c_ended, dead_worker_ended = pool.map(lambda launch: launch.finish(timeout=180), (ctrl_c, dead_worker))
    return FailureCases(ctrl_c, ctrl_c_ended, dead_worker, dead_worker_ended, victim, killed_at, saved)


def test_ctrl_c_stops_every_worker_after_the_same_step_with_a_resumable_checkpoint(failure_cases):
    launch, ended = failure_cases.ctrl_c, failure_cases.ctrl_c_ended
    assert ended.code == 128 + signal.SIGINT, ended.output[-3000:]
    assert "training stopped by SIGINT; resumable checkpoint:" in ended.output
    assert "Traceback" not in ended.output, ended.output[-4000:]
    steps = [re.search(r"stopped by SIGTERM at step (\d+)", launch.worker_log(rank)) for rank in (0, 1)]
    assert all(steps), launch.worker_log(1)[-2000:]
    assert steps[0][1] == steps[1][1]  # the same step on both ranks: nobody waits in an all-reduce
    checkpoint = ms.load_checkpoint(str(launch.train_url / f"{ARCH}-interrupted.ckpt"))
    assert int(checkpoint["step"].asnumpy()) == int(steps[0][1])
    assert not launch.workers()


def test_a_dead_worker_stops_the_others_within_a_bounded_time_with_a_clear_message(failure_cases):
    launch, ended, victim = failure_cases.dead_worker, failure_cases.dead_worker_ended, failure_cases.victim
    assert ended.code == 1, ended.output[-3000:]
    assert f"worker rank 1 (pid {victim}) ended first (killed by SIGKILL); msrun stopped the other workers" \
        in ended.output
    assert "Traceback" not in ended.output, ended.output[-4000:]
    assert ended.at - failure_cases.killed_at < 120  # msrun's heartbeat notices the dead worker in about 30 s
    assert not launch.workers()
    assert (launch.train_url / f"{ARCH}-epoch0001.ckpt").read_bytes() == failure_cases.epoch_1_checkpoint
