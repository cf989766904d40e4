"""Session summaries, kept locally in SQLite: what a clinician may look at over SSH.

A session runs from play to pause (or sleep timer, stop, shutdown). Per session a summary is
kept: start and end (Unix time, s), the presets used in order, and heart rate (bpm), RMSSD (ms),
breathing rate (breaths/min) and stress index (0–1) averaged over the first and the last minute of
usable pulse readings, with their trend (last minus first; only when those minutes lie at least
:data:`MIN_TREND_SPAN_S` apart). Each figure's first minute begins where it is first given: the
stress index needs three minutes of pulse before its first value. Raw PPG samples, beat times
and camera images never reach this module: it is fed the once-a-second
:class:`~calmtunes.pulse.reading.PulseReading` only.

With ``sessions.trace`` (the default) a session's course is kept too, for the clinician's report
(``calmtunes report``): one row in ``session_points`` per 10 s of session time holding the means
of that step's usable readings, the share of readings that were usable and their mean signal
quality, and the music's tempo, paced breathing rate, volume, preset and the camera's scene
label (:mod:`calmtunes.care.trace`). They are written with the summary at most every
:data:`POINTS_EVERY_S` (and at the session's end), so a power cut may lose the last half hour of
a session's course (never its summary).

Personal care (:mod:`calmtunes.care`): each session also records the ``preset`` it played most,
the ``listener`` and the ``arm`` the personaliser chose, and the measured response
(:data:`calmtunes.care.reward.RESPONSE_COLUMNS`: baseline and minutes 5–15 heart rate, RMSSD and
breathing, the ``reward`` or, in ``reward_reason``, why there is none). The caller gives them
with :meth:`SessionRecorder.note`.

Who may read them: the daemon's user reads and writes, its group (``calmtunes``: the technicians,
who also use the control socket) reads, nobody else. The code makes that true whatever the umask:
``device.state_dir`` is created :data:`DIR_MODE` (0750; an existing one is tightened to at most
that), ``sessions.db`` :data:`DB_MODE` (0640, set with ``fchmod`` at every start); SQLite gives
its ``-wal``, ``-shm`` and ``-journal`` files the database's mode. The systemd unit agrees
(``StateDirectoryMode=0750``; its ``UMask=0077`` keeps everything else, such as ``state.json``,
private to the daemon).
``calmtunes sessions`` opens the file read-only (``?mode=ro``) and never writes to it or its
folder; ``--forget`` needs the daemon's user.

Journal: WAL while the daemon runs, a rollback journal (``DELETE``) at rest. In WAL mode with
``synchronous=FULL`` a commit of one changed session is one 4 KiB frame appended to ``-wal`` and
one ``fdatasync``; a rollback journal costs about 17 KiB and 3–5 syncs for the same commit (the old
page to the journal, the new one and the header page to the file, syncs of both and of the
folder; measured with strace). But a WAL file can be read by someone who may not write its
``-shm`` only while ``-wal`` and ``-shm`` exist, and they vanish when the last connection closes.
So the daemon switches the file to WAL when it opens it and back to ``DELETE`` when it closes it:
a reader in the group finds either a live WAL (it reads ``-shm`` read-only, which SQLite ≥ 3.22
allows) or a plain file that needs nothing but read access. A file left in WAL mode without its
``-wal`` (an older version, or a stop that could not switch back) is read with ``immutable=1``:
with no ``-wal`` there is nothing pending. A power cut never corrupts the file and loses no commit.

SD-card wear: readings are summarised in memory; a running session is written when it starts and
ends and in between at most every :data:`FLUSH_EVERY_S` when its summary changed (at least every
:data:`IDLE_FLUSH_EVERY_S`, so its last known time stays near), never while nothing plays. A power
cut loses at most the last :data:`FLUSH_EVERY_S` of a session's summary. ``scripts/bench_wear``
measured, for a session running round the clock: 12 commits and 12 syncs an hour, 1.2 MB a day
handed to ``write``, about 8 MB a day of 4 KiB pages dirtied (the ``-wal`` frame and the ``-shm``
index of each commit); the version that wrote every 30 s: 121 an hour, 12 MB, 66 MB. The trace
(``sessions.trace``) adds no commit: its points ride on a summary commit every
:data:`POINTS_EVERY_S`, which raises the bytes handed to ``write`` from 1.2 to 2.4 MB a day (with
every summary commit instead: 4.6 MB); the daemon in simulation over 33 min dirtied pages at
8.3 MB a day (7.1 without the trace; 11.2 with points at every summary commit, over the 10 MB
goal).

Crash record: each daemon start is a row in ``boots``. At the next start a session or a start left
open (by a crash, a watchdog kill or a power cut) is closed as ``ended_by = 'unclean'`` at its last
known time (``last_seen_at``: the last write), and the unclean stop is counted
(:meth:`SessionRecorder.restarts_unclean`, shown by ``calmtunes status`` and ``sessions``).

Sessions and starts older than ``sessions.retention_days`` are deleted at start and hourly.

A file changed or damaged outside calmtunes never stops the daemon or a report. SQLite keeps
whatever is written, whatever a column's type: a value not of its column's kind (text for a
time, a time past 2106) reads as missing, and a session without a usable start is left out of
listings and counted. A file SQLite cannot read as a database is renamed
``sessions.db.bad-<UTC time>`` (never deleted) and a fresh one begun; a folder that cannot be
written disables the records. Either way the daemon logs it, ``calmtunes status`` shows it on a
``records`` line, and the music goes on.
"""

from __future__ import annotations

import collections
import csv
import errno
import logging
import math
import os
import shlex
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import IO, Any

from calmtunes.care.reward import RESPONSE_COLUMNS
from calmtunes.care.trace import POINT_FIELDS, SessionTrace, TracePoint
from calmtunes.config import Config
from calmtunes.music.conductor import check_reading
from calmtunes.state import NotOurs, move_aside, refuse_foreign

