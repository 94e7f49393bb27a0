"""Reading checkpoints back: form detection, EMA preference, fine-tuning, clear errors."""

import logging

import mindspore as ms
import numpy as np
import pytest
from conftest import randomise_batchnorm

from src.checkpoint_files import save_checkpoint_atomic
from src.engine.run_checkpoints import CheckpointKeeper, RunPosition
from src.errors import UserError
from src.logger import LOGGER_NAME
from src.models import create_model, repvgg_model_convert
from src.models.from_checkpoint import load_network, load_pretrained

ARCH = "RepVGG-A0-cifar"


def saved(net, path, extra=None):
    return save_checkpoint_atomic(list(_entries(net)) + (extra or []), path)


def _entries(net):
    for param in net.get_parameters():
        yield {"name": param.name, "data": param.data}


def test_a_deploy_checkpoint_is_recognised_by_its_keys(tmp_path):
    net = create_model(ARCH, num_classes=6)
    randomise_batchnorm(net)
    deploy = repvgg_model_convert(net)
    path = saved(deploy, tmp_path / "deploy.ckpt")
    loaded, description = load_network(path, ARCH, 6)
    assert description.startswith("deploy-form")
    x = ms.Tensor(np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32))
    np.testing.assert_array_equal(loaded(x).asnumpy(), deploy(x).asnumpy())


def test_ema_weights_are_preferred_when_present(tmp_path):
    net = create_model(ARCH, num_classes=6)
    shadow = [{"name": "ema." + p.name, "data": ms.Tensor(np.full(p.shape, 0.5, np.float32))}
              for p in net.get_parameters()]
    path = saved(net, tmp_path / "train.ckpt", shadow)
    loaded, description = load_network(path, ARCH, 6)
    assert "EMA" in description
    assert np.all(loaded.linear.weight.asnumpy() == 0.5)
    raw, raw_description = load_network(path, ARCH, 6, prefer_ema=False)
    assert "EMA" not in raw_description
    np.testing.assert_array_equal(raw.linear.weight.asnumpy(), net.linear.weight.asnumpy())


def test_a_checkpoint_of_another_arch_or_class_count_is_a_clear_error(tmp_path):
    path = saved(create_model(ARCH, num_classes=6), tmp_path / "a0.ckpt")
    with pytest.raises(UserError, match=r"does not fit RepVGG-B0-cifar with 6 classes: .*mis-shaped"):
        load_network(path, "RepVGG-B0-cifar", 6)
    with pytest.raises(UserError, match=r"linear\.weight \(6, 640\) != \(9, 640\)"):
        load_network(path, ARCH, 9)


def test_damaged_or_missing_checkpoints_are_clear_errors(tmp_path):
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="damaged or not a MindSpore checkpoint"):
        load_network(damaged, ARCH, 6)
    with pytest.raises(UserError, match="checkpoint not found"):
        load_network(tmp_path / "absent.ckpt", ARCH, 6)


def test_fine_tuning_skips_a_classifier_of_another_shape_and_says_so(tmp_path, caplog):
    source = create_model(ARCH, num_classes=10)
    randomise_batchnorm(source)
    path = saved(source, tmp_path / "pre.ckpt")
    target = create_model(ARCH, num_classes=3)
    classifier_before = target.linear.weight.asnumpy().copy()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    try:
        load_pretrained(target, path)
    finally:
        logger.removeHandler(caplog.handler)
    assert "classifier skipped" in caplog.text
    np.testing.assert_array_equal(target.linear.weight.asnumpy(), classifier_before)
    np.testing.assert_array_equal(target.stage1[0].rbr_dense.bn.gamma.asnumpy(),
                                  source.stage1[0].rbr_dense.bn.gamma.asnumpy())


def test_fine_tuning_from_a_deploy_checkpoint_is_refused(tmp_path):
    path = saved(repvgg_model_convert(create_model(ARCH, num_classes=3)), tmp_path / "deploy.ckpt")
    with pytest.raises(UserError, match="deploy \\(fused\\) checkpoint"):
        load_pretrained(create_model(ARCH, num_classes=3), path)


def test_keeper_keeps_the_newest_epochs_and_the_best(tmp_path):
    keeper = CheckpointKeeper(tmp_path, ARCH, keep=2)
    tiny = ms.nn.Dense(2, 2)
    for epoch, is_best in [(1, True), (2, False), (3, True), (4, False)]:
        keeper.save(tiny, RunPosition(epoch=epoch, step=epoch * 5, best_top1=float(epoch)), is_best)
    assert [p.name for p in keeper.epoch_checkpoints()] == [f"{ARCH}-epoch0003.ckpt", f"{ARCH}-epoch0004.ckpt"]
    assert keeper.latest().name == f"{ARCH}-epoch0004.ckpt"
    assert int(ms.load_checkpoint(str(keeper.best_path))["epoch"].asnumpy()) == 3


def test_keeper_resumes_from_an_interrupted_checkpoint_until_the_next_epoch_replaces_it(tmp_path):
    keeper = CheckpointKeeper(tmp_path, ARCH, keep=2)
    tiny = ms.nn.Dense(2, 2)
    keeper.save(tiny, RunPosition(epoch=1, step=5), is_best=False)
    keeper.save_interrupted(tiny, RunPosition(epoch=1, step=7))
    assert keeper.latest() == keeper.interrupted_path
    keeper.save(tiny, RunPosition(epoch=2, step=10), is_best=False)
    assert not keeper.interrupted_path.exists()
    assert keeper.latest().name == f"{ARCH}-epoch0002.ckpt"


def test_keeper_refuses_to_write_non_finite_weights_and_keeps_the_last_good_checkpoint(tmp_path):
    keeper = CheckpointKeeper(tmp_path, ARCH, keep=2)
    tiny = ms.nn.Dense(2, 2)
    good = keeper.save(tiny, RunPosition(epoch=1, step=5), is_best=False).read_bytes()
    tiny.bias.set_data(ms.Tensor(np.array([np.nan, 0.0], np.float32)))
    with pytest.raises(UserError, match=r"non-finite values in .*bias"):
        keeper.save(tiny, RunPosition(epoch=2, step=10), is_best=True)
    assert [p.name for p in tmp_path.iterdir()] == [f"{ARCH}-epoch0001.ckpt"]
    assert (tmp_path / f"{ARCH}-epoch0001.ckpt").read_bytes() == good


def test_keeper_removes_staging_files_that_a_killed_write_left(tmp_path):
    keeper = CheckpointKeeper(tmp_path, ARCH, keep=2)
    (tmp_path / f".{ARCH}-epoch0002.x1y2.tmp.ckpt").write_bytes(b"half")
    (tmp_path / ".log.csv.k3j4.tmp").write_text("epoch,")
    (tmp_path / "notes.txt").write_text("mine")
    keeper.save(ms.nn.Dense(2, 2), RunPosition(epoch=1, step=5), is_best=False)
    assert keeper.remove_staging_files() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{ARCH}-epoch0001.ckpt", "notes.txt"]
