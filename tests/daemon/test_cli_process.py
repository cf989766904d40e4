"""The calmtunes command as a process: exit statuses, signals, offline render."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from calmtunes import cli
from clocked import wait_until

CALMTUNES = [sys.executable, "-m", "calmtunes"]


def env_for(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), XDG_RUNTIME_DIR=str(tmp_path / "run"),
               HOME=str(tmp_path))
    env.pop("NOTIFY_SOCKET", None)
    return env


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    return rate, data.astype(np.float64) / 32768.0


def test_config_error_exits_78_listing_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("audio:\n  sample_rate: 1000\n  devise: x\npulse:\n  address: 999\n")
    proc = subprocess.run([*CALMTUNES, "run", "--config", str(bad)], capture_output=True,
                          text=True, timeout=60, env=env_for(tmp_path))
    assert proc.returncode == 78
    assert "3 problems" in proc.stderr
    assert "audio.devise: unknown option (did you mean 'device'?)" in proc.stderr
    assert "pulse.address: 999 is above the maximum 119" in proc.stderr


def _unit_stop_timeout_s() -> float:
    unit = Path(__file__).resolve().parents[2] / "systemd" / "calmtunes.service"
    value = re.search(r"^TimeoutStopSec=(\d+)s$", unit.read_text(), re.M)
    assert value, "the unit states its TimeoutStopSec= in seconds"
    return float(value.group(1))


def test_sigterm_fades_out_and_exits_0_before_systemd_kills_it(tmp_path):
    out = tmp_path / "sim.wav"
    err = tmp_path / "stderr.log"  # a file, so the test can watch the log while it runs
    with err.open("w") as stderr:
        proc = subprocess.Popen([*CALMTUNES, "simulate", "--out", str(out)],
                                stderr=stderr, text=True, env=env_for(tmp_path))
    try:
        # A real process on the system clock: poll what it writes.
        # past the 3 s fade-in, so what was played before the stop is the music at its level
        wait_until(lambda: out.exists() and out.stat().st_size > 48000 * 4 * 4, timeout=30,
                   what="4 s of audio in the simulation's WAV")
        proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: "--- thread audio" in err.read_text(), timeout=10,
                   what="the thread dump in the log")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    log = err.read_text()
    assert code == 0, log
    # systemd sends SIGKILL after TimeoutStopSec=: the fade (≤ 2 s of audio, checked below) and
    # the exit must both fit in it. How long stopping takes is measured by scripts/bench.
    assert took < _unit_stop_timeout_s(), f"stopping took {took:.2f} s"
    assert "thread dump (SIGUSR1)" in log and "--- thread audio" in log
    rate, audio = read_wav(out)
    assert rate == 48000
    tail = np.abs(audio[-2400:]).max()  # last 50 ms: faded to (near) silence
    body = np.abs(audio[: len(audio) - 2 * 48000]).max()  # all but the fade-out's ≤ 2 s
    assert body > 0.01 and tail < body / 20


def test_render_writes_music_of_the_asked_length(tmp_path):
    out = tmp_path / "r.wav"
    proc = subprocess.run([*CALMTUNES, "render", "--minutes", "0.25", "--out", str(out),
                           "--preset", "sleep", "--seed", "3", "--progress"],
                          capture_output=True, text=True, timeout=120, env=env_for(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "100.0%" in proc.stderr
    rate, audio = read_wav(out)
    assert rate == 48000 and len(audio) == 15 * 48000
    assert np.abs(audio).max() < 0.99
    assert np.sqrt(np.mean(audio**2)) > 1e-3


def test_render_refuses_an_unknown_preset(tmp_path):
    proc = subprocess.run([*CALMTUNES, "render", "--minutes", "0.1", "--out",
                           str(tmp_path / "x.wav"), "--preset", "disco"],
                          capture_output=True, text=True, timeout=60, env=env_for(tmp_path))
    assert proc.returncode == 2
    assert "no preset 'disco'" in proc.stderr


@pytest.mark.parametrize("command", ["render", "simulate"])
def test_a_negative_seed_is_refused_as_the_option_it_is(tmp_path, command):
    """It was refused as "music.seed … sim.seed" of a config nobody wrote."""
    args = ["--minutes", "0.05", "--out", str(tmp_path / "x.wav")] if command == "render" else []
    proc = subprocess.run([*CALMTUNES, command, *args, "--seed", "-1"], capture_output=True,
                          text=True, timeout=60, env=env_for(tmp_path))
    assert proc.returncode == 2
    assert "argument --seed: needs a whole number, 0 or more, got -1" in proc.stderr
    assert "music.seed" not in proc.stderr


def test_render_into_a_folder_says_it_cannot_write_and_exits_1(tmp_path):
    proc = subprocess.run([*CALMTUNES, "render", "--minutes", "0.05", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env_for(tmp_path))
    assert proc.returncode == 1
    assert f"calmtunes render: cannot write {tmp_path}: Is a directory" in proc.stderr
    assert "Traceback" not in proc.stderr and "wrote" not in proc.stdout


def _file_size_limit(limit: int):
    """A child's RLIMIT_FSIZE (bytes), with SIGXFSZ ignored: a write past it fails with EFBIG,
    as a write to a full card fails with ENOSPC."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("where", ["limit", "/dev/full"])