log = logging.getLogger(__name__)

DB_NAME = "sessions.db"
DB_MODE = 0o640  # the daemon's user reads and writes, the technician group reads
DIR_MODE = 0o750  # the state folder: the same people may enter it
SIDE_FILES = ("-journal", "-wal", "-shm")  # SQLite's companions of the database file
RUNNING_JOURNAL = "wal"  # while the daemon has the file open
RESTING_JOURNAL = "delete"  # after it closed it: readable with read access alone
WAL_AUTOCHECKPOINT_PAGES = 64  # 256 KiB of -wal at most: it is rewound, not grown, after that
BUSY_TIMEOUT_S = 1.0  # s a write waits for a reader; a failed flush is retried at the next one
STOP_BUSY_TIMEOUT_S = 2.5  # s the stop's last write waits (within the unit's TimeoutStopSec=8s)
OPEN_RETRY_S = 30.0  # s between tries to open records another program held locked at start
WINDOW_S = 60.0  # s: the "first minute" and the "last minute"
MIN_TREND_SPAN_S = 120.0  # s between the first and last usable readings for a trend
FLUSH_EVERY_S = 300.0  # s: a running session whose summary changed is written at most this often
IDLE_FLUSH_EVERY_S = 1800.0  # s: ... and at least this often, to keep its last known time
# s: the trace's points go with the summary at most this often (and at the end): each commit
# rewrites whole 4 KiB pages, so few large batches wear the card far less than many small ones
POINTS_EVERY_S = 1800.0
PRUNE_EVERY_S = 3600.0
RETRY_EVERY_S = 60.0  # s: a session's start or end the file would not take is retried this often
DAY_S = 86400.0
FIGURES = ("hr", "rmssd", "breathing", "stress")
_READING_FIELD = {"hr": "hr_bpm", "rmssd": "rmssd_ms", "breathing": "breathing_rate",
                  "stress": "stress"}
ENDED_UNCLEAN = "unclean"
_CARE_COLUMNS = {"preset": "TEXT", "listener": "TEXT", "arm": "TEXT", "chosen_by": "TEXT",
                 **{c: ("TEXT" if c == "reward_reason" else "REAL") for c in RESPONSE_COLUMNS}}
COLUMNS = ("id", "started_at", "ended_at", "duration_s", "ended_by", "presets", "readings",
           *(f"{f}_{w}" for f in FIGURES for w in ("start", "end", "trend")), "last_seen_at",
           *_CARE_COLUMNS)

# Columns added since the first release, with their type: added to an older file at start.
_ADDED_COLUMNS = {"sessions": {"last_seen_at": "REAL", **_CARE_COLUMNS}}
_POINT_TYPES = {"t_s": "REAL NOT NULL", "preset": "TEXT", "scene": "TEXT"}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration_s REAL,
    ended_by TEXT,
    presets TEXT NOT NULL,
    readings INTEGER NOT NULL DEFAULT 0,
    {", ".join(f"{f}_{w} REAL" for f in FIGURES for w in ("start", "end", "trend"))},
    last_seen_at REAL
);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at);
CREATE TABLE IF NOT EXISTS boots (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    ended_by TEXT,
    found_unclean_at REAL
);
CREATE TABLE IF NOT EXISTS session_points (
    session_id INTEGER NOT NULL,
    {", ".join(f"{c} {_POINT_TYPES.get(c, 'REAL')}" for c in POINT_FIELDS)},
    PRIMARY KEY (session_id, t_s)
) WITHOUT ROWID;
"""


def _secure_dir(folder: Path) -> None:
    """Make ``folder`` :data:`DIR_MODE` if missing; take rights beyond that from an existing one
    of ours (a folder made by an older version under umask 022 was 0755)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(folder, DIR_MODE)
        os.chmod(folder, DIR_MODE)  # mkdir's mode passes through the umask; chmod's does not
        return
    except FileExistsError:
        pass
    st = os.stat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{folder} is not a folder")
    refuse_foreign(folder, st)
    mode = stat.S_IMODE(st.st_mode)
    if mode & ~DIR_MODE and st.st_uid == os.geteuid():
        os.chmod(folder, mode & DIR_MODE)
        log.info("sessions: %s was %04o, now %04o", folder, mode, mode & DIR_MODE)


def _secure_file(path: Path) -> None:
    """Create ``path`` :data:`DB_MODE` whatever the umask, or set an existing one of ours (and
    SQLite's companion files) to it.

    SQLite opens the database and its companions by name and follows a symbolic link: one in
    their place would have the listener's records written wherever it points, outside the state
    folder. Anything there but a regular file is refused (OSError saying what it is), and left
    in place for a technician to see."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     DB_MODE)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, DB_MODE)
        finally:
            os.close(fd)
    for p in (path, *(path.with_name(path.name + s) for s in SIDE_FILES)):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{p} is {_kind(st.st_mode)}, not a regular file; move it out of "
                          f"{p.parent} for the records to be kept there again")
        refuse_foreign(p, st)
        if stat.S_IMODE(st.st_mode) != DB_MODE and st.st_uid == os.geteuid():
            os.chmod(p, DB_MODE)
            log.info("sessions: %s was %04o, now %04o", p, stat.S_IMODE(st.st_mode), DB_MODE)


class NotRegular(OSError):
    """The records' path holds something other than a regular file."""


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    for test, what in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "a device"


def _table_columns(db: sqlite3.Connection) -> dict[str, list[str]]:
    out = {}
    for table in ("sessions", "boots", "session_points"):
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        if cols:
            out[table] = cols
    return out


