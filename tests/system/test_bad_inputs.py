"""The bad-input matrix: every entry point, given a missing path, an empty or one-class data set, a broken
image, a checkpoint or model of another arch or class count, a bad config, or an output it cannot write, stops with
one ``error:`` line and exit code 2 - never a traceback - and leaves every file that was there before untouched.

Most cases run in this process, through each entry point's ``main`` wrapped in ``run_cli`` exactly as the scripts
run it. A few run as real processes, to prove that nothing prints a traceback at the process level: a full disk
(a file-size limit), a read-only folder, a broken image behind MindSpore's C++ decoder, and the launch scripts.
"""

import contextlib
import ctypes
import functools
import importlib
import importlib.util
import io
import logging
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from conftest import IMAGE_FOLDER_CLASSES, truncated_jpeg, write_image_folder

from src.checkpoint_files import save_checkpoint_atomic
from src.cli import run_cli
from src.data import SPLITS
from src.deploy.binfiles import BinEntry, LabelFile, result_file, write_label_file
from src.deploy.export import export_network
from src.logger import get_logger
from src.models import create_model, repvgg_model_convert
from src.models.weight_import import official_name

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "src" / "configs" / "demo.yaml"
IMAGENET_CONFIG = REPO / "src" / "configs" / "RepVGG-A0.yaml"
ARCH = "RepVGG-A0-cifar"
OTHER_ARCH = "RepVGG-B0-cifar"
CLASSES = len(IMAGE_FOLDER_CLASSES)
TRAIN_PER_CLASS, VAL_PER_CLASS = 4, 2
ENTRY_POINTS = {
    "train": "train.py", "eval": "eval.py", "export": "export.py", "infer_onnx": "infer_onnx.py",
    "preprocess": "preprocess.py", "postprocess": "postprocess.py",
    "import_weights": "src.tools.import_weights", "quantize_onnx": "src.tools.quantize_onnx",
}
# Linux capabilities that let root ignore file permissions (linux/capability.h), and prctl's PR_CAPBSET_DROP.
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24
# Looked up here: a forked child of this multi-threaded process must not call dlopen.
PRCTL = ctypes.CDLL(None, use_errno=True).prctl


# ----- the world: data sets, checkpoints, models, configs, and earlier outputs that must survive ----------------


@dataclass(frozen=True)
class World:
    root: Path
    paths: dict[str, str]   # names used in the case templates below -> paths

    def args(self, template: str) -> list[str]:
        return template.format(**self.paths).split()


def write_data_sets(data: Path) -> dict[str, Path]:
    sets = {name: data / name for name in ("good", "one_class", "empty", "bare", "truncated", "text_as_jpeg")}
    write_image_folder(sets["good"], TRAIN_PER_CLASS, VAL_PER_CLASS)
    write_image_folder(sets["one_class"], TRAIN_PER_CLASS, VAL_PER_CLASS, classes=IMAGE_FOLDER_CLASSES[:1])
    sets["bare"].mkdir()
    for split in SPLITS:
        for name in IMAGE_FOLDER_CLASSES:
            (sets["empty"] / split / name).mkdir(parents=True)
            (sets["empty"] / split / name / "notes.txt").write_text("not an image\n")
    # Among good images: a JPEG cut short (MindSpore's decoder would crash on it) and a non-image file that is
    # skipped by its extension; in the other set a text file with a .jpg name.
    write_image_folder(sets["truncated"], TRAIN_PER_CLASS, VAL_PER_CLASS)
    write_image_folder(sets["text_as_jpeg"], TRAIN_PER_CLASS, VAL_PER_CLASS)
    for split in SPLITS:
        truncated_jpeg(sets["truncated"] / split / "dog" / "cut.jpg")
        (sets["truncated"] / split / "cat" / "notes.txt").write_text("not an image\n")
        (sets["text_as_jpeg"] / split / "emu" / "text.jpg").write_text("a text file, not a JPEG\n")
    return sets


