"""int8 ONNX models from quantisation-aware training: ONNX Runtime, given the ranges the fake-quantised network
learned, computes what the network simulates; ranges that cannot be used and models of other weights are refused
before anything is written."""

from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
import pytest
from conftest import randomise_batchnorm
from mindspore import Tensor

from src.deploy.export import export_network
from src.deploy.onnx_runtime import open_session, run_batches
from src.deploy.quantize import learned_ranges, quantize_int8_learned
from src.errors import UserError
from src.models import create_model
from src.models.fake_quant import fake_quant_network

ARCH = "RepVGG-A0-cifar"


def trained_fake_quant_net(seed: int = 0):
    """A fake-quantised RepVGG whose ranges saw a few training-mode batches, then were frozen."""
    ms.set_seed(seed)
    net = create_model(ARCH, num_classes=10)
    randomise_batchnorm(net, seed=seed + 1)
    qnet = fake_quant_network(net)
    rng = np.random.default_rng(seed)
    qnet.set_train(True)
    for _ in range(2):
        qnet(Tensor(rng.normal(size=(4, 3, 32, 32)).astype(np.float32)))
    qnet.freeze_ranges()
    qnet.set_train(False)
    return qnet


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple:
    folder = tmp_path_factory.mktemp("learned")
    qnet = trained_fake_quant_net()
    fp32 = export_network(qnet.float_network(), "ONNX", folder / "qat", 1, 32, dynamic_batch=True)
    return qnet, fp32


def test_int8_onnx_computes_the_fake_quantised_network(exported, tmp_path):
    qnet, fp32 = exported
    int8 = quantize_int8_learned(fp32, tmp_path / "int8.onnx", qnet, "the test network")
    x = np.random.default_rng(7).normal(size=(64, 3, 32, 32)).astype(np.float32)
    onnx_logits = run_batches(open_session(int8), x)[0]
    simulated = qnet(Tensor(x)).asnumpy()
    scale, zero_point = (t.asnumpy() for t in qnet.logits_quant.params())
    codes_onnx, codes_simulated = np.round(onnx_logits / scale) + zero_point, np.round(simulated / scale) + zero_point
    # Float accumulation order differs (oneDNN vs ONNX Runtime's integer kernels): a rare code is one off.
    assert np.abs(codes_onnx - codes_simulated).max() <= 1
    assert (codes_onnx == codes_simulated).mean() >= 0.95
    assert (onnx_logits.argmax(1) == simulated.argmax(1)).mean() >= 0.95


def test_every_quantised_tensor_gets_a_learned_range(exported):
    qnet, fp32 = exported
    model = onnx.load(str(fp32))
    ranges = learned_ranges(model, qnet)
    relus = [node.output[0] for node in model.graph.node if node.op_type == "Relu"]
    assert len(relus) == len(qnet.convs)
    np.testing.assert_array_equal(ranges[relus[-1]].range_value,
                                  (qnet.output_quants[-1].range_min.asnumpy(),
                                   qnet.output_quants[-1].range_max.asnumpy()))
    assert model.graph.input[0].name in ranges


def test_unobserved_ranges_are_refused(exported, tmp_path):
    _, fp32 = exported
    fresh = fake_quant_network(create_model(ARCH, num_classes=10))
    with pytest.raises(UserError, match="never observed"):
        learned_ranges(onnx.load(str(fp32)), fresh)


def test_a_model_of_other_weights_is_refused_and_nothing_is_written(exported, tmp_path):
    _, fp32 = exported
    other = fake_quant_network(create_model(ARCH, num_classes=10))
    target = tmp_path / "int8.onnx"
    with pytest.raises(UserError, match="was not exported from"):
        quantize_int8_learned(fp32, target, other, "another run")
    assert not Path(target).exists()