# SQLite keeps whatever was written, whatever a column's declared type: a file edited by hand or
# damaged can hold text where a time belongs. Every value read goes through these, so a bad one
# reads as missing (None) — shown as "–" — never as a crash of the daemon or of a report.
LATEST_TIME = 4294967295.0  # Unix s: 2106-02-07, where 32-bit Unix time ends; no record is later


def _real(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _time(v: Any) -> float | None:
    t = _real(v)
    return t if t is not None and 0.0 <= t <= LATEST_TIME else None


def _integer(v: Any) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    r = _real(v)
    return int(r) if r is not None else None


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return None


_TIMES = ("started_at", "ended_at", "last_seen_at")
_CLEAN = {c: (_time if c in _TIMES else _integer if c in ("id", "readings") else
              _text if c in ("ended_by", "presets") or _CARE_COLUMNS.get(c) == "TEXT" else _real)
          for c in COLUMNS}
_POINT_CLEAN = {c: (_text if _POINT_TYPES.get(c, "REAL") == "TEXT" else _real)
                for c in POINT_FIELDS}


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """A session row with every value of its column's kind, or None where it is not."""
    return {k: (_CLEAN[k](v) if k in _CLEAN else v) for k, v in row.items()}


class SessionStore:
    """The SQLite file: write summaries, list, export, forget, prune; count unclean stops.

    ``readonly=True`` (``calmtunes sessions``) opens the file with ``?mode=ro``: it creates,
    migrates and changes nothing, and reads an older file as it is."""

    def __init__(self, path: str | Path, retention_days: int = 90, *,
                 readonly: bool = False) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self.readonly = readonly
        self.unreadable = 0  # sessions the last rows() left out: no usable start time
        self._lock = threading.Lock()
        if readonly:
            self._db, self._columns = self._open_readonly()
            return
        _secure_dir(self.path.parent)
        _secure_file(self.path)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_S)
        try:
            mode = self._db.execute(f"PRAGMA journal_mode={RUNNING_JOURNAL}").fetchone()[0]
            if mode != RUNNING_JOURNAL:
                log.warning("sessions: %s stays in %s mode", self.path, mode)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            existed = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                       "name='sessions'").fetchone() is not None
            self._db.executescript(_SCHEMA)
            self._migrate(existed)
            self._db.commit()
        except BaseException:
            self._db.close()
            raise
        self._columns = _table_columns(self._db)

    @classmethod
    def for_config(cls, config: Config, *, readonly: bool = False) -> SessionStore:
        return cls(Path(config.device.state_dir) / DB_NAME, config.sessions.retention_days,
                   readonly=readonly)

    def _open_readonly(self) -> tuple[sqlite3.Connection, dict[str, list[str]]]:
        # SQLite would open a FIFO and wait for a writer for ever, and read a device or a
        # folder as "not a database"
        st = os.stat(self.path)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(f"{self.path} is {_kind(st.st_mode)}, not a regular file; move it "
                             f"out of {self.path.parent}")
        uri = self.path.resolve().as_uri()
        db = sqlite3.connect(uri + "?mode=ro", uri=True, check_same_thread=False,
                             timeout=BUSY_TIMEOUT_S)
        try:
            return db, _table_columns(db)
        except sqlite3.OperationalError:
            db.close()
            if self.path.with_name(self.path.name + "-wal").exists():
                raise
        # In WAL mode without its -wal: SQLite would create -wal and -shm, which a reader may
        # not; nothing is pending, so the file alone is the whole truth.
        db = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, check_same_thread=False)
        return db, _table_columns(db)

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (tests trace its statements)."""
        return self._db

    def _migrate(self, existed: bool = True) -> None:
        """Add the columns a file made by an older version lacks (ALTER TABLE ADD COLUMN);
        said once, and only for a file that was there before."""
        gained = []
        for table, added in _ADDED_COLUMNS.items():
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in added.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    gained.append(f"{table}.{name}")
        if gained and existed:
            log.info("sessions: %s, made by an older version, gained the columns %s",
                     self.path, ", ".join(gained))

    def wait_longer(self, seconds: float) -> None:
        """Let writes wait up to ``seconds`` for another program's lock (the stop's last
        write: what is not written then is lost)."""
        with self._lock:
            try:
                self._db.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
            except sqlite3.Error as exc:
                log.debug("sessions: busy timeout not set (%s)", exc)

    def close(self) -> None:
        """Close the file, back in its resting journal mode (see the module docstring)."""
        with self._lock:
            if not self.readonly:
                try:
                    self._db.execute(f"PRAGMA journal_mode={RESTING_JOURNAL}")
                except sqlite3.Error as exc:  # a reader holds it: -wal and -shm stay for it
                    log.info("sessions: %s stays in WAL mode (%s)", self.path, exc)
            self._db.close()

    # -- daemon starts ----------------------------------------------------------------------
    def open_boot(self, now: float) -> int:
        """A daemon start, in one commit: close what an unclean stop left open (sessions and the
        previous start, as ``'unclean'`` at their last known time), prune, and record this
        start. Returns its id."""
        with self._lock:
            db = self._db
            # a start's last known time: that of its last session write, else its own start
            boot_seen = ("MAX(started_at, COALESCE((SELECT MAX(COALESCE(s.last_seen_at, "
                         "s.ended_at, s.started_at)) FROM sessions s "
                         "WHERE s.started_at >= boots.started_at), started_at))")
            boots = db.execute(
                f"UPDATE boots SET ended_at = {boot_seen}, ended_by = ?, found_unclean_at = ? "
                "WHERE ended_by IS NULL", (ENDED_UNCLEAN, now)).rowcount
            seen = "COALESCE(last_seen_at, ended_at, started_at)"
            cut = db.execute(
                f"UPDATE sessions SET ended_at = {seen}, duration_s = {seen} - started_at, "
                "ended_by = ? WHERE ended_by IS NULL", (ENDED_UNCLEAN,)).rowcount
            pruned = self._prune_locked(now)
            cur = db.execute("INSERT INTO boots (started_at) VALUES (?)", (now,))
            db.commit()
        if boots:
            log.warning("sessions: the previous run did not stop cleanly (crash, watchdog or "
                        "power cut)%s", f"; {cut} session(s) closed as unclean" if cut else "")
        if pruned:
            log.info("sessions: %d older than %d days deleted", pruned, self.retention_days)
        return int(cur.lastrowid)

    def close_boot(self, boot_id: int, now: float, ended_by: str) -> None:
        with self._lock:
            self._db.execute("UPDATE boots SET ended_at = ?, ended_by = ? WHERE id = ?",
                             (now, ended_by, boot_id))
            self._db.commit()

    def unclean_stops(self) -> list[float] | None:
        """When each unclean stop was found (Unix s, the next start), oldest first; None for a
        file older than the count."""
        if "boots" not in self._columns:
            return None
        with self._lock:
            cur = self._db.execute("SELECT found_unclean_at FROM boots WHERE ended_by = ? "
                                   "ORDER BY found_unclean_at", (ENDED_UNCLEAN,))
            found = [_time(r[0]) for r in cur.fetchall()]
        return [t for t in found if t is not None]

    # -- sessions ---------------------------------------------------------------------------
    def begin(self, started_at: float, preset: str) -> int:
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO sessions (started_at, presets, last_seen_at) VALUES (?, ?, ?)",
                    (started_at, preset, started_at))
                self._db.commit()
            except sqlite3.Error:
                self._rollback()  # an insert whose commit failed is not left to a later one
                raise
            return int(cur.lastrowid)

    def rollback(self) -> None:
        """Drop what a failed write left uncommitted (it is written again whole, later)."""
        with self._lock:
            self._rollback()

    def _rollback(self) -> None:
        try:
            self._db.rollback()
        except sqlite3.Error as exc:
            log.warning("sessions: could not roll back a failed write (%s)", exc)

    def write(self, session_id: int, values: dict[str, Any], commit: bool = True) -> None:
        """Update one session's columns (one commit, or none with ``commit=False``: the next
        commit takes it)."""
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"not session columns: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE sessions SET {assignments} WHERE id = ?",
                             (*values.values(), session_id))
            if commit:
                self._db.commit()

    def rows(self) -> list[dict[str, Any]]:
        """Every session, oldest first; columns an older file lacks are None, and so is a value
        not of its column's kind. A session without a usable start time is left out and
        counted in :attr:`unreadable`."""
        have = self._columns.get("sessions", [])
        cols = [c for c in COLUMNS if c in have]
        if "started_at" not in cols:  # an empty file, or one with no sessions table
            if have:  # a sessions table, but not calmtunes' (another program's, or by hand)
                raise sqlite3.DatabaseError("table sessions has no column started_at: not laid "
                                            "out as calmtunes' records")
            self.unreadable = 0
            return []
        with self._lock:
            cur = self._db.execute(f"SELECT {', '.join(cols)} FROM sessions ORDER BY started_at")
            found = cur.fetchall()
        rows = [clean_row({c: None for c in COLUMNS} | dict(zip(cols, row))) for row in found]
        # a session without a start time cannot be placed or listed: counted, left out
        self.unreadable = sum(r["started_at"] is None for r in rows)
        return [r for r in rows if r["started_at"] is not None]

    def add_points(self, session_id: int, points: list[TracePoint], commit: bool = True) -> None:
        """Append a session's trace points (a point already there is replaced)."""
        if not points:
            return
        cols = ("session_id", *POINT_FIELDS)
        with self._lock:
            self._db.executemany(
                f"INSERT OR REPLACE INTO session_points ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' * len(cols))})",
                [(session_id, *(getattr(p, c) for c in POINT_FIELDS)) for p in points])
            if commit:
                self._db.commit()

    def points(self, session_id: int) -> list[TracePoint]:
        """A session's trace, oldest first ([] for a file older than traces); a value not of its
        column's kind reads as None, a point without a usable time is left out."""
        have = self._columns.get("session_points")
        if not have:
            return []
        cols = [c for c in POINT_FIELDS if c in have]
        with self._lock:
            found = self._db.execute(
                f"SELECT {', '.join(cols)} FROM session_points WHERE session_id = ? "
                "ORDER BY t_s", (session_id,)).fetchall()
        points = []
        for row in found:
            values = {c: _POINT_CLEAN[c](v) for c, v in zip(cols, row)}
            if values.get("t_s") is None:
                continue  # a point without its time cannot be placed
            for name in ("quality", "usable"):  # the two that are never None
                if name in values and values[name] is None:
                    values[name] = 0.0
            points.append(TracePoint.from_row(values))
        return points

    def export_csv(self, out: IO[str]) -> int:
        rows = self.rows()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (round(v, 3) if isinstance(v, float) else v)
                             for k, v in row.items()})
        return len(rows)

    def forget(self) -> int:
        """Delete every session (and compact the file so nothing lingers on disk)."""
        with self._lock:
            n = self._db.execute("DELETE FROM sessions").rowcount
            self._db.execute("DELETE FROM session_points")
            self._db.commit()
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no old page left in -wal
            return n

    def prune(self, now: float | None = None, keep_from: int | None = None) -> int:
        """Delete sessions and starts older than the retention; commits only when there are.
        Sessions from id ``keep_from`` on (this run's) are kept whatever their date: a wall
        clock set forward by months must not delete the records being written."""
        now = time.time() if now is None else now
        with self._lock:
            n = self._prune_locked(now, keep_from)
            if n:
                self._db.commit()
        if n:
            log.info("sessions: %d older than %d days deleted", n, self.retention_days)
        return n

    def _prune_locked(self, now: float, keep_from: int | None = None) -> int:
        """Sessions deleted (starts go with them); no write at all when nothing is old."""
        cutoff = now - self.retention_days * DAY_S
        keep = (1 << 62) if keep_from is None else keep_from
        old = self._db.execute(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE started_at < ? AND id < ?), "
            "(SELECT COUNT(*) FROM boots WHERE started_at < ? AND ended_by IS NOT NULL)",
            (cutoff, keep, cutoff)).fetchone()
        if old[0]:
            self._db.execute("DELETE FROM sessions WHERE started_at < ? AND id < ?",
                             (cutoff, keep))
            self._db.execute("DELETE FROM session_points WHERE session_id NOT IN "
                             "(SELECT id FROM sessions)")
        if old[1]:
            self._db.execute("DELETE FROM boots WHERE started_at < ? AND ended_by IS NOT NULL",
                             (cutoff,))
        return int(old[0])


