"""RepOpt-VGG end to end: hyper-search -> scales file -> RepOptimizer training -> resume, eval.py, ONNX export; and
the clear errors of a missing, damaged or mismatched scales file."""

import json
import shutil
from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import randomise_batchnorm
from test_trainer import DEMO_CONFIG, run_entry, train_args

from src.checkpoint_files import save_checkpoint_atomic
from src.config import load_config
from src.data import write_demo_imagefolder
from src.deploy.export import run_export
from src.device import Placement
from src.engine.networks import build_training_network, searched_scales_path
from src.engine.optimizer import split_decay_groups
from src.engine.trainer import Trainer
from src.errors import UserError
from src.models.from_checkpoint import load_network
from src.models.repopt import RepOptSearchNet, RepOptVGG, create_repopt_model, extract_scales, merge_search_net
from src.models.repopt_scales import load_scales, read_scales, save_scales

CONFIGS = DEMO_CONFIG.parent
ARCH = "RepVGG-A0-cifar"
CLASSES = 8
SCALES_NAME = "RepOptVGG-A0-cifar-scales.npz"
BLOCKS = 22  # A0: stem + 2 + 4 + 14 + 1


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repopt-demo")
    write_demo_imagefolder(str(root), num_train_per_class=2, num_val_per_class=1)
    return root


def in_process_trainer(data: Path, out: Path, epochs: int, **overrides) -> Trainer:
    """The Trainer of ``train_args(data, out, epochs)`` plus ``overrides``, in this process (PyNative mode: for a
    step or two that is quicker than compiling the graph in a train.py process)."""
    return Trainer(load_config(DEMO_CONFIG, {
        "data_url": str(data), "train_url": str(out), "epochs": epochs, "batch_size": 16, "warmup_length": 1,
        "amp_level": "O0", "with_ema": True, "ema_decay": 0.9, **overrides}), Placement())


@pytest.fixture(scope="module")
def search_run(demo_data, tmp_path_factory) -> Path:
    """train_url of one epoch of hyper-search (EMA on)."""
    out = tmp_path_factory.mktemp("search")
    in_process_trainer(demo_data, out, 1, repopt_search=True).fit()
    return out


@pytest.fixture(scope="module")
def repopt_run(demo_data, search_run, tmp_path_factory) -> Path:
    """train_url of one epoch of RepOpt-VGG training with the searched scales, through train.py (graph mode)."""
    out = tmp_path_factory.mktemp("repopt")
    scales = search_run / SCALES_NAME
    result = run_entry("train.py", *train_args(demo_data, out, 1, "--optimizer", "repopt", "--repopt_scales",
                                               str(scales)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RepOptVGG-A0-cifar initialised from the scales" in result.stderr
    return out


def images(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)


def onnx_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"data": x})[0]


def exported(checkpoint: Path, file_name: Path) -> Path:
    cfg = load_config(DEMO_CONFIG, {"pretrained": str(checkpoint)}, check_paths=False)
    return run_export(cfg, "ONNX", str(file_name), batch_size=1, dynamic_batch=True)


def conv_kernels(path: Path) -> list[list[int]]:
    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    return [list(next(a for a in conv.attribute if a.name == "kernel_shape").ints) for conv in convs]


# ----- the whole path, through the entry points -----


def test_search_run_writes_the_scales_of_its_checkpoint_to_a_loadable_file(search_run):
    checkpoint = search_run / "RepOptVGG-A0-cifar-search-epoch0001.ckpt"
    searched_arch, scales = read_scales(search_run / SCALES_NAME)
    assert searched_arch == ARCH
    search_net, description = load_network(checkpoint, ARCH, CLASSES)
    assert isinstance(search_net, RepOptSearchNet) and "EMA" in description
    expected = extract_scales(search_net)  # the EMA weights, which validation and eval.py use
    assert scales.keys() == expected.keys() and len(scales) == BLOCKS
    for name, block in expected.items():
        np.testing.assert_array_equal(scales[name].scale_3x3, block.scale_3x3, err_msg=name)
        np.testing.assert_array_equal(scales[name].scale_1x1, block.scale_1x1, err_msg=name)
        if block.scale_identity is not None:
            np.testing.assert_array_equal(scales[name].scale_identity, block.scale_identity, err_msg=name)
    assert any(np.abs(s.scale_3x3 - 1.0).max() > 0 for s in scales.values())  # searched: moved from init 1
    assert load_scales(search_run / SCALES_NAME, create_repopt_model(ARCH, CLASSES)).keys() == scales.keys()
    assert not list(search_run.glob(".*"))  # atomic writes leave no temporary files


