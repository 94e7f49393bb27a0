"""The C++ inference harness (ascend310_infer/) and scripts/run_infer_310.sh, run for real on CPU through
MindSpore Lite 2.0: set up Lite, build the harness, export a deploy net to ONNX, convert it with Lite's
converter, preprocess a demo val folder, infer, postprocess, and compare with onnxruntime on the same inputs.
The Ascend branch cannot run here; it is only checked to fail with a clear message."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from src.data import write_demo_imagefolder
from src.deploy.binfiles import INPUT_FOLDER, LABEL_FILE, read_float32, read_label_file, result_file
from src.deploy.lite import convert_onnx_to_mindir
from src.models import create_model, repvgg_model_convert

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "setup_mindspore_lite.sh"
RUN_SCRIPT = REPO / "scripts" / "run_infer_310.sh"
BUILD_SCRIPT = REPO / "ascend310_infer" / "build.sh"
HARNESS = REPO / "ascend310_infer" / "out" / "main"
DEMO_CONFIG = REPO / "src" / "configs" / "demo.yaml"
ARCH = "RepVGG-A0-cifar"
NUM_CLASSES = 8
IMAGE_SIZE = 32
BATCHED = 5  # 24 demo images -> 4 full files and one with 4 images and a padding row
TIMEOUT = 900  # the first Lite setup downloads ~170 MB


@dataclass(frozen=True)
class Exported:
    onnx: Path
    mindir: Path  # converted by MindSpore Lite
    batch_size: int


def run(command: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def lite_package() -> Path:
    result = run(["bash", SETUP_SCRIPT])
    assert result.returncode == 0, result.stderr
    package = Path(result.stdout.strip().splitlines()[-1])
    assert (package / "include" / "api" / "model.h").is_file()
    return package


@pytest.fixture(scope="module")
def harness(lite_package) -> Path:
    result = run(["bash", BUILD_SCRIPT], env={"MINDSPORE_PATH": str(lite_package)})
    assert result.returncode == 0, result.stdout + result.stderr
    return HARNESS


@pytest.fixture(scope="module")
def deploy_net() -> ms.nn.Cell:
    ms.set_seed(0)
    net = repvgg_model_convert(create_model(ARCH, num_classes=NUM_CLASSES))
    net.set_train(False)
    return net


def export(net: ms.nn.Cell, folder: Path, batch_size: int) -> Exported:
    """ONNX export plus its Lite conversion (callers depend on the lite_package fixture for the converter)."""
    stem = folder / f"deploy_b{batch_size}"
    ms.export(net, ms.Tensor(np.zeros((batch_size, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)), file_name=str(stem),
              file_format="ONNX")
    mindir = convert_onnx_to_mindir(f"{stem}.onnx", f"{stem}_lite.mindir")
    return Exported(Path(f"{stem}.onnx"), mindir, batch_size)


@pytest.fixture(scope="module")
def model(tmp_path_factory, deploy_net, lite_package) -> Exported:
    return export(deploy_net, tmp_path_factory.mktemp("model"), 1)


@pytest.fixture(scope="module")
def batched_model(tmp_path_factory, deploy_net, lite_package) -> Exported:
    return export(deploy_net, tmp_path_factory.mktemp("batched_model"), BATCHED)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_imagefolder(str(root), 1, 3)
    return root


def preprocess(demo_root: Path, output: Path, batch_size: int) -> Path:
    result = run([sys.executable, REPO / "preprocess.py", "--config", DEMO_CONFIG, "--dataset_path", demo_root,
                  "--output_path", output, "--batch_size", str(batch_size)])
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(scope="module")
def bins(tmp_path_factory, demo_root) -> Path:
    return preprocess(demo_root, tmp_path_factory.mktemp("bins"), 1)


def infer(harness: Path, model: Exported, bins: Path, results: Path, *extra: str) -> subprocess.CompletedProcess:
    return run([harness, f"--mindir_path={model.mindir}", f"--input_path={bins / INPUT_FOLDER}",
                f"--result_path={results}", "--device_target=CPU", "--cpu_threads=2", *extra])


@pytest.fixture(scope="module")
def results(tmp_path_factory, harness, model, bins) -> Path:
    folder = tmp_path_factory.mktemp("results")
    completed = infer(harness, model, bins, folder)
    assert completed.returncode == 0, completed.stderr
    assert "mean latency:" in completed.stdout
    return folder


def onnxruntime_logits(model: Exported, bins: Path) -> dict[str, np.ndarray]:
    """Stem -> ONNX Runtime logits for each input .bin file; the graph's input name is read, not assumed."""
    session = ort.InferenceSession(str(model.onnx), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shape = (model.batch_size, 3, IMAGE_SIZE, IMAGE_SIZE)
    return {path.stem: session.run(None, {name: read_float32(path, shape)})[0]
            for path in sorted((bins / INPUT_FOLDER).glob("*.bin"))}


def onnxruntime_top1(model: Exported, bins: Path) -> float:
    label_file = read_label_file(bins / LABEL_FILE)
    logits = onnxruntime_logits(model, bins)
    hits = [int(np.argmax(logits[entry.stem][row]) == label) for entry in label_file.entries
            for row, label in enumerate(entry.labels)]
    return 100.0 * sum(hits) / len(hits)


def postprocess(results: Path, bins: Path) -> dict:
    completed = run([sys.executable, REPO / "postprocess.py", "--result_path", results,
                     "--label_path", bins / LABEL_FILE])
    assert completed.returncode == 0, completed.stderr
    assert "top-1 accuracy: " in completed.stdout and "top-5 accuracy: " in completed.stdout
    return json.loads((results / "accuracy.json").read_text())


# ----- the CPU run, against onnxruntime -----------------------------------------------------------


def test_harness_logits_equal_onnxruntime_on_the_same_inputs(model, bins, results):
    expected = onnxruntime_logits(model, bins)
    assert len(expected) == 24
    for stem, logits in expected.items():
        written = read_float32(result_file(results, stem), (1, NUM_CLASSES))
        np.testing.assert_allclose(written, logits, rtol=1e-4, atol=1e-4, err_msg=stem)


def test_postprocess_top1_equals_onnxruntime_top1(model, bins, results):
    record = postprocess(results, bins)
    assert record["images"] == 24
    assert record["top1"] == pytest.approx(onnxruntime_top1(model, bins))


@pytest.fixture(scope="module")
def batched_bins(tmp_path_factory, demo_root) -> Path:
    return preprocess(demo_root, tmp_path_factory.mktemp("batched_bins"), BATCHED)


@pytest.fixture(scope="module")
def dynamic_model(tmp_path_factory, model) -> Exported:
    """The batch-1 ONNX with its batch dimension made dynamic, as export.py --dynamic_batch writes it."""
    folder = tmp_path_factory.mktemp("dynamic_model")
    graph = onnx.load(str(model.onnx))
    for value in (graph.graph.input[0], graph.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.graph.value_info[:]
    onnx.save(graph, str(folder / "dynamic.onnx"))
    return Exported(folder / "dynamic.onnx", convert_onnx_to_mindir(folder / "dynamic.onnx", folder / "dynamic.mindir"),
                    BATCHED)


def check_batched_run(harness: Path, model: Exported, batched_bins: Path, results: Path, expected_top1: float):
    completed = infer(harness, model, batched_bins, results)
    assert completed.returncode == 0, completed.stderr
    assert f"({BATCHED}, 3, {IMAGE_SIZE}, {IMAGE_SIZE})" in completed.stdout
    assert f"(batch {BATCHED})" in completed.stdout
    for stem, logits in onnxruntime_logits(model, batched_bins).items():
        written = read_float32(result_file(results, stem), (BATCHED, NUM_CLASSES))
        np.testing.assert_allclose(written, logits, rtol=1e-4, atol=1e-4, err_msg=stem)
    record = postprocess(results, batched_bins)
    assert record["images"] == 24
    assert record["top1"] == pytest.approx(expected_top1)


def test_batched_model_and_padded_last_file_give_the_same_accuracy(tmp_path, harness, model, bins, batched_model,
                                                                   batched_bins):
    check_batched_run(harness, batched_model, batched_bins, tmp_path, onnxruntime_top1(model, bins))


def test_dynamic_batch_model_takes_the_batch_of_the_files(tmp_path, harness, model, bins, dynamic_model,
                                                          batched_bins):
    check_batched_run(harness, dynamic_model, batched_bins, tmp_path, onnxruntime_top1(model, bins))


def test_run_infer_310_sh_runs_the_whole_chain_on_cpu(tmp_path, lite_package, harness, model, bins, demo_root):
    completed = run(["bash", RUN_SCRIPT, model.onnx, "demo", demo_root / "val", "0"], cwd=tmp_path,
                    env={"DEVICE_TARGET": "CPU", "MINDSPORE_PATH": str(lite_package)})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    acc_log = (tmp_path / "acc.log").read_text()
    top1 = float(acc_log.split("top-1 accuracy: ")[1].split()[0])
    assert top1 == pytest.approx(onnxruntime_top1(model, bins), abs=1e-3)
    assert "mean latency:" in acc_log
    for log in ("build.log", "preprocess.log", "infer.log"):
        assert (tmp_path / log).is_file()
    assert len(list((tmp_path / "result_Files").glob("*_0.bin"))) == 24


# ----- harness errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("arguments", "message"), [
    ([], "missing --mindir_path"),
    (["--mindir_path=m", "--input_path=i", "--result_path=r", "--verbose=1"], "unknown flag --verbose"),
    (["--mindir_path=m", "--input_path=i", "--result_path=r", "--device_target=GPU"],
     "--device_target must be Ascend or CPU"),
    (["--mindir_path=m", "--input_path=i", "--result_path=r", "--device_id=x"], "--device_id must be an integer"),
    (["--mindir_path=m", "--input_path=i", "--result_path=r", "--cpu_threads=0"], "--cpu_threads must be"),
    (["--mindir_path"], "needs a value"),
])
def test_harness_rejects_a_bad_command_line_with_usage(harness, arguments, message):
    completed = run([harness, *arguments])
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "usage:" in completed.stderr