class _Running:
    def __init__(self, session_id: int | None, started_at: float, preset: str,
                 trace: bool) -> None:
        self.id = session_id  # None until its row is in the file (a begin that failed is retried)
        self.trace = SessionTrace(started_at) if trace else None  # holds unwritten points
        self.points_at = started_at  # when points were last written
        self.notes: dict[str, Any] = {}  # columns given by note()
        self.started_at = started_at
        self.presets = [preset]
        self.readings = 0
        #: when each figure was first given: its "first minute" starts there (the stress index
        #: needs three minutes of pulse before it gives one, after the other figures' first)
        self.first_at: dict[str, float] = {}
        self.first: dict[str, list[float]] = {f: [] for f in FIGURES}
        self.last: collections.deque[tuple[float, dict[str, float]]] = collections.deque()
        self.last_t: float | None = None
        self.changed = False  # a reading or a preset since the last write
        #: [start, end or None] of each stretch with no audio output open (Unix s)
        self.unheard: list[list[float | None]] = []
        self.begin_failed = False  # its row could not be written at its start (said once)


#: how SQLite says a table is not laid out as calmtunes made it (a file of another program's,
#: or one changed by hand): no use as records, so kept aside like a damaged one
WRONG_LAYOUT = ("no such column", "no such table", "has no column")


