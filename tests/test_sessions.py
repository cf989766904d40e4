"""Session summaries in SQLite: first/last minute, trend, no raw data, retention, CLI."""

from __future__ import annotations

import csv
import io
import math
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
import yaml

from calmtunes import cli
from calmtunes.care.trace import POINT_FIELDS
from calmtunes.config import Config
from calmtunes.errors import ConfigError
from calmtunes.music.controls import Controls
from calmtunes.pulse.reading import PulseReading
from calmtunes.sessions import (
    COLUMNS,
    DAY_S,
    DB_MODE,
    DB_NAME,
    DIR_MODE,
    FLUSH_EVERY_S,
    IDLE_FLUSH_EVERY_S,
    POINTS_EVERY_S,
    SessionRecorder,
    SessionStore,
    format_rows,
)

T0 = 1_760_000_000.0  # a Unix time


def cfg_for(tmp_path, **sessions):
    return Config().replace(device={"state_dir": str(tmp_path)}, sessions=sessions)


def reading(hr, stress, quality=0.9, finger=True):
    return PulseReading(t=0.0, finger=finger, quality=quality, hr_bpm=hr, rmssd_ms=60 - 40 * stress,
                        breathing_rate=6 + 10 * stress, stress=stress, stress_sd=0.05)


def record_session(rec, minutes=10, start=T0):
    rec.start(start, "calm")
    for k in range(int(minutes * 60)):
        frac = k / (minutes * 60)
        rec.reading(start + k, reading(90 - 25 * frac, 0.9 - 0.7 * frac))
        if k == 120:
            rec.preset("sleep")
        rec.tick(start + k)
    rec.end(start + minutes * 60, "pause")