def test_render_that_cannot_write_its_whole_file_fails_and_keeps_no_broken_file(tmp_path, where):
    """A render whose writes fail part way (a full disk) was reported written, with a file whose
    header claimed frames it did not hold and tracebacks from the WAV writer. Now it stops at
    once, exits 1 naming the file and why, and leaves no partial file to be taken for it."""
    out = tmp_path / "r.wav" if where == "limit" else Path(where)
    if not out.exists() and where != "limit":
        pytest.skip(f"no {where} here")
    t0 = time.monotonic()
    proc = subprocess.run([*CALMTUNES, "render", "--minutes", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=env_for(tmp_path),
                          preexec_fn=_file_size_limit(200_000) if where == "limit" else None)
    assert proc.returncode == 1, proc.stderr[-2000:]
    why = "File too large" if where == "limit" else "No space left on device"
    assert f"calmtunes render: cannot write {out}: {why}" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert "wrote" not in proc.stdout
    if where == "limit":
        assert not out.exists()
    assert time.monotonic() - t0 < 60  # it stopped at the first failure, not at the end


def render_both(tmp_path: Path, out: Path, midi: Path | str) -> subprocess.CompletedProcess:
    """``calmtunes render`` of 3 s into ``out`` and ``midi``."""
    return subprocess.run([*CALMTUNES, "render", "--minutes", "0.05", "--out", str(out),
                           "--midi", str(midi)],
                          capture_output=True, text=True, timeout=60, env=env_for(tmp_path))


def test_render_refuses_one_file_for_the_sound_and_the_notes(tmp_path):
    out = tmp_path / "r.wav"
    proc = render_both(tmp_path, out, tmp_path / "." / "r.wav")
    assert proc.returncode == 2
    assert "--midi and --out name the same file" in proc.stderr and "r.mid" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("link", ["r.mid", "r.wav"])
def test_render_refuses_a_link_that_makes_the_two_files_one(tmp_path, link):
    # a link to a file not there yet: the notes would have been written over the sound
    other = {"r.mid": "r.wav", "r.wav": "r.mid"}[link]
    (tmp_path / link).symlink_to(tmp_path / other)
    proc = render_both(tmp_path, tmp_path / "r.wav", tmp_path / "r.mid")
    assert proc.returncode == 2, proc.stderr
    assert "--midi and --out name the same file" in proc.stderr
    assert not (tmp_path / other).exists()


def test_render_into_a_midi_folder_that_is_not_there_says_so_before_rendering(tmp_path):
    out = tmp_path / "r.wav"
    proc = render_both(tmp_path, out, tmp_path / "no" / "r.mid")
    assert proc.returncode == 1
    assert "cannot write the MIDI file" in proc.stderr and "there is no such folder" in \
        proc.stderr
    assert not out.exists()  # nothing rendered for a file that could not be written


def test_render_with_a_midi_file_on_a_full_disk_names_it(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    proc = subprocess.run([*CALMTUNES, "render", "--minutes", "0.05", "--out",
                           str(tmp_path / "r.wav"), "--midi", "/dev/full"],
                          capture_output=True, text=True, timeout=120, env=env_for(tmp_path))
    assert proc.returncode == 1
    assert "calmtunes render: cannot write /dev/full: No space left on device" in proc.stderr


def test_render_with_a_midi_file_it_cannot_write_exits_1(tmp_path):
    proc = subprocess.run([*CALMTUNES, "render", "--minutes", "0.05", "--out",
                           str(tmp_path / "r.wav"), "--midi", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env_for(tmp_path))
    assert proc.returncode == 1
    assert f"calmtunes render: cannot write {tmp_path}: Is a directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_simulate_on_the_virtual_clock_into_a_folder_exits_1(tmp_path):
    proc = subprocess.run([*CALMTUNES, "simulate", "--virtual-clock", "--duration", "3",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env_for(tmp_path))
    assert proc.returncode == 1
    assert f"calmtunes simulate: cannot write {tmp_path}: Is a directory" in proc.stderr
    assert "Traceback" not in proc.stderr and "wrote" not in proc.stdout


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e999", "ten"])
@pytest.mark.parametrize("command", [["render", "--out", "x.wav", "--minutes"],
                                     ["simulate", "--virtual-clock", "--out", "x.wav",
                                      "--duration"],
                                     ["fault", "--duration"]])
def test_a_length_of_time_that_is_not_a_positive_number_is_wrong_usage(command, value, capsys):
    with pytest.raises(SystemExit) as end:
        cli.main([*command, value])
    assert end.value.code == 2
    err = capsys.readouterr().err
    assert f"needs a finite number above 0, got {value!r}" in err and "Traceback" not in err


def test_a_render_longer_than_a_wav_file_holds_is_refused_before_it_starts(tmp_path, capsys):
    out = tmp_path / "night.wav"
    assert cli.main(["render", "--minutes", "480", "--out", str(out)]) == 2
    assert "more than one WAV file holds at 48000 Hz (at most 372 minutes)" in \
        capsys.readouterr().err
    assert not out.exists()


def test_simulate_refuses_an_unknown_scenario_as_render_does(tmp_path, capsys, monkeypatch):
    for key, value in env_for(tmp_path).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "x.wav"
    assert cli.main(["simulate", "--virtual-clock", "--duration", "3", "--out", str(out),
                     "--scenario", "stresed"]) == 2
    err = capsys.readouterr().err
    assert "no scenario 'stresed'" in err and "stressed" in err
    assert not out.exists()


def test_status_without_a_daemon_exits_69(tmp_path):
    proc = subprocess.run([*CALMTUNES, "status", "--runtime-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=env_for(tmp_path))
    assert proc.returncode == 69
    assert "daemon is not running" in proc.stderr



_OUTSIDER = """
import os, sys
import gettext, json, socket, time  # everything the command needs, before the rights are dropped
from calmtunes import cli, config, config_file, control, fault
cli.build_parser()
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(cli.main(["status", "--runtime-dir", sys.argv[1]]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to ask as another user")
def test_status_from_outside_the_group_exits_77_not_69(tmp_path):
    """A daemon's socket there that this user may not open: a daemon may well be running, so
    not "not running" (69) but 77, saying how a technician joins the group."""
    import shutil
    import socket
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="calmtunes-perm-"))  # pytest's own folder is 0700
    try:
        os.chmod(base, 0o755)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(base / "control.sock"))
            os.chmod(base / "control.sock", 0o660)  # root's: uid 65534 is not in its group
            server.listen(1)
            proc = subprocess.run([sys.executable, "-c", _OUTSIDER, str(base)],
                                  capture_output=True, text=True, timeout=60,
                                  env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    finally:
        shutil.rmtree(base)
    assert proc.returncode == 77, proc.stderr
    assert "may not open the daemon's socket" in proc.stderr and "usermod" in proc.stderr

def test_simulate_says_where_the_sound_goes_as_the_config_has_it():
    from calmtunes.config import Config

    base = Config()
    assert cli.audio_output(base) == "the default sound device"
    assert cli.audio_output(base.replace(audio={"device": "hifiberry"})) == (
        "the sound device matching 'hifiberry'")
    assert cli.audio_output(base.replace(audio={"backend": "null"})) == (
        "nowhere (audio.backend 'null')")
    assert cli.audio_output(base.replace(audio={"backend": "wav", "wav_path": "/tmp/x.wav"})) == (
        "/tmp/x.wav")


def test_output_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path):
    """`calmtunes sessions > /dev/full` (a full disk behind a redirection) and with its output
    closed ended in tracebacks."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    args = [*CALMTUNES, "sessions", "--state-dir", str(tmp_path)]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                              env=env_for(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == "calmtunes: cannot write the output: No space left on device"
    closed = subprocess.run([*args, "--export", "csv"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, timeout=60, env=env_for(tmp_path),
                            preexec_fn=lambda: os.close(1))
    assert closed.returncode == 0 and "Traceback" not in closed.stderr


@pytest.mark.parametrize("argv", [["fault", "--duration", "1e10"],
                                  ["simulate", "--duration", "1e300"]])
def test_a_duration_past_what_a_timer_can_wait_is_refused(argv, capsys):
    """`fault --duration 1e10` passed the check and the timer's thread died with OverflowError,
    leaving the LEDs blinking for ever."""
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(argv)
    assert info.value.code == 2 and "at most 31622400 (a year)" in capsys.readouterr().err


@pytest.mark.parametrize("extra, words", [
    (["--listener", "prefers-calm", "--nights", "1", "--duration", "60", "--virtual-clock",
      "--state-dir", "/dev/null"], "--state-dir /dev/null is not a folder"),
    (["--listener", "prefers-calm", "--nights", "1", "--duration", "60", "--virtual-clock",
      "--state-dir", "STATE", "--preset", "sleep"], "--preset has no meaning with --listener"),
    (["--duration", "1", "--state-dir", "STATE"], "--state-dir is for --listener and --nights"),
])
def test_simulate_says_which_options_do_not_go_together(tmp_path, extra, words):
    """A nights study on a state folder that is a file ended in a NotADirectoryError
    traceback; --state-dir without --listener, and --out/--preset/--scenario with it, were
    silently ignored."""
    extra = [str(tmp_path / "state") if a == "STATE" else a for a in extra]
    proc = subprocess.run([*CALMTUNES, "simulate", *extra], capture_output=True, text=True,
                          timeout=60, env=env_for(tmp_path))
    assert proc.returncode == 2 and words in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["render", "simulate"])
def test_an_output_never_replaces_a_file_of_another_kind(tmp_path, command):
    """`--out /var/lib/calmtunes/sessions.db` wrote sound over the records; a WAV (or MIDI) is
    now written only where nothing, an empty file or a file of its kind is."""
    records = tmp_path / "sessions.db"
    records.write_bytes(b"SQLite format 3\0" + bytes(200))
    length = ["--minutes", "0.05"] if command == "render" else \
        ["--virtual-clock", "--duration", "3"]
    for option, target in (("--out", records), ("--midi", records)):
        args = ["--out", str(tmp_path / "r.wav"), "--midi", str(target)] if option == "--midi" \
            else ["--out", str(target)]
        if option == "--midi" and command == "simulate":
            continue
        proc = subprocess.run([*CALMTUNES, command, *length, *args], capture_output=True,
                              text=True, timeout=120, env=env_for(tmp_path))
        assert proc.returncode == 2, proc.stderr[-1000:]
        assert f"{option} {records} is there and is not a" in proc.stderr
        assert records.read_bytes().startswith(b"SQLite format 3")
    again = subprocess.run([*CALMTUNES, command, *length, "--out", str(tmp_path / "w.wav")],
                           capture_output=True, text=True, timeout=120, env=env_for(tmp_path))
    assert again.returncode == 0, again.stderr[-1000:]
    twice = subprocess.run([*CALMTUNES, command, *length, "--out", str(tmp_path / "w.wav")],
                           capture_output=True, text=True, timeout=120, env=env_for(tmp_path))
    assert twice.returncode == 0, twice.stderr[-1000:]  # an earlier output is replaced


def test_help_says_what_the_command_is_and_its_exit_statuses(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # wrapped to the terminal's width
    assert done.value.code == 0
    assert "``" not in out  # no markup from a docstring
    assert "bedside calming-music device" in out
    for status in ("69 the daemon is not running", "77 its socket", "78 configuration error"):
        assert status in out


def test_a_relative_state_folder_on_the_command_line_is_where_the_shell_stands(tmp_path,
                                                                               monkeypatch):
    # the config takes only absolute folders; typed in a shell, "nights" means ./nights
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["sessions", "--state-dir", "nights"])
    assert args.state_dir == str(tmp_path / "nights")
    args = cli.build_parser().parse_args(["status", "--runtime-dir", "./run"])
    assert args.runtime_dir == str(tmp_path / "run")
    assert cli.main(["sessions", "--state-dir", "nights"]) == 0


def test_reload_of_an_emptied_file_does_not_say_the_client_runs_on_the_defaults(tmp_path):
    # the client reads the config only to find the socket; the file's problem is the
    # daemon's to say, in its refusal
    empty = tmp_path / "config.yaml"
    empty.write_text("# emptied by an edit\n")
    done = subprocess.run([*CALMTUNES, "reload", "--config", str(empty)], env=env_for(tmp_path),
                          capture_output=True, text=True, timeout=60)
    err = done.stderr
    assert done.returncode == 69, err  # no daemon here
    assert "running on the defaults" not in err and "no settings" not in err


def test_render_notes_to_dev_null_need_no_writable_dev(tmp_path, monkeypatch):
    # the early check of the MIDI file's folder took /dev for the folder of /dev/null and
    # refused anyone but root
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == "/dev" else real(p, mode))
    assert cli._folder_refused("/dev/null", "MIDI", "render") is False
    link = tmp_path / "notes.mid"
    (tmp_path / "real").mkdir()
    link.symlink_to(tmp_path / "real" / "n.mid")
    (tmp_path / "real").chmod(0o500)
    try:  # a link is written where it points: that folder is the one checked
        assert cli._folder_refused(str(link), "MIDI", "render") is (os.geteuid() != 0)
    finally:
        (tmp_path / "real").chmod(0o700)