def _damaged(exc: BaseException) -> bool:
    """SQLite could open the file but not read it as calmtunes' records: its bytes are wrong,
    or its tables are not laid out as calmtunes made them (a lock, a permission or a full disk
    is an ``OperationalError`` too, and not this)."""
    if isinstance(exc, sqlite3.OperationalError):
        return any(words in str(exc) for words in WRONG_LAYOUT)
    return isinstance(exc, sqlite3.DatabaseError)


def busy(exc: BaseException) -> bool:
    """Another program holds the file locked (a technician's ``sqlite3`` shell, a backup): it
    passes; the records are tried again rather than given up for the run."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


def _read_only(folder: Path | None) -> bool:
    """Whether ``folder`` (or the nearest folder above it that exists) is on a file system
    mounted read-only."""
    while folder is not None:
        try:
            return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except OSError:
            folder = folder.parent if folder.parent != folder else None
    return False


def _fix(exc: BaseException, folder: Path | None = None) -> str:
    """What a technician can do about a records file (in ``folder``) that cannot be used."""
    if (isinstance(exc, OSError) and exc.errno == errno.EROFS) or "readonly" in str(exc) \
            or _read_only(folder):
        return ("the state folder is on a read-only file system: check the SD card (a card "
                "with errors is remounted read-only; `dmesg` says) and that the unit's "
                "StateDirectory= is writable")
    if _damaged(exc):
        return "the file is damaged; move it away (the daemon begins a fresh one at its start)"
    if isinstance(exc, NotOurs):
        return "the records are not kept where another user could read or change them"
    if isinstance(exc, PermissionError) or "unable to open" in str(exc):
        return ("check that the state folder and sessions.db belong to the daemon's user "
                "(the unit's StateDirectory= sets this up)")
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "full" in str(exc):
        where = shlex.quote(str(folder)) if folder is not None else "/var/lib/calmtunes"
        return f"the disk is full: free space on it (`df -h {where}`)"
    if isinstance(exc, (OSError, sqlite3.OperationalError)):
        return "check the disk is not full or read-only and no other program holds the file"
    return "the file holds values calmtunes cannot use; move it away to begin a fresh one"


def _set_aside(path: Path) -> Path | None:
    """Rename a damaged records file (and the journal files beside it) out of the way; None
    when it cannot be renamed."""
    try:
        kept = move_aside(path)
    except OSError as exc:
        log.error("sessions: %s is damaged and cannot be moved aside (%s)", path, exc)
        return None
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        try:
            if suffix == "-shm":
                side.unlink(missing_ok=True)  # an index of -wal only, rebuilt from it
            elif side.exists():
                os.replace(side, kept.with_name(kept.name + suffix))
        except OSError as exc:
            log.warning("sessions: %s could not be moved aside (%s)", side, exc)
    return kept


def read_error(path: Path, exc: BaseException) -> str:
    """Why ``calmtunes sessions`` or ``report`` cannot read the records, and what to do."""
    if _damaged(exc):
        return (f"cannot read {path}: {exc}: the file is damaged (the daemon keeps it aside "
                "and begins a fresh one at its next start)")
    if isinstance(exc, NotRegular):
        return str(exc)
    return f"cannot read {path}: {exc} (are you in the calmtunes group?)"


def _most_played(r: _Running) -> str:
    """The preset most of the trace's steps played (the first one without a trace)."""
    if r.trace is not None and r.trace.preset_steps:
        return r.trace.preset_steps.most_common(1)[0][0]
    return r.presets[0]


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