def test_a_session_keeps_first_and_last_minutes_and_the_trend(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    record_session(rec)
    [row] = rec.store.rows()
    assert row["presets"] == "calm,sleep"
    assert row["duration_s"] == pytest.approx(600)
    assert row["ended_by"] == "pause"
    assert row["hr_start"] == pytest.approx(90 - 25 * 30 / 600, abs=0.2)
    assert row["hr_end"] == pytest.approx(90 - 25 * 570 / 600, abs=0.2)
    assert row["hr_trend"] == pytest.approx(row["hr_end"] - row["hr_start"])
    assert row["hr_trend"] < -20 and row["stress_trend"] < -0.5 and row["rmssd_trend"] > 20
    assert row["breathing_trend"] < 0
    assert row["readings"] == 600


def test_only_summaries_and_ten_second_means_are_stored(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    record_session(rec, minutes=3)
    db = sqlite3.connect(tmp_path / DB_NAME)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["sessions", "boots", "session_points"]
    cols = [r[1] for r in db.execute("PRAGMA table_info(sessions)")]
    assert tuple(cols) == COLUMNS
    boots = [r[1] for r in db.execute("PRAGMA table_info(boots)")]
    assert boots == ["id", "started_at", "ended_at", "ended_by", "found_unclean_at"]
    assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
    # the course is kept as 10-second means only: 180 readings make 18 points, not 180 rows
    assert db.execute("SELECT COUNT(*) FROM session_points").fetchone()[0] == 18
    points = [r[1] for r in db.execute("PRAGMA table_info(session_points)")]
    assert set(points) == {"session_id", *POINT_FIELDS}


def test_written_trace_points_leave_memory_but_are_all_given_back(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    rec.start(T0, "calm")
    for k in range(40 * 60):
        rec.reading(T0 + k, reading(80 - k / 100, 0.5))
        rec.tick(T0 + k)
    assert len(rec._running.trace.points) <= POINTS_EVERY_S / 10 + 1  # the unwritten ones
    points = rec.points(T0 + 40 * 60)
    assert [p.t_s for p in points] == [10.0 * i for i in range(240)]
    assert points[0].hr_bpm == pytest.approx(80 - 4.5 / 100)
    rec.end(T0 + 40 * 60, "pause")
    assert len(rec.store.points(1)) == 240


def test_the_trace_is_off_when_configured(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path, trace=False), now=T0)
    record_session(rec, minutes=3)
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("SELECT COUNT(*) FROM session_points").fetchone()[0] == 0
    assert rec.store.rows()[0]["hr_start"] is not None


def test_unusable_readings_are_not_counted(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    rec.start(T0, "calm")
    for k in range(100):
        rec.reading(T0 + k, reading(300.0, 0.5))  # impossible
        rec.reading(T0 + k, reading(80.0, 0.5, quality=0.1))  # unreliable
        rec.reading(T0 + k, reading(math.nan, 0.5))
        rec.reading(T0 + k, reading(80.0, 0.5, finger=False))
    rec.end(T0 + 100, "pause")
    [row] = rec.store.rows()
    assert row["readings"] == 0 and row["hr_start"] is None and row["hr_trend"] is None


def test_the_stretches_without_audio_output_are_kept_for_the_reward(tmp_path):
    """The recorder follows the audio output (open or not) and gives the running session's
    silent stretches in its own seconds; one that began before the session starts with it,
    one still open ends now; a new session starts with none."""
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    rec.output(T0 - 50, False)  # no card before the session
    rec.start(T0, "calm")
    rec.output(T0 + 30, True)
    rec.output(T0 + 31, True)  # no change: nothing new
    rec.output(T0 + 100, False)
    assert rec.unheard_spans(T0 + 160) == [(0.0, 30.0), (100.0, 160.0)]
    rec.output(T0 + 200, True)
    rec.end(T0 + 300, "stop")
    assert rec.unheard_spans(T0 + 300) == []
    rec.start(T0 + 400, "sleep")
    assert rec.unheard_spans(T0 + 500) == []
    rec.close(T0 + 600)


def test_a_short_session_has_no_trend(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    record_session(rec, minutes=1.5)
    [row] = rec.store.rows()
    assert row["hr_start"] is not None and row["hr_trend"] is None


def test_a_crash_is_closed_as_unclean_at_the_last_known_time_and_counted(tmp_path):
    cfg = cfg_for(tmp_path)
    rec = SessionRecorder.open(cfg, now=T0 - 5)
    rec.start(T0, "calm")
    for k in range(400):
        rec.reading(T0 + k, reading(80.0, 0.4))
        rec.tick(T0 + k)
    del rec  # no end(), no close(): the process dies here (power cut, watchdog kill)
    before = SessionStore.for_config(cfg, readonly=True)
    [row] = before.rows()
    assert row["ended_by"] is None and row["ended_at"] is None
    assert row["last_seen_at"] == T0 + FLUSH_EVERY_S  # the one write while it ran
    before.close()

    again = SessionRecorder.open(cfg, now=T0 + 1000)
    [row] = again.store.rows()
    assert row["ended_by"] == "unclean"
    assert row["ended_at"] == row["last_seen_at"] == T0 + FLUSH_EVERY_S
    assert row["duration_s"] == pytest.approx(FLUSH_EVERY_S)
    assert row["hr_start"] == pytest.approx(80.0) and row["readings"] == FLUSH_EVERY_S + 1
    assert again.restarts_unclean(T0 + 1000) == {"total": 1, "last_24h": 1}
    out = io.StringIO()
    again.store.export_csv(out)
    assert [r["ended_by"] for r in csv.DictReader(io.StringIO(out.getvalue()))] == ["unclean"]
    assert "unclean" in format_rows(again.store.rows()).splitlines()[1]
    assert again.restarts_unclean(T0 + 3 * 86400) == {"total": 1, "last_24h": 0}
    again.close(T0 + 2000)
    third = SessionRecorder.open(cfg, now=T0 + 3000)  # that stop was clean: not counted
    assert third.restarts_unclean(T0 + 3000) == {"total": 1, "last_24h": 1}
    third.close(T0 + 3001)


def test_an_unclean_stop_while_paused_is_counted_too(tmp_path):
    cfg = cfg_for(tmp_path)
    SessionRecorder.open(cfg, now=T0)  # never closed
    rec = SessionRecorder.open(cfg, now=T0 + 60)
    assert rec.restarts_unclean(T0 + 60) == {"total": 1, "last_24h": 1}
    assert rec.store.rows() == []
    rec.close(T0 + 61)


def test_daemon_status_shows_unclean_restarts(tmp_config):
    from calmtunes.cli import format_status
    from calmtunes.daemon import Daemon

    Daemon(tmp_config)  # built (a start recorded) and dropped without a clean stop
    d = Daemon(tmp_config)
    try:
        status = d.status()
        assert status["restarts_unclean"] == {"total": 1, "last_24h": 1}
        assert "restarts   1 unclean (1 in the last 24 h)" in format_status(status)
    finally:
        d.sessions.close(time.time())


def test_a_session_is_written_in_batches_not_every_reading(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    statements = []
    rec.store.connection.set_trace_callback(statements.append)
    for k in range(3600):  # an hour paused: nothing to write
        rec.tick(T0 + k)
    assert statements.count("COMMIT") == 0
    record_session(rec, minutes=60, start=T0 + 3600)  # a reading and a tick every second
    # the start, at most one write per FLUSH_EVERY_S, the end
    assert statements.count("COMMIT") <= 1 + 3600 / FLUSH_EVERY_S + 1
    statements.clear()
    rec.start(T0 + 7200, "calm")
    for k in range(3600):  # no finger: the summary does not change
        rec.tick(T0 + 7200 + k)
    rec.end(T0 + 10800, "pause")
    assert statements.count("COMMIT") <= 1 + 3600 / IDLE_FLUSH_EVERY_S + 1
    rec.close(T0 + 10801)


def test_old_database_is_migrated(tmp_path):
    """A file made by the first version (WAL, no last_seen_at, no boots) with one finished
    session and one cut by a crash (ended_at kept current, ended_by empty)."""
    path = tmp_path / DB_NAME
    old = sqlite3.connect(path)
    old.execute("PRAGMA journal_mode=WAL")
    figures = ", ".join(f"{f}_{w} REAL" for f in ("hr", "rmssd", "breathing", "stress")
                        for w in ("start", "end", "trend"))
    old.executescript(f"""
        CREATE TABLE sessions (id INTEGER PRIMARY KEY, started_at REAL NOT NULL, ended_at REAL,
            duration_s REAL, ended_by TEXT, presets TEXT NOT NULL,
            readings INTEGER NOT NULL DEFAULT 0, {figures});
        CREATE INDEX sessions_started ON sessions (started_at);
        INSERT INTO sessions (started_at, ended_at, duration_s, ended_by, presets, hr_start)
            VALUES ({T0}, {T0 + 600}, 600, 'pause', 'calm', 71.5);
        INSERT INTO sessions (started_at, ended_at, duration_s, presets)
            VALUES ({T0 + 3600}, {T0 + 3690}, 90, 'sleep');
    """)
    old.commit()
    listed = SessionStore(path, readonly=True)  # the new command reads the old file as it is
    assert [r["presets"] for r in listed.rows()] == ["calm", "sleep"]
    assert listed.rows()[0]["last_seen_at"] is None and listed.unclean_stops() is None
    listed.close()
    old.close()

    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0 + 7200)
    first, cut = rec.store.rows()
    assert first["ended_by"] == "pause" and first["hr_start"] == 71.5
    assert cut["ended_by"] == "unclean" and cut["ended_at"] == T0 + 3690
    db = rec.store.connection
    assert "last_seen_at" in [r[1] for r in db.execute("PRAGMA table_info(sessions)")]
    rec.close(T0 + 7201)
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_NAME]
    after = sqlite3.connect(path)
    assert after.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # at rest
    after.close()


def test_a_file_without_care_columns_is_read_as_it_is_then_migrated(tmp_path):
    """A file of the release before personal care: sessions and boots, no arm, no trace."""
    path = tmp_path / DB_NAME
    old = sqlite3.connect(path)
    base = COLUMNS[1:COLUMNS.index("last_seen_at") + 1]  # the columns of that release
    old.executescript(f"""
        CREATE TABLE sessions (id INTEGER PRIMARY KEY, {", ".join(base)});
        CREATE TABLE boots (id INTEGER PRIMARY KEY, started_at REAL NOT NULL, ended_at REAL,
            ended_by TEXT, found_unclean_at REAL);
        INSERT INTO sessions (started_at, ended_at, duration_s, ended_by, presets, readings,
            hr_start) VALUES ({T0}, {T0 + 600}, 600, 'pause', 'calm', 600, 70.0);
    """)
    old.commit()
    old.close()
    listed = SessionStore(path, readonly=True)
    [row] = listed.rows()
    assert row["hr_start"] == 70.0 and row["arm"] is None and row["reward"] is None
    assert listed.points(row["id"]) == []
    out = io.StringIO()
    listed.export_csv(out)
    listed.close()
    assert next(csv.DictReader(io.StringIO(out.getvalue())))["arm"] == ""
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0 + 3600)
    record_session(rec, minutes=3, start=T0 + 3600)
    first, new = rec.store.rows()
    assert first["hr_start"] == 70.0 and new["preset"] == "calm"
    assert len(rec.store.points(new["id"])) == 18
    rec.close(T0 + 4000)


def test_the_arm_and_response_noted_are_written_and_exported(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    rec.start(T0, "sleep")
    for k in range(60):
        rec.reading(T0 + k, reading(80, 0.5))
    rec.note(listener="L1", arm="sleep/slower", reward=1.25, reward_reason="ok", hr_fall=6.0,
             chosen_by="clinician pin")
    with pytest.raises(ValueError, match="not care columns"):
        rec.note(hr_start=3.0)
    rec.end(T0 + 60, "pause")
    out = io.StringIO()
    rec.store.export_csv(out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["preset"], row["arm"], row["reward"], row["hr_fall"], row["listener"],
            row["chosen_by"]) == ("sleep", "sleep/slower", "1.25", "6.0", "L1", "clinician pin")
    table = format_rows(rec.store.rows()).splitlines()
    assert "chosen by" in table[0] and "sleep/slower      clinician pin" in table[1]


def test_retention_deletes_old_sessions(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path, retention_days=7), now=T0 - 9 * 86400)
    record_session(rec, minutes=1, start=T0 - 8 * 86400)
    record_session(rec, minutes=1, start=T0 - 6 * 86400)
    assert rec.store.prune(T0) == 1
    assert len(rec.store.rows()) == 1


def test_retention_is_90_days_checked_and_enforced_at_start(tmp_path):
    assert Config().sessions.retention_days == 90
    with pytest.raises(ConfigError, match="retention_days"):
        Config().replace(sessions={"retention_days": 0})
    cfg = cfg_for(tmp_path)
    rec = SessionRecorder.open(cfg, now=T0 - 200 * 86400)
    record_session(rec, minutes=1, start=T0 - 100 * 86400)
    record_session(rec, minutes=1, start=T0 - 80 * 86400)
    rec.close(T0 - 80 * 86400 + 100)
    rec = SessionRecorder.open(cfg, now=T0)
    assert [r["started_at"] for r in rec.store.rows()] == [T0 - 80 * 86400]
    rec.tick(T0 + 11 * 86400)  # and while it runs (hourly): that one is now 91 days old
    assert rec.store.rows() == []
    rec.close(T0 + 11 * 86400)


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_records_are_made_for_the_daemon_and_its_group_whatever_the_umask(tmp_path, umask):
    state = tmp_path / "state"
    old = os.umask(umask)
    try:
        rec = SessionRecorder.open(cfg_for(state), now=T0)
        record_session(rec, minutes=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == DIR_MODE == 0o750
    assert stat.S_IMODE((state / DB_NAME).stat().st_mode) == DB_MODE == 0o640
    for side in ("-wal", "-shm"):  # while the daemon runs: WAL, same mode as the database
        assert stat.S_IMODE((state / (DB_NAME + side)).stat().st_mode) == DB_MODE
    rec.close(T0 + 100)
    assert [p.name for p in state.iterdir()] == [DB_NAME]  # at rest: the file alone


def test_records_made_by_an_older_version_are_tightened(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    sqlite3.connect(state / DB_NAME).execute("CREATE TABLE t (x)").connection.close()
    (state / DB_NAME).chmod(0o644)
    rec = SessionRecorder.open(cfg_for(state), now=T0)
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    assert stat.S_IMODE((state / DB_NAME).stat().st_mode) == 0o640
    rec.close(T0 + 1)


def test_export_and_forget(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    record_session(rec, minutes=3)
    record_session(rec, minutes=3, start=T0 + 3600)
    out = io.StringIO()
    assert rec.store.export_csv(out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 2 and tuple(rows[0]) == COLUMNS
    assert rec.store.forget() == 2
    assert rec.store.rows() == []


def test_disabled_or_unusable_store_gives_no_recorder(tmp_path, caplog):
    assert SessionRecorder.open(cfg_for(tmp_path, enabled=False)) is None
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = Config().replace(device={"state_dir": str(blocker / "state")})
    assert SessionRecorder.open(cfg) is None
    assert "the music goes on" in caplog.text




@pytest.mark.parametrize("name", [DB_NAME, DB_NAME + "-wal", DB_NAME + "-journal"])
def test_records_never_follow_a_link_out_of_the_state_folder(tmp_path, caplog, name):
    """A symbolic link in the database's place (or its companion's) would have SQLite write
    the listener's records wherever it points: the records are refused, the music goes on,
    the link stays for a technician to see and nothing is written at its target."""
    state, elsewhere = tmp_path / "state", tmp_path / "elsewhere"
    state.mkdir()
    elsewhere.mkdir()
    if name != DB_NAME:  # a database of our own, with a link beside it
        SessionStore(state / DB_NAME).close()
    (state / name).symlink_to(elsewhere / "records")
    assert SessionRecorder.open(cfg_for(state)) is None
    assert list(elsewhere.iterdir()) == []
    assert (state / name).is_symlink()
    assert f"{state / name} is a symbolic link, not a regular file" in caplog.text
    assert "the music goes on" in caplog.text
def _cli(tmp_path, *args, stdin=""):
    conf = tmp_path / "config.yaml"
    conf.write_text(yaml.safe_dump({"device": {"state_dir": str(tmp_path)}}))
    return cli.main(["sessions", "--config", str(conf), *args])


def test_cli_lists_exports_and_forgets(tmp_path, capsys, monkeypatch):
    assert _cli(tmp_path) == 0
    assert "no sessions" in capsys.readouterr().out
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    record_session(rec, minutes=3)
    rec.close(T0 + 999)
    assert _cli(tmp_path) == 0
    listing = capsys.readouterr().out
    assert "calm,sleep" in listing and "→" in listing
    assert _cli(tmp_path, "--export", "csv") == 0
    assert capsys.readouterr().out.startswith(",".join(COLUMNS))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert _cli(tmp_path, "--forget") == 2  # not a terminal: must say --yes
    assert "--yes" in capsys.readouterr().err
    assert len(SessionStore(tmp_path / DB_NAME).rows()) == 1
    assert _cli(tmp_path, "--forget", "--yes") == 0
    assert SessionStore(tmp_path / DB_NAME).rows() == []


def test_cli_says_where_a_simulations_sessions_are(tmp_path, capsys, monkeypatch):
    """`calmtunes simulate` records into its own folder, never the device's: `sessions` and
    `report` run after it find none where the device keeps them, and say where the
    simulation's are and the command that shows them."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    sim = tmp_path / "xdg" / "calmtunes-sim"
    device = tmp_path / "device"
    device.mkdir()
    assert _cli(device) == 0
    assert "calmtunes-sim" not in capsys.readouterr().out  # no simulation ran: nothing to say
    sim.mkdir(parents=True)
    rec = SessionRecorder.open(cfg_for(sim), now=T0)
    record_session(rec, minutes=2)
    rec.close(T0 + 999)
    assert _cli(device) == 0
    said = capsys.readouterr().out
    assert f"no sessions recorded ({device / DB_NAME} does not exist)" in said
    assert f"calmtunes sessions --state-dir {sim}" in said
    assert cli.main(["sessions", "--state-dir", str(sim)]) == 0
    assert "→" in capsys.readouterr().out
    out = tmp_path / "report.html"
    assert cli.main(["report", "--state-dir", str(device), "--out", str(out)]) == 1
    assert f"calmtunes report --out {out} --state-dir {sim}" in capsys.readouterr().err
    assert cli.main(["report", "--state-dir", str(sim), "--out", str(out)]) == 0
    # looking in the simulation's own folder, there is nothing else to point to
    empty = tmp_path / "xdg2"
    monkeypatch.setenv("XDG_STATE_HOME", str(empty))
    (empty / "calmtunes-sim").mkdir(parents=True)
    assert cli.main(["sessions", "--state-dir", str(empty / "calmtunes-sim")]) == 0
    assert "a simulation's" not in capsys.readouterr().out


def test_cli_forget_asks_first(tmp_path, capsys, monkeypatch):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    record_session(rec, minutes=2)
    rec.close(T0 + 999)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    assert _cli(tmp_path, "--forget") == 1
    assert len(SessionStore(tmp_path / DB_NAME).rows()) == 1
    monkeypatch.setattr("sys.stdin", Tty("y\n"))
    assert _cli(tmp_path, "--forget") == 0
    assert SessionStore(tmp_path / DB_NAME).rows() == []


def _files(folder):
    """What a write would change: every file's content and mode, the mtime of all but -shm
    (a memory map: the kernel stamps the writer's earlier stores on it lazily), the folder's."""
    import hashlib

    entries = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode,
                        None if p.name.endswith("-shm") else p.stat().st_mtime_ns)
               for p in folder.iterdir()}
    return entries, folder.stat().st_mtime_ns


_READER = """
import os, sys
# everything the command needs is loaded before the rights are dropped
import csv, locale, shutil, sqlite3, time, yaml
from calmtunes import cli, config, config_file, control, sessions  # read late: config_file by
import calmtunes.care.store  # load(), control and care.store by --forget
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
sys.exit(cli.main(["sessions", *sys.argv[1:]]))
"""


def _as_reader(state, conf, *args):
    """``calmtunes sessions ARGS`` in a new process that may only read ``state``, as a
    technician: run by root, it becomes ``nobody`` in the files' group (65534); otherwise the
    folder and its files are made read-only while it runs. Returns (exit status, stdout,
    stderr)."""
    import subprocess
    import sys

    entries = [state, *state.iterdir()]
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in entries}
    for p in entries:
        if os.geteuid() == 0:
            os.chown(p, -1, 65534)
        else:
            p.chmod(modes[p] & 0o555)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    try:
        proc = subprocess.run([sys.executable, "-c", _READER, "--config", str(conf), *args],
                              capture_output=True, text=True, timeout=60, env=env)
    finally:
        for p in entries:
            p.chmod(modes[p])
    return proc.returncode, proc.stdout, proc.stderr


def test_listing_reads_without_writing_and_forget_needs_the_daemons_user():
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="calmtunes-sessions-"))  # /tmp: nobody may pass
    try:
        base.chmod(0o711)
        state = base / "state"
        cfg = cfg_for(state)
        SessionRecorder.open(cfg, now=T0 - 10)  # a start that never stopped cleanly
        rec = SessionRecorder.open(cfg, now=T0)
        record_session(rec, minutes=3)
        rec.start(T0 + 600, "calm")  # still running when listed
        conf = base / "config.yaml"
        conf.write_text(yaml.safe_dump({"device": {"state_dir": str(state)}}))
        conf.chmod(0o644)
        before = _files(state)

        code, out, err = _as_reader(state, conf)
        assert (code, err) == (0, "")
        assert "calm,sleep" in out and "running" in out
        assert "unclean restarts (crash, watchdog kill, power cut): 1," in out
        code, out, err = _as_reader(state, conf, "--export", "csv")
        assert code == 0 and len(out.splitlines()) == 3
        code, out, err = _as_reader(state, conf, "--forget", "--yes")
        assert code == 1 and "sudo -u calmtunes calmtunes sessions --forget" in err
        assert _files(state) == before
        rec.close(T0 + 700)  # at rest: the file alone, in DELETE mode, still readable
        before = _files(state)
        code, out, err = _as_reader(state, conf)
        assert code == 0 and "running" not in out and out.count("calm") == 2
        assert _files(state) == before
    finally:
        shutil.rmtree(base)


def test_the_preset_column_is_the_one_played_longest(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    rec.start(T0, "calm")
    for k in range(40 * 60):  # calm for 10 min, then sleep for 30: written in between
        preset = "calm" if k < 600 else "sleep"
        if k == 600:
            rec.preset("sleep")
        rec.reading(T0 + k, reading(70, 0.5))
        rec.controls(T0 + k, Controls(preset=preset))
        rec.tick(T0 + k)
    rec.end(T0 + 40 * 60, "pause")
    [row] = rec.store.rows()
    assert row["preset"] == "sleep" and row["presets"] == "calm,sleep"


# -- a records file changed or damaged outside calmtunes ---------------------------------------
def _recorded(tmp_path) -> Path:
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    record_session(rec, minutes=3)
    rec.close(T0 + 999)
    return tmp_path / DB_NAME


def test_a_bad_value_in_the_records_does_not_stop_the_daemon_starting(tmp_path):
    """SQLite keeps text where a time belongs when someone writes it there: the next start
    opened the records, read the unclean stops and died on float('x') — a restart loop with no
    music. Now the value reads as missing and the start goes on."""
    path = _recorded(tmp_path)
    db = sqlite3.connect(path)
    db.execute("INSERT INTO boots (started_at, ended_by, found_unclean_at) "
               "VALUES (?, 'unclean', 'x')", (T0 + 1000,))
    db.execute("INSERT INTO boots (started_at, ended_by, found_unclean_at) "
               "VALUES (?, 'unclean', 1e308)", (T0 + 1001,))
    db.commit()
    db.close()
    problems: list[str] = []
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0 + 2000, problems=problems)
    assert rec is not None and problems == []
    # the two rows' times cannot be used: they are not counted (and not a crash)
    assert rec.restarts_unclean(T0 + 2000)["total"] == 0
    rec.close(T0 + 2001)


@pytest.mark.parametrize("column, value", [
    ("started_at", "yesterday"), ("started_at", 1e308), ("presets", 5), ("hr_start", "fast"),
    ("reward", "good"), ("duration_s", "long"), ("readings", 2.5), ("ended_by", b"\xff\xfe"),
])
def test_listing_and_report_read_a_bad_value_as_missing(tmp_path, capsys, column, value):
    path = _recorded(tmp_path)
    _recorded_again = SessionRecorder.open(cfg_for(tmp_path), now=T0 + 5000)
    record_session(_recorded_again, minutes=3, start=T0 + 5000)
    _recorded_again.close(T0 + 6000)
    db = sqlite3.connect(path)
    db.execute(f"UPDATE sessions SET {column} = ? WHERE id = 1", (value,))
    db.execute("UPDATE session_points SET t_s = 'x' WHERE session_id = 2 AND t_s = 0")
    db.execute("UPDATE session_points SET hr_bpm = 'high' WHERE session_id = 2")
    db.commit()
    db.close()
    assert _cli(tmp_path) == 0
    out, err = capsys.readouterr()
    assert "→" in out  # the other session is listed with its figures
    store = SessionStore(path, readonly=True)
    rows = store.rows()
    points = store.points(2)
    store.close()
    if column == "started_at":  # a session that cannot be placed is counted, not shown
        assert [r["id"] for r in rows] == [2]
        assert "1 session record(s)" in err and "no usable start time" in err
    else:
        assert [r["id"] for r in rows] == [1, 2] and err == ""
        assert rows[0][column] is None or isinstance(rows[0][column], (str, int, float))
    assert points and all(p.t_s > 0 and p.hr_bpm is None for p in points)
    assert _cli(tmp_path, "--export", "csv") == 0
    from calmtunes.report import build_report

    html_text = build_report(Config(), tmp_path, now=T0 + 9000)
    assert "Session 2" in html_text


def test_a_damaged_records_file_is_kept_aside_and_a_fresh_one_begun(tmp_path, caplog):
    """Random bytes in sessions.db: the records were off for good, with one log line and
    nothing in the status. Now the file is renamed (kept for a technician), a fresh one is
    begun, and the status says so."""
    path = _recorded(tmp_path)
    damaged = os.urandom(8192)
    path.write_bytes(damaged)
    problems: list[str] = []
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0 + 2000, problems=problems)
    assert rec is not None
    kept = list(tmp_path.glob(DB_NAME + ".bad-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    assert problems and "damaged" in problems[0] and kept[0].name in problems[0]
    record_session(rec, minutes=2, start=T0 + 2000)
    rec.close(T0 + 3000)
    assert len(SessionStore(path, readonly=True).rows()) == 1


def test_a_file_of_another_layout_is_kept_aside_like_a_damaged_one(tmp_path, capsys):
    """A sessions.db whose table is not calmtunes' (another program's, or changed by hand)
    switched the records off for good with 'check the disk is not full', and `calmtunes
    sessions` called it empty."""
    path = tmp_path / DB_NAME
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE sessions (id TEXT, foo BLOB)")
    db.execute("INSERT INTO sessions VALUES ('a', x'00')")
    db.commit()
    db.close()
    assert _cli(tmp_path) == 1
    assert "damaged" in capsys.readouterr().err
    problems: list[str] = []
    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0, problems=problems)
    assert rec is not None and problems and "damaged" in problems[0]
    [kept] = tmp_path.glob(DB_NAME + ".bad-*")  # its rows as they were (WAL mode aside)
    assert sqlite3.connect(str(kept)).execute("SELECT * FROM sessions").fetchall() == [
        ("a", b"\0")]
    rec.close(T0 + 10)


def test_the_cli_says_a_damaged_file_is_damaged(tmp_path, capsys):
    (tmp_path / DB_NAME).write_bytes(b"\0" * 50 + os.urandom(4000))
    assert _cli(tmp_path) == 1
    err = capsys.readouterr().err
    assert "damaged" in err and "calmtunes group" not in err


def test_the_daemon_starts_on_a_damaged_file_and_its_status_says_so(tmp_config):
    from calmtunes.daemon import Daemon

    state = Path(tmp_config.device.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / DB_NAME).write_bytes(os.urandom(8192))
    d = Daemon(tmp_config)
    try:
        status = d.status()
        assert d.sessions is not None and len(status["records"]) == 1
        text = cli.format_status(status)
        assert "records    " in text and "was damaged" in text and ".bad-" in text
    finally:
        d.sessions.close(time.time())
    d = Daemon(tmp_config)  # the next start finds the fresh file: nothing to say
    try:
        assert d.status()["records"] == []
    finally:
        d.sessions.close(time.time())


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_listing_never_waits_on_a_fifo_or_misreads_a_folder(tmp_path, capsys, kind):
    """A FIFO in sessions.db's place made `calmtunes sessions` and `report` wait for ever (SQLite
    opened it and waited for a writer); a folder read as an SQL error."""
    path = tmp_path / DB_NAME
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    assert _cli(tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{path} is a {'FIFO' if kind == 'fifo' else 'folder'}, not a regular file" in err
    assert "calmtunes group" not in err


@pytest.mark.parametrize("argv", [["listener", "new", "--state-dir", ""],
                                  ["sessions", "--state-dir", " "],
                                  ["report", "--state-dir", "", "--out", "r.html"],
                                  ["report", "--out", ""]])
def test_an_empty_path_is_refused_not_taken_for_the_devices_folder(argv, capsys):
    """`listener new --state-dir ""` reset the device's own personaliser (/var/lib/calmtunes)."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "needs a path, got an empty one" in capsys.readouterr().err


def test_an_empty_records_file_lists_no_sessions_and_a_file_as_the_folder_is_named(tmp_path,
                                                                                   capsys):
    """An empty sessions.db read as "near FROM: syntax error (are you in the calmtunes
    group?)"; a state folder that is a file as "no sessions recorded"."""
    (tmp_path / DB_NAME).write_bytes(b"")
    assert _cli(tmp_path) == 0
    assert "no sessions recorded" in capsys.readouterr().out
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("x")
    assert cli.main(["sessions", "--state-dir", str(not_a_folder)]) == 1
    assert f"the state folder {not_a_folder} is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("jump_s", [100 * DAY_S, -DAY_S])
def test_a_wall_clock_set_during_a_session_leaves_its_record_whole(tmp_config, jump_s, caplog,
                                                                    monkeypatch):
    """A technician sets the date mid-session (a Pi has no battery clock and no network time):
    the running record is neither pruned (forward 100 days, past the 90-day retention) nor
    stalled and reversed (back a day); the jump is logged; the next session takes the new
    date."""
    from clocked import run, virtual_daemon

    PRUNE_EVERY_S = 120.0  # hourly on the device: two minutes here, for a short run
    monkeypatch.setattr("calmtunes.sessions.PRUNE_EVERY_S", PRUNE_EVERY_S)

    daemon = virtual_daemon(tmp_config)
    clock = daemon.clock
    epoch0 = clock.epoch

    def set_the_date():
        clock.epoch += jump_s

    def new_session():
        daemon._set_playing(False)
        daemon._set_playing(True)

    run(daemon, 3 * PRUNE_EVERY_S, at=[(60.0, set_the_date), (2 * PRUNE_EVERY_S, new_session)])
    rows = sorted(SessionStore.for_config(tmp_config, readonly=True).rows(),
                  key=lambda r: r["id"])
    assert len(rows) == 2, rows
    first, second = rows
    assert first["started_at"] == pytest.approx(epoch0, abs=5)
    # the first session's own time: 4 min of play, whatever the wall clock did
    assert first["duration_s"] == pytest.approx(2 * PRUNE_EVERY_S, abs=5)
    assert first["ended_at"] - first["started_at"] == pytest.approx(first["duration_s"], abs=1)
    assert second["started_at"] == pytest.approx(epoch0 + jump_s + 2 * PRUNE_EVERY_S, abs=5)
    assert second["duration_s"] == pytest.approx(PRUNE_EVERY_S, abs=5)
    assert "the wall clock moved" in caplog.text


def test_the_advice_for_records_that_cannot_be_written_fits_the_cause(tmp_path, monkeypatch):
    import errno as e
    import types

    from calmtunes import sessions

    rofs = OSError(e.EROFS, "Read-only file system")
    assert "read-only file system" in sessions._fix(rofs)
    assert "read-only" in sessions._fix(sqlite3.OperationalError(
        "attempt to write a readonly database"))
    full = OSError(e.ENOSPC, "No space left on device")
    assert "disk is full" in sessions._fix(full)
    assert "disk is full" in sessions._fix(sqlite3.OperationalError("database or disk is full"))
    # the folder the records are in, not the default one
    assert "`df -h /srv/bedside/state`" in sessions._fix(full, Path("/srv/bedside/state"))
    # the folder's file system mounted read-only (an SD card with errors): SQLite says only
    # that it is "unable to open", which is otherwise a question of ownership
    cannot = sqlite3.OperationalError("unable to open database file")
    assert "belong to the daemon's user" in sessions._fix(cannot, tmp_path)
    real = os.statvfs
    monkeypatch.setattr(sessions.os, "statvfs", lambda p: types.SimpleNamespace(
        f_flag=real(p).f_flag | os.ST_RDONLY))
    assert "read-only file system" in sessions._fix(cannot, tmp_path / "state" / "calmtunes")
    # never the advice to move a file away: that cannot help
    for exc in (rofs, full, cannot):
        assert "move it away" not in sessions._fix(exc, tmp_path)


def test_records_are_not_kept_where_another_user_could_read_or_change_them(tmp_path,
                                                                            monkeypatch):
    """A state folder any user may write (another user's `mkdir -m777`, with a 0666
    sessions.db of theirs in it), or one another user owns: the daemon does not write the
    listeners' records there; the music goes on and status says why."""
    from calmtunes.care.store import CareStore

    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    problems: list[str] = []
    assert SessionRecorder.open(cfg_for(state), now=T0, problems=problems) is None
    assert "may be written by every user" in problems[0] and "chmod o-w" in problems[0]
    assert not (state / DB_NAME).exists()
    with pytest.raises(PermissionError, match="may be written by every user"):
        CareStore(state).new_listener(T0)
    os.chmod(state, 0o750)
    # owned by someone else (here: this process pretends to be uid 4321)
    monkeypatch.setattr(os, "geteuid", lambda: 4321)
    problems.clear()
    assert SessionRecorder.open(cfg_for(state), now=T0, problems=problems) is None
    assert f"belongs to uid {os.stat(state).st_uid}, not to this user (uid 4321)" in problems[0]
    monkeypatch.undo()
    rec = SessionRecorder.open(cfg_for(state), now=T0)  # the daemon's own folder: kept
    assert rec is not None
    rec.close(T0 + 1)


def test_records_locked_at_start_are_tried_again_and_the_session_recorded(tmp_config):
    """A 3 s lock (a technician's sqlite3 shell) while the daemon started switched the records
    off for the whole run, status saying so long after the lock was gone."""
    from calmtunes.sessions import DB_NAME, OPEN_RETRY_S, SessionStore
    from clocked import run, virtual_daemon

    first = virtual_daemon(tmp_config)
    run(first, 1.0)
    path = Path(tmp_config.device.state_dir) / DB_NAME
    holder = sqlite3.connect(str(path), timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    daemon = virtual_daemon(tmp_config)
    assert daemon.sessions is None
    said = daemon.status()["records"]
    assert said and "locked by another program" in said[0] and "trying again" in said[0]
    holder.rollback()
    holder.close()
    status = run(daemon, OPEN_RETRY_S + 3.0, at=[(OPEN_RETRY_S + 2.0, daemon.status)])[-1]
    assert status["records"] == []
    store = SessionStore(path, 90, readonly=True)
    try:
        rows = store.rows()
    finally:
        store.close()
    assert len(rows) == 2 and rows[-1]["ended_by"] == "stop"  # this run's session, ended cleanly


def test_a_brief_lock_at_the_stop_does_not_lose_the_sessions_summary(tmp_config):
    import threading

    from calmtunes.sessions import DB_NAME, SessionStore
    from clocked import run, virtual_daemon

    daemon = virtual_daemon(tmp_config)
    run(daemon, 2.0)  # a clean stop: the baseline of what is written
    path = Path(tmp_config.device.state_dir) / DB_NAME
    again = virtual_daemon(tmp_config)
    holder = sqlite3.connect(str(path), timeout=0, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.5, lambda: (holder.rollback(), holder.close()))
    release.start()
    run(again, 2.0)  # stops (and writes its summary) while the lock is held
    release.join()
    store = SessionStore(path, 90, readonly=True)
    try:
        rows = store.rows()
        unclean = store.unclean_stops()
    finally:
        store.close()
    assert [r["ended_by"] for r in rows] == ["stop", "stop"] and not unclean


def _rows(tmp_path) -> list[dict]:
    store = SessionStore(tmp_path / DB_NAME, 90, readonly=True)
    try:
        return store.rows()
    finally:
        store.close()


def _locked(tmp_path) -> sqlite3.Connection:
    """Another program holding the records file (a sqlite3 shell, a backup)."""
    holder = sqlite3.connect(str(tmp_path / DB_NAME), timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_session_begun_while_the_file_is_locked_is_written_once_it_is_free(tmp_path):
    from calmtunes.sessions import RETRY_EVERY_S

    rec = SessionRecorder.open(cfg_for(tmp_path), T0)
    rec.start(T0, "calm")
    rec.end(T0 + 60, "pause")  # a first session, written
    holder = _locked(tmp_path)
    rec.start(T0 + 100, "sleep")  # its row cannot be written now
    assert rec.unwritten and "not yet written" in rec.unwritten
    for k in range(240):  # four minutes of readings, the lock let go after the first
        t = T0 + 100 + k
        rec.reading(t, reading(80 - k / 24, 0.6))
        if k == 60:
            holder.rollback()
            holder.close()
        rec.tick(t)
    assert rec.unwritten is None  # retried within RETRY_EVERY_S of the lock's end
    assert RETRY_EVERY_S <= 120
    rec.end(T0 + 340, "pause")
    rec.close(T0 + 341)
    rows = _rows(tmp_path)
    assert [r["ended_by"] for r in rows] == ["pause", "pause"]
    last = rows[-1]
    assert last["started_at"] == T0 + 100 and last["presets"] == "sleep"
    assert last["duration_s"] == 240.0 and last["hr_start"] > last["hr_end"]


def test_a_session_ended_while_the_file_is_locked_is_not_left_for_an_unclean_stop(tmp_path):
    from calmtunes.sessions import RETRY_EVERY_S

    rec = SessionRecorder.open(cfg_for(tmp_path), T0)
    rec.start(T0, "calm")
    for k in range(120):
        rec.reading(T0 + k, reading(75, 0.5))
    holder = _locked(tmp_path)
    rec.end(T0 + 120, "pause")  # the end cannot be written now
    assert rec.unwritten and "end" in rec.unwritten
    holder.rollback()
    holder.close()
    rec.tick(T0 + 120 + RETRY_EVERY_S)
    assert rec.unwritten is None
    rec.close(T0 + 200)
    rows = _rows(tmp_path)
    assert len(rows) == 1
    assert rows[0]["ended_by"] == "pause" and rows[0]["duration_s"] == 120.0
    assert rows[0]["hr_end"] == 75.0
    again = SessionRecorder.open(cfg_for(tmp_path), T0 + 300)
    assert again.restarts_unclean(T0 + 300)["total"] == 0
    again.close(T0 + 301)


def test_an_end_still_unwritten_at_the_stop_is_written_with_it(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path), T0)
    rec.start(T0, "calm")
    holder = _locked(tmp_path)
    rec.end(T0 + 90, "pause")
    holder.rollback()
    holder.close()
    rec.close(T0 + 95)  # no tick in between: the stop writes it
    assert [r["ended_by"] for r in _rows(tmp_path)] == ["pause"]


def test_the_daemons_status_says_a_session_waits_to_be_written(tmp_config):
    from clocked import run, virtual_daemon

    daemon = virtual_daemon(tmp_config)
    path = Path(tmp_config.device.state_dir) / DB_NAME
    held: list[sqlite3.Connection] = []

    def lock_and_pause():
        holder = sqlite3.connect(str(path), timeout=0, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        held.append(holder)
        daemon._do_command("play_pause", None, "test")  # the session's end cannot be written

    def unlock():
        held[0].rollback()
        held[0].close()

    said = run(daemon, 70.0, at=[(2.0, lock_and_pause), (3.0, lambda: daemon.status()["records"]),
                                 (4.0, unlock), (68.0, lambda: daemon.status()["records"])])
    assert said[1] and "not yet written" in said[1][0]
    assert said[3] == []
    rows = _rows(path.parent)
    assert rows and rows[0]["ended_by"] not in (None, "unclean")


def test_the_stress_index_has_a_first_minute_of_its_own(tmp_path):
    # it needs three minutes of pulse before its first value: counted from the session's first
    # reading, its "first minute" was always empty, and no session had a stress start or trend
    rec = SessionRecorder.open(cfg_for(tmp_path), T0)
    rec.start(T0, "calm")
    for k in range(600):
        stress = None if k < 180 else 0.8 - 0.4 * (k - 180) / 420
        rec.reading(T0 + k, PulseReading(t=0.0, finger=True, quality=0.9, hr_bpm=80.0 - k / 60,
                                         rmssd_ms=40.0, breathing_rate=12.0, stress=stress,
                                         stress_sd=0.05 if stress is not None else None))
    s = rec.summary(T0 + 600)
    assert s["stress_start"] == pytest.approx(0.8 - 0.4 * 30 / 420, abs=0.01)  # 180–240 s
    assert s["stress_trend"] == pytest.approx(s["stress_end"] - s["stress_start"])
    assert s["hr_start"] == pytest.approx(79.5, abs=0.01)  # the others as before: 0–60 s
    rec.close(T0 + 601)


def test_the_table_says_what_a_running_session_is_and_whose_it_is(tmp_path):
    row = {c: None for c in COLUMNS}
    row |= {"id": 1, "started_at": T0, "presets": "calm", "duration_s": 0.0,
            "last_seen_at": T0 + 222.0, "listener": "L20260105-6759f9",
            "hr_start": 86.456, "hr_end": 69.823, "hr_trend": -16.634,
            "rmssd_start": 30.2, "rmssd_end": 30.4, "rmssd_trend": 0.2}
    lines = format_rows([row]).splitlines()
    assert "listener" in lines[0]
    assert "  3.7  running " in lines[1] and "L20260105-6759f9" in lines[1]
    assert "86→70 (-16)" in lines[1]  # the trend of the numbers shown
    assert "30→30 (+0)" in lines[1] and "(-0)" not in lines[1]
    assert any(line.startswith("running: no end recorded yet") for line in lines[2:])


def test_forget_forgets_the_personalisers_nights_too(tmp_path, capsys):
    # the session records went, but each night's arm, reward and reason stayed in the care
    # record, and the next report said "0 sessions ... Listener L…: 1 night"
    from calmtunes.care.store import CareStore, Night

    rec = SessionRecorder.open(cfg_for(tmp_path), now=T0)
    record_session(rec, minutes=2)
    rec.close(T0 + 999)
    care = CareStore(tmp_path)
    listener = care.new_listener(T0)
    care.add_night(listener, Night(T0, "calm", 1.5, "ok", 1))
    assert _cli(tmp_path, "--forget", "--yes") == 0
    said = capsys.readouterr().out
    assert "deleted 1 session record(s)" in said
    assert "deleted the personaliser's record of 1 listener(s)" in said
    assert list(care.listeners_dir.iterdir()) == [] and not care.current_path.exists()
    assert care.peek_current() is None


def test_a_start_whose_commit_failed_is_written_once(tmp_path):
    # with the rollback journal (WAL not to be had), a reader holding the file lets the
    # insert through but not its commit: the insert stayed in the open transaction and the
    # retry inserted the session again
    from calmtunes.sessions import RETRY_EVERY_S

    rec = SessionRecorder.open(cfg_for(tmp_path), T0)
    rec.store._db.execute("PRAGMA journal_mode=DELETE")
    reader = sqlite3.connect(str(tmp_path / DB_NAME), timeout=0)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sessions").fetchone()  # a shared lock, held
    rec.start(T0 + 100, "sleep")
    assert rec.unwritten
    reader.rollback()
    reader.close()
    rec.tick(T0 + 100 + RETRY_EVERY_S)
    rec.end(T0 + 200, "pause")
    rec.close(T0 + 201)
    rows = _rows(tmp_path)
    assert [(r["started_at"], r["ended_by"]) for r in rows] == [(T0 + 100, "pause")]
