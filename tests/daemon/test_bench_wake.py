"""scripts/bench measures what a wake costs the host, so a steady CPU share read on one machine
can be compared with another's: the daemon's threads wake some 60 times a second."""

from __future__ import annotations

from script_module import load_script


def test_wake_reference_measures_a_wake_and_a_task_after_one():
    bench = load_script("bench")
    empty, cold, hot = bench.wake_reference(0.5)
    # CPU seconds per wake (a sleeping thread's wake costs some µs, never a whole period) and
    # per 20 multiply-adds on 4096 doubles: µs, not ms, on any machine the suite runs on
    assert 0.0 < empty < 2048 / 48000
    assert 0.0 < hot < 0.01
    assert abs(cold) < 2048 / 48000  # the task after a wake, less the empty wake: noisy, small
