"""The base of every part the supervisor runs: start, stop, health and a heartbeat.

A component's work happens in :meth:`Component.step`, called by its own thread; ``step`` returns
the seconds until it wants to run again (Klipper's habit: no drift, no spinning). On a virtual
clock there is no thread: the supervisor hands :meth:`Component.run_once` to the
:class:`~calmtunes.scheduler.Scheduler`, which calls it when it is due. Time is read from the
injected clock only (``clock``, a :class:`~calmtunes.clock.Clock` or any ``time.monotonic``-like
callable). Each call beats
the heart; the supervisor pings systemd's watchdog only while every running component's heart is
fresh. An exception from ``step`` is a passing fault: it is logged (once per distinct message),
the component is marked degraded and retried with exponential back-off, and it never reaches the
supervisor. It has recovered once a step ends without the part marked degraded: a step that
catches a fault itself and marks it (a bad camera frame) keeps the back-off growing.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from calmtunes.clock import SYSTEM

if TYPE_CHECKING:
    from calmtunes.config import Config
    from calmtunes.hub import Hub

log = logging.getLogger(__name__)

OK = "ok"
STARTING = "starting"
DEGRADED = "degraded"
FAILED = "failed"
STOPPED = "stopped"
DISABLED = "disabled"


_named_threads: set[int] = set()  # native ids already given their kernel name


def name_os_threads() -> None:
    """Give each Python thread (not the main one: that is the process's name) its name in the
    kernel, so ``top -H``, ``ps -L`` and ``scripts/bench`` tell the threads apart: a
    component's name, ``sink-null``, or a library thread's target (gpiozero's ``held``,
    ``_blink_device``). Only threads not seen before are written; Linux only, else nothing."""
    alive = set()
    for t in threading.enumerate():
        tid = t.native_id
        if tid is None or t is threading.main_thread():
            continue
        alive.add(tid)
        if tid in _named_threads:
            continue
        m = re.fullmatch(r"Thread-\d+ \((.+)\)", t.name)
        name = (m.group(1) if m else t.name)[:15]
        try:  # written in place: no O_CREAT (nothing is made; the privacy tests watch for it)
            fd = os.open(f"/proc/self/task/{tid}/comm", os.O_WRONLY)
        except OSError:
            continue
        try:
            os.write(fd, name.encode("utf-8", "replace")[:15])
        except OSError:
            pass
        finally:
            os.close(fd)
    _named_threads.intersection_update(alive)
    _named_threads.update(alive)


@dataclass(frozen=True)
class Health:
    state: str  # one of OK, STARTING, DEGRADED, FAILED, STOPPED, DISABLED
    detail: str = ""
    heartbeat_age_s: float | None = None  # None when the component has no thread

    @property
    def usable(self) -> bool:
        return self.state in (OK, DEGRADED)


class Component:
    """Subclass and implement :meth:`step` (and :meth:`open`/:meth:`close` if needed)."""

    name = "component"
    #: a component whose heart has not beaten for this long is taken as hung
    heartbeat_timeout_s = 10.0
    #: longest wait between retries after a fault, in s
    max_backoff_s = 30.0

    #: the sections of the config this component reads: a reload that changes one of them
    #: reaches it (:meth:`reconfigure`), the others leave it alone
    config_sections: tuple[str, ...] = ()

    def __init__(self, config: Config, hub: Hub,
                 clock: Callable[[], float] = SYSTEM) -> None:
        self.config = config
        self.hub = hub
        self.clock = clock
        self._thread: threading.Thread | None = None
        self._task: Any = None  # the scheduler's task, on a virtual clock
        self._scheduler: Any = None
        self._running = False
        self._opened = False
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._hang = threading.Event()  # fault injection (simulation only)
        self._heartbeat = clock()
        self._state = STOPPED
        self._detail = ""
        self._failures = 0
        self._last_error = ""

    # -- life cycle --------------------------------------------------------------------------
    def start(self, scheduler: Any = None) -> None:
        """Start the component's thread, or (``scheduler`` given: a virtual clock) its task."""
        if self._running:
            return
        self._stopping.clear()
        self._hang.clear()
        self._set_state(STARTING, "")
        self._heartbeat = self.clock()
        self._running = True
        self._opened = False
        self._delay = 0.0
        if scheduler is not None:
            self._scheduler = scheduler
            self._task = scheduler.add(self.name, self._scheduled)
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread (or task) to end and wait; may be called twice."""
        thread = self._thread
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: thread did not stop within %.1f s", self.name, timeout)
        self._thread = None
        if self._task is not None:
            self._scheduler.end(self._task)
            self._task = None
        self._running = False
        try:
            self.close()
        except Exception:
            log.exception("%s: error while closing", self.name)
        self._opened = False
        if self._state != DISABLED:
            self._set_state(STOPPED, "")

    def restart(self, config: Config) -> None:
        """Stop, take ``config``, start again (a reload that cannot be taken in place)."""
        scheduler = self._scheduler if self._task is not None else None
        self.stop()
        self.config = config
        self.start(scheduler)

    def reconfigure(self, config: Config) -> str:
        """Take a new, already validated config whose :attr:`config_sections` changed (SIGHUP);
        return what was done: ``"reconfigured"`` (in place) or ``"restarted"``.

        The default restarts the component, so nothing goes on running on the old settings;
        parts that can take a change in place override this."""
        self.restart(config)
        return "restarted"

    # -- for subclasses -----------------------------------------------------------------------
    def open(self) -> None:
        """Acquire hardware; called in the component's thread before the first step and again
        after a fault. Raise to retry later with back-off."""

    def close(self) -> None:
        """Release hardware; called after a fault and on stop."""

    def step(self, now: float) -> float:
        """Do one unit of work; return seconds until the next call."""
        raise NotImplementedError

    def status(self) -> dict:
        """A few facts for ``calmtunes status`` (small, JSON-serialisable)."""
        return {}

    # -- health ---------------------------------------------------------------------------------
    def health(self) -> Health:
        age = self.clock() - self._heartbeat if self._running else None
        return Health(self._state, self._detail, age)

    def heartbeat_fresh(self, now: float | None = None) -> bool:
        if not self._running:
            return True  # not running: nothing to hang
        now = self.clock() if now is None else now
        if self._task is not None and not self._hang.is_set() and now <= self._task.due:
            return True  # a task waiting for its due time is asleep, not hung
        return now - self._heartbeat <= self.heartbeat_timeout_s

    def beat(self) -> None:
        self._heartbeat = self.clock()

    def wake(self) -> None:
        """Run the next step now instead of at its scheduled time."""
        self._wake.set()
        if self._task is not None:
            self._scheduler.wake(self._task)

    def inject_hang(self) -> None:
        """Make the thread stop beating as if it hung (fault injection, simulation only)."""
        log.warning("%s: hang injected on request", self.name)
        self._hang.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) != (self._state, self._detail):
            self._state, self._detail = state, detail
            self.hub.publish("health", (self.name, state, detail))

    def degrade(self, detail: str) -> None:
        """Mark the component degraded with a reason (it keeps running)."""
        self._set_state(DEGRADED, detail)

    def mark_ok(self, detail: str = "") -> None:
        self._set_state(OK, detail)

    def disable(self, detail: str) -> None:
        self._set_state(DISABLED, detail)

    # -- the thread (or the scheduler's task) -----------------------------------------------------
    def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` s (or until woken), beating at least once a second; False on stop."""
        deadline = self.clock() + delay
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return True
            if self._wake.wait(min(remaining, 1.0)):
                self._wake.clear()
                return not self._stopping.is_set()
            if self._stopping.is_set():
                return False
            if self._hang.is_set():
                return True
            self.beat()

    def _run(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            if self._hang.is_set():
                self._stopping.wait()  # a hung thread: no more heartbeats
                break
            if delay > 0 and not self._sleep(delay):
                break
            delay = self.run_once()
        self.beat()

    def _scheduled(self, now: float) -> float | None:
        if self._stopping.is_set():
            return None
        if self._hang.is_set():
            return 3600.0  # a hung task: no more steps, no more heartbeats
        self._wake.clear()
        return self.run_once()

    def run_once(self) -> float:
        """One unit of work: open if needed, step, and take any fault; the seconds until the
        next call (the back-off after a fault)."""
        self.beat()
        try:
            if not self._opened:
                self.open()
                self._opened = True
                if self._state == STARTING or self._failures:
                    self.mark_ok()
            delay = self.step(self.clock())
            # a step that marked the part degraded itself (a bad frame, a sensor error it
            # caught) has not recovered it: the fault's count and back-off go on
            if self._failures and self._state != DEGRADED:
                log.info("%s: recovered after %d failure(s)", self.name, self._failures)
                self._failures = 0
                self._last_error = ""
            return delay
        except Exception as exc:
            self._failures += 1
            message = f"{type(exc).__name__}: {exc}"
            if message != self._last_error:
                log.error("%s: %s (retrying)", self.name, message)
                if self._failures == 1 and not isinstance(exc, OSError):
                    log.debug("%s: traceback", self.name, exc_info=True)
            self._last_error = message
            self.degrade(message)
            if self._opened:
                try:
                    self.close()
                except Exception:
                    log.debug("%s: close after fault failed", self.name, exc_info=True)
                self._opened = False
            return min(self.max_backoff_s, 0.5 * 2 ** min(self._failures - 1, 10))
