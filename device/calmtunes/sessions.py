"""Session summaries, kept locally in SQLite: what a clinician may look at over SSH.

A session runs from play to pause (or sleep timer, stop, shutdown). Per session only a summary is
kept: start and end (Unix time, s), the presets used in order, and heart rate (bpm), RMSSD (ms),
breathing rate (breaths/min) and stress index (0–1) averaged over the first and the last minute of
usable pulse readings, with their trend (last minus first; only when those minutes lie at least
:data:`MIN_TREND_SPAN_S` apart). Raw PPG samples, beat times and camera images never reach this
module: it is fed the once-a-second :class:`~calmtunes.pulse.reading.PulseReading` only.

The database is ``sessions.db`` in ``device.state_dir``, in WAL mode with ``synchronous=FULL`` and
a commit at every change, so a power cut loses at most the last :data:`FLUSH_EVERY_S` of a session
and never corrupts the file. Sessions older than ``sessions.retention_days`` are deleted at start
and hourly. A database that cannot be opened disables the records with a log line; the music goes
on.
"""

from __future__ import annotations

import collections
import csv
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import IO, Any

from calmtunes.config import Config
from calmtunes.music.conductor import check_reading

log = logging.getLogger(__name__)

DB_NAME = "sessions.db"
WINDOW_S = 60.0  # s: the "first minute" and the "last minute"
MIN_TREND_SPAN_S = 120.0  # s between the first and last usable readings for a trend
FLUSH_EVERY_S = 30.0  # s between writes of a running session
PRUNE_EVERY_S = 3600.0
FIGURES = ("hr", "rmssd", "breathing", "stress")
_READING_FIELD = {"hr": "hr_bpm", "rmssd": "rmssd_ms", "breathing": "breathing_rate",
                  "stress": "stress"}