def test_repopt_checkpoint_evaluates_through_eval_py(repopt_run, search_run, demo_data, tmp_path):
    checkpoint = repopt_run / "RepOptVGG-A0-cifar-epoch0001.ckpt"
    saved = ms.load_checkpoint(str(checkpoint))
    assert "moments.stage3.5.conv.weight" in saved and "stage3.5.rbr_dense.conv.weight" not in saved
    metrics_path = tmp_path / "metrics.json"
    evaluated = run_entry("eval.py", "--config", str(CONFIGS / "demo_repopt.yaml"), "--data_url", str(demo_data),
                          "--repopt_scales", str(search_run / SCALES_NAME), "--pretrained", str(checkpoint),
                          "--result_json", str(metrics_path))
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads(metrics_path.read_text())
    assert metrics["arch"] == "RepOptVGG-A0-cifar" and metrics["weights"] == "RepOpt plain EMA weights"
    assert metrics["images"] == CLASSES


def test_repopt_checkpoint_exports_to_onnx_as_it_is_and_onnx_runtime_agrees(repopt_run, tmp_path):
    checkpoint = repopt_run / "RepOptVGG-A0-cifar-best.ckpt"
    path = exported(checkpoint, tmp_path / "repopt")
    assert conv_kernels(path) == [[3, 3]] * BLOCKS  # plain: one 3x3 convolution per block, nothing to fuse
    net, _ = load_network(checkpoint, ARCH, CLASSES)
    for batch in (1, 3):
        x = images(batch)
        np.testing.assert_allclose(onnx_outputs(path, x), net(ms.Tensor(x)).asnumpy(), rtol=1e-4, atol=1e-4)


def test_search_checkpoint_exports_as_the_plain_net_it_equals(search_run, tmp_path):
    checkpoint = search_run / "RepOptVGG-A0-cifar-search-best.ckpt"
    path = exported(checkpoint, tmp_path / "search")
    assert conv_kernels(path) == [[3, 3]] * BLOCKS  # the 1x1 and identity branches are merged away
    search_net, _ = load_network(checkpoint, ARCH, CLASSES)
    x = images(2)
    np.testing.assert_allclose(onnx_outputs(path, x), search_net(ms.Tensor(x)).asnumpy(), rtol=1e-4, atol=1e-4)


