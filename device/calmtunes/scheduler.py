"""Runs the daemon's work on a :class:`~calmtunes.clock.VirtualClock`, in one thread, in order.

On the device every component has its own thread and waits on the system clock. On the virtual
clock the same work is a set of tasks, each a function ``fn(now) -> delay`` (seconds until it
wants to run again, or None to end): the scheduler moves the clock to the earliest due time and
runs the task due there, ties broken by the order the tasks were added, so the same inputs give
the same run every time (the same samples, the same records). A task may be woken early
(:meth:`Scheduler.wake`), as a component's thread is woken by an event.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from calmtunes.clock import VirtualClock

log = logging.getLogger(__name__)

TaskFn = Callable[[float], "float | None"]


@dataclass(eq=False)
class Task:
    name: str
    fn: TaskFn
    order: int
    due: float = 0.0
    ended: bool = False
    version: int = field(default=0, repr=False)


class Scheduler:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, int, Task]] = []
        self._order = itertools.count()
        self.steps = 0
        #: seconds spent in each task, by name (one thread, so its share of the CPU: what each part
        #: costs, ``scripts/bench_loop``); perf_counter, as thread_time is a system call here
        self.cpu_s: dict[str, float] = defaultdict(float)

    def add(self, name: str, fn: TaskFn, delay: float = 0.0) -> Task:
        task = Task(name, fn, next(self._order), self.clock.monotonic() + max(0.0, delay))
        self._push(task)
        return task

    def _push(self, task: Task) -> None:
        task.version += 1
        heapq.heappush(self._heap, (task.due, task.order, task.version, task))

    def wake(self, task: Task) -> None:
        """Run ``task`` at the present time instead of when it asked."""
        now = self.clock.monotonic()
        if not task.ended and task.due > now:
            task.due = now
            self._push(task)

    def end(self, task: Task) -> None:
        task.ended = True

    @property
    def next_due(self) -> float | None:
        while self._heap:
            due, _, version, task = self._heap[0]
            if task.ended or version != task.version:
                heapq.heappop(self._heap)
                continue
            return due
        return None

    def run_once(self) -> bool:
        """Run the task due first (moving the clock there); False when no task is left."""
        if self.next_due is None:
            return False
        _, _, _, task = heapq.heappop(self._heap)
        self.clock.advance_to(task.due)
        now = self.clock.monotonic()
        started = time.perf_counter()
        delay = task.fn(now)
        self.cpu_s[task.name] += time.perf_counter() - started
        self.steps += 1
        if task.ended or delay is None:
            task.ended = True
            return True
        # A task that asks for no delay runs again at once, after the others due now.
        task.due = max(now, self.clock.monotonic()) + max(0.0, float(delay))
        self._push(task)
        return True

    def run_until(self, t: float, stop: Callable[[], bool] = lambda: False) -> None:
        """Run every task due before ``t`` (clock time) and move the clock to ``t``; or stop
        where ``stop()`` first says so (the clock stays there)."""
        while True:
            if stop():
                return
            due = self.next_due
            if due is None or due >= t:
                break
            self.run_once()
        self.clock.advance_to(t)
