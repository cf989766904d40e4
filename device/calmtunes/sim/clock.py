"""A clock that moves only when told: run hours of sensor time in seconds of CPU."""

from __future__ import annotations


class ManualClock:
    """Callable like ``time.monotonic``; :meth:`sleep` advances it instead of waiting.

    >>> clock = ManualClock(); clock.sleep(1.5); clock()
    1.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def set(self, t: float) -> None:
        """Move to ``t`` (never backwards)."""
        self.advance(t - self.now)