def test_resume_restores_the_checkpoint_over_the_start_from_scales_and_trains_on(repopt_run, search_run,
                                                                                 demo_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(repopt_run, run)
    trainer = in_process_trainer(demo_data, run, 2, optimizer="repopt", repopt_scales=str(search_run / SCALES_NAME))
    started = trainer.net.parameters_dict()["stage3.5.conv.weight"].asnumpy().copy()
    checkpoint = run / "RepOptVGG-A0-cifar-epoch0001.ckpt"
    trainer.resume(str(checkpoint))
    saved = ms.load_checkpoint(str(checkpoint))
    restored = {p.name: p.asnumpy() for p in trainer.train_step.get_parameters()}
    for name in ("stage3.5.conv.weight", "moments.stage3.5.conv.weight", "ema.stage3.5.conv.weight",
                 "stage3.5.bn.moving_mean", "linear.weight"):
        np.testing.assert_array_equal(restored[name], saved[name].asnumpy(), err_msg=name)
    assert not np.array_equal(restored["stage3.5.conv.weight"], started)  # the restore won over the init
    result = trainer.fit()
    assert result.position.epoch == 2 and (run / "RepOptVGG-A0-cifar-epoch0002.ckpt").is_file()
    assert not np.array_equal(trainer.net.parameters_dict()["stage3.5.conv.weight"].asnumpy(), saved[
        "stage3.5.conv.weight"].asnumpy())


# ----- the scales file and the networks -----


@pytest.fixture
def search_net() -> RepOptSearchNet:
    """An A0-cifar search net with scales far from 1 and trained-looking BatchNorm statistics."""
    ms.set_seed(3)
    net = create_repopt_model(ARCH, CLASSES, search=True)
    rng = np.random.default_rng(3)
    for name, param in net.parameters_and_names():
        if ".scale_" in name:
            param.set_data(ms.Tensor(rng.uniform(0.3, 1.5, param.shape).astype(np.float32)))
    randomise_batchnorm(net, seed=3)
    net.set_train(False)
    return net


def test_merged_search_net_is_the_plain_net_computing_the_same_function(search_net):
    plain = merge_search_net(search_net)
    assert isinstance(plain, RepOptVGG) and plain.arch == "RepOptVGG-A0-cifar"
    x = ms.Tensor(images(2))
    np.testing.assert_allclose(plain(x).asnumpy(), search_net(x).asnumpy(), rtol=1e-4, atol=1e-5)


def test_checkpoints_of_either_repopt_net_load_in_their_own_form(search_net, tmp_path):
    for net, kind in ((search_net, RepOptSearchNet), (merge_search_net(search_net), RepOptVGG)):
        loaded, description = load_network(save_checkpoint_atomic(net, tmp_path / "net.ckpt"), ARCH, CLASSES)
        assert type(loaded) is kind and description.startswith("RepOpt")


def test_scales_are_not_weight_decayed(search_net):
    decay, no_decay = split_decay_groups(search_net.trainable_params())
    scales = {name for name, _ in search_net.parameters_and_names() if ".scale_" in name}
    assert len(scales) > 2 * BLOCKS and scales <= {p.name for p in no_decay}
    assert not scales & {p.name for p in decay}


def scales_file(folder: Path, arch: str = ARCH) -> Path:
    return save_scales(folder / "scales.npz", arch, extract_scales(create_repopt_model(arch, CLASSES, search=True)))


def repopt_config(scales: Path, arch: str = ARCH, **overrides):
    return load_config(DEMO_CONFIG, {"arch": arch, "optimizer": "repopt", "repopt_scales": str(scales),
                                     **overrides}, check_paths=False)


def test_pretrained_weights_replace_the_start_from_scales(search_net, tmp_path):
    pretrained = merge_search_net(search_net)
    path = save_checkpoint_atomic(pretrained, tmp_path / "plain.ckpt")
    net, grad_mults = build_training_network(repopt_config(scales_file(tmp_path), pretrained=str(path)))
    assert len(grad_mults) == BLOCKS
    for name, param in pretrained.parameters_and_names():
        np.testing.assert_array_equal(net.parameters_dict()[name].asnumpy(), param.asnumpy(), err_msg=name)


def test_scales_of_another_arch_are_refused_naming_the_blocks(tmp_path):
    with pytest.raises(UserError) as error:
        build_training_network(repopt_config(scales_file(tmp_path), arch="RepVGG-B0-cifar"))
    message = str(error.value)
    assert "searched on RepVGG-A0-cifar" in message and "do not fit RepOptVGG-B0-cifar" in message
    assert "missing from the file: stage1.2, stage1.3" in message
    assert "stage0 (24 channels, the net has 32)" in message


def garbage(path: Path) -> None:
    path.write_bytes(b"not an archive")


def truncated(path: Path) -> None:
    path.write_bytes(scales_file(path.parent).read_bytes()[:2000])


def single_array(path: Path) -> None:
    with open(path, "wb") as stream:
        np.save(stream, np.ones(3))


def without_arch(path: Path) -> None:
    np.savez(path, **{"stage0/scale_3x3": np.ones(24, np.float32), "stage0/scale_1x1": np.ones(24, np.float32)})


def unknown_entry(path: Path) -> None:
    np.savez(path, arch=np.array(ARCH), weights=np.ones(3))


def missing_scale(path: Path) -> None:
    np.savez(path, arch=np.array(ARCH), **{"stage0/scale_3x3": np.ones(3)})


def not_finite(path: Path) -> None:
    np.savez(path, arch=np.array(ARCH), **{"stage0/scale_3x3": np.array([1.0, np.nan]), "stage0/scale_1x1": np.ones(2)})


@pytest.mark.parametrize("write, reason", [
    (garbage, "damaged or not a RepOpt scales file"), (truncated, "damaged or not a RepOpt scales file"),
    (single_array, "a single array"), (without_arch, "no 'arch' entry"), (unknown_entry, "unexpected entry 'weights'"),
    (missing_scale, "block stage0 has no scale_1x1"), (not_finite, "finite floats"),
], ids=lambda value: value.__name__ if callable(value) else "")
def test_a_damaged_or_foreign_scales_file_is_one_clear_error(tmp_path, write, reason):
    path = tmp_path / "bad.npz"
    write(path)
    with pytest.raises(UserError, match=reason):
        build_training_network(repopt_config(path))


@pytest.mark.parametrize("overrides, expected", [
    ({"optimizer": "repopt"}, "--optimizer (config {config}) = repopt needs 'repopt_scales' to be set"),
    ({"optimizer": "repopt", "repopt_scales": "absent.npz"},
     "--repopt_scales (config {config}): 'absent.npz' is not an existing scales file"),
    ({"optimizer": "repopt", "repopt_scales": "absent.npz", "repopt_search": True},
     "--repopt_search (config {config}) = True cannot be combined with --optimizer"),
])
def test_config_refuses_repopt_without_its_scales_or_with_the_search(overrides, expected):
    with pytest.raises(UserError) as error:
        load_config(DEMO_CONFIG, overrides)
    assert expected.format(config=DEMO_CONFIG) in str(error.value)


@pytest.mark.parametrize("search, target", [("demo_repopt_search.yaml", "demo_repopt.yaml"),
                                            ("RepOptVGG-A0-cifar100-search.yaml", "RepOptVGG-A0-cifar100.yaml")])
def test_each_repopt_recipe_reads_the_scales_its_search_recipe_writes(search, target):
    search_cfg = load_config(CONFIGS / search, check_paths=False)
    target_cfg = load_config(CONFIGS / target, check_paths=False)
    assert search_cfg.repopt_search and target_cfg.optimizer == "repopt" and search_cfg.arch == target_cfg.arch
    assert Path(target_cfg.repopt_scales) == searched_scales_path(search_cfg)