def write_models(ckpt: Path, onnx: Path) -> dict[str, Path]:
    ms.set_seed(0)
    net, five_classes = create_model(ARCH, CLASSES), create_model(ARCH, 5)
    other_arch = create_model(OTHER_ARCH, CLASSES)
    models = {
        "a0_ckpt": save_checkpoint_atomic(net, ckpt / "a0.ckpt"),
        "a0_5_ckpt": save_checkpoint_atomic(five_classes, ckpt / "a0_5.ckpt"),
        "b0_ckpt": save_checkpoint_atomic(other_arch, ckpt / "b0.ckpt"),
        # A training checkpoint of another run setup, for --resume.
        "b0_run_ckpt": save_checkpoint_atomic(other_arch, ckpt / "b0_run.ckpt",
                                              append_dict={"epoch": 1, "step": 3, "best_top1": 0.0}),
        "broken_ckpt": ckpt / "broken.ckpt",
    }
    models["broken_ckpt"].write_text("not a checkpoint\n")
    for name, source in (("a0_onnx", net), ("a0_5_onnx", five_classes)):
        source.set_train(False)
        models[name] = export_network(repvgg_model_convert(source), "ONNX", onnx / name, 1, 32, dynamic_batch=True)
    return models


def write_configs(folder: Path, good: Path, run: Path) -> dict[str, Path]:
    configs = {name: folder / f"{name}.yaml" for name in ("imagenet32", "typo", "wrong_type", "out_of_range")}
    # The demo recipe on an ImageNet-style folder of 3 classes at 32 px, small enough for a one-batch epoch.
    configs["imagenet32"].write_text(
        f"base: {DEMO_CONFIG}\nset: ImageNet\nnum_classes: {CLASSES}\ndata_url: {good}\ntrain_url: {run}\n"
        "batch_size: 4\nepochs: 1\nwarmup_length: 0\nnum_parallel_workers: 1\n")
    configs["typo"].write_text("base: imagenet32.yaml\nbath_size: 8\n")
    configs["wrong_type"].write_text("base: imagenet32.yaml\nepochs: three\n")
    configs["out_of_range"].write_text("base: imagenet32.yaml\nlabel_smoothing: 1.5\n")
    return configs


def write_weight_files(folder: Path) -> dict[str, Path]:
    state = {official_name(name): p.asnumpy() for name, p in create_model(ARCH, CLASSES).parameters_and_names()}
    files = {"a0_npz": folder / "a0.npz", "garbage_npz": folder / "garbage.npz", "single_npz": folder / "single.npz"}
    np.savez(files["a0_npz"], **state)
    files["garbage_npz"].write_bytes(b"PK\x03\x04 not a zip archive")
    with open(files["single_npz"], "wb") as handle:
        np.save(handle, np.zeros(3, np.float32))  # one .npy array under an .npz name
    return files


def write_offline_results(out: Path, good: Path) -> dict[str, Path]:
    """A label file of 2 inputs (labels 0 and 2) and result folders: complete, one file short, 2 outputs only."""
    entries = (BinEntry("000000", (0,), ("cat/0.jpg",)), BinEntry("000001", (2,), ("emu/0.jpg",)))
    labels = write_label_file(out / "labels.json", LabelFile((1, 3, 32, 32), IMAGE_FOLDER_CLASSES, entries, str(good)))
    folders = {"results": out / "results", "results_missing": out / "results_missing", "results_2": out / "results_2"}
    for name, outputs in (("results", CLASSES), ("results_missing", CLASSES), ("results_2", 2)):
        folders[name].mkdir()
        for entry in entries:
            np.zeros(outputs, "<f4").tofile(result_file(folders[name], entry.stem))
    result_file(folders["results_missing"], "000001").unlink()
    (folders["results"] / "accuracy.json").write_text("previous metrics\n")
    (out / "other_format.json").write_text('{"format": "something else"}\n')
    return {"labels": labels, "other_format": out / "other_format.json", **folders}


