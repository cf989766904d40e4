"""The null and wav sinks in real time emulate the card's deadline, not only an empty ring.

A sound card holds two periods; its callback (a Python function, which needs the GIL) must
hand over the next period before the one playing ends. A sink thread that wakes later than that
has let the card run dry, whatever the ring held: an import holding the GIL in another thread
is heard as a gap, so the emulated card counts it as one, as the card's status would."""

from __future__ import annotations

import time

import numpy as np
import pytest

from calmtunes.audio.ring import AudioRing
from calmtunes.audio.sinks import CARD_PERIOD_FRAMES, CARD_PERIODS_QUEUED, NullSink
from clocked import wait_until

SR = 48000
PERIOD_S = CARD_PERIOD_FRAMES / SR


def run_with_a_stall(stall_s: float) -> int:
    """Underruns of a real-time null sink draining a full ring, whose thread finds the clock
    ``stall_s`` on (as after a wait for the GIL) once the music has begun."""
    ring = AudioRing(SR * 10)
    ring.write(np.full((SR * 10, 2), 0.1, dtype=np.float32))
    offset = [0.0]
    sink = NullSink(ring, SR, realtime=True, clock=lambda: time.monotonic() + offset[0])
    sink.open()
    try:
        wait_until(lambda: ring.frames_read >= 2 * CARD_PERIOD_FRAMES, what="two periods")
        offset[0] += stall_s
        before = ring.frames_read
        wait_until(lambda: ring.frames_read >= before + 3 * CARD_PERIOD_FRAMES,
                   what="three more periods")
    finally:
        sink.close()
    return ring.underruns


def test_a_sink_thread_late_by_more_than_the_card_holds_is_an_underrun():
    late = (CARD_PERIODS_QUEUED - 1) * PERIOD_S
    assert run_with_a_stall(late + 0.1) == 1


@pytest.mark.parametrize("stall_s", [0.0, 0.5 * PERIOD_S])
def test_a_wake_within_the_card_buffer_is_not(stall_s):
    assert run_with_a_stall(stall_s) == 0


def test_a_wake_from_sleep_late_by_more_than_the_card_holds_is_an_underrun():
    # The sink thread sleeps until each period is due: a wait for the GIL at the end of that
    # sleep (an import holding it for 50-85 ms) makes the read that follows late. Measured
    # only at the next period, one period later, such a read went uncounted unless it was two
    # periods late, where the card would have run dry after one.
    assert run_with_a_stall(1.5 * PERIOD_S) == 1