class SessionRecorder:
    """Follows play/pause, presets and pulse readings; writes summaries to a :class:`SessionStore`.

    Times given to it are Unix seconds (``time.time()``): sessions are listed by date."""

    def __init__(self, config: Config, store: SessionStore | None = None,
                 boot_id: int | None = None, unclean_stops: list[float] | None = None) -> None:
        self.config = config
        self.store = store
        self.boot_id = boot_id
        self._unclean = list(unclean_stops or [])
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._heard = True  # an audio output is open (the "output" topic; assumed at first)
        self._last_flush = 0.0
        self._last_prune = 0.0
        self._first_id: int | None = None  # this run's first session: never pruned in this run
        # sessions ended whose end the file would not take yet: (session, ended at, ended by)
        self._ending: list[tuple[_Running, float, str]] = []
        self._last_retry = 0.0
        #: what waits to be written, for the daemon's status (None: nothing)
        self.unwritten: str | None = None

    @classmethod
    def open(cls, config: Config, now: float | None = None,
             problems: list[str] | None = None,
             locked: list[str] | None = None) -> SessionRecorder | None:
        """The recorder for a daemon start (closes what an unclean stop left open, prunes,
        records the start), or None (with a log line) when disabled or unusable.

        A damaged file (SQLite: "file is not a database", "malformed") is renamed to
        ``sessions.db.bad-<UTC time>`` with its ``-wal``/``-journal`` — kept for a technician,
        never deleted — and a fresh one begun. What went wrong is also appended to
        ``problems`` (the daemon's status shows it). A file another program holds locked is
        said in ``locked`` too (the daemon tries again every :data:`OPEN_RETRY_S`). Nothing here
        stops the music."""
        if not config.sessions.enabled:
            return None
        now = time.time() if now is None else now
        path = Path(config.device.state_dir) / DB_NAME
        for attempt in (1, 2):
            store = None
            try:
                store = SessionStore.for_config(config)
                boot_id = store.open_boot(now)
                unclean = store.unclean_stops()
                break
            except Exception as exc:  # the records never stop the music
                if store is not None:
                    try:
                        store.close()
                    except sqlite3.Error:
                        pass
                if attempt == 1 and _damaged(exc) and path.is_file():
                    kept = _set_aside(path)
                    if kept is not None:
                        log.error("sessions: %s is damaged (%s); kept as %s for a technician, "
                                  "and a fresh file begun", path, exc, kept.name)
                        if problems is not None:
                            problems.append(f"{path} was damaged ({exc}): kept as {kept.name}, "
                                            "a fresh file begun")
                        continue
                text = f"{type(exc).__name__}: {exc}" if not isinstance(
                    exc, (OSError, sqlite3.Error)) else str(exc)
                if busy(exc) and locked is not None:
                    log.warning("session records: %s is locked by another program (%s); "
                                "trying again every %.0f s (close any sqlite3 shell or backup "
                                "holding it)", path, text, OPEN_RETRY_S)
                    locked.append(f"locked by another program ({path}: {text}): trying again "
                                  f"every {OPEN_RETRY_S:.0f} s; close any sqlite3 shell or "
                                  "backup holding it")
                    return None
                log.error("session records unavailable (%s: %s); the music goes on without "
                          "them: %s", path, text, _fix(exc, path.parent))
                if problems is not None:
                    problems.append(f"not kept ({path}: {text}): {_fix(exc, path.parent)}")
                return None
        rec = cls(config, store, boot_id, unclean)
        rec._last_prune = now
        return rec

    @property
    def active(self) -> bool:
        return self._running is not None

    def restarts_unclean(self, now: float) -> dict[str, int]:
        """Unclean stops found at a start (crash, watchdog kill, power cut): ``total`` (within
        the retention) and ``last_24h``."""
        return count_restarts(self._unclean, now)

    def start(self, now: float, preset: str) -> None:
        """A session begins: its row is written now, or, when the file cannot take it (a lock
        another program holds, a full disk), kept in memory and written at the next tick that
        can, with everything the session gathered meanwhile."""
        with self._lock:
            if self._running is not None:
                return
            r = _Running(None, now, preset, self.config.sessions.trace)
            self._running = r
            if not self._heard:  # a session that begins in silence
                r.unheard.append([now, None])
            self._last_flush = now
        if not self._begin(r):
            r.changed = True  # the next tick writes it

    def _begin(self, r: _Running) -> bool:
        """Give ``r`` its row in the file if it has none; False when the file would not take
        it (said once per session, and in the daemon's status, until it does)."""
        if r.id is not None:
            return True
        try:
            sid = self.store.begin(r.started_at, r.presets[0])
        except sqlite3.Error as exc:
            if not r.begin_failed:
                log.error("sessions: cannot start a record (%s); the session is kept in memory "
                          "and written once the file takes it", exc)
            r.begin_failed = True
            self.unwritten = f"a session not yet written ({exc}): retried every minute"
            return False
        r.id = sid
        if r.begin_failed:
            log.info("sessions: the record held in memory is written now")
        if self._first_id is None:
            self._first_id = sid
        self._settled()
        return True

    def _settled(self) -> None:
        """Nothing waits to be written any more: the status no longer says so."""
        if (self._running is None or self._running.id is not None) and not self._ending:
            self.unwritten = None

    def preset(self, name: str) -> None:
        with self._lock:
            r = self._running
            if r is not None and r.presets[-1] != name:
                r.presets.append(name)
                r.changed = True

    def reading(self, now: float, reading: Any) -> None:
        """Take one pulse reading; unusable ones are not counted (the trace keeps their
        share and quality). Kept in memory until the next write."""
        usable = check_reading(reading, self.config.conductor.min_quality).ok
        r = self._running
        if r is not None and r.trace is not None:
            with self._lock:
                r.trace.reading(now, reading, usable)
        if not usable:
            return
        values = {}
        for f in FIGURES:
            v = getattr(reading, _READING_FIELD[f], None)
            if v is not None:
                values[f] = float(v)
        with self._lock:
            r = self._running
            if r is None:
                return
            r.readings += 1
            r.changed = True
            for f, v in values.items():
                if now - r.first_at.setdefault(f, now) <= WINDOW_S:
                    r.first[f].append(v)
            r.last.append((now, values))
            while r.last and now - r.last[0][0] > WINDOW_S:
                r.last.popleft()
            r.last_t = now

    def output(self, now: float, heard: bool) -> None:
        """Whether an audio output is open (the audio component's ``"output"`` topic): the
        stretches of a session with none are kept for its reward (nobody heard its music)."""
        with self._lock:
            heard = bool(heard)
            if heard == self._heard:
                return
            self._heard = heard
            r = self._running
            if r is None:
                return
            if not heard:
                r.unheard.append([now, None])
            elif r.unheard and r.unheard[-1][1] is None:
                r.unheard[-1][1] = now

    def unheard_spans(self, now: float) -> list[tuple[float, float]]:
        """The running session's stretches with no audio output, in seconds since its start
        (one still open ends ``now``)."""
        with self._lock:
            r = self._running
            if r is None:
                return []
            return [(a - r.started_at, (now if b is None else b) - r.started_at)
                    for a, b in r.unheard]

    def controls(self, now: float, controls: Any) -> None:
        """The conductor's controls (tempo, paced breathing, volume, preset): for the trace."""
        r = self._running
        if r is not None and r.trace is not None:
            with self._lock:
                r.trace.controls(now, controls)

    def scene(self, now: float, label: str | None) -> None:
        """The camera's scene label (None when there is none): for the trace."""
        r = self._running
        if r is not None and r.trace is not None:
            with self._lock:
                r.trace.scene(now, label)

    def note(self, **values: Any) -> None:
        """Columns of the running session to write with the next write: ``listener``, ``arm``
        and the response (:data:`calmtunes.care.reward.RESPONSE_COLUMNS`)."""
        unknown = set(values) - set(_CARE_COLUMNS)
        if unknown:
            raise ValueError(f"not care columns: {', '.join(sorted(unknown))}")
        with self._lock:
            r = self._running
            if r is not None:
                r.notes.update(values)
                r.changed = True

    @property
    def session_id(self) -> int | None:
        r = self._running
        return None if r is None else r.id

    def points(self, now: float | None = None) -> list[TracePoint]:
        """The running session's trace so far (closed up to ``now`` if given): what is in the
        file and what is not written yet."""
        with self._lock:
            r = self._running
            if r is None or r.trace is None:
                return []
            if now is not None:
                r.trace.finish(now)
            pending = list(r.trace.points)
        try:
            written = [] if r.id is None else self.store.points(r.id)
        except sqlite3.Error as exc:
            log.error("sessions: cannot read the trace back (%s)", exc)
            written = []
        return written + pending

    def tick(self, now: float) -> None:
        """Call now and then (the daemon's loop): writes a running session every
        :data:`FLUSH_EVERY_S` when its summary changed (every :data:`IDLE_FLUSH_EVERY_S`
        otherwise), retries what could not be written (a session's start or end) every
        :data:`RETRY_EVERY_S`, and prunes hourly."""
        r = self._running
        if (self._ending or (r is not None and r.id is None)) and (
                not 0.0 <= now - self._last_retry < RETRY_EVERY_S):
            self._last_retry = now
            self._retry_ends()
            if r is not None and r.id is None:
                self._flush(now, ended_by=None)
        if r is not None and r.id is not None:
            since = now - self._last_flush
            if (r.changed and since >= FLUSH_EVERY_S) or since >= IDLE_FLUSH_EVERY_S:
                self._flush(now, ended_by=None)
        if not 0.0 <= now - self._last_prune < PRUNE_EVERY_S:  # hourly, or the clock went back
            self._last_prune = now
            try:
                self.store.prune(now, keep_from=self._first_id)
            except sqlite3.Error as exc:
                log.error("sessions: pruning failed (%s)", exc)

    def end(self, now: float, ended_by: str, commit: bool = True) -> None:
        """The running session ends. A session whose end the file would not take is kept and
        written at a later tick: left unwritten, the next start would count it an unclean stop
        with no figures."""
        with self._lock:
            r = self._running
            if r is not None and r.trace is not None:
                r.trace.finish(now)
        if r is not None and not self._flush(now, ended_by=ended_by, commit=commit):
            self._ending.append((r, now, ended_by))
            self.unwritten = "a session's end not yet written: retried every minute"
        with self._lock:
            self._running = None
        self._settled()

    def _retry_ends(self, commit: bool = True) -> None:
        for ending in list(self._ending):
            r, at, by = ending
            if self._write(r, at, by, commit=commit):
                self._ending.remove(ending)
                log.info("sessions: the end of a session held in memory is written now")
        self._settled()

    def close(self, now: float, ended_by: str = "stop") -> None:
        """A clean stop: end the running session and record the stop (one commit), close the
        file."""
        if self.store is not None:
            self.store.wait_longer(STOP_BUSY_TIMEOUT_S)
        if self._ending:
            self._retry_ends()
        if self._running is not None:
            self.end(now, ended_by, commit=self.boot_id is None)
        if self.store is not None:
            if self.boot_id is not None:
                try:
                    self.store.close_boot(self.boot_id, now, ended_by)
                except sqlite3.Error as exc:
                    log.error("sessions: cannot record the stop (%s)", exc)
            self.store.close()

    def summary(self, now: float) -> dict[str, Any] | None:
        with self._lock:
            return self._summary(self._running, now)

    def _summary(self, r: _Running | None, now: float) -> dict[str, Any] | None:
        """``r``'s figures at ``now`` (the caller holds the lock)."""
        if r is None:
            return None
        out: dict[str, Any] = {
            "duration_s": round(now - r.started_at, 1),
            "presets": ",".join(r.presets),
            "preset": _most_played(r),
            "readings": r.readings,
        }
        for f in FIGURES:
            start = _mean(r.first[f])
            end = _mean([v[f] for _, v in r.last if f in v])
            since = r.first_at.get(f)
            span_ok = (since is not None and r.last_t is not None
                       and r.last_t - since >= MIN_TREND_SPAN_S)
            out[f"{f}_start"] = start
            out[f"{f}_end"] = end
            out[f"{f}_trend"] = (end - start) if span_ok and None not in (start, end) else None
        out.update(r.notes)
        return out

    def _flush(self, now: float, ended_by: str | None, commit: bool = True) -> bool:
        """Write the running session (its end with ``ended_by``); False if the file would not
        take it (what changed is written at a later tick)."""
        self._last_flush = now
        r = self._running
        return True if r is None else self._write(r, now, ended_by, commit)

    def _write(self, r: _Running, now: float, ended_by: str | None, commit: bool = True) -> bool:
        if not self._begin(r):
            return False
        with self._lock:
            values = self._summary(r, now)
        assert values is not None  # r is a session
        values["last_seen_at"] = now  # an unclean stop closes the session here
        if ended_by is not None:
            values["ended_at"] = now
            values["ended_by"] = ended_by
        changed, r.changed = r.changed, False
        with self._lock:
            due = ended_by is not None or now - r.points_at >= POINTS_EVERY_S
            points = list(r.trace.points) if r.trace is not None and due else []
        try:
            self.store.add_points(r.id, points, commit=False)
            self.store.write(r.id, values, commit=commit)
            if points:
                r.points_at = now
                with self._lock:
                    del r.trace.points[:len(points)]  # in the file now: memory stays small
        except sqlite3.Error as exc:
            r.changed = changed  # retried at the next tick
            self.store.rollback()  # the points and the summary go again together
            log.error("sessions: cannot write the record (%s)", exc)
            return False
        return True