def write_earlier_outputs(out: Path) -> dict[str, Path]:
    """What earlier runs left: a failing run must not touch any of it."""
    run, bins = out / "run", out / "bins"
    (bins / "00_data").mkdir(parents=True)
    run.mkdir()
    for path, content in ((run / f"{ARCH}-epoch0001.ckpt", b"previous checkpoint"), (out / "model.onnx", b"previous"),
                          (bins / "00_data" / "000000.bin", b"previous"), (bins / "labels.json", b"previous"),
                          (out / "imported.ckpt", b"previous"), (out / "a0.int8.onnx", b"previous"),
                          (out / "onnx.json", b"previous"), (out / "blocker", b"a file where a folder should be")):
        path.write_bytes(content)
    return {"run": run, "bins": bins, "blocker": out / "blocker"}


def build_world(root: Path) -> World:
    folders = {name: root / name for name in ("data", "ckpt", "onnx", "cfg", "weights", "out")}
    for folder in folders.values():
        folder.mkdir()
    sets = write_data_sets(folders["data"])
    earlier = write_earlier_outputs(folders["out"])
    paths = {**folders, **sets, **earlier, **write_models(folders["ckpt"], folders["onnx"]),
             **write_configs(folders["cfg"], sets["good"], earlier["run"]), **write_weight_files(folders["weights"]),
             **write_offline_results(folders["out"], sets["good"]), "imagenet_config": IMAGENET_CONFIG,
             "demo_config": DEMO_CONFIG}
    (folders["ckpt"] / "a0.eval.json").write_text("previous metrics\n")  # eval.py's default output, next to a0.ckpt
    return World(root, {name: str(path) for name, path in paths.items()})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


# ----- what "untouched" means ------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """Identity, size, modification time and mode of every file; identity and mode of every folder (whose mtime
    changes whenever a file is added, which an entry point may do)."""
    state = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            key = os.path.relpath(path, root)
            state[key] = (info.st_ino, info.st_mode) if name in folders else \
                (info.st_ino, info.st_mode, info.st_size, info.st_mtime_ns)
    return state


def assert_untouched(root: Path, before: dict[str, tuple]) -> None:
    after = snapshot(root)
    changed = sorted(path for path, state in before.items() if after.get(path) != state)
    # Our staging files and folders are hidden (".name..."): none may be left behind.
    leftovers = sorted(path for path in set(after) - set(before) if Path(path).name.startswith("."))
    assert not changed, f"changed or removed: {changed}"
    assert not leftovers, f"left behind: {leftovers}"


# ----- running an entry point in this process ----------------------------------------------------------------------


@functools.cache
def entry_main(name: str):
    target = ENTRY_POINTS[name]
    if not target.endswith(".py"):
        return importlib.import_module(target).main
    spec = importlib.util.spec_from_file_location(f"entry_point_{name}", REPO / target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_in_process(name: str, args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``python <entry point> <args>``, run as the script runs it: ``run_cli(main)``."""
    stderr = io.StringIO()
    # Our log lines go to stderr too (pytest may have added handlers of its own).
    handlers = [handler for handler in get_logger().handlers if type(handler) is logging.StreamHandler]
    earlier_streams = [handler.setStream(stderr) for handler in handlers]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr), \
                pytest.raises(SystemExit) as stop:
            run_cli(entry_main(name), args)
    finally:
        for handler, stream in zip(handlers, earlier_streams, strict=True):
            handler.setStream(stream)
        ms.set_context(mode=ms.PYNATIVE_MODE)  # setup_device switched to graph mode; other tests expect PyNative
    return stop.value.code, stderr.getvalue()


def assert_one_clear_error(code: int, stderr: str, message: str) -> None:
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "error: " in line]
    assert len(errors) == 1, stderr[-3000:]
    assert message in errors[0], errors[0]


# ----- the matrix ----------------------------------------------------------------------------------------------------

