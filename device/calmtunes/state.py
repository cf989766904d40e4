"""The small state that survives power cuts: last preset, volume, paused.

Written atomically (temporary file in the same folder, fsync, rename, fsync of the folder), so
pulling the plug at any instant leaves either the old file or the new one, never a torn one. A
missing or unreadable file gives the defaults with a warning; it never stops the music. A file that
holds no state (garbage, cut short, the wrong shape) or is too large to be one is first moved aside
to ``state.json.bad-<UTC time>`` (the three newest are kept), so nothing a technician may want to
look at is written over. Only a regular file of at most :data:`MAX_STATE_BYTES` is read, without
following a symbolic link or waiting on a FIFO, so no file in its place can hang the start or fill
the memory. A value of the wrong type is left out (with a warning) and the default kept; what the
values may be is checked by :func:`calmtunes.commands.checked_state`. Temporary files a kill -9
left behind (``.state.json.*``) are removed at load. Only strict JSON is written (no NaN or
Infinity). A save that fails is tried again at the next one, and said once until the reason changes
or a save works again (the loop saves four times a second).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from calmtunes.commands import quote

log = logging.getLogger(__name__)

MAX_STATE_BYTES = 64 * 1024  # the state file holds about 100 bytes; a larger one is not ours
BAD_COPIES = 3  # unreadable state files kept aside (state.json.bad-<time>), newest first


class NotOurs(PermissionError):
    """A folder or file for the listeners' records that another user owns, or any user may
    write: the records are not kept there (see :func:`refuse_foreign`)."""


def refuse_foreign(path: Path, st: os.stat_result) -> None:
    """Raise :class:`NotOurs` when ``path`` (``st`` its lstat) belongs to another user (unless
    this process is root) or may be written by every user: the listeners' health records are
    kept only where the daemon's user, and its group for reading, can reach them."""
    me = os.geteuid()
    if me != 0 and st.st_uid != me:
        raise NotOurs(errno.EACCES, f"{path} belongs to uid {st.st_uid}, not to this user (uid "
                      f"{me}): the listeners' records are kept only in the daemon's own folder; "
                      f"give it to the daemon's user (chown) or set device.state_dir to another "
                      f"folder")
    if stat.S_IMODE(st.st_mode) & 0o002:
        raise NotOurs(errno.EACCES, f"{path} may be written by every user "
                      f"({stat.S_IMODE(st.st_mode):04o}): the listeners' records are not kept "
                      f"there; chmod o-w it or set device.state_dir to another folder")


class TooLarge(ValueError):
    """A regular file larger than :func:`read_small` takes."""


def read_small(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file ``path`` if it holds at most ``limit`` bytes.

    Never blocks (a FIFO is opened with ``O_NONBLOCK`` and refused), never follows a symbolic
    link, never reads more than ``limit`` + 1 bytes. FileNotFoundError passes through; any other
    problem is an OSError or a ValueError saying what the path is instead."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a folder obscurely
        os.close(fd)
        raise ValueError("not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"larger than {limit} bytes")
    return data


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


def move_aside(path: Path, keep: int | None = None) -> Path:
    """Rename a file that could not be used to ``<name>.bad-<UTC time>`` beside it, so what a
    technician may want to see is not written over; with ``keep``, only that many such copies
    (the newest) stay. The new path; OSError if the rename fails."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = path.with_name(f"{path.name}.bad-{stamp}")
    os.replace(path, kept)
    if keep is not None:
        for old in sorted(path.parent.glob(f"{path.name}.bad-*"))[:-keep]:
            try:
                old.unlink()
            except OSError:
                pass  # an older copy that cannot go stays; the newest is kept all the same
    return kept


class StateStore:
    """``load()`` returns the saved mapping merged over ``defaults``; ``save()`` persists it."""

    def __init__(self, path: str | os.PathLike[str], defaults: dict[str, Any]) -> None:
        self.path = Path(path)
        self.defaults = dict(defaults)
        self._last: dict[str, Any] | None = None
        self._save_problem: str | None = None  # why the last save failed, once said

    def load(self) -> dict[str, Any]:
        self.remove_stale_temporaries()
        state = dict(self.defaults)
        clean = True  # False: the file needs rewriting at the next save
        try:
            try:
                data = read_small(self.path, MAX_STATE_BYTES)
            except TooLarge as exc:  # not read, but a save would rename the new state over it
                raise TooLarge(f"{exc}{self._set_aside()}") from exc
            except ValueError as exc:  # a folder (no save could ever replace it), a FIFO …
                kind = "a folder" if self.path.is_dir() else str(exc)
                raise ValueError(f"{kind}, not a state file{self._set_aside()}") from exc
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                # O_NOFOLLOW: a symbolic link is never followed, and is kept aside for a look
                raise ValueError(f"a symbolic link, never followed{self._set_aside()}") from exc
            try:
                saved = json.loads(data.decode("utf-8"))
                if not isinstance(saved, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"{exc}{self._set_aside()}") from exc
            for key, value in saved.items():
                if key not in state:
                    continue
                if _same_type(value, state[key]):
                    state[key] = value
                else:
                    clean = False
                    log.warning("state file %s: %s is %s, not a %s; keeping %r", self.path,
                                key, quote(value), type(state[key]).__name__, state[key])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, RecursionError) as exc:
            clean = False
            log.warning(
                "state file %s is unreadable (%s); starting from defaults and rewriting it",
                self.path, exc,
            )
        self._last = dict(state) if clean else None
        return state

    def _set_aside(self) -> str:
        """:func:`move_aside` for a file that was read but is not a state (garbage, cut short,
        the wrong shape); what to add to the warning: where it went, or why it could not."""
        try:
            return f"; kept as {move_aside(self.path, BAD_COPIES).name}"
        except OSError as exc:
            return f"; could not keep it aside ({exc.strerror})"

    def save(self, state: dict[str, Any]) -> None:
        if state == self._last:
            return
        try:
            write_atomic(self.path, json.dumps(state, sort_keys=True, allow_nan=False).encode())
        except (OSError, ValueError) as exc:
            why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
            if why != self._save_problem:
                log.warning("cannot save state to %s (%s); the music goes on, and saving is "
                            "tried again without saying so until the reason changes", self.path,
                            why)
                self._save_problem = why
            return
        self._last = dict(state)
        if self._save_problem is not None:
            log.info("state saved to %s again", self.path)
            self._save_problem = None

    def remove_stale_temporaries(self) -> int:
        """Delete ``.state.json.*`` files that a write cut short (kill -9) left; how many."""
        removed = 0
        try:
            stale = list(self.path.parent.glob(f".{self.path.name}.*"))
        except OSError:
            return 0
        for tmp in stale:
            try:
                tmp.unlink()
                removed += 1
            except OSError as exc:
                log.warning("cannot remove the stale temporary file %s (%s)", tmp, exc)
        if removed:
            log.info("removed %d stale temporary state file(s) from %s", removed,
                     self.path.parent)
        return removed


def _same_type(value: Any, default: Any) -> bool:
    """JSON's 3 is as good as 3.0 for a float; a bool is never a number."""
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return type(value) is type(default)
