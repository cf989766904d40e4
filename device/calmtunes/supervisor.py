"""The supervisor: owns start, stop, health and systemd's watchdog.

Components start in dependency order and stop in reverse. A component that fails to start
degrades the device instead of killing it. The watchdog is pinged only while every running
component's heartbeat is fresh: a hung thread stops the pings and systemd restarts us.

Time comes from the injected clock; with a :class:`~calmtunes.scheduler.Scheduler` (a virtual
clock) components run as the scheduler's tasks instead of on threads of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from calmtunes.clock import SYSTEM
from calmtunes.component import DISABLED, FAILED, Component
from calmtunes.notify import Notifier

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, components: list[Component], notifier: Notifier | None = None,
                 clock: Callable[[], float] = SYSTEM, scheduler: Any = None) -> None:
        self.components = list(components)
        self.notifier = notifier or Notifier({})
        self.clock = clock
        self.scheduler = scheduler
        self._last_ping = 0.0
        self._last_status = ""
        self._watchdog_ok = True

    def by_name(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    def start(self) -> None:
        for c in self.components:
            try:
                c.start(self.scheduler)
            except Exception as exc:
                log.exception("%s failed to start; carrying on without it", c.name)
                c._set_state(FAILED, f"start failed: {exc}")

    def add(self, component: Component) -> None:
        """Start one more component (after the ones already running)."""
        if component not in self.components:
            self.components.append(component)
        try:
            component.start(self.scheduler)
        except Exception as exc:
            log.exception("%s failed to start; carrying on without it", component.name)
            component._set_state(FAILED, f"start failed: {exc}")

    def stop(self, timeout: float = 2.0) -> None:
        for c in reversed(self.components):
            try:
                c.stop(timeout)
            except Exception:
                log.exception("%s failed to stop", c.name)

    def stale(self, now: float | None = None) -> list[str]:
        """Names of running components whose heartbeat is not fresh (hung)."""
        return [c.name for c in self.components if not c.heartbeat_fresh(now)]

    def status_line(self) -> str:
        parts = []
        for c in self.components:
            h = c.health()
            if h.state == DISABLED:
                continue
            detail = f" ({h.detail})" if h.detail and h.state != "ok" else ""
            parts.append(f"{c.name} {h.state}{detail}")
        return "; ".join(parts)

    def tick(self, now: float | None = None, extra_status: str = "") -> None:
        """Called about every 0.5 s by the daemon's main loop."""
        now = self.clock() if now is None else now
        stale = self.stale(now)
        if stale:
            if self._watchdog_ok:
                log.error("component(s) not responding: %s; withholding the watchdog ping",
                          ", ".join(stale))
            self._watchdog_ok = False
        else:
            if not self._watchdog_ok:
                log.info("all components responding again")
            self._watchdog_ok = True
            interval = self.notifier.watchdog_interval_s
            if interval is not None and now - self._last_ping >= interval:
                self.notifier.watchdog()
                self._last_ping = now
        status = extra_status + ("; " if extra_status else "") + self.status_line()
        if stale:
            status = f"NOT RESPONDING: {', '.join(stale)}; " + status
        if status != self._last_status:
            self.notifier.status(status[:400])
            self._last_status = status