COLUMNS = ("id", "started_at", "ended_at", "duration_s", "ended_by", "presets", "readings",
           *(f"{f}_{w}" for f in FIGURES for w in ("start", "end", "trend")))

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration_s REAL,
    ended_by TEXT,
    presets TEXT NOT NULL,
    readings INTEGER NOT NULL DEFAULT 0,
    {", ".join(f"{f}_{w} REAL" for f in FIGURES for w in ("start", "end", "trend"))}
);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at);
"""


class SessionStore:
    """The SQLite file: write summaries, list, export, forget, prune."""

    def __init__(self, path: str | Path, retention_days: int = 30) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    @classmethod
    def for_config(cls, config: Config) -> SessionStore:
        return cls(Path(config.device.state_dir) / DB_NAME, config.sessions.retention_days)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def begin(self, started_at: float, preset: str) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO sessions (started_at, presets) VALUES (?, ?)", (started_at, preset))
            self._db.commit()
            return int(cur.lastrowid)

    def write(self, session_id: int, values: dict[str, Any]) -> None:
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"not session columns: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE sessions SET {assignments} WHERE id = ?",
                             (*values.values(), session_id))
            self._db.commit()

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM sessions ORDER BY started_at")
            return [dict(zip(COLUMNS, row)) for row in cur.fetchall()]

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
            self._db.commit()
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return n

    def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        cutoff = now - self.retention_days * 86400.0
        with self._lock:
            n = self._db.execute("DELETE FROM sessions WHERE started_at < ?", (cutoff,)).rowcount
            self._db.commit()
        if n:
            log.info("sessions: %d older than %d days deleted", n, self.retention_days)
        return n


class _Running:
    def __init__(self, session_id: int, started_at: float, preset: str) -> None:
        self.id = session_id
        self.started_at = started_at
        self.presets = [preset]
        self.readings = 0
        self.first_t: float | None = None
        self.first: dict[str, list[float]] = {f: [] for f in FIGURES}
        self.last: collections.deque[tuple[float, dict[str, float]]] = collections.deque()
        self.last_t: float | None = None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


class SessionRecorder:
    """Follows play/pause, presets and pulse readings; writes summaries to a :class:`SessionStore`.

    Times given to it are Unix seconds (``time.time()``): sessions are listed by date."""

    def __init__(self, config: Config, store: SessionStore | None = None) -> None:
        self.config = config
        self.store = store
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._last_flush = 0.0
        self._last_prune = 0.0

    @classmethod
    def open(cls, config: Config) -> SessionRecorder | None:
        """The recorder for ``config``, or None (with a log line) when disabled or unusable."""
        if not config.sessions.enabled:
            return None
        try:
            store = SessionStore.for_config(config)
            store.prune()
        except (OSError, sqlite3.Error) as exc:
            log.error("session records unavailable (%s: %s); the music goes on without them",
                      Path(config.device.state_dir) / DB_NAME, exc)
            return None
        return cls(config, store)

    @property
    def active(self) -> bool:
        return self._running is not None

    def start(self, now: float, preset: str) -> None:
        with self._lock:
            if self._running is not None:
                return
            try:
                sid = self.store.begin(now, preset)
            except sqlite3.Error as exc:
                log.error("sessions: cannot start a record (%s)", exc)
                return
            self._running = _Running(sid, now, preset)
            self._last_flush = now

    def preset(self, name: str) -> None:
        with self._lock:
            r = self._running
            if r is not None and r.presets[-1] != name:
                r.presets.append(name)

    def reading(self, now: float, reading: Any) -> None:
        """Take one pulse reading; unusable ones are not counted."""
        if not check_reading(reading, self.config.conductor.min_quality).ok:
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
            if r.first_t is None:
                r.first_t = now
            if now - r.first_t <= WINDOW_S:
                for f, v in values.items():
                    r.first[f].append(v)
            r.last.append((now, values))
            while r.last and now - r.last[0][0] > WINDOW_S:
                r.last.popleft()
            r.last_t = now

    def tick(self, now: float) -> None:
        """Call now and then (the daemon's loop): writes a running session every
        :data:`FLUSH_EVERY_S` and prunes hourly."""
        if now - self._last_flush >= FLUSH_EVERY_S:
            self._flush(now, ended_by=None)
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            try:
                self.store.prune(now)
            except sqlite3.Error as exc:
                log.error("sessions: pruning failed (%s)", exc)

    def end(self, now: float, ended_by: str) -> None:
        self._flush(now, ended_by=ended_by)
        with self._lock:
            self._running = None

    def close(self, now: float, ended_by: str = "stop") -> None:
        if self._running is not None:
            self.end(now, ended_by)
        if self.store is not None:
            self.store.close()

    def summary(self, now: float) -> dict[str, Any] | None:
        with self._lock:
            r = self._running
            if r is None:
                return None
            out: dict[str, Any] = {
                "duration_s": round(now - r.started_at, 1),
                "presets": ",".join(r.presets),
                "readings": r.readings,
            }
            span_ok = (r.first_t is not None and r.last_t is not None
                       and r.last_t - r.first_t >= MIN_TREND_SPAN_S)
            for f in FIGURES:
                start = _mean(r.first[f])
                end = _mean([v[f] for _, v in r.last if f in v])
                out[f"{f}_start"] = start
                out[f"{f}_end"] = end
                out[f"{f}_trend"] = (end - start) if span_ok and None not in (start, end) else None
            return out

    def _flush(self, now: float, ended_by: str | None) -> None:
        self._last_flush = now
        values = self.summary(now)
        r = self._running
        if values is None or r is None:
            return
        values["ended_at"] = now  # kept current, so a crash leaves a sensible end
        if ended_by is not None:
            values["ended_by"] = ended_by
        try:
            self.store.write(r.id, values)
        except sqlite3.Error as exc:
            log.error("sessions: cannot write the record (%s)", exc)


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table for ``calmtunes sessions``: first minute → last minute (trend)."""
    if not rows:
        return "no sessions recorded"

    def cell(r: dict[str, Any], fig: str, nd: int) -> str:
        a, b, t = r[f"{fig}_start"], r[f"{fig}_end"], r[f"{fig}_trend"]
        if a is None and b is None:
            return "—"
        text = f"{'—' if a is None else f'{a:.{nd}f}'}→{'—' if b is None else f'{b:.{nd}f}'}"
        return text if t is None else f"{text} ({t:+.{nd}f})"

    head = (f"{'started':<16}  {'min':>5}  {'presets':<20}  {'HR bpm':<16}  {'RMSSD ms':<16}  "
            f"{'breaths/min':<18}  stress")
    lines = [head]
    for r in rows:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started_at"]))
        minutes = (r["duration_s"] or 0.0) / 60.0
        lines.append(
            f"{started:<16}  {minutes:5.1f}  {(r['presets'] or '')[:20]:<20}  "
            f"{cell(r, 'hr', 0):<16}  {cell(r, 'rmssd', 0):<16}  {cell(r, 'breathing', 1):<18}  "
            f"{cell(r, 'stress', 2)}"
        )
    return "\n".join(lines)
