"""The hub: where components publish what they know and send what they are asked.

A component publishes its latest record on a topic (``"pulse"``, ``"scene"``, ``"controls"``…)
and anyone may read the latest value or subscribe. Commands (preset, volume, play/pause…) are
published on the ``"command"`` topic as :class:`Command`. Subscribers run in the publisher's thread
and must return quickly; an exception in one is logged and does not reach the publisher.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    """Something a person asked for: ``name`` is e.g. ``"preset"``, ``"volume_up"``."""

    name: str
    arg: Any = None
    source: str = "panel"


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}
        self._subscribers: dict[str, list[Callable[[Any], None]]] = defaultdict(list)

    def publish(self, topic: str, value: Any) -> None:
        with self._lock:
            self._latest[topic] = value
            subscribers = list(self._subscribers.get(topic, ()))
        for fn in subscribers:
            try:
                fn(value)
            except Exception:
                log.exception("subscriber %r of %r failed", fn, topic)

    def latest(self, topic: str, default: Any = None) -> Any:
        with self._lock:
            return self._latest.get(topic, default)

    def subscribe(self, topic: str, fn: Callable[[Any], None]) -> None:
        with self._lock:
            self._subscribers[topic].append(fn)

    def unsubscribe(self, topic: str, fn: Callable[[Any], None]) -> None:
        with self._lock:
            if fn in self._subscribers.get(topic, ()):
                self._subscribers[topic].remove(fn)

    def command(self, name: str, arg: Any = None, source: str = "panel") -> None:
        self.publish("command", Command(name, arg, source))