def session_seconds(row: dict[str, Any]) -> float:
    """A recorded session's length (s): to its end, or, not ended (running, or cut by a crash
    the next start has not closed yet), to the last time it was written."""
    seconds = row.get("duration_s") or 0.0
    seen = row.get("last_seen_at")
    if row.get("ended_by") is None and isinstance(seen, (int, float)):
        seconds = max(seconds, seen - row["started_at"])
    return seconds


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table for ``calmtunes sessions``: first minute → last minute (trend). A session with
    no end is running, or was cut by a crash the next start has not closed yet: its length is
    to the last time it was written, and a line under the table says so."""
    if not rows:
        return "no sessions recorded"

    def cell(r: dict[str, Any], fig: str, nd: int) -> str:
        a, b, t = r[f"{fig}_start"], r[f"{fig}_end"], r[f"{fig}_trend"]
        if a is None and b is None:
            return "—"
        text = f"{'—' if a is None else f'{a:.{nd}f}'}→{'—' if b is None else f'{b:.{nd}f}'}"
        if t is None or a is None or b is None:
            return text
        # the trend of the two numbers shown, so the three agree (86→70 is -16, not -17)
        shown = round(round(b, nd) - round(a, nd), nd) + 0.0  # + 0.0: no "-0"
        return f"{text} ({shown:+.{nd}f})"

    head = (f"{'started':<20}  {'min':>5}  {'ended by':<12}  {'listener':<16}  "
            f"{'presets':<20}  {'HR bpm':<16}  {'RMSSD ms':<16}  {'breaths/min':<18}  "
            f"{'stress':<18}  {'arm':<16}  {'chosen by':<13}  reward")
    lines = [head]
    for r in rows:
        # with the time zone: a table copied off the device, or read across a DST change
        started = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(r["started_at"]))
        lines.append(
            f"{started:<20}  {session_seconds(r) / 60.0:5.1f}  {r['ended_by'] or 'running':<12}  "
            f"{(r.get('listener') or '—')[:16]:<16}  "
            f"{(r['presets'] or '')[:20]:<20}  "
            f"{cell(r, 'hr', 0):<16}  {cell(r, 'rmssd', 0):<16}  {cell(r, 'breathing', 1):<18}  "
            f"{cell(r, 'stress', 2):<18}  {r.get('arm') or '—':<16}  "
            f"{(r.get('chosen_by') or '—')[:13]:<13}  "
            f"{'—' if r.get('reward') is None else format(r['reward'], '+.2f')}"
        )
    if any(r["ended_by"] is None for r in rows):
        lines.append("running: no end recorded yet, so still playing, or stopped by a crash or "
                     "power cut that the next start closes as 'unclean'; its minutes and figures "
                     "are as last written (every 5 minutes, every 30 when nothing changed)")
    lines.append("figures: the session's first minute of each → its last minute (the stress "
                 "index begins after three minutes of pulse)")
    return "\n".join(lines)


def format_restarts(counts: dict[str, int] | None) -> str:
    """The last line of ``calmtunes sessions``: how often the daemon stopped uncleanly."""
    if counts is None:
        return "unclean restarts: not counted yet (the daemon counts them from its next start)"
    return (f"unclean restarts (crash, watchdog kill, power cut): {counts['total']}, "
            f"{counts['last_24h']} in the last 24 h")


def count_restarts(unclean_stops: list[float] | None, now: float) -> dict[str, int] | None:
    """``total`` and ``last_24h`` of the unclean-stop times (Unix s)."""
    if unclean_stops is None:
        return None
    return {"total": len(unclean_stops),
            "last_24h": sum(1 for t in unclean_stops if now - t <= DAY_S)}
