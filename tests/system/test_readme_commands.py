"""Every command in the shell blocks of README.md and README_CN.md, as a reader runs them: in README order, in one
scratch copy of the repository, with ``python`` the project's interpreter.

Each command is listed in ``COMMANDS`` with what the test does with it, and a command that is not listed fails
the test, as does a listed one the READMEs no longer hold, or a command one README has and the other lacks:
- ``Run``: runs on the CPU as written and must succeed and write or print what the README says. Words that stand
  for the reader's own files (``CKPT``, ``ONNX_PATH``...) are filled in from ``PLACEHOLDERS``; optional parts in
  ``[...]`` are left out unless the entry picks one. ``extra`` flags are appended only where the full command
  cannot run here, and ``why`` says which: a budget override (fewer epochs) or the class count of a stand-in data
  set. Those commands then run as written plus these flags (train.py reads any key from the command line).
- ``StartAndStop``: too long to run whole and nothing shortens it without changing what it reads (the CIFAR-100
  binary files must hold all 50,000 images): started as written on a stand-in of the right size, then stopped
  with Ctrl+C once training has begun; it must stop cleanly and leave a resumable checkpoint.
- ``DryRun``: would run the whole test suite: ``make -n`` shows what it would run.
- ``NeedsDevice``: needs an Ascend card or a GPU. The README must say so on the command's line (a ``# needs ...``
  comment naming the device), and the test checks that it does.

The inputs a reader would bring are made by ``workspace``: small stand-ins of the demo set, an image folder of 5
classes (``my_images``), an ImageNet-layout folder of 3 classes (``dataset``), photos, and PyTorch/timm weights
written by an independent PyTorch RepVGG (tests/torch_reference.py). The commands that follow ``make demo`` use
what it wrote, as in the README."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_image_folder
from PIL import Image
from safetensors.numpy import save_file
from torch_reference import TorchRepOptVGG, TorchRepVGG, numpy_state, randomise_torch_scales

from src.data import write_demo_imagefolder
from src.models import get_variant
from src.tools import import_weights

REPO = Path(__file__).resolve().parents[2]
READMES = ("README.md", "README_CN.md")
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
TIMEOUT = 900  # the first run_infer_310.sh on a machine installs MindSpore Lite (~170 MB)

# README words that stand for the reader's own files or values, and what the test gives in their place.
PLACEHOLDERS = {
    "CKPT": "output/RepVGG-A0/RepVGG-A0-best.ckpt",  # written by the ImageNet-recipe training command
    "ONNX_PATH": "RepVGG-A0.onnx",  # written by the export command that takes CKPT
    "DATASET_PATH": "./dataset",
    "DEVICE_TARGET": "CPU",
    "DEVICE_ID": "0",
    "model.onnx": "output/demo/RepVGG-A0-cifar.onnx",  # the demo's export (make demo)
    "M.mindir": "lite_model.mindir",  # run_infer_310.sh on the CPU converts the ONNX file to it
}


@dataclass(frozen=True)
class Run:
    produces: tuple[str, ...] = ()  # files that must exist afterwards (relative to the working folder)
    prints: tuple[str, ...] = ()  # text the output must hold
    extra: tuple[str, ...] = ()  # flags appended to the command
    why: str = ""  # why ``extra`` is there
    options: dict[str, str] = field(default_factory=dict)  # optional "[...]" part -> what to put in its place


@dataclass(frozen=True)
class StartAndStop:
    started: str  # the file a run writes once it has checked everything and begins training
    produces: str  # the resumable checkpoint
    why: str


@dataclass(frozen=True)
class DryRun:
    prints: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class NeedsDevice:
    device: str  # "Ascend" or "GPU": the word the README's comment must name


DEMO = "output/demo/RepVGG-A0-cifar"
SHORTER = "a budget override: fewer epochs, on the small stand-in data"
IMAGENET_STAND_IN = "the stand-in ImageNet folder has 3 classes, not 1000"
COMMANDS = {
    "make demo": Run(produces=(f"{DEMO}-best.ckpt", f"{DEMO}-deploy.ckpt", f"{DEMO}.onnx", f"{DEMO}.int8.onnx",
                               f"{DEMO}-qat.int8.onnx"),
                     prints=("ONNX Runtime int8 PTQ", "ONNX Runtime int8 QAT"),
                     extra=('DEMO_ARGS="--epochs 1"', "-o", ".venv/.installed-runtime"),
                     why=f"{SHORTER}; -o: the shared virtual environment is in place, never reinstalled by a test"),
    "make test": DryRun(prints=("ruff check .", "pytest -q tests", "setup_mindspore_lite.sh"),
                        why="it runs this whole test suite (about 20 minutes), this file included"),
    "python -m src.tools.check_data --config src/configs/folder_small.yaml --data_url ./my_images --num_classes 5":
        Run(prints=("train 80, val 20 readable images",)),
    "python train.py --config src/configs/folder_small.yaml --data_url ./my_images --num_classes 5":
        Run(produces=("output/folder_small/RepVGG-A0-cifar-best.ckpt", "output/folder_small/classes.txt"),
            extra=("--epochs", "2"), why=SHORTER),
    "python train.py --config src/configs/finetune.yaml --data_url ./my_images --num_classes 5 --pretrained a0.ckpt":
        Run(produces=("output/finetune/RepVGG-A0-best.ckpt",), extra=("--epochs", "1"), why=SHORTER),
    "python predict.py data/demo/val/checkerboard/00000.png --pretrained output/demo/RepVGG-A0-cifar-best.ckpt":
        Run(prints=("data/demo/val/checkerboard/00000.png: ",)),
    "python predict.py data/demo/val --model output/demo/RepVGG-A0-cifar.onnx --top_k 3 --output_path results.csv":
        Run(produces=("results.csv",)),
    "python predict.py 'photos/*.jpg' --pretrained repvgg_a0.ckpt --config src/configs/RepVGG-A0.yaml "
    "--output_path results.json": Run(produces=("results.json",), prints=("photos/0.jpg: ",)),
    "python train.py --device_id 0 --device_target CPU --config ./src/configs/RepVGG-A0.yaml":
        Run(produces=("output/RepVGG-A0/RepVGG-A0-best.ckpt",),
            extra=("--num_classes", "3", "--epochs", "1", "--warmup_length", "1", "--batch_size", "8"),
            why=f"{IMAGENET_STAND_IN}; a budget override: 1 epoch of batch 8 instead of 120 of 512"),
    "python train.py --config src/configs/RepVGG-A0-cifar100.yaml --data_url ./dataset/cifar-100-binary "
    "--device_target CPU --epochs 10 --warmup_length 1":
        StartAndStop(started="output/RepVGG-A0-cifar100/config.yaml",
                     produces="output/RepVGG-A0-cifar100/RepVGG-A0-cifar-interrupted.ckpt",
                     why="10 epochs of the 50,000 CIFAR-100 images take hours on a CPU"),
    "python train.py --config src/configs/demo.yaml --resume":
        Run(produces=(f"{DEMO}-epoch0002.ckpt",), prints=("resumed from",), extra=("--epochs", "2"),
            why="a budget override: make demo trained 1 epoch here, the resumed run adds one"),
    "python train.py --config src/configs/demo.yaml --arch RepVGG-B0-cifar --train_url ./output/demo_teacher":
        Run(produces=("output/demo_teacher/RepVGG-B0-cifar-best.ckpt",), extra=("--epochs", "1"), why=SHORTER),
    "python train.py --config src/configs/demo_kd.yaml":
        Run(produces=("output/demo_kd/RepVGG-A0-cifar-best.ckpt",), extra=("--epochs", "1"), why=SHORTER),
    "python train.py --config src/configs/demo_repopt_search.yaml":
        Run(produces=("output/demo_repopt_search/RepOptVGG-A0-cifar-scales.npz",), extra=("--epochs", "1"),
            why=SHORTER),
    "python train.py --config src/configs/demo_repopt.yaml":
        Run(produces=("output/demo_repopt/RepOptVGG-A0-cifar-best.ckpt",), extra=("--epochs", "1"), why=SHORTER),
    "python eval.py --config src/configs/demo_repopt.yaml --pretrained "
    "output/demo_repopt/RepOptVGG-A0-cifar-best.ckpt": Run(prints=("top-1",)),
    "python export.py --config src/configs/demo_repopt.yaml --pretrained "
    "output/demo_repopt/RepOptVGG-A0-cifar-best.ckpt --file_format ONNX": Run(produces=("RepOptVGG-A0-cifar.onnx",)),
    "python eval.py --device_target CPU --config ./src/configs/RepVGG-A0.yaml --pretrained "
    "./output/RepVGG-A0/RepVGG-A0-best.ckpt": Run(prints=("top-1",), extra=("--num_classes", "3"),
                                                  why=IMAGENET_STAND_IN),
    "python export.py --config ./src/configs/RepVGG-A0.yaml --pretrained CKPT --file_format ONNX [--file_name NAME] "
    "[--batch_size 1] [--no_convert] [--dynamic_batch]":
        Run(produces=("RepVGG-A0.onnx",), extra=("--num_classes", "3"), why=IMAGENET_STAND_IN),
    "python infer_onnx.py --onnx_path RepVGG-A0.onnx --dataset_path ./dataset --device_target CPU [--config CFG]":
        Run(prints=("top-1",)),
    "bash scripts/run_infer_onnx.sh ONNX_PATH DATASET_PATH DEVICE_TARGET DEVICE_ID":
        Run(produces=("infer_onnx/log.txt",), prints=("top-1",)),
    "python -m src.tools.quantize_onnx --config src/configs/demo.yaml --onnx_path output/demo/RepVGG-A0-cifar.onnx "
    "[--calibration_method minmax|entropy|percentile] [--calibration_images 256] [--per_tensor]":
        Run(produces=(f"{DEMO}.int8.onnx",), prints=("int8",)),
    "python train.py --config src/configs/demo_qat.yaml": Run(produces=("output/demo_qat/RepVGG-A0-cifar-best.ckpt",)),
    "python -m src.tools.quantize_onnx --config src/configs/demo_qat.yaml --pretrained "
    "output/demo_qat/RepVGG-A0-cifar-best.ckpt --onnx_path output/demo_qat/qat.onnx":
        Run(produces=("output/demo_qat/qat.onnx",), prints=("int8",)),
    "bash scripts/run_infer_310.sh MINDIR_PATH DATASET_NAME DATASET_PATH [DEVICE_ID]": NeedsDevice("Ascend"),
    "DEVICE_TARGET=CPU bash scripts/run_infer_310.sh model.onnx demo ./data/demo 0":
        Run(produces=("acc.log", "lite_model.mindir", "preprocess_Result/labels.json")),
    "ascend310_infer/out/main --mindir_path=M.mindir --input_path=preprocess_Result/00_data "
    "--result_path=result_Files [--device_target=Ascend|CPU] [--device_id=0] [--cpu_threads=2]":
        Run(produces=("result_Files/000000_0.bin",), prints=("mean latency",),
            options={"--device_target=Ascend|CPU": "--device_target=CPU"}),
    "python -m benchmarks.report --archs RepVGG-A0 --batches 1 8 32 --out benchmarks/results":
        Run(produces=("benchmarks/results/report.md",),
            extra=("--batches", "1", "--image_size", "32", "--warmup", "0", "--repeats", "1", "--gemm_size", "128",
                   "--no_torch", "--no_harness", "--skip_training", "--skip_int8"),
            why="a budget override: one small batch, one repeat, no training or int8 rows (10 minutes in full)"),
    "python -m src.tools.import_weights --arch RepVGG-A0 --pretrained RepVGG-A0-train.pth --file_name "
    "repvgg_a0.ckpt": Run(produces=("repvgg_a0.ckpt",)),
    "python -m src.tools.import_weights --arch repvgg_b1g4 --pretrained model.safetensors --file_name b1g4.ckpt":
        Run(produces=("b1g4.ckpt",)),
    "python -m src.tools.import_weights --arch RepOptVGG-L1 --pretrained RepOpt-VGG-L1-acc79.82.pth --file_name "
    "l1.ckpt": Run(produces=("l1.ckpt",)),
    "python -m src.tools.import_weights --arch RepOptVGG-L1 --pretrained RepOpt-VGG-L1-scales.pth --file_name "
    "l1-scales.npz": Run(produces=("l1-scales.npz",)),
}


@dataclass(frozen=True)
class ReadmeCommand:
    text: str  # the command without its comment, whitespace collapsed
    comment: str  # the comment on its line(s), and on the comment lines right above it


def readme_commands(path: Path) -> list[ReadmeCommand]:
    """The commands of the file's shell blocks: a line continued with a backslash is one command."""
    commands = []
    for block in SHELL_BLOCK.findall(path.read_text(encoding="utf-8")):
        above, pending = [], ""
        for line in block.splitlines():
            pending = f"{pending} {line.strip()}".strip()
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            if pending.startswith("#"):
                above.append(pending)
            elif pending:
                text, _, comment = pending.partition(" #")
                commands.append(ReadmeCommand(" ".join(text.split()), " ".join([*above, comment])))
                above = []
            pending = ""
    return commands


