"""The clock every part of the daemon reads: the system's, or a virtual one that moves on demand.

One object is handed to the control loop, the supervisor, every component, the conductor and the
emulators, so that a whole session can run on a :class:`VirtualClock` as fast as the CPU allows
and be replayed sample for sample, and tests never wait for the wall clock.

Two readings: :meth:`Clock.monotonic` (seconds, for intervals and deadlines; never goes back) and
:meth:`Clock.time` (Unix seconds, for what is recorded with a date). Calling the clock is the same
as :meth:`~Clock.monotonic`, so it fits wherever a ``time.monotonic``-like callable is taken.

On the virtual clock nothing sleeps: a part's "wait 0.5 s" is a due time in the scheduler
(:class:`calmtunes.scheduler.Scheduler`), which moves the clock to the earliest due time and runs
what is due there, in one thread, in a fixed order.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """The system clock (the real device, real-time simulation)."""

    virtual = False

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def __call__(self) -> float:
        return self.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait for ``event`` at most ``timeout`` s; whether it is set."""
        return event.wait(timeout)


SYSTEM = Clock()


class VirtualClock(Clock):
    """A clock that moves only when told (by the scheduler, or a test).

    ``epoch`` is the Unix time the virtual session starts at: dates in records are
    ``epoch + monotonic()``. :meth:`sleep` and :meth:`wait` advance the clock instead of waiting
    (the single-threaded scheduler owns it; nothing else runs meanwhile).
    """

    virtual = True

    def __init__(self, start: float = 0.0, epoch: float | None = None) -> None:
        self.now = float(start)
        self.epoch = time.time() if epoch is None else float(epoch)

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        self.now += seconds

    def advance_to(self, t: float) -> None:
        """Move to ``t``; a ``t`` in the past leaves the clock where it is."""
        if t > self.now:
            self.now = float(t)

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if not event.is_set() and timeout:
            self.advance(max(0.0, timeout))
        return event.is_set()
