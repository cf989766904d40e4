"""Session summaries in SQLite: first/last minute, trend, no raw data, retention, CLI."""

from __future__ import annotations

import csv
import io
import math
import sqlite3

import pytest
import yaml

from calmtunes import cli
from calmtunes.config import Config
from calmtunes.pulse.reading import PulseReading
from calmtunes.sessions import COLUMNS, DB_NAME, SessionRecorder, SessionStore

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
    rec = SessionRecorder.open(cfg_for(tmp_path))
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


def test_only_summaries_are_stored(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path))
    record_session(rec, minutes=3)
    db = sqlite3.connect(tmp_path / DB_NAME)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["sessions"]
    cols = [r[1] for r in db.execute("PRAGMA table_info(sessions)")]
    assert tuple(cols) == COLUMNS
    assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1


def test_unusable_readings_are_not_counted(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path))
    rec.start(T0, "calm")
    for k in range(100):
        rec.reading(T0 + k, reading(300.0, 0.5))  # impossible
        rec.reading(T0 + k, reading(80.0, 0.5, quality=0.1))  # unreliable
        rec.reading(T0 + k, reading(math.nan, 0.5))
        rec.reading(T0 + k, reading(80.0, 0.5, finger=False))
    rec.end(T0 + 100, "pause")
    [row] = rec.store.rows()
    assert row["readings"] == 0 and row["hr_start"] is None and row["hr_trend"] is None


def test_a_short_session_has_no_trend(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path))
    record_session(rec, minutes=1.5)
    [row] = rec.store.rows()
    assert row["hr_start"] is not None and row["hr_trend"] is None


def test_a_crash_leaves_the_session_as_last_written(tmp_path):
    cfg = cfg_for(tmp_path)
    rec = SessionRecorder.open(cfg)
    rec.start(T0, "calm")
    for k in range(95):
        rec.reading(T0 + k, reading(80.0, 0.4))
        rec.tick(T0 + k)
    # no end(), no close(): the process dies here
    again = SessionStore.for_config(cfg)
    [row] = again.rows()
    assert row["ended_by"] is None and T0 + 60 <= row["ended_at"] <= T0 + 95
    assert row["hr_start"] == pytest.approx(80.0)


def test_retention_deletes_old_sessions(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path, retention_days=7))
    record_session(rec, minutes=1, start=T0 - 8 * 86400)
    record_session(rec, minutes=1, start=T0 - 6 * 86400)
    assert rec.store.prune(T0) == 1
    assert len(rec.store.rows()) == 1


def test_export_and_forget(tmp_path):
    rec = SessionRecorder.open(cfg_for(tmp_path))
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


def _cli(tmp_path, *args, stdin=""):
    conf = tmp_path / "config.yaml"
    conf.write_text(yaml.safe_dump({"device": {"state_dir": str(tmp_path)}}))
    return cli.main(["sessions", "--config", str(conf), *args])


def test_cli_lists_exports_and_forgets(tmp_path, capsys, monkeypatch):
    assert _cli(tmp_path) == 0
    assert "no sessions" in capsys.readouterr().out
    rec = SessionRecorder.open(cfg_for(tmp_path))
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


def test_cli_forget_asks_first(tmp_path, capsys, monkeypatch):
    rec = SessionRecorder.open(cfg_for(tmp_path))
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