def command_line(text: str, plan: Run) -> str:
    """The README command as the test runs it: placeholders filled in, optional parts resolved, ``extra`` added."""
    for optional in re.findall(r"\[[^\]]*\]", text):
        text = text.replace(optional, plan.options.get(optional[1:-1], ""))
    for word, value in PLACEHOLDERS.items():
        # A whole word only, and not the name of an environment variable being set (DEVICE_TARGET=CPU).
        text = re.sub(rf"(?<![\w./-]){re.escape(word)}(?![\w./=-])", value, text)
    return " ".join([*text.split(), *plan.extra])


def readme_order() -> list[str]:
    seen = dict.fromkeys(command.text for command in readme_commands(REPO / READMES[0]))
    return list(seen)


def test_every_readme_command_is_run_or_marked():
    for readme in READMES:
        unlisted = {command.text for command in readme_commands(REPO / readme)} - set(COMMANDS)
        assert not unlisted, f"{readme}: commands neither run nor marked by this test: {sorted(unlisted)}"


def test_both_readmes_hold_the_same_commands_and_the_list_holds_no_stale_ones():
    english, chinese = ({c.text for c in readme_commands(REPO / readme)} for readme in READMES)
    assert english == chinese, {"only in README.md": english - chinese, "only in README_CN.md": chinese - english}
    assert set(COMMANDS) <= english, f"listed here but in no README: {sorted(set(COMMANDS) - english)}"