# Each entry point's arguments, and the flag that names its data set. Data cases put every training (or, for
# eval/infer, validation) image into the first batch, so that a bad one is read before any graph is compiled.
BASE = {
    "train": ("--config {imagenet32} --train_url {run}", "--data_url", "--batch_size 13"),
    "eval": ("--config {imagenet32} --pretrained {a0_ckpt}", "--data_url", "--batch_size 7"),
    "export": ("--config {imagenet32} --pretrained {a0_ckpt} --file_format ONNX --file_name {out}/model", None, ""),
    "infer_onnx": ("--onnx_path {a0_onnx} --dataset_path {good} --config {imagenet32} --result_json {out}/onnx.json",
                   "--dataset_path", "--batch_size 7"),
    "preprocess": ("--config {imagenet32} --dataset_path {good} --output_path {bins}", "--dataset_path", ""),
    "quantize_onnx": ("--config {imagenet32} --onnx_path {a0_onnx} --file_name {out}/a0.int8.onnx "
                      "--calibration_images 4", "--data_url", "--batch_size 13"),
    "postprocess": ("--result_path {results} --label_path {labels}", None, ""),
    "import_weights": ("--arch RepVGG-A0-cifar --pretrained {a0_npz} --file_name {out}/imported.ckpt", None, ""),
}
DATA_CASES = (
    ("missing data set", "{data}/absent", "is not an existing data set folder"),
    ("no split folders", "{bare}", "missing train/ folder"),
    ("empty data set", "{empty}", "no images (.jpg, .jpeg, .png, .bmp) in the class folders"),
    ("one class", "{one_class}", "has 1 class folder(s); a classifier needs at least 2"),
    ("truncated JPEG", "{truncated}", "dog/cut.jpg"),
    ("text file named .jpg", "{text_as_jpeg}", "emu/text.jpg"),
)
# Where the message differs: evaluation reads val/; preprocess.py reads a folder without val/ as a split folder.
DATA_MESSAGES = {
    ("eval", "{bare}"): "missing val/ folder", ("infer_onnx", "{bare}"): "missing val/ folder",
    ("preprocess", "{bare}"): "has 0 class folder(s)",
    ("preprocess", "{data}/absent"): "does not exist or is not a folder",
}
CONFIG_CASES = (
    ("missing config", "{cfg}/absent.yaml", "config file not found"),
    ("typo'd key", "{typo}", "unknown key 'bath_size' in"),
    ("wrong type", "{wrong_type}", "invalid value for 'epochs' in"),
    ("out-of-range value", "{out_of_range}", "must be in [0, 1), got 1.5"),
)
# Where each entry point writes, pointed below a file that stands where a folder should be.
BLOCKED_OUTPUT = {
    "train": "--train_url {blocker}/run", "eval": "--result_json {blocker}/m.json",
    "export": "--file_name {blocker}/model", "infer_onnx": "--result_json {blocker}/m.json",
    "preprocess": "--output_path {blocker}/bins", "postprocess": "--result_json {blocker}/a.json",
    "import_weights": "--file_name {blocker}/x.ckpt", "quantize_onnx": "--file_name {blocker}/x.onnx",
}
SPECIFIC_CASES = (
    ("train", "pretrained of another arch", "--pretrained {b0_ckpt}", "does not fit RepVGG-A0-cifar with 3 classes"),
    ("train", "pretrained not a checkpoint", "--pretrained {broken_ckpt}", "cannot read checkpoint"),
    ("train", "QAT from a checkpoint of another arch", "--qat true --pretrained {b0_ckpt}",
     "does not fit RepVGG-A0-cifar with 3 classes"),
    ("train", "QAT from a checkpoint of another num_classes", "--qat true --pretrained {a0_5_ckpt}",
     "linear.bias (5,) != (3,)"),
    ("train", "resume from another run setup", "--resume {b0_run_ckpt}", "cannot resume from"),
    ("train", "new run into a train_url holding a run", "--train_url {run}", "already holds a run"),
    ("train", "missing pretrained", "--pretrained {ckpt}/absent.ckpt", "is not an existing checkpoint file"),
    ("train", "num_classes the data lacks", "--num_classes 5", "num_classes is 5 but the ImageNet data"),
    ("train", "typo'd flag", "--bath_size 8", "unrecognized arguments: --bath_size"),
    ("train", "demo set to be written below a file", "--set demo --num_classes 8 --data_url {blocker}/demo",
     "cannot write the demo data set into"),
    ("eval", "checkpoint of another arch", "--pretrained {b0_ckpt}", "does not fit RepVGG-A0-cifar with 3 classes"),
    ("eval", "checkpoint of another num_classes", "--pretrained {a0_5_ckpt}", "linear.bias (5,) != (3,)"),
    ("eval", "not a checkpoint", "--pretrained {broken_ckpt}", "cannot read checkpoint"),
    ("eval", "missing checkpoint", "--pretrained {ckpt}/absent.ckpt", "is not an existing checkpoint file"),
    ("export", "AIR on CPU", "--file_format AIR", "AIR export needs an Ascend device"),
    ("export", "checkpoint of another arch", "--pretrained {b0_ckpt}", "does not fit RepVGG-A0-cifar"),
    ("export", "checkpoint of another num_classes", "--pretrained {a0_5_ckpt}", "linear.bias (5,) != (3,)"),
    ("export", "not a checkpoint", "--pretrained {broken_ckpt}", "cannot read checkpoint"),
    ("export", "missing checkpoint", "--pretrained {ckpt}/absent.ckpt", "checkpoint not found"),
    ("export", "batch size 0", "--batch_size 0", "invalid value for --batch_size"),
    ("infer_onnx", "missing model", "--onnx_path {onnx}/absent.onnx", "ONNX model not found"),
    ("infer_onnx", "not an ONNX model", "--onnx_path {a0_ckpt}", "cannot load"),
    ("infer_onnx", "model of another num_classes", "--onnx_path {a0_5_onnx}", "num_classes is 5 but the ImageNet data"),
    ("infer_onnx", "recipe of another image size", "--config {imagenet_config}",
     "the model takes inputs of shape ['batch', 3, 32, 32] but the config's preprocessing makes 224x224"),
    ("infer_onnx", "batch size 0", "--batch_size 0", "invalid value for --batch_size"),
    ("infer_onnx", "threads 0", "--threads 0", "--threads must be at least 1"),
    ("preprocess", "32 px recipe on larger images", "--config {demo_config}",
     "is 64x48 but the demo recipe's preprocessing does not resize to 32x32"),
    ("preprocess", "batch size 0", "--batch_size 0", "--batch_size must be at least 1"),
    ("quantize_onnx", "missing model", "--onnx_path {onnx}/absent.onnx", "ONNX model not found"),
    ("quantize_onnx", "not an ONNX model", "--onnx_path {a0_ckpt}", "cannot load"),
    ("quantize_onnx", "model of another num_classes", "--onnx_path {a0_5_onnx}",
     "the model has 5 outputs but num_classes is 3"),
    ("quantize_onnx", "recipe of another image size", "--image_size 64", "the model takes inputs of shape"),
    ("quantize_onnx", "no calibration images", "--calibration_images 0", "--calibration_images must be at least 1"),
    ("quantize_onnx", "output over its source", "--file_name {a0_onnx}", "would replace its fp32 source"),
    ("quantize_onnx", "output not .onnx", "--file_name {out}/int8.txt", "must end in .onnx"),
    ("quantize_onnx", "QAT checkpoint of another arch", "--qat true --pretrained {b0_ckpt}",
     "does not fit RepVGG-A0-cifar with 3 classes"),
    ("quantize_onnx", "QAT checkpoint of another num_classes", "--qat true --pretrained {a0_5_ckpt}",
     "linear.bias (5,) != (3,)"),
    ("postprocess", "missing result folder", "--result_path {out}/absent", "does not exist or is not a folder"),
    ("postprocess", "missing label file", "--label_path {out}/absent.json", "label file not found"),
    ("postprocess", "label file not JSON", "--label_path {a0_ckpt}", "cannot read label file"),
    ("postprocess", "label file of another format", "--label_path {other_format}", "wrong or missing 'format'"),
    ("postprocess", "a result file missing", "--result_path {results_missing}", "1 of 2 result files missing"),
    ("postprocess", "results of another num_classes", "--num_classes 5", "must hold 1 x 5 float32 logits"),
    ("postprocess", "model with fewer outputs than labels", "--result_path {results_2}",
     "the labels go up to 2 but the model has 2 outputs"),
    ("postprocess", "num_classes 0", "--num_classes 0", "--num_classes must be at least 1"),
    ("import_weights", "missing weights file", "--pretrained {weights}/absent.npz", "weights file not found"),
    ("import_weights", "damaged .npz", "--pretrained {garbage_npz}", "cannot read"),
    ("import_weights", "a .npy under an .npz name", "--pretrained {single_npz}", "a single .npy array"),
    ("import_weights", "weights of another arch", "--arch RepVGG-B0-cifar", "weights do not fit the network"),
    ("import_weights", "weights of another num_classes", "--num_classes 5", "mis-shaped key(s): linear.bias"),
    ("import_weights", "num_classes below 1", "--num_classes -1", "--num_classes must be at least 1"),
    ("import_weights", "unknown arch", "--arch RepVGG-Z9", "unknown arch 'RepVGG-Z9'"),
    ("import_weights", "output not .ckpt", "--file_name {out}/imported.bin", "must end in .ckpt"),
)


