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
    ring.write(ramp(1, 3))
    out = np.ones((5, 2), np.float32)
    assert ring.read_into(out) == 3
    assert np.all(out[3:] == 0)
    assert ring.underruns == 1
    assert ring.frames_out == 5


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
