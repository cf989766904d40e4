"""The small state that survives power cuts: last preset, volume, paused.

Written atomically (temporary file in the same folder, fsync, rename, fsync of the folder), so
pulling the plug at any instant leaves either the old file or the new one, never a torn one. A
missing or unreadable file gives the defaults with a warning; it never stops the music.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically; ``mode`` (e.g. 0o640) instead of mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    """``load()`` returns the saved mapping merged over ``defaults``; ``save()`` persists it."""

    def __init__(self, path: str | os.PathLike[str], defaults: dict[str, Any]) -> None:
        self.path = Path(path)
        self.defaults = dict(defaults)
        self._last: dict[str, Any] | None = None

    def load(self) -> dict[str, Any]:
        state = dict(self.defaults)
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
            for key, value in saved.items():
                if key in state and type(value) is type(state[key]):
                    state[key] = value
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning(
                "state file %s is unreadable (%s); starting from defaults and rewriting it",
                self.path, exc,
            )
        self._last = dict(state)
        return state

    def save(self, state: dict[str, Any]) -> None:
        if state == self._last:
            return
        try:
            write_atomic(self.path, json.dumps(state, sort_keys=True).encode())
            self._last = dict(state)
        except OSError as exc:
            log.warning("cannot save state to %s (%s); the music goes on", self.path, exc)