def test_harness_names_a_missing_model_or_input_folder(tmp_path, harness, model, bins):
    missing_model = run([harness, f"--mindir_path={tmp_path / 'none.mindir'}",
                         f"--input_path={bins / INPUT_FOLDER}", f"--result_path={tmp_path / 'r'}"])
    assert missing_model.returncode == 1
    assert "none.mindir does not exist" in missing_model.stderr
    (tmp_path / "empty").mkdir()
    for folder, message in ((tmp_path / "absent", "does not exist"), (tmp_path / "empty", "no .bin files")):
        completed = run([harness, f"--mindir_path={model.mindir}", f"--input_path={folder}",
                         f"--result_path={tmp_path / 'r'}", "--device_target=CPU"])
        assert completed.returncode == 1
        assert message in completed.stderr


def test_harness_refuses_mis_sized_inputs_before_running_any(tmp_path, harness, model, bins):
    inputs = tmp_path / INPUT_FOLDER
    inputs.mkdir()
    for path in sorted((bins / INPUT_FOLDER).glob("*.bin"))[:3]:
        (inputs / path.name).write_bytes(path.read_bytes())
    (inputs / "000003.bin").write_bytes(b"\0" * 100)
    completed = run([harness, f"--mindir_path={model.mindir}", f"--input_path={inputs}",
                     f"--result_path={tmp_path / 'results'}", "--device_target=CPU"])
    assert completed.returncode == 1
    assert "000003.bin has 100 bytes but the model input takes 12288" in completed.stderr
    assert not list((tmp_path / "results").iterdir())


