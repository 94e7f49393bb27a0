"""Timing of repeated calls: warm-up calls are not timed, median and interquartile spread."""

import pytest

from src.timing import Timing, time_interleaved, time_repeats


def test_warmup_calls_run_but_are_not_timed():
    calls = []
    timing = time_repeats(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and len(timing.seconds) == 3


def test_median_quantiles_and_spread():
    timing = Timing((4.0, 1.0, 2.0, 3.0, 5.0))
    assert timing.median == 3.0
    assert (timing.quantile(0.25), timing.quantile(0.75)) == (2.0, 4.0)
    assert timing.spread_percent == pytest.approx(100.0 * 2.0 / 3.0)


def test_at_least_one_repeat_is_required():
    with pytest.raises(ValueError, match="repeats"):
        time_repeats(lambda: None, warmup=0, repeats=0)


def test_interleaved_calls_alternate_and_each_gets_its_own_timing():
    calls = []
    timings = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               warmup=1, repeats=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert {name: len(timing.seconds) for name, timing in timings.items()} == {"a": 3, "b": 3}