def test_commands_that_need_a_device_say_so_on_their_line():
    needing = {text: plan.device for text, plan in COMMANDS.items() if isinstance(plan, NeedsDevice)}
    assert needing
    for readme in READMES:
        for command in readme_commands(REPO / readme):
            if command.text in needing:
                assert re.search(rf"needs .*\b{needing[command.text]}\b", command.comment), (readme, command)


def test_extra_flags_say_why():
    for text, plan in COMMANDS.items():
        if isinstance(plan, Run) and plan.extra:
            assert plan.why, text


def torch_repvgg(arch: str, naming: str) -> TorchRepVGG:
    torch.manual_seed(0)
    return TorchRepVGG(get_variant(arch), 1000, naming=naming).eval()


def write_cifar100_stand_in(folder: Path) -> None:
    """Random images with valid labels, in the binary layout and of the exact size MindSpore reads."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, records in (("train.bin", 50000), ("test.bin", 10000)):
        data = rng.integers(0, 256, size=(records, 3074), dtype=np.uint8)
        data[:, 0] = rng.integers(0, 20, records)
        data[:, 1] = rng.integers(0, 100, records)
        data.tofile(folder / name)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A scratch copy of the repository (links to its files; ``output/``, ``data/`` and the benchmark results are
    its own) with the inputs the README's commands expect."""
    root = tmp_path_factory.mktemp("readme")
    for entry in REPO.iterdir():
        if entry.name not in {".git", "output", "data", "benchmarks", "tests"} and not entry.name.startswith("."):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "benchmarks").mkdir()
    for entry in (REPO / "benchmarks").iterdir():
        if entry.name != "results":
            (root / "benchmarks" / entry.name).symlink_to(entry)

    # The demo set, smaller: 24 training and 8 validation images per class instead of 250 and 50.
    write_demo_imagefolder(str(root / "data" / "demo"), num_train_per_class=24, num_val_per_class=8)
    write_image_folder(root / "my_images", train_per_class=16, classes=("apple", "bird", "car", "dog", "tree"))
    write_image_folder(root / "dataset")
    write_cifar100_stand_in(root / "dataset" / "cifar-100-binary")
    (root / "photos").mkdir()
    for index in range(3):
        pixels = np.random.default_rng(index).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "photos" / f"{index}.jpg")

    torch.save(torch_repvgg("RepVGG-A0", "official").state_dict(), root / "RepVGG-A0-train.pth")
    save_file(numpy_state(torch_repvgg("RepVGG-B1g4", "timm")), str(root / "model.safetensors"))
    torch.manual_seed(0)
    plain = TorchRepOptVGG(get_variant("RepOptVGG-L1"), 1000)
    search = TorchRepOptVGG(get_variant("RepOptVGG-L1"), 100, search=True)
    randomise_torch_scales(search)
    torch.save(plain.state_dict(), root / "RepOpt-VGG-L1-acc79.82.pth")
    torch.save({k: v for k, v in search.state_dict().items() if ".scale_" in k}, root / "RepOpt-VGG-L1-scales.pth")
    # The weights a reader fine-tunes or classifies with: imported as the README's import command does.
    import_weights.main(["--arch", "RepVGG-A0", "--pretrained", str(root / "RepVGG-A0-train.pth"),
                         "--file_name", str(root / "a0.ckpt")])
    shutil.copy(root / "a0.ckpt", root / "repvgg_a0.ckpt")
    return root