def test_harness_explains_that_lite_cannot_load_a_mindspore_2_mindir(tmp_path, harness, deploy_net, bins):
    ms.export(deploy_net, ms.Tensor(np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)),
              file_name=str(tmp_path / "ms2"), file_format="MINDIR")
    completed = run([harness, f"--mindir_path={tmp_path / 'ms2.mindir'}", f"--input_path={bins / INPUT_FOLDER}",
                     f"--result_path={tmp_path / 'results'}", "--device_target=CPU"])
    assert completed.returncode == 1
    assert "not one written by MindSpore 2.x" in completed.stderr


def test_harness_ascend_branch_fails_clearly_without_an_ascend_device(tmp_path, harness, model, bins):
    completed = run([harness, f"--mindir_path={model.mindir}", f"--input_path={bins / INPUT_FOLDER}",
                     f"--result_path={tmp_path / 'results'}", "--device_target=Ascend", "--device_id=3"])
    assert completed.returncode == 1
    assert "is the Ascend runtime installed and device 3 free?" in completed.stderr


# ----- run_infer_310.sh argument checks -----------------------------------------------------------


@pytest.fixture
def script_inputs(tmp_path) -> tuple[Path, Path]:
    model = tmp_path / "model.mindir"
    model.write_bytes(b"")
    (tmp_path / "data").mkdir()
    return model, tmp_path / "data"


@pytest.mark.parametrize(("arguments", "env", "message"), [
    (lambda m, d: [m, "demo"], {}, "expected 3 or 4 arguments, got 2"),
    (lambda m, d: [m, "demo", d, "0", "extra"], {}, "expected 3 or 4 arguments, got 5"),
    (lambda m, d: [m.with_name("absent.mindir"), "demo", d], {}, "is not a file"),
    (lambda m, d: [m, "demo", d / "absent"], {}, "is not a folder"),
    (lambda m, d: [m, "demo", d, "zero"], {}, "DEVICE_ID must be a non-negative integer, got 'zero'"),
    (lambda m, d: [m, "cifar10", d], {}, "unknown DATASET_NAME 'cifar10'"),
    (lambda m, d: [m, "demo", d], {"DEVICE_TARGET": "GPU"}, "DEVICE_TARGET must be Ascend or CPU"),
    (lambda m, d: [m, "demo", d], {"CPU_THREADS": "two"}, "CPU_THREADS must be a positive integer"),
    (lambda m, d: [m.rename(m.with_suffix(".onnx")), "demo", d], {}, "on Ascend, MINDIR_PATH is the MINDIR"),
])
def test_run_infer_310_sh_checks_its_arguments_before_any_work(tmp_path, script_inputs, arguments, env, message):
    work = tmp_path / "work"
    work.mkdir()
    completed = run(["bash", RUN_SCRIPT, *arguments(*script_inputs)], cwd=work, env=env)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "usage:" in completed.stderr
    assert not list(work.iterdir())
