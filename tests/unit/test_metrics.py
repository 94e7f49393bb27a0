"""Accuracy counting and the one metrics report shared by eval.py, infer_onnx.py and postprocess.py."""

import json

import numpy as np
import pytest

from src.metrics import AccuracyCounter, EvalResult, report_metrics


def test_counter_counts_top1_top5_and_cross_entropy_over_batches():
    counter = AccuracyCounter()
    logits = np.array([[5.0, 4, 3, 2, 1, 0], [0.0, 1, 2, 3, 4, 5]])
    counter.update(logits[:1], np.array([0]))         # top-1 hit
    counter.update(logits[1:], np.array([0]))         # the least likely class: outside the top 5
    result = counter.result(seconds=2.0)
    assert (result.top1, result.top5, result.images) == (50.0, 50.0, 2)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert result.loss == pytest.approx(-(log_softmax[0, 0] + log_softmax[1, 0]) / 2)
    assert result.images_per_second == 1.0


def test_report_prints_percent_and_writes_the_callers_record(tmp_path, capsys):
    result = EvalResult(top1=62.5, top5=100.0, loss=0.75, images=8, seconds=0.0)
    target = report_metrics(result, {"model": "m", "top1": result.top1}, tmp_path / "out" / "metrics.json",
                            speed="images: 8")
    assert capsys.readouterr().out == "top-1 accuracy: 62.500 %\ntop-5 accuracy: 100.000 %\nimages: 8\n"
    assert json.loads(target.read_text()) == {"model": "m", "top1": 62.5, "accuracy_unit": "percent"}
