"""Each listener's record of nights, kept on the device in ``<state_dir>/care/``.

Layout: ``care/`` (0750), ``care/current.json`` (0640: which listener is at this bedside) and
``care/listeners/<id>.json`` (0640: that listener's nights: when, which arm, its reward or why
none). The belief of the bandit is not stored: it is recomputed from the nights and the config at
each session start, so a changed prior or a removed preset never leaves a stale belief behind.

Writes are atomic (:func:`calmtunes.state.write_atomic`: temporary file, fsync, rename, fsync of
the folder): a power cut leaves the old file or the new one. A file that cannot be trusted — not
JSON, the wrong shape, a value out of range, larger than :data:`MAX_FILE_BYTES`, a symbolic link
or not a regular file — is never read as if it were fine and never deleted: it is renamed
``<name>.bad-<UTC time>`` beside it, the error says where it went, and the listener starts
afresh. Nothing here ever leaves the device.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import secrets
import shutil
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from calmtunes.care.arms import parse_arm
from calmtunes.state import TooLarge, move_aside, read_small, refuse_foreign, write_atomic

log = logging.getLogger(__name__)

CARE_DIR = "care"
DIR_MODE = 0o750
FILE_MODE = 0o640
FORMAT = 1
MAX_FILE_BYTES = 1 << 20  # 1 MiB: about 8 000 nights; a bigger file is not ours
MAX_NIGHTS = 1000  # the oldest nights beyond this are dropped (almost three years)
LISTENER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class CareFileError(ValueError):
    """A care file that cannot be trusted; ``kept`` is where it was moved aside, if it was."""

    def __init__(self, message: str, kept: Path | None = None) -> None:
        super().__init__(message)
        self.kept = kept


@dataclass
class Night:
    t: float  # Unix time the session started, s
    arm: str
    reward: float | None = None  # reward units; None: the session gave no reward
    reason: str = ""
    session: int | None = None  # the row in sessions.db


@dataclass
class ListenerRecord:
    listener: str
    created_at: float
    nights: list[Night] = field(default_factory=list)
    problem: str | None = None  # set when the saved file could not be used (not saved)

    def to_json(self) -> bytes:
        data = {"format": FORMAT, "listener": self.listener, "created_at": self.created_at,
                "nights": [asdict(n) for n in self.nights[-MAX_NIGHTS:]]}
        return json.dumps(data, allow_nan=False, indent=1).encode()


def _secure_dir(folder: Path) -> None:
    """``folder`` and any missing parent made :data:`DIR_MODE` whatever the umask; an existing
    one of ours is set to it."""
    if not folder.parent.exists():
        _secure_dir(folder.parent)
    try:
        os.mkdir(folder, DIR_MODE)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{folder} is not a folder")
    refuse_foreign(folder, st)
    if stat.S_IMODE(st.st_mode) != DIR_MODE and st.st_uid == os.geteuid():
        os.chmod(folder, DIR_MODE)


def new_listener_id(now: float | None = None) -> str:
    """``L<yyyymmdd>-<6 hex>``: the date a nurse started it and a random part."""
    stamp = time.strftime("%Y%m%d", time.gmtime(time.time() if now is None else now))
    return f"L{stamp}-{secrets.token_hex(3)}"


def _unreadable(path: Path, exc: OSError) -> CareFileError:
    return CareFileError(f"{path} cannot be opened ({exc.strerror})")


class NotReadable(PermissionError):
    """A care file the daemon's user may not read (left root's 0600 by a ``sudo`` edit): it is
    not damaged, so it is left as it is, and nothing is written over it; the message names the
    fix."""


def _not_readable(path: Path, exc: OSError) -> NotReadable:
    try:
        st = os.stat(path)
        whose = f"owned by uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}"
    except OSError:
        whose = "its folder not open to the daemon"
    return NotReadable(errno.EACCES, (
        f"{path} is not readable by the daemon ({exc.strerror}; {whose}): left as it is. Fix: "
        f"sudo chown -R calmtunes:calmtunes {path.parent} && sudo chmod 0640 {path}; until "
        "then the personaliser plays the default preset and learns nothing"), str(path))


class NewerFormat(CareFileError):
    """A record written by a newer calmtunes (after a rollback): left as it is."""


def _read_json(path: Path) -> Any:
    """The JSON in ``path``; :class:`CareFileError` for anything but a small regular file
    holding strict JSON. FileNotFoundError passes through."""
    try:
        data = read_small(path, MAX_FILE_BYTES)
    except (FileNotFoundError, PermissionError):  # absent, or not ours to read: the caller's
        raise
    except TooLarge:
        raise CareFileError(f"{path} is larger than {MAX_FILE_BYTES} bytes") from None
    except ValueError:  # a folder (which opens read-only), a FIFO, a device
        kind = "a folder" if os.path.isdir(path) else "not a regular file"
        raise CareFileError(f"{path} is {kind}, not a care file") from None
    except OSError as exc:
        if os.path.islink(path):  # O_NOFOLLOW: a link is never followed
            raise CareFileError(f"{path} is a symbolic link, not a file") from None
        raise CareFileError(f"{path} cannot be opened ({exc.strerror})") from None

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CareFileError(f"{path} is not valid JSON ({str(exc)[:120]})") from None


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_record(path: Path, data: Any, listener: str) -> ListenerRecord:
    def bad(what: str) -> CareFileError:
        return CareFileError(f"{path}: {what}")

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    fmt = data.get("format")
    if _number(fmt) and fmt > FORMAT:
        raise NewerFormat(f"{path} was written by a newer calmtunes (format {fmt!r}; this one "
                          f"reads {FORMAT}): left as it is for that release. Until it is back "
                          "the personaliser plays the default preset and learns nothing")
    if fmt != FORMAT:
        raise bad(f"format {fmt!r} is not {FORMAT} (not a care record this calmtunes wrote)")
    if data.get("listener") != listener:
        raise bad(f"holds listener {data.get('listener')!r}, not {listener!r}")
    if not _number(data.get("created_at")):
        raise bad("created_at is not a time")
    nights_raw = data.get("nights")
    if not isinstance(nights_raw, list):
        raise bad("nights is not a list")
    nights, skipped = [], []
    for i, n in enumerate(nights_raw):
        try:  # one bad night is left out, not the listener's whole record
            nights.append(_check_night(n))
        except ValueError as exc:
            skipped.append(f"nights[{i}] {exc}")
    record = ListenerRecord(listener, float(data["created_at"]), nights)
    if skipped:
        record.problem = f"{path}: {len(skipped)} night(s) left out ({'; '.join(skipped)[:300]})"
    return record


def _check_night(n: Any) -> Night:
    """One night of a record; ValueError saying what is wrong. Keys this release does not know
    (a newer one's) are ignored."""
    if not isinstance(n, dict):
        raise ValueError("is not a night record")
    if not _number(n.get("t")) or not isinstance(n.get("arm"), str) or not n["arm"]:
        raise ValueError("needs a time t and an arm")
    try:  # a night the personaliser cannot read would turn it off for every later session
        parse_arm(n["arm"])
    except ValueError as exc:
        raise ValueError(f"has no arm ({str(exc)[:160]})") from None
    reward = n.get("reward")
    if reward is not None and not (_number(reward) and abs(reward) <= 100.0):
        raise ValueError(f"reward {reward!r} is not a number within ±100")
    session = n.get("session")
    if session is not None and (not isinstance(session, int) or isinstance(session, bool)):
        raise ValueError("session is not a session number")
    reason = n.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError("reason is not text")
    return Night(float(n["t"]), n["arm"], None if reward is None else float(reward),
                 reason[:300], session)


class CareStore:
    """The care folder of one device."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(state_dir) / CARE_DIR
        self.listeners_dir = self.dir / "listeners"
        self.current_path = self.dir / "current.json"

    def _ensure(self) -> None:
        if self.dir.parent.is_dir():  # the state folder: another user's, or everyone's, is not
            refuse_foreign(self.dir.parent, os.stat(self.dir.parent))
        _secure_dir(self.dir)
        _secure_dir(self.listeners_dir)

    def _refuse_foreign_folders(self) -> None:
        """NotOurs (an OSError) when the state folder or the care folders are another user's or
        may be written by every user: what is in them is not the daemon's to believe (a file
        planted there would steer the choice of music), as it is not the place to write."""
        for folder in (self.dir.parent, self.dir, self.listeners_dir):
            try:
                st = os.stat(folder)
            except FileNotFoundError:
                continue
            refuse_foreign(folder, st)

    def _set_aside(self, path: Path, error: CareFileError) -> CareFileError:
        try:
            kept = move_aside(path)
        except OSError as exc:
            log.error("care: %s; could not move it aside (%s)", error, exc)
            return CareFileError(f"{error} (left in place: {exc.strerror})")
        log.error("care: %s; kept as %s, starting afresh", error, kept)
        return CareFileError(f"{error}; kept as {kept.name}, starting afresh", kept)

    def path_for(self, listener: str) -> Path:
        if not isinstance(listener, str) or not LISTENER_ID.match(listener):
            raise ValueError(f"listener id {listener!r} is not letters, digits, '-' and '_' "
                             "(at most 64)")
        return self.listeners_dir / f"{listener}.json"

    # -- which listener ------------------------------------------------------------------------
    def current(self, now: float | None = None) -> tuple[str, str | None]:
        """The listener at this bedside (a new one if none is recorded) and a problem met;
        the daemon's own reading: NotOurs when the folders are not safely its own."""
        self._refuse_foreign_folders()
        problem = None
        try:
            data = _read_json(self.current_path)
            listener = data.get("listener") if isinstance(data, dict) else None
            if not isinstance(listener, str) or not LISTENER_ID.match(listener):
                raise CareFileError(f"{self.current_path}: no valid listener id in it")
            return listener, None
        except FileNotFoundError:
            pass
        except PermissionError as exc:  # not damaged: left alone, and no new listener over it
            raise _not_readable(self.current_path, exc) from None
        except CareFileError as exc:
            problem = str(self._set_aside(self.current_path, exc))
        return self.new_listener(now), problem

    def peek_current(self) -> str | None:
        """The current listener without creating or moving anything (None if unknown);
        PermissionError when the care folder is not the caller's to read."""
        try:
            data = _read_json(self.current_path)
        except (FileNotFoundError, CareFileError):
            return None
        listener = data.get("listener") if isinstance(data, dict) else None
        return listener if isinstance(listener, str) and LISTENER_ID.match(listener) else None

    def new_listener(self, now: float | None = None) -> str:
        """Start a new listener (a fresh belief) and make it the current one."""
        now = time.time() if now is None else now
        self._ensure()
        listener = new_listener_id(now)
        self.save(ListenerRecord(listener, now))
        write_atomic(self.current_path, json.dumps({"listener": listener}).encode(), FILE_MODE)
        log.info("care: new listener %s", listener)
        return listener

    def forget(self) -> int:
        """Delete every listener's record (their nights and what was learnt from them), the
        damaged ones kept aside included, and which listener is current; the number of
        listeners forgotten. The next session starts a new listener."""
        gone = 0
        if self.listeners_dir.is_dir():
            for path in sorted(self.listeners_dir.iterdir()):
                if path.is_file() or path.is_symlink():
                    path.unlink()
                    gone += path.name.endswith(".json")
        for path in (self.current_path, *self.dir.glob("current.json.bad-*")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return gone

    # -- one listener's nights -------------------------------------------------------------------
    def load(self, listener: str, now: float | None = None, *,
             set_aside: bool = True) -> ListenerRecord:
        """The listener's record; a fresh one (with ``problem`` set) if the file was bad, which
        is moved aside unless ``set_aside`` is False (readers such as the report)."""
        path = self.path_for(listener)
        now = time.time() if now is None else now
        try:
            record = _check_record(path, _read_json(path), listener)
        except FileNotFoundError:
            return ListenerRecord(listener, now)
        except (NewerFormat, PermissionError) as exc:  # not damaged: never moved or written over
            if isinstance(exc, PermissionError):
                exc = _not_readable(path, exc)
            if set_aside:
                raise exc from None
            return ListenerRecord(listener, now, problem=str(exc))
        except CareFileError as exc:
            problem = self._set_aside(path, exc) if set_aside else exc
            return ListenerRecord(listener, now, problem=str(problem))
        if record.problem and set_aside:  # some nights left out: the file as it was is kept
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            kept = path.with_name(f"{path.name}.bad-{stamp}")
            try:
                shutil.copy2(path, kept)
                self.save(record)  # the good nights, so the next read is clean
                record.problem += f"; the file as it was is kept as {kept.name}"
            except OSError as exc:
                record.problem += f"; could not keep a copy ({exc.strerror})"
            log.error("care: %s", record.problem)
        return record

    def save(self, record: ListenerRecord) -> None:
        self._ensure()
        write_atomic(self.path_for(record.listener), record.to_json(), FILE_MODE)

    def add_night(self, listener: str, night: Night) -> ListenerRecord:
        record = self.load(listener, night.t)
        record.nights.append(night)
        del record.nights[:-MAX_NIGHTS]
        self.save(record)
        return record
