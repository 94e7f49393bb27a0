"""A clean stop: the first SIGINT/SIGTERM asks for a stop after the step, this process's second one stops at once."""

import os
import signal

import pytest

from src.engine.stop_request import StopRequest


def test_the_first_signal_asks_for_a_stop_and_the_second_stops_at_once():
    with StopRequest() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() and stop.exit_code == 128 + signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_rank_that_heard_of_the_stop_from_another_rank_takes_its_own_first_signal_as_the_first():
    with StopRequest() as stop:
        stop.signal_number = signal.SIGTERM  # what requested() records when another rank was signalled first
        os.kill(os.getpid(), signal.SIGTERM)  # the launcher's copy of the same stop reaches this rank later
        assert stop.requested() and stop.exit_code == 128 + signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