def environment(root: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHON": sys.executable, "MSLITE_VENV": str(REPO / ".venv-lite")}


@pytest.mark.parametrize("text", [text for text in readme_order() if not isinstance(COMMANDS.get(text), NeedsDevice)])
def test_readme_command_runs(workspace, text):
    plan = COMMANDS[text]
    if isinstance(plan, DryRun):
        result = subprocess.run(["bash", "-c", text.replace("make ", "make -n ", 1)], cwd=workspace,
                                env=environment(workspace), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        for expected in plan.prints:
            assert expected in result.stdout, result.stdout
    elif isinstance(plan, StartAndStop):
        start_and_stop(workspace, text, plan)
    else:
        line = command_line(text, plan)
        result = subprocess.run(["bash", "-c", line], cwd=workspace, env=environment(workspace),
                                capture_output=True, text=True, timeout=TIMEOUT)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Traceback" not in output, f"{line}\n{output[-4000:]}"
        for path in plan.produces:
            assert (workspace / path).exists(), f"{line} did not write {path}\n{output[-2000:]}"
        for expected in plan.prints:
            assert expected in output, f"{line}\n{output[-3000:]}"


def start_and_stop(workspace: Path, text: str, plan: StartAndStop) -> None:
    log = workspace / "start_and_stop.log"
    with log.open("w") as output:
        process = subprocess.Popen(["bash", "-c", f"exec {text}"], cwd=workspace, env=environment(workspace),
                                   stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + TIMEOUT
            while not (workspace / plan.started).exists() and process.poll() is None:
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.5)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
    printed = log.read_text()
    assert process.returncode == 128 + signal.SIGINT, printed[-4000:]
    assert "stopped by SIGINT" in printed and "Traceback" not in printed, printed[-4000:]
    assert (workspace / plan.produces).is_file(), printed[-2000:]
