"""One control loop on an injected clock: replayable sessions, the render is the daemon, reload is
honest (each part whose section changed, and only those; the simulation overlay survives)."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from calmtunes import cli
from calmtunes.clock import VirtualClock
from calmtunes.config import Config
from calmtunes.daemon import Daemon
from calmtunes.render import render_offline
from calmtunes.scheduler import Scheduler
from clocked import run, virtual_daemon


def sim_config(tmp_path: Path) -> Config:
    return Config().replace(
        device={"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
        music={"generator": "procedural", "seed": 3},
        sim={"scenario": "stressed", "seed": 5},
        care={"enabled": False},  # a render has no listener record to choose an arm from
    )


def write(path: Path, config: Config) -> Path:
    path.write_text(yaml.safe_dump(dataclasses.asdict(config)))
    return path


def digest(path: Path) -> tuple[int, str]:
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
        return w.getnframes(), hashlib.sha256(frames).hexdigest()


def rms_db(path: Path, start_s: float, end_s: float) -> float:
    with wave.open(str(path)) as w:
        sr = w.getframerate()
        w.setpos(int(start_s * sr))
        x = np.frombuffer(w.readframes(int((end_s - start_s) * sr)), "<i2") / 32768.0
    return 10 * np.log10(np.mean(x.astype(float) ** 2) + 1e-20)


# -- the scheduler and the clock ---------------------------------------------------------------
def test_the_scheduler_runs_tasks_in_time_order_and_ties_in_the_order_added():
    clock = VirtualClock()
    sched = Scheduler(clock)
    seen = []
    sched.add("a", lambda now: seen.append(("a", now)) or 1.0)
    sched.add("b", lambda now: seen.append(("b", now)) or 0.5)
    sched.run_until(2.0)
    assert seen == [("a", 0.0), ("b", 0.0), ("b", 0.5), ("a", 1.0), ("b", 1.0), ("b", 1.5)]
    assert clock.monotonic() == 2.0


def test_a_woken_task_runs_at_once_and_an_ended_one_never_again():
    clock = VirtualClock()
    sched = Scheduler(clock)
    seen = []
    sleeper = sched.add("sleeper", lambda now: seen.append(now) or 100.0)
    sched.add("waker", lambda now: (sched.wake(sleeper) if now == 3.0 else None) or 3.0, 3.0)
    sched.run_until(5.0)
    assert seen == [0.0, 3.0]
    sched.end(sleeper)
    sched.run_until(500.0)
    assert seen == [0.0, 3.0]


def test_the_virtual_clock_never_goes_back():
    clock = VirtualClock(epoch=1000.0)
    clock.advance_to(5.0)
    clock.advance_to(2.0)
    assert clock.monotonic() == 5.0 and clock.time() == 1005.0
    with pytest.raises(ValueError):
        clock.advance(-1.0)


# -- replay: the same inputs give the same samples ---------------------------------------------
@pytest.mark.slow
def test_render_and_simulate_on_the_virtual_clock_give_the_same_samples(tmp_path):
    """The closed loop (emulated MAX30102, pulse analysis, camera, panel, conductor, composer,
    mixer, WAV output): `calmtunes render` and `calmtunes simulate --virtual-clock` are one path.
    """
    cfg = sim_config(tmp_path)
    path = write(tmp_path / "config.yaml", cfg)
    a, b, c = (tmp_path / n for n in ("render.wav", "simulate.wav", "again.wav"))
    summary = render_offline(cfg, 0.4, a, scenario="stressed")
    assert cli.main(["simulate", "--config", str(path), "--virtual-clock", "--duration", "24",
                     "--out", str(b)]) == 0
    assert digest(a) == digest(b)
    assert digest(a)[0] == 24 * 48000  # exactly the length asked for
    assert summary["trace"].t[:3] == [1.0, 2.0, 3.0] or summary["trace"].t[0] <= 2.0
    # the listener was heard: the pulse path measured it and the conductor met its heart
    assert any(m != "open" for m in summary["trace"].mode)
    # the emulators count their own CPU, so a benchmark can tell the device's work from theirs
    assert 0.0 < summary["emulator_cpu_s"] < sum(summary["busy_s"].values())
    render_offline(cfg.replace(sim={"seed": 6}), 0.4, c, scenario="stressed")
    assert digest(c) != digest(a)  # another listener: another session


@pytest.mark.slow
def test_render_seed_seeds_the_composer_and_the_simulated_listener(tmp_path):
    """`calmtunes render --scenario S --seed N` is the session scripts/bench_music measures
    as seed N (composer and simulated listener and room all seeded N), whatever seeds the
    config file holds."""
    cfg = sim_config(tmp_path)  # the file's seeds: composer 3, listener 5
    path = write(tmp_path / "config.yaml", cfg)
    a, b = tmp_path / "cli.wav", tmp_path / "api.wav"
    assert cli.main(["render", "--config", str(path), "--minutes", "0.4", "--scenario",
                     "stressed", "--seed", "6", "--out", str(a)]) == 0
    render_offline(cfg.replace(music={"seed": 6}, sim={"seed": 6}), 0.4, b,
                   scenario="stressed")
    assert digest(a) == digest(b)


@pytest.mark.slow
def test_simulate_seed_is_render_seed(tmp_path):
    """`calmtunes simulate --virtual-clock --seed N` seeds what `calmtunes render --seed N`
    seeds (the composer too), so the two give the same samples for the same scenario."""
    cfg = sim_config(tmp_path)  # the file's seeds: composer 3, listener 5
    path = write(tmp_path / "config.yaml", cfg)
    a, b = tmp_path / "render.wav", tmp_path / "simulate.wav"
    assert cli.main(["render", "--config", str(path), "--minutes", "0.4", "--scenario",
                     "stressed", "--seed", "6", "--out", str(a)]) == 0
    assert cli.main(["simulate", "--config", str(path), "--virtual-clock", "--duration", "24",
                     "--scenario", "stressed", "--seed", "6", "--out", str(b)]) == 0
    assert digest(a) == digest(b)


def test_a_render_is_replayed_sample_for_sample(tmp_path):
    cfg = sim_config(tmp_path)
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    first = render_offline(cfg, 0.25, a, preset="sleep")
    second = render_offline(cfg, 0.25, b, preset="sleep")
    assert digest(a) == digest(b) and digest(a)[0] == 15 * 48000
    assert first["phrases"] == second["phrases"]
    assert first["emulator_cpu_s"] == 0.0  # no senses, no emulators
    assert not (tmp_path / "state").exists()  # a render leaves the device's state alone


# -- honest reload ------------------------------------------------------------------------------
def _reloaded_session(tmp_path: Path, name: str, target_lufs: float):
    """60 s of simulation whose config file is rewritten and reloaded at 20 s; the file alone
    says "the real MAX30102 and a USB camera" (the defaults), so the overlay must keep the
    emulated ones."""
    cfg = sim_config(tmp_path)
    out = tmp_path / f"{name}.wav"
    path = write(tmp_path / f"{name}.yaml", cfg)
    overlay = cli.simulation_overlay(cfg, type("Args", (), {"out": str(out)})())
    daemon = virtual_daemon(cfg, config_path=str(path), overlay=overlay)
    parts: dict = {}

    def change():
        written = dataclasses.asdict(Config().replace(
            device={"state_dir": cfg.device.state_dir, "runtime_dir": cfg.device.runtime_dir},
            music={"generator": "procedural", "seed": 3, "target_lufs": target_lufs},
            sim={"scenario": "stressed", "seed": 5}, care={"enabled": False}))
        path.write_text(yaml.safe_dump(written))
        parts["before"] = {c.name: c for c in daemon.components}
        daemon.request_reload()

    status = run(daemon, 60.0, at=[(20.0, change), (21.0, daemon.status)])[-1]
    return daemon, status, parts["before"], path, out


@pytest.mark.slow
def test_reload_under_simulation_keeps_the_emulators_and_restarts_only_what_changed(tmp_path):
    daemon, status, before, path, out = _reloaded_session(tmp_path, "quieter", -40.0)
    assert status["config"]["generation"] == 2 and status["config"]["path"] == str(path)
    reload = status["config"]["last_reload"]
    assert reload["ok"] and reload["changed"] == ["music"]
    assert reload["parts"] == {"composer": "reconfigured", "audio": "reconfigured",
                               "panel": "reconfigured", "conductor": "reconfigured"}
    assert "pulse" not in reload["parts"] and "scene" not in reload["parts"]
    assert status["components"]["pulse"]["backend"] == "sim"
    assert status["components"]["scene"]["backend"] == "sim"
    assert status["config"]["hardware"] == "sim"
    assert {c.name: c for c in daemon.components} == before  # restarted in place
    assert daemon.audio.mixer.normaliser.target == -40.0
    # Heard: against the same session with the old target (sample-identical up to the reload),
    # the music is 10 dB quieter within half a minute.
    _, _, _, _, same = _reloaded_session(tmp_path, "same", Config().music.target_lufs)
    assert rms_db(out, 5, 19) == rms_db(same, 5, 19)
    assert rms_db(same, 45, 58) - rms_db(out, 45, 58) > 8.0


def test_a_reload_that_changes_what_only_a_start_can_take_is_refused_whole(tmp_path):
    cfg = sim_config(tmp_path).replace(pulse={"backend": "none"}, scene={"backend": "none"},
                                       panel={"backend": "none"}, audio={"backend": "null"})
    path = write(tmp_path / "config.yaml", cfg.replace(
        device={"state_dir": str(tmp_path / "elsewhere")}, music={"volume_step_db": 5.0}))
    daemon = virtual_daemon(cfg, config_path=str(path))
    status = run(daemon, 3.0, at=[(1.5, daemon.request_reload), (2.5, daemon.status)])[-1]
    assert status["config"]["generation"] == 1
    error = status["config"]["last_reload"]["error"]
    assert "device.state_dir take effect only at a start" in error
    assert "nothing was changed" in error
    assert daemon.config.music.volume_step_db == cfg.music.volume_step_db


def test_the_socket_reload_answers_with_the_outcome(tmp_path):
    cfg = sim_config(tmp_path).replace(pulse={"backend": "none"}, scene={"backend": "none"},
                                       panel={"backend": "none"}, audio={"backend": "null"})
    path = write(tmp_path / "config.yaml", cfg.replace(music={"volume_step_db": 5.0}))
    daemon = Daemon(cfg, config_path=str(path), control=False)
    reply = daemon.handle_request({"cmd": "reload"})
    assert reply["ok"] and reply["config"]["generation"] == 2
    assert reply["config"]["last_reload"]["parts"]["conductor"] == "reconfigured"
    path.write_text("music: [")
    reply = daemon.handle_request({"cmd": "reload"})
    assert not reply["ok"] and "config.yaml" in reply["error"]


# -- one loop, one owner ------------------------------------------------------------------------
def test_commands_from_many_threads_are_applied_by_the_loop_alone(tmp_config):
    """Panel and socket threads publish; only the loop's thread changes the state."""
    daemon = virtual_daemon(tmp_config)
    owners = set()
    do = daemon._do_command

    def spy(*args):
        owners.add(threading.get_ident())
        return do(*args)

    daemon._do_command = spy

    def storm():
        threads = [threading.Thread(target=lambda: [daemon.hub.command("volume_down")
                                                    for _ in range(5)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    run(daemon, 3.0, at=[(1.5, storm)])
    assert owners == {threading.get_ident()}  # this thread ran the loop
    low = max(tmp_config.music.min_volume_db,
              tmp_config.music.volume_db - 20 * tmp_config.music.volume_step_db)
    assert daemon.conductor.volume_db == low
