"""A single-producer, single-consumer ring of stereo float32 frames.

The producer (the music engine's render thread) writes whole blocks; the consumer (the sound
card's callback) reads into the buffer PortAudio hands it. ``read_into`` never allocates or
logs: it copies what is there, fills the rest with silence and counts an underrun. The two
indices are only ever advanced by their own side, so no lock guards them; the only lock a read
takes is an Event's, to wake the producer (space for a block, or the ring below its low-water
mark: :meth:`AudioRing.notify_below`), and only when that Event is clear.

The output starts as ALSA's start threshold starts a stream: until the ring first holds a
whole read, a read takes nothing and hands on silence, so the sound begins with a whole period,
never with the first block written and silence after it (a gap at the very start, and an
underrun counted for it). The same holds again after :meth:`AudioRing.clear`.
"""

from __future__ import annotations

import threading

import numpy as np


class AudioRing:
    def __init__(self, capacity_frames: int, channels: int = 2) -> None:
        if capacity_frames < 2:
            raise ValueError("capacity_frames must be at least 2")
        self.capacity = int(capacity_frames)
        self.channels = channels
        self._buf = np.zeros((self.capacity, channels), dtype=np.float32)
        self._written = 0  # total frames ever written (producer only)
        self._read = 0  # total frames ever read (consumer only)
        self.underruns = 0  # callbacks that found too little audio
        self.frames_out = 0  # frames handed to the output, silence included
        self._started = False  # a whole read was there once (the start threshold was met)
        self._space = threading.Event()
        # (frames, event): a read that leaves fewer than ``frames`` sets ``event`` (notify_below)
        self._low: tuple[int, threading.Event] | None = None

    @property
    def available(self) -> int:
        return self._written - self._read

    @property
    def free(self) -> int:
        return self.capacity - self.available

    @property
    def frames_in(self) -> int:
        """Frames ever written (the producer's count)."""
        return self._written

    @property
    def frames_read(self) -> int:
        """Frames of audio the output has taken so far (silence for want of audio excluded)."""
        return self._read

    def write(self, block: np.ndarray) -> int:
        """Copy as much of ``block`` as fits; return the frames written."""
        n = min(len(block), self.free)
        if n <= 0:
            return 0
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = block[:first]
        if n > first:
            self._buf[: n - first] = block[first:n]
        self._written += n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` (frames × channels); return the frames of real audio copied."""
        want = len(out)
        n = min(want, self.available)
        if not self._started:
            if n < want:  # not started yet: silence, nothing taken, no underrun
                out[:] = 0.0
                self.frames_out += want
                return 0
            self._started = True
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if n > first:
            out[first:n] = self._buf[: n - first]
        if n < want:
            out[n:] = 0.0
            if self._written > 0:
                self.underruns += 1
        self._read += n
        self.frames_out += want
        if not self._space.is_set():  # (an Event's set takes its lock even when set already)
            self._space.set()
        low = self._low
        if low is not None and self._written - self._read < low[0] and not low[1].is_set():
            low[1].set()
        return n

    def notify_below(self, frames: int, event: threading.Event) -> None:
        """Have every read that leaves fewer than ``frames`` in the ring set ``event``: the
        producer sleeps until the output has taken what it must replace, and wakes just after a
        read (on the device, the card's callback), instead of on a timer of its own."""
        self._low = (int(frames), event)

    def wait_for_space(self, frames: int, timeout: float) -> bool:
        """Block the producer until ``frames`` fit or ``timeout`` s pass.

        The flag is cleared before ``free`` is looked at again, so a read between the two either
        shows in ``free`` or sets the flag anew: no wake-up is lost."""
        if self.free >= frames:
            return True
        self._space.clear()
        if self.free >= frames:
            return True
        return self._space.wait(timeout) and self.free >= frames

    def clear(self) -> None:
        """Drop what is buffered (consumer side; only when the output is stopped); the output
        starts again at a whole read."""
        self._read = self._written
        self._started = False