def matrix() -> list:
    cases = []
    for entry, (base, data_flag, one_batch) in BASE.items():
        if data_flag:
            for label, folder, message in DATA_CASES:
                message = DATA_MESSAGES.get((entry, folder), message)
                # A run that starts records its config.yaml in train_url (trainer.py) before it reads an image.
                own_run = f"--train_url {{out}}/runs/{label.replace(' ', '_')}" if entry == "train" else ""
                cases.append((entry, label, f"{base} {data_flag} {folder} {one_batch} {own_run}", message))
        if "--config" in base:
            for label, config, message in CONFIG_CASES:
                cases.append((entry, label, f"{base} --config {config}", message))
        cases.append((entry, "output below a file", f"{base} {BLOCKED_OUTPUT[entry]}", "is a file, not a folder"))
    for entry, label, extra, message in SPECIFIC_CASES:
        # {run} holds an earlier run, which a new run refuses before anything else: the other cases get a fresh one.
        own_run = f"--train_url {{out}}/runs/{label.replace(' ', '_')}" if entry == "train" and "{run}" not in extra \
            and "--resume" not in extra else ""
        cases.append((entry, label, f"{BASE[entry][0]} {extra} {own_run}", message))
    return [pytest.param(entry, args, message, id=f"{entry}: {label}") for entry, label, args, message in cases]


