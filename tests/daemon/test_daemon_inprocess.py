"""The daemon assembled in-process: commands, state, reload, fallback, control socket.

All but the socket test run the daemon on a virtual clock (``clocked``): seconds of its life in
milliseconds, the same every time."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import yaml

import calmtunes.daemon as daemon_mod
from calmtunes.control import request, socket_path
from calmtunes.daemon import Daemon
from calmtunes.errors import ModelError
from clocked import run, virtual_daemon, wait_until


def run_for(daemon: Daemon, during):
    """The daemon on the system clock, in a thread, while ``during()`` talks to it."""
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: daemon.audio.first_frame_at is not None and daemon.control._thread,
                   what="the daemon's first audio and its socket")
        return during()
    finally:
        daemon.request_stop()
        thread.join(5)
        assert not thread.is_alive()


def test_status_over_the_control_socket(tmp_config):
    daemon = Daemon(tmp_config)

    def ask():
        path = socket_path(tmp_config.device.runtime_dir)
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        return request(path, "status")

    reply = run_for(daemon, ask)
    assert reply["ok"] and reply["preset"] == "calm"
    assert reply["components"]["audio"]["state"] == "ok"
    assert reply["components"]["audio"]["underruns"] == 0
    assert reply["components"]["pulse"]["state"] in ("disabled", "ok", "degraded", "starting")


def test_bad_requests_get_errors_not_crashes(tmp_config):
    daemon = Daemon(tmp_config)

    def ask():
        path = socket_path(tmp_config.device.runtime_dir)
        return [request(path, "teleport"), request(path, "hang", arg="nothing"),
                request(path, "status")["ok"]]

    unknown, hang, still = run_for(daemon, ask)
    assert unknown["ok"] is False
    assert unknown["error"].startswith("unknown command 'teleport' (have: status, preset,")
    assert hang["ok"] is False and "no component 'nothing'" in hang["error"]
    assert still is True


def test_preset_and_volume_survive_a_restart(tmp_config):
    daemon = virtual_daemon(tmp_config)

    def press():
        daemon.hub.command("preset", "sleep")
        daemon.hub.command("volume_down")

    run(daemon, 2.0, at=[(1.5, press)])
    again = Daemon(tmp_config, control=False)
    assert again.conductor.preset == "sleep"
    assert again.conductor.volume_db == tmp_config.music.volume_db - tmp_config.music.volume_step_db


def test_unknown_preset_is_refused_and_music_goes_on(tmp_config, caplog):
    daemon = virtual_daemon(tmp_config)
    _, status = run(daemon, 3.0, at=[(1.5, lambda: daemon.hub.command("preset", "disco")),
                                     (2.5, daemon.status)])
    assert status["preset"] == "calm"
    assert "command refused (panel): no preset 'disco'" in caplog.text
    assert status["components"]["audio"]["state"] == "ok"


def test_volume_is_capped(tmp_config):
    daemon = Daemon(tmp_config, control=False)
    for _ in range(20):
        daemon.hub.command("volume_up")
    assert daemon.conductor.volume_db == tmp_config.music.max_volume_db


def test_generator_failure_falls_back_without_silence(tmp_config, caplog):
    cfg = tmp_config.replace(music={"generator": "onnx"})

    def broken_loader(config, seed):
        raise ModelError("model hash mismatch")

    daemon = virtual_daemon(cfg, composer_loader=broken_loader)
    [status] = run(daemon, 2.0, at=[(1.5, daemon.status)])
    assert "generator unavailable (model hash mismatch)" in caplog.text
    assert status["components"]["composer"]["composer"] == "procedural"
    assert status["components"]["audio"]["underruns"] == 0


def test_sighup_applies_a_good_config_and_refuses_a_bad_one(tmp_config, tmp_path, caplog):
    path = tmp_path / "config.yaml"
    data = {k: v for k, v in __import__("dataclasses").asdict(tmp_config).items()}
    path.write_text(yaml.safe_dump(data))
    daemon = virtual_daemon(tmp_config, config_path=str(path))

    def good():
        data["music"]["volume_step_db"] = 6.0
        path.write_text(yaml.safe_dump(data))
        daemon.request_reload()

    def bad():
        path.write_text("music:\n  volume_step_db: 100\n  colour: red\n")
        daemon.request_reload()

    _, good, _, after_bad, status = run(daemon, 4.0, at=[
        (1.5, good), (2.0, lambda: daemon.config.music.volume_step_db), (2.5, bad),
        (3.0, lambda: daemon.config.music.volume_step_db), (3.5, daemon.status)])
    assert good == 6.0
    assert after_bad == 6.0, "a bad config must not be applied, even partly"
    assert status["config"]["generation"] == 2  # one accepted reload
    assert status["config"]["last_reload"]["ok"] is False
    assert "config reload refused" in caplog.text
    assert "music.colour: unknown option" in caplog.text
    assert status["components"]["audio"]["state"] == "ok"


def test_privacy_survives_a_restart_and_is_reapplied(tmp_config):
    daemon = virtual_daemon(tmp_config)
    seen = []
    daemon.hub.subscribe("privacy", seen.append)
    run(daemon, 2.0, at=[(1.5, lambda: daemon.hub.command("privacy"))])
    assert daemon.privacy is True and seen == [False, True]
    again = virtual_daemon(tmp_config)
    seen2 = []
    again.hub.subscribe("privacy", seen2.append)
    run(again, 1.5)
    assert seen2 == [True]  # published before the camera could take a frame


def test_a_camera_off_for_privacy_is_never_opened_at_a_start(tmp_config, monkeypatch):
    # in real time the scene's thread ran as soon as it was added, before the saved switch
    # was published: the camera opened and a frame was taken and analysed at every start
    from calmtunes.scene.component import SceneComponent

    cfg = tmp_config.replace(scene={"backend": "sim"})
    daemon = virtual_daemon(cfg)
    run(daemon, 2.0, at=[(1.0, lambda: daemon.hub.command("privacy"))])
    assert daemon.privacy is True
    opened = []
    real_open = SceneComponent._open_camera
    monkeypatch.setattr(SceneComponent, "_open_camera",
                        lambda self: (opened.append(1), real_open(self)))
    again = Daemon(cfg, control=False)  # the system clock: the parts in their own threads
    thread = threading.Thread(target=again.run, kwargs={"duration": 2.5}, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    assert again.privacy is True and opened == []


def test_a_corrupt_saved_volume_starts_at_the_first_start_volume_and_is_saved_so(tmp_config,
                                                                                  caplog):
    import json
    from pathlib import Path

    state = Path(tmp_config.device.state_dir)
    state.mkdir(parents=True)
    for text in ('{"volume_db": 1e308, "preset": "sleep"}', '{"volume_db": NaN}',
                 '{"volume_db": -Infinity, "preset": "disco"}'):
        (state / "state.json").write_text(text)
        (state / ".state.json.x1y2z3").write_text('{"volume_db": 6')  # left by a kill -9
        daemon = Daemon(tmp_config, control=False)
        assert daemon.conductor.volume_db == tmp_config.music.volume_db, text
        assert daemon.conductor.preset in ("sleep", "calm")
        daemon.save_state()
        saved = json.loads((state / "state.json").read_text())
        assert saved["volume_db"] == tmp_config.music.volume_db
        assert not (state / ".state.json.x1y2z3").exists()
        if daemon.sessions is not None:
            daemon.sessions.close(daemon.clock.time())
    assert "saved volume" in caplog.text and "saved preset 'disco'" in caplog.text


def test_compiled_libraries_load_before_the_first_sound(tmp_config, monkeypatch):
    # Loading OpenCV or onnxruntime holds the GIL for tens of ms (more from a cold SD card),
    # which the card's callback needs every 42.7 ms: they load before the sound starts, not in
    # the generator's loader thread or the camera's first frame while it plays
    order = []
    monkeypatch.setattr(daemon_mod, "importlib",
                        SimpleNamespace(import_module=lambda name: order.append(name)))
    daemon = virtual_daemon(tmp_config.replace(music={"generator": "onnx"},
                                               scene={"backend": "sim"}))
    start = daemon.supervisor.start
    monkeypatch.setattr(daemon.supervisor, "start", lambda: (order.append("sound"), start()))
    run(daemon, 0.5)
    assert order[:3] == ["onnxruntime", "cv2", "sound"]


def test_only_the_libraries_a_part_will_use_load_early(tmp_config, monkeypatch):
    asked = []
    monkeypatch.setattr(daemon_mod, "importlib",
                        SimpleNamespace(import_module=lambda name: asked.append(name)))
    run(virtual_daemon(tmp_config), 0.5)  # procedural composer, no camera
    run(virtual_daemon(tmp_config.replace(scene={"backend": "sim", "enabled": False})), 0.5)
    assert asked == []


def test_a_library_that_will_not_load_leaves_the_music_playing(tmp_config, monkeypatch):
    def broken(name):
        raise ImportError(f"libopencv_core.so.406: cannot open shared object file ({name})")

    monkeypatch.setattr(daemon_mod, "importlib", SimpleNamespace(import_module=broken))
    daemon = virtual_daemon(tmp_config.replace(scene={"backend": "sim"}))
    run(daemon, 1.0)
    assert daemon.audio.first_frame_at is not None


def test_a_chattering_buttons_volume_steps_are_taken_back_and_no_one_elses(tmp_config,
                                                                           caplog):
    """The panel sees a storm only once it has sent some of its steps; `undo_volume N` takes
    back the panel's last N steps (at the limit too: they were sent), by count, not by time, so
    a person's step just before the storm and a nurse's over the socket stay."""
    daemon = virtual_daemon(tmp_config)
    daemon.hub.command("volume", -15.0, source="panel")
    daemon.hub.command("volume_up", source="panel")  # a person: -12
    daemon.hub.command("volume_down", source="socket")  # a script over SSH: -15
    daemon.hub.command("volume_up", source="socket")  # and back: -12
    for _ in range(6):  # the storm: to the maximum, then steps that change nothing
        daemon.hub.command("volume_up", source="panel")
    assert daemon.conductor.volume_db == tmp_config.music.max_volume_db
    with caplog.at_level("WARNING", logger="calmtunes.daemon"):
        daemon.hub.command("undo_volume", 6, source="panel")
    assert daemon.conductor.volume_db == -12.0
    assert "volume -12.0 dB again" in caplog.text
    daemon.hub.command("undo_volume", 6, source="panel")  # the person's step: never louder,
    assert daemon.conductor.volume_db == -15.0  # ... and taken back only when asked for


def test_a_storm_on_volume_down_is_never_undone_louder(tmp_config, caplog):
    # a patient hammering "quieter" must not get the loudest change the device can make
    daemon = virtual_daemon(tmp_config)
    daemon.hub.command("volume", -6.0, source="panel")
    for _ in range(12):
        daemon.hub.command("volume_down", source="panel")
    quiet = daemon.conductor.volume_db
    assert quiet == tmp_config.music.min_volume_db
    with caplog.at_level("WARNING", logger="calmtunes.daemon"):
        daemon.hub.command("undo_volume", 12, source="panel")
    assert daemon.conductor.volume_db == quiet
    assert "would make the music louder" in caplog.text


def test_undo_volume_refuses_what_it_cannot_use(tmp_config, caplog):
    daemon = virtual_daemon(tmp_config)
    daemon.hub.command("volume", -9.0, source="panel")
    daemon.hub.command("volume_up", source="panel")
    with caplog.at_level("WARNING"):
        for bad in (None, -1, 0, 10**9, float("nan"), "2", True, 2.5):
            daemon.hub.command("undo_volume", bad, source="panel")
    assert daemon.conductor.volume_db == -6.0
    assert caplog.text.count("undo_volume needs a whole number of steps") == 8


def test_paused_at_a_power_cut_is_silent_after_it_and_play_plays(tmp_config):
    # the saved state said paused and `status` said so, but the music faded in all the same
    daemon = virtual_daemon(tmp_config)
    run(daemon, 2.0, at=[(1.0, lambda: daemon.hub.command("play_pause"))])
    assert daemon.conductor.playing is False
    again = virtual_daemon(tmp_config)
    heard = run(again, 6.0, at=[
        (2.0, lambda: (again.status()["playing"], again.audio.faded_out)),
        (3.0, lambda: again.hub.command("play_pause")),
        (5.5, lambda: (again.status()["playing"], again.audio.faded_out))])
    assert heard[0] == (False, True)  # paused, and silent
    assert heard[2] == (True, False)  # play fades in


def test_the_sleep_timer_from_the_panel_is_answered_cancelled_and_kept_across_a_power_cut(
        tmp_config):
    # a long press showed nothing, a second one restarted the timer, one while paused set a
    # timer on silence, and a power cut lost it (the music then played all night)
    daemon = virtual_daemon(tmp_config)
    answers = []
    daemon.hub.subscribe("sleep_timer", answers.append)
    daemon.hub.command("play_pause", source="panel")  # paused
    daemon.hub.command("sleep_timer", 30.0, source="panel")  # the long press while paused
    assert daemon.conductor.playing is True and daemon.sleep_at is not None
    daemon.hub.command("sleep_timer", 30.0, source="panel")  # the long press again
    assert daemon.sleep_at is None
    assert answers == [30.0, None]
    daemon.hub.command("sleep_timer", 30.0, source="panel")
    daemon.save_state()
    left = daemon.sleep_at - daemon.clock.monotonic()
    again = virtual_daemon(tmp_config)  # the power went, and came back at once
    assert again.sleep_at is not None
    assert again.sleep_at - again.clock.monotonic() == pytest.approx(left, abs=2.0)
    daemon.hub.command("sleep_timer", 30.0, source="socket")  # a script: set, never toggled
    daemon.hub.command("sleep_timer", 30.0, source="socket")
    assert daemon.sleep_at is not None
