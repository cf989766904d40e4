"""Time in the tests: the daemon on a virtual clock, and the one real-time wait the suite keeps.

``run(daemon, seconds, at=[(t, fn), ...])`` runs a daemon built on a
:class:`~calmtunes.clock.VirtualClock` for ``seconds`` of virtual time, calling each ``fn`` when
the clock reaches ``t``, in the daemon's own (loop) thread; it returns what the calls returned.
No test waits for the wall clock to learn what a daemon does in a second or a minute.

:func:`wait_until` is for what runs on real threads outside any clock of ours (a subprocess, a
client on a socket, gpiozero's own threads): it polls a condition instead of sleeping a guessed
time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from calmtunes.clock import VirtualClock
from calmtunes.daemon import Daemon


def virtual_daemon(config, **kw: Any) -> Daemon:
    kw.setdefault("control", False)
    return Daemon(config, clock=VirtualClock(epoch=1_800_000_000.0), **kw)


def run(daemon: Daemon, seconds: float,
        at: Iterable[tuple[float, Callable[[], Any]]] = ()) -> list[Any]:
    results: list[Any] = []
    assert daemon.scheduler is not None, "build the daemon with virtual_daemon()"
    for t, fn in at:
        def call(_now: float, fn=fn) -> None:
            results.append(fn())
            return None

        daemon.scheduler.add(f"test at {t}", call, delay=t)
    code = daemon.run(duration=seconds)
    assert code == daemon.exit_code
    return results


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy (returned) or ``timeout`` s pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        time.sleep(0.02)  # real threads (sockets, processes, gpiozero) need real time to act