@pytest.mark.parametrize(("entry", "args", "message"), matrix())
def test_bad_input_stops_with_one_error_line_and_touches_nothing(world, entry, args, message):
    before = snapshot(world.root)
    code, stderr = run_in_process(entry, world.args(args))
    assert_one_clear_error(code, stderr, message)
    assert_untouched(world.root, before)


def test_air_export_on_cpu_writes_no_file(world):
    run_in_process("export", world.args(f"{BASE['export'][0]} --file_format AIR"))
    assert not list(Path(world.paths["out"]).glob("model.air*"))


# ----- real processes: a full disk, a read-only folder, a broken image, the launch scripts ----------------------


def file_size_limit(limit: int):
    """A preexec_fn under which files cannot grow past ``limit`` bytes: writes fail with EFBIG, as on a full disk."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # otherwise the kernel kills the process instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def as_a_user() -> None:
    """preexec_fn: even as root, obey file permissions (drop the capabilities that bypass them), as a user would."""
    if os.geteuid() != 0:
        return
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if PRCTL(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_process(command: list[str], cwd: Path, preexec=None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, preexec_fn=preexec,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.fixture
def outputs(tmp_path) -> Path:
    """A fresh output folder holding what earlier runs wrote there (a best checkpoint without epoch checkpoints,
    so that a new run may start in run/: a folder with an epoch checkpoint is refused before any write)."""
    folder = tmp_path / "outputs"
    (folder / "run").mkdir(parents=True)
    (folder / "bins" / "00_data").mkdir(parents=True)
    for name in (f"run/{ARCH}-best.ckpt", "model.onnx", "model.mindir", "bins/labels.json",
                 "bins/00_data/000000.bin", "a0.int8.onnx"):
        (folder / name).write_bytes(b"previous")
    return folder


PROCESS_CASES = [
    pytest.param("train.py --config {imagenet32} --train_url {outputs}/run", file_size_limit(512),
                 "cannot write config to", id="train.py: full disk"),
    pytest.param("train.py --config {imagenet32} --train_url {outputs}/run", as_a_user,
                 "cannot write into", id="train.py: read-only train_url"),
    pytest.param("export.py --config {imagenet32} --pretrained {a0_ckpt} --file_format ONNX --file_name "
                 "{outputs}/model", file_size_limit(200_000), "File too large", id="export.py: full disk"),
    pytest.param("export.py --config {imagenet32} --pretrained {a0_ckpt} --file_format MINDIR --file_name "
                 "{outputs}/model", as_a_user, "Permission denied", id="export.py: read-only folder"),
    pytest.param("preprocess.py --config {imagenet32} --dataset_path {good} --output_path {outputs}/bins",
                 file_size_limit(4096), "cannot write the preprocessed files", id="preprocess.py: full disk"),
    pytest.param("-m src.tools.quantize_onnx --config {imagenet32} --onnx_path {a0_onnx} --file_name "
                 "{outputs}/a0.int8.onnx --calibration_images 4", file_size_limit(200_000), "File too large",
                 id="quantize_onnx: full disk"),
    pytest.param("eval.py --config {imagenet32} --pretrained {a0_ckpt} --data_url {truncated} --batch_size 7 "
                 "--result_json {outputs}/m.json", None, "unreadable image", id="eval.py: truncated JPEG"),
]


@pytest.mark.parametrize(("command", "preexec", "message"), PROCESS_CASES)
def test_a_real_process_fails_cleanly(world, outputs, command, preexec, message):
    before = snapshot(outputs.parent), snapshot(world.root)
    read_only = (outputs, outputs / "run") if preexec is as_a_user else ()
    args = command.format(**world.paths, outputs=outputs).split()
    try:
        for folder in read_only:
            folder.chmod(0o555)
        result = run_process([sys.executable, *(args if args[0] == "-m" else [str(REPO / args[0]), *args[1:]])],
                             cwd=outputs.parent, preexec=preexec)
        assert all(folder.stat().st_mode & 0o777 == 0o555 for folder in read_only), "a folder's mode was changed"
    finally:
        for folder in read_only:
            folder.chmod(0o755)
    assert_one_clear_error(result.returncode, result.stderr, message)
    assert_untouched(outputs.parent, before[0])
    assert_untouched(world.root, before[1])


def test_standalone_script_passes_on_a_user_error(world, tmp_path):
    result = run_process(["bash", str(REPO / "scripts" / "run_standalone_train_cpu.sh"), world.paths["typo"]],
                         cwd=tmp_path, env={"PYTHON": sys.executable})
    assert result.returncode == 2
    assert "did you mean 'batch_size'" in result.stdout
    assert "error: train.py failed, see train_standalone/log.txt" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_msrun_script_passes_on_a_user_error_without_msruns_traceback(world, tmp_path):
    result = run_process(["bash", str(REPO / "scripts" / "run_distribute_train_cpu.sh"), "2", world.paths["typo"]],
                         cwd=tmp_path, env={"PYTHON": sys.executable})
    assert result.returncode == 2
    assert "did you mean 'batch_size'" in result.stdout  # rank 0's output, shown by msrun
    assert "error: distributed training failed" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "train_parallel" / "msrun.log").is_file()


def test_lite_setup_script_refuses_a_python_that_is_not_3_7(tmp_path):
    result = run_process(["bash", str(REPO / "scripts" / "setup_mindspore_lite.sh")], cwd=tmp_path,
                         env={"PYTHON37": sys.executable, "MSLITE_VENV": str(tmp_path / "lite")})
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: PYTHON37={sys.executable} is not a working Python 3.7"
    assert not (tmp_path / "lite").exists()
