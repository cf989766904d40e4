import threading

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from calmtunes.audio.ring import AudioRing


def ramp(start: int, n: int) -> np.ndarray:
    x = np.arange(start, start + n, dtype=np.float32)
    return np.stack([x, -x], axis=1)


def test_fifo_order_across_the_wrap():
    ring = AudioRing(10)
    assert ring.write(ramp(0, 7)) == 7
    out = np.empty((5, 2), np.float32)
    assert ring.read_into(out) == 5
    assert ring.write(ramp(7, 8)) == 8  # wraps
    out = np.empty((10, 2), np.float32)
    assert ring.read_into(out) == 10
    assert np.array_equal(out, ramp(5, 10))
    assert ring.underruns == 0


def test_write_never_overwrites_unread_audio():
    ring = AudioRing(4)
    assert ring.write(ramp(0, 6)) == 4
    assert ring.free == 0


def test_underrun_fills_silence_and_is_counted():
    ring = AudioRing(8)
    ring.write(ramp(0, 5))
    out = np.ones((5, 2), np.float32)
    assert ring.read_into(out) == 5  # the output has started
    ring.write(ramp(5, 3))
    assert ring.read_into(out) == 3
    assert np.array_equal(out[:3], ramp(5, 3)) and np.all(out[3:] == 0)
    assert ring.underruns == 1
    assert ring.frames_out == 10


def test_the_output_starts_with_a_whole_read():
    """As ALSA's start threshold: the first block written alone is not played with silence
    after it (a gap at the start, counted as an underrun); the output waits, handing on
    silence and taking nothing, until a whole read is there. Again after clear()."""
    ring = AudioRing(16)
    ring.write(ramp(0, 3))
    out = np.ones((5, 2), np.float32)
    assert ring.read_into(out) == 0 and np.all(out == 0)
    assert ring.available == 3 and ring.underruns == 0 and ring.frames_out == 5
    ring.write(ramp(3, 4))
    assert ring.read_into(out) == 5 and np.array_equal(out, ramp(0, 5))
    ring.clear()  # the output stopped (a card gone): it starts anew when one is back
    ring.write(ramp(7, 2))
    assert ring.read_into(out) == 0 and ring.underruns == 0
    ring.write(ramp(9, 3))
    assert ring.read_into(out) == 5 and np.array_equal(out, ramp(7, 5))


def test_silence_before_the_first_write_is_not_an_underrun():
    ring = AudioRing(8)
    ring.read_into(np.empty((4, 2), np.float32))
    assert ring.underruns == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=30),
       st.integers(2, 50))
def test_any_interleaving_preserves_the_stream(ops, capacity):
    ring = AudioRing(capacity)
    written = read = 0
    for w, r in ops:
        written += ring.write(ramp(written, w))
        out = np.empty((r, 2), np.float32)
        got = ring.read_into(out)
        assert np.array_equal(out[:got], ramp(read, got))
        read += got
        assert 0 <= ring.available <= capacity
    assert ring.available == written - read


def test_a_read_below_the_low_water_mark_sets_the_event():
    ring = AudioRing(16)
    event = threading.Event()
    ring.notify_below(6, event)
    ring.write(np.ones((12, 2), dtype=np.float32))
    out = np.zeros((4, 2), dtype=np.float32)
    ring.read_into(out)  # 8 left
    assert not event.is_set()
    ring.read_into(out)  # 4 left
    assert event.is_set()
