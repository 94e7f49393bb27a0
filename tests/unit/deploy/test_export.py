"""export_network writes an ordinary file and leaves the folder alone. export.py itself (ONNX and MINDIR
outputs equal to the network, the multi-branch export, clear errors) runs in tests/system/test_export_script.py."""

import mindspore as ms
import pytest
from conftest import randomise_batchnorm

from src.deploy.export import export_network
from src.models import create_model, repvgg_model_convert

ARCH = "RepVGG-A0-cifar"  # the smallest arch: file and folder modes do not depend on the network


@pytest.fixture(scope="module")
def deploy_net():
    ms.set_seed(7)
    net = create_model(ARCH, num_classes=8)
    randomise_batchnorm(net, seed=7)
    net.set_train(False)
    return repvgg_model_convert(net)


@pytest.mark.parametrize("file_format", ["ONNX", "MINDIR"])
def test_export_leaves_the_folder_mode_alone_and_writes_an_ordinary_file(deploy_net, tmp_path, file_format):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    (folder / "model.onnx").write_bytes(b"previous")
    target = export_network(deploy_net, file_format, folder / "model", 1, 32)
    # mindspore.export alone chmods the folder to 0700 and leaves a read-only (0400) file, which a user
    # other than root can then neither rewrite nor replace.
    assert folder.stat().st_mode & 0o777 == 0o755
    assert target.stat().st_mode & 0o600 == 0o600
    assert sorted(p.name for p in folder.iterdir()) == sorted({"model.onnx", target.name})
