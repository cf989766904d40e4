"""The clinician's report: one self-contained page with the right figures, from the records."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from calmtunes import cli
from calmtunes.care.reward import session_response
from calmtunes.config import Config
from calmtunes.music.controls import Controls
from calmtunes.pulse.reading import PulseReading
from calmtunes.sessions import SessionRecorder
from calmtunes.sim.profiles import profile
from calmtunes.sim.study import run_study

pytest.importorskip("matplotlib")

from calmtunes.report import ReportError, build_report

T0 = 1_760_000_000.0


def known_session(state_dir):
    """A 15-minute session whose figures are known: heart rate 80 bpm in the first 3 minutes,
    70 from minute 5, RMSSD 30 → 45 ms, breathing 15 → 9 (paced at 6); the finger off in
    minute 10; the scene 'night' from minute 8; the preset sleep from minute 12."""
    cfg = Config().replace(device={"state_dir": str(state_dir)})
    rec = SessionRecorder.open(cfg, now=T0)
    rec.start(T0, "calm")
    for k in range(900):
        t = T0 + k
        late = k >= 300
        finger = not 600 <= k < 660
        rec.reading(t, PulseReading(
            t=k, finger=finger, quality=0.9 if finger else 0.0,
            hr_bpm=(70.0 if late else 80.0) if finger else None,
            rmssd_ms=45.0 if late else 30.0, breathing_rate=9.0 if late else 15.0,
            stress=0.3, stress_sd=0.05))
        preset = "sleep" if k >= 720 else "calm"
        if k == 720:
            rec.preset("sleep")
        rec.controls(t, Controls(preset=preset, tempo_bpm=72.0 - k / 100, breath_rate=6.0,
                                 volume_db=-6.0 if k < 450 else -9.0))
        rec.scene(t, "night" if k >= 480 else None)
        rec.tick(t)
    response = session_response(rec.points(T0 + 900))  # as the daemon does at the end
    rec.note(arm="calm/no-bed", chosen_by="personaliser", **response.columns())
    rec.end(T0 + 900, "pause")
    rec.close(T0 + 901)
    return cfg


def svgs(page):
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.S)


def test_the_page_needs_nothing_from_elsewhere_and_has_every_plot(tmp_path):
    cfg = Config().replace(device={"state_dir": str(tmp_path)})
    run_study(cfg, profile("prefers-sleep"), 3, 600.0, seed=1, state_dir=tmp_path)
    page = build_report(cfg, tmp_path, last=2)
    assert len(svgs(page)) == 1 + 1 + 2  # the trend, the belief, two sessions in detail
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "src="):
        assert forbidden not in page.lower(), forbidden
    assert not re.search(r"url\((?!#)", page)  # only references within the page
    links = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert links <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # names only
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids clash between the plots"
    for words in ("not an ECG", "not a diagnosis", "bpm", "breaths/min", "RMSSD (ms)",
                  "What the personaliser learned", "3 night(s)"):
        assert words in page, words


def test_a_known_session_shows_its_figures(tmp_path):
    cfg = known_session(tmp_path)
    page = build_report(cfg, tmp_path, session_id=1)
    assert "80.0 → 70.0 bpm (change -10.0 bpm)" in page
    assert "30 → 45 ms (change +15 ms)" in page
    assert "15.0 → 9.0 breaths/min" in page and "paced at 6.0 breaths/min" in page
    # reward: 10 bpm / 5 + 15 ms / 10 + (|15 − 6| − |9 − 6|) / 3 breaths/min = 2 + 1.5 + 2
    assert "calm/no-bed" in page and "+5.50 reward units" in page
    # the minute from 4.8 min (one step at 80 bpm, five at 70: 71.7) is within 2 bpm of 70
    assert "minutes to settle</th><td class=l>4.8" in page
    assert "presets in order: calm,sleep" in page
    [plot] = [s for s in svgs(page)[1:]]  # the trend, then the session (no belief: no listener)
    for label in ("heart rate (pulse)", "music tempo", "paced breathing", "scene: night",
                  "volume, dB", "sleep"):
        assert label in plot, label
    assert "No listener record" in page


def test_the_command_writes_a_private_file_and_explains_failures(tmp_path, capsys):
    known_session(tmp_path)
    out = tmp_path / "r.html"
    assert cli.main(["report", "--state-dir", str(tmp_path), "--out", str(out)]) == 0
    # the writer's alone: their own group may be one that may not read the records
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert cli.main(["report", "--state-dir", str(tmp_path), "--session", "99",
                     "--out", str(out)]) == 1
    assert "no session 99" in capsys.readouterr().err
    assert cli.main(["report", "--state-dir", str(tmp_path / "none"), "--out", str(out)]) == 1
    assert "no sessions recorded" in capsys.readouterr().err
    with pytest.raises(ReportError, match="no sessions"):
        build_report(Config(), tmp_path / "none")



def test_the_report_shows_one_listeners_nights_never_another_patients(tmp_path):
    """Two nights of one patient, then a new listener (the next patient) and one night: the
    report is the current listener's; asked for an earlier session, its listener's."""
    from calmtunes.care.store import CareStore

    cfg = Config().replace(device={"state_dir": str(tmp_path)})
    store = CareStore(tmp_path)
    nights = []
    for listener, start, hr in ((store.new_listener(T0), T0, 95.0),
                                (None, T0 + 86400, 96.0),
                                (store.new_listener(T0 + 2 * 86400), T0 + 2 * 86400, 62.0)):
        listener = listener or nights[-1][0]
        rec = SessionRecorder.open(cfg, now=start)
        rec.start(start, "calm")
        for k in range(600):
            rec.reading(start + k, PulseReading(t=k, finger=True, quality=0.9, hr_bpm=hr,
                                                rmssd_ms=40.0, breathing_rate=12.0,
                                                stress=0.3, stress_sd=0.05))
            rec.tick(start + k)
        rec.note(listener=listener, arm="calm/no-bed")
        nights.append((listener, rec.session_id))
        rec.end(start + 600, "pause")
        rec.close(start + 601)
    first, second = nights[0][0], nights[2][0]
    page = build_report(cfg, tmp_path, now=T0 + 3 * 86400)
    assert f"listener {second}, 1 session(s) recorded" in page
    assert "2 session(s) of other listeners, or of none, are not shown" in page
    across = page.split("Across sessions")[1].split("Sessions in detail")[0]
    table = re.findall(r"<table\b.*?</table>", across, flags=re.S)[0]
    assert first not in page and table.count("<tr>") == 2  # the header and the one night
    earlier = build_report(cfg, tmp_path, session_id=nights[0][1], now=T0 + 3 * 86400)
    assert f"listener {first}, 2 session(s) recorded" in earlier and second not in earlier


def test_a_session_of_no_listener_asked_for_is_shown_while_a_listener_is_current(tmp_path):
    """A session recorded with the personaliser off, asked for by its id after a listener was
    started: its own detail, among the sessions of no listener (it came out empty)."""
    from calmtunes.care.store import CareStore

    cfg = known_session(tmp_path)
    CareStore(tmp_path).new_listener(T0 + 86400)
    page = build_report(cfg, tmp_path, session_id=1, now=T0 + 2 * 86400)
    assert "1 session(s) recorded, 1 shown in detail" in page and "<h3>Session 1:" in page


_OUTSIDER = """
import os, sys
# everything the command needs is loaded before the rights are dropped
import csv, locale, plistlib, shutil, sqlite3, tempfile, time, yaml
import matplotlib
from calmtunes import cli, config, config_file, report, sessions
from calmtunes.care import personaliser, store
from calmtunes.report import _matplotlib
_matplotlib()
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(cli.main(sys.argv[1:]))
"""


def as_other_user(argv: list[str]) -> tuple[int, str]:
    """``calmtunes ARGV`` as uid/gid 65534 (nobody: not in the records' group): its exit code
    and stderr."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), MPLCONFIGDIR="/nonexistent")
    proc = subprocess.run([sys.executable, "-c", _OUTSIDER, *argv], capture_output=True,
                          text=True, timeout=120, env=env)
    return proc.returncode, proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
@pytest.mark.parametrize("argv", [["sessions"], ["sessions", "--export", "csv"],
                                  ["report", "--out", "OUT"], ["listener", "show"]])
def test_someone_outside_the_group_is_told_so_not_given_a_traceback(tmp_path, argv):
    """A user who may not read the records: one line naming the group, exit 1; not a
    traceback, not "cannot write" the report, not "no listener recorded"."""
    import tempfile

    from calmtunes.care.store import CareStore

    base = Path(tempfile.mkdtemp(prefix="calmtunes-acl-"))  # pytest's own folder is 0700
    try:
        os.chmod(base, 0o755)
        state = base / "state"
        state.mkdir()
        known_session(state)
        CareStore(state).new_listener(T0)
        os.chmod(state, 0o750)  # the daemon's folder: its user and group only
        out = base / "out"
        out.mkdir()
        os.chmod(out, 0o777)
        argv = [a.replace("OUT", str(out / "r.html")) for a in argv]
        code, err = as_other_user([*argv, "--state-dir", str(state)])
    finally:
        shutil.rmtree(base)
    assert code == 1, err
    assert "are you in the calmtunes group?" in err and "Traceback" not in err
    assert "cannot write" not in err


@pytest.mark.parametrize("kind", ["fifo", "link", "folder", "device"])
def test_the_report_never_takes_the_place_of_anything_but_a_file(tmp_path, capsys, kind):
    """Written by rename, the report put a regular file in the place of a device node (as root,
    /dev/full), a FIFO or a symbolic link. It now refuses them, naming what is there."""
    known_session(tmp_path)
    out = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "link":
        (tmp_path / "target.html").write_text("keep")
        out.symlink_to(tmp_path / "target.html")
    elif kind == "folder":
        out.mkdir()
    else:
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(out, 0o600 | stat.S_IFCHR, os.makedev(1, 7))  # as /dev/full
    before = os.lstat(out)
    assert cli.main(["report", "--state-dir", str(tmp_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"calmtunes report: cannot write {out}: it is" in err
    after = os.lstat(out)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    if kind == "link":
        assert (tmp_path / "target.html").read_text() == "keep"


def test_the_report_replaces_an_earlier_report_but_never_another_file(tmp_path, capsys):
    """`report --out` with the records' own file (a tab-completion slip under sudo) wrote HTML
    over sessions.db. Only an earlier report (or an empty file) is replaced now."""
    known_session(tmp_path)
    db = tmp_path / "sessions.db"
    before = db.read_bytes()
    for victim in (db, tmp_path / "config.yaml"):
        if not victim.exists():
            victim.write_text("music:\n  volume_db: -12\n")
        kept = victim.read_bytes()
        assert cli.main(["report", "--state-dir", str(tmp_path), "--out", str(victim)]) == 1
        err = capsys.readouterr().err
        assert "not a calmtunes report" in err and "name a new file" in err
        assert victim.read_bytes() == kept
    assert db.read_bytes() == before
    out = tmp_path / "report.html"
    out.write_bytes(b"")
    for _ in range(2):  # a new (empty) file, then the report it became
        assert cli.main(["report", "--state-dir", str(tmp_path), "--out", str(out)]) == 0
        assert out.read_bytes().startswith(b"<!DOCTYPE html>")
    capsys.readouterr()


def test_the_listener_command(tmp_path, capsys):
    assert cli.main(["listener", "show", "--state-dir", str(tmp_path)]) == 0
    assert "no listener" in capsys.readouterr().out
    assert cli.main(["listener", "new", "--state-dir", str(tmp_path)]) == 0
    listener = capsys.readouterr().out.split()[2].rstrip(":")
    assert cli.main(["listener", "show", "--state-dir", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert f"listener {listener}: 0 nights" in shown and "calm" in shown


def test_listener_new_in_a_state_folder_that_is_a_file_says_so(tmp_path, capsys):
    blocker = tmp_path / "state"
    blocker.write_text("")
    assert cli.main(["listener", "new", "--state-dir", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write the care record in {blocker / 'care'}" in err
    assert "check --state-dir" in err


def test_the_daemon_side_never_imports_matplotlib():
    code = ("import sys, calmtunes.daemon, calmtunes.sessions, calmtunes.care.personaliser, "
            "calmtunes.sim.study; print('matplotlib' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-500:]


def test_the_page_renders_in_a_browser_without_errors(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    cfg = known_session(tmp_path)
    out = tmp_path / "r.html"
    out.write_text(build_report(cfg, tmp_path))
    try:
        pw = sync_api.sync_playwright().start()
    except Exception as exc:  # no driver
        pytest.skip(f"playwright cannot start: {exc}")
    try:
        try:
            browser = pw.chromium.launch()
        except Exception as exc:  # playwright's own browser was never fetched: Debian's
            system = shutil.which("chromium") or shutil.which("chromium-browser")
            if system is None:
                pytest.skip(f"no Chromium for playwright ({str(exc).splitlines()[0]}), and no "
                            "chromium on PATH (apt install chromium)")
            browser = pw.chromium.launch(executable_path=system)
        page = browser.new_page()
        errors, requests = [], []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: r.url.startswith("file:") or requests.append(r.url))
        page.goto(out.as_uri())
        assert errors == [] and requests == []
        boxes = [s.bounding_box() for s in page.query_selector_all("svg")]
        assert len(boxes) == 2 and all(b["width"] > 300 and b["height"] > 150 for b in boxes)
        browser.close()
    finally:
        pw.stop()


def test_the_command_leaves_nothing_but_the_report(tmp_path):
    """matplotlib keeps a settings folder and a font list (the computer's fonts, by name and
    path) in ~/.config and ~/.cache, or in a folder of its own in /tmp: the report command,
    run as a clinician would with a fresh home, leaves neither, only the file it was asked for."""
    state, home, tmp, work = (tmp_path / n for n in ("state", "home", "tmp", "work"))
    for d in (home, tmp, work):
        d.mkdir()
    known_session(state)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(tmp),
           "LANG": "C.UTF-8", "PYTHONPATH": os.pathsep.join(sys.path),
           "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "calmtunes", "report", "--state-dir", str(state),
                           "--out", str(work / "r.html")], capture_output=True, text=True,
                          env=env, cwd=work, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in work.iterdir()) == ["r.html"]
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []


def test_many_sessions_keep_the_report_a_readable_size(tmp_path):
    """1001 sessions gave a 1001-row table and a 1.25 MB page; the table and trend now show the
    last ACROSS_MAX and say how many earlier ones the CSV export has."""
    from calmtunes.report import ACROSS_MAX, build_report

    cfg = Config().replace(device={"state_dir": str(tmp_path)})
    rec = SessionRecorder.open(cfg, now=T0)
    for i in range(ACROSS_MAX + 20):
        t = T0 + 3600.0 * i
        rec.start(t, "calm")
        rec.end(t + 120.0, "pause")
    rec.close(T0 + 3600.0 * (ACROSS_MAX + 21))
    page = build_report(cfg, tmp_path, last=1)
    assert "20 earlier ones are not shown" in page and "--export csv" in page
    table = page.split("<h2>Across sessions</h2>")[1].split("<h2>")[0]
    assert table.count("<tr><td class=l>") == ACROSS_MAX


def test_times_carry_their_zone_and_a_short_session_has_no_settling(monkeypatch):
    import time as time_mod

    from calmtunes.care.reward import settle_minutes
    from calmtunes.care.trace import TracePoint
    from calmtunes.report import _when
    from calmtunes.sessions import format_rows

    monkeypatch.setenv("TZ", "Europe/Paris")
    time_mod.tzset()
    try:
        assert _when(T0).endswith((" CET", " CEST"))
        row = {c: None for c in ("duration_s", "ended_by", "presets", "arm", "reward")}
        row |= {f"{f}_{k}": None for f in ("hr", "rmssd", "breathing", "stress")
                for k in ("start", "end", "trend")}
        row |= {"started_at": T0, "ended_by": "sleep_timer", "duration_s": 60.0}
        line = format_rows([row]).splitlines()[1]
        assert (" CET " in line or " CEST " in line) and "sleep_timer " in line
    finally:
        monkeypatch.delenv("TZ")
        time_mod.tzset()
    two_minutes = [TracePoint(t_s=10.0 * k, hr_bpm=70.0, usable=1.0) for k in range(12)]
    assert settle_minutes(two_minutes) is None  # no 3-minute reference to settle to


def test_listener_show_counts_every_night_and_marks_the_clinicians_settings(tmp_path, capsys):
    """'2 nights, 0 with a reward' then '(0 nights)' on every arm read as a contradiction, and
    a forbidden arm was listed like any other."""
    from calmtunes.care.store import CareStore, Night

    store = CareStore(tmp_path)
    listener = store.new_listener(T0)
    store.add_night(listener, Night(T0, "sleep", None, "too short"))
    store.add_night(listener, Night(T0 + 86400, "sleep", 1.0, "ok"))
    config = tmp_path / "config.yaml"
    config.write_text("care:\n  forbidden_arms: [uplift]\n  pinned_arm: sleep\n")
    assert cli.main(["listener", "show", "--state-dir", str(tmp_path), "--config",
                     str(config)]) == 0
    out = capsys.readouterr().out
    [sleep] = [x for x in out.splitlines() if x.strip().startswith("sleep ")]
    assert "(1 rewarded of 2 nights)" in sleep and "pinned" in sleep
    assert all("forbidden" in x for x in out.splitlines() if x.strip().startswith("uplift"))


def test_listener_show_says_when_the_current_listener_file_is_damaged(tmp_path, capsys):
    from calmtunes.care.store import CareStore

    store = CareStore(tmp_path)
    listener = store.new_listener(T0)
    store.current_path.write_text("{garbage")
    assert cli.main(["listener", "show", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "does not name a listener" in err and listener in err


def test_a_negative_last_is_refused_not_read_from_the_end(tmp_path, capsys):
    known_session(tmp_path)
    with pytest.raises(SystemExit) as done:
        cli.main(["report", "--state-dir", str(tmp_path), "--last=-3",
                  "--out", str(tmp_path / "r.html")])
    assert done.value.code == 2 and "needs 0 or more, got -3" in capsys.readouterr().err


def test_a_listener_id_changed_by_hand_is_said_not_a_traceback(tmp_path):
    import sqlite3

    known_session(tmp_path)
    with sqlite3.connect(str(tmp_path / "sessions.db")) as db:
        db.execute("UPDATE sessions SET listener = ?", ('<i>L"x',))
    page = build_report(Config(), tmp_path, session_id=1)
    assert "the record cannot be read" in page and "<i>L" not in page


def test_a_session_not_ended_reads_as_running_with_its_figures(tmp_path):
    # it was shown as 0 minutes, 'recorded before traces were kept', every figure '—'
    cfg = Config().replace(device={"state_dir": str(tmp_path)})
    rec = SessionRecorder.open(cfg, now=T0)
    rec.start(T0, "calm")
    for k in range(400):
        rec.reading(T0 + k, PulseReading(t=k, finger=True, quality=0.9, hr_bpm=87.0 - k / 40,
                                         rmssd_ms=30.0, breathing_rate=14.0, stress=None,
                                         stress_sd=None))
        rec.tick(T0 + k)  # written at 300 s, and not ended: a crash, or still playing
    rec.store.close()
    page = build_report(cfg, tmp_path, session_id=1)
    assert "No course written yet: the session is running" in page
    assert "not ended: running" in page and "none yet" in page
    assert "5.0 min</h3>" in page  # to its last write
    assert "86.2 → 80.2 bpm" in page  # its first and last minute, as written at 300 s


def test_the_report_says_who_chose_each_sessions_arm(tmp_path):
    # a session the clinician pinned read the same as one the personaliser chose
    known_session(tmp_path)
    page = build_report(Config(), tmp_path)
    assert "chosen by" in page and "<td class=l>personaliser</td>" in page
    assert "the clinician's pin" in page  # the glossary says what the values mean


def test_a_short_sessions_windows_end_with_it():
    # a 9-minute session showed the response window's cream out to 15 minutes, as if the
    # signal had been lost; a 2-minute one showed a response it never reached
    from calmtunes.report import _windows

    assert _windows(9.0) == [(0.5, 3.0, "baseline"), (5.0, 9.0, "response")]
    assert _windows(2.0) == [(0.5, 2.0, "baseline")]
    assert _windows(30.0)[-1] == (5.0, 15.0, "response")


def test_arms_are_told_apart_without_colour_and_the_clinicians_marks_are_shown(tmp_path):
    from calmtunes.care.bandit import Belief
    from calmtunes.report import ARM_COLOURS, ARM_HATCHES, belief_figure, trend_figure

    assert len(set(ARM_COLOURS)) == len(ARM_COLOURS) == len(set(ARM_HATCHES))
    from calmtunes.report import _matplotlib

    _, Figure = _matplotlib()
    sessions = [{"arm": arm, "reward": 0.5, "hr_base": 80.0, "hr_resp": 75.0,
                 "rmssd_base": 30.0, "rmssd_resp": 35.0}
                for arm in ("calm", "uplift/slower", "sleep", "uplift")]
    svg = trend_figure(Figure, sessions, "t")
    assert svg.count("<pattern") >= 3  # every arm but the first hatched its own way
    beliefs = [Belief("calm", 1.0, 0.5, 2), Belief("sleep", 0.5, 0.5, 1),
               Belief("calm/no-bed", 0.2, 0.9, 0)]
    svg = belief_figure(Figure, beliefs, "b", {"calm": 3, "sleep": 1}, ["calm/no-bed"],
                        "sleep")
    assert "calm/no-bed (forbidden)" in svg and "sleep (pinned)" in svg
    assert "2 rewarded of 3 played" in svg
