"""The daemon's side of the loop: pulse and scene in, controls out, sleep timer, shutdown."""

from __future__ import annotations

import logging
import re
import time

import pytest

from calmtunes.config import Config
from calmtunes.daemon import EXIT_POWEROFF, Daemon
from calmtunes.pulse.reading import PulseReading
from calmtunes.render import render_offline
from calmtunes.scene.features import SceneFeatures


@pytest.fixture
def make_daemon(tmp_path):
    made = []

    def build(**panel):
        cfg = Config().replace(
            device={"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
            audio={"backend": "null"}, music={"generator": "procedural", "seed": 1},
            pulse={"backend": "none"}, scene={"backend": "none"},
            panel={"backend": "none", **panel}, care={"enabled": False})
        d = Daemon(cfg)
        made.append(d)
        return d

    yield build
    for d in made:
        if d.sessions is not None:
            d.sessions.close(time.time())


def test_pulse_and_scene_reach_the_audio_and_the_controls_topic(make_daemon):
    d = make_daemon()
    now = time.monotonic()
    d.hub.publish("pulse", PulseReading(t=now, finger=True, quality=0.9, hr_bpm=84.0,
                                        breathing_rate=15.0, stress=0.6, stress_sd=0.05))
    d.hub.publish("scene", SceneFeatures(t=now, luminance=0.02, colour_temp_k=None, motion=0.0,
                                         people=0, label="night"))
    d.conduct(now)
    published = d.hub.latest("controls")
    assert published.tempo_bpm == pytest.approx(84.0)
    assert d.audio.mixer.controls == published
    assert d.conductor.state()["mode"] == "iso start"
    d.conduct(now + 0.5)  # not yet a second: nothing new
    assert d.hub.latest("controls") is published


def test_sleep_timer_fades_out_and_pauses(make_daemon, caplog):
    d = make_daemon()
    d.hub.command("sleep_timer", 10)
    assert d.sleep_at == pytest.approx(time.monotonic() + 600, abs=2)
    d.conduct(d.sleep_at + 0.1)
    assert not d.conductor.playing and d.sleep_at is None
    assert d.audio.mixer._fade_target == 0.0
    d.hub.command("sleep_timer", None)  # the configured default
    assert d.sleep_at == pytest.approx(time.monotonic() + 60 * d.config.panel.sleep_timer_min,
                                       abs=2)
    d.hub.command("sleep_timer", 0)
    assert d.sleep_at is None
    with caplog.at_level(logging.WARNING):
        d.hub.command("sleep_timer", "soon")
        d.hub.command("sleep_timer", -5)
    assert "got 'soon'" in caplog.text and "got -5" in caplog.text
    assert "sleep timer needs 0–1440 minutes" in caplog.text
    assert d.sleep_at is None


def test_shutdown_only_when_configured(make_daemon, caplog):
    d = make_daemon()
    with caplog.at_level(logging.WARNING):
        d.hub.command("shutdown")
    assert "refused" in caplog.text and not d._stop.is_set()
    d2 = make_daemon(long_press_action="shutdown")
    d2.hub.command("shutdown")
    assert d2._stop.is_set() and d2.exit_code == EXIT_POWEROFF


def test_privacy_is_not_an_unknown_command(make_daemon, caplog):
    d = make_daemon()
    with caplog.at_level(logging.WARNING):
        d.hub.command("privacy")
    assert "unknown" not in caplog.text


def test_a_session_is_recorded_from_play_to_pause(make_daemon):
    d = make_daemon()
    assert d.sessions is not None and d.sessions.active
    d.hub.command("preset", "sleep")
    d.hub.command("play_pause")
    [row] = d.sessions.store.rows()
    assert row["presets"] == "calm,sleep" and row["ended_by"] == "pause"


def test_offline_closed_loop_render_follows_the_plan(tmp_path):
    cfg = Config().replace(music={"generator": "procedural", "seed": 2})
    out = tmp_path / "loop.wav"
    summary = render_offline(cfg, 2.0, out, scenario="stressed")
    assert out.stat().st_size > 2 * 60 * 48000 * 4
    trace, phrases = summary["trace"], summary["phrases"]
    # a turn a second until the fade-out at the end; the iso start near the heart (~90 bpm)
    assert abs(len(trace.t) - 120) <= 2 and trace.tempo_plan[30] > 84
    for start_s, _beats, tempo, onsets, onset_beats in phrases[2:]:
        plan = trace.tempo_plan[min(int(start_s), len(trace.t) - 1)]
        assert abs(tempo - plan) < 2.0
        # the onsets the mixer scheduled sit on that tempo's beat grid
        for on, beat in zip(onsets, onset_beats):
            assert on - start_s == pytest.approx(beat * 60.0 / tempo, abs=1.5 / 48000)


def test_the_iso_start_crossfades_in_instead_of_waiting_for_the_phrase(make_daemon):
    d = make_daemon()
    now = time.monotonic()
    d.conduct(now)  # no pulse yet: the preset's tempo (66 bpm for calm)
    assert d.audio._pending_crossfade is False
    d.hub.publish("pulse", PulseReading(t=now + 6, finger=True, quality=0.9, hr_bpm=86.0,
                                        breathing_rate=15.0, stress=0.6, stress_sd=0.05))
    d.conduct(now + 6)
    assert d.conductor.state()["mode"] == "iso start"
    assert d.audio._pending_crossfade is True  # the 86 bpm music glides in now, over ≥ 2 s
    d.audio._pending_crossfade = False
    d.hub.publish("pulse", PulseReading(t=now + 7, finger=True, quality=0.9, hr_bpm=85.0,
                                        breathing_rate=15.0, stress=0.6, stress_sd=0.05))
    d.conduct(now + 7)  # leading: small steps wait for the phrase boundary
    assert d.audio._pending_crossfade is False


def test_the_journal_gets_no_heart_rate_unless_asked_for_debug(make_daemon, caplog):
    """The iso start and a suspect halving are logged as events; the heart rate and the tempo
    (which the iso start sets to it) only at debug: the journal reaches more people than the
    health figures may (``device.status_health``)."""
    d = make_daemon()
    caplog.set_level(logging.DEBUG, logger="calmtunes")
    now = time.monotonic()
    for k, hr in enumerate((84.0, 84.0, 42.0)):  # a steady pulse, then half of it
        d.hub.publish("pulse", PulseReading(t=now + k, finger=True, quality=0.9, hr_bpm=hr,
                                            breathing_rate=15.0, stress=0.6, stress_sd=0.05))
        d.conduct(now + k)
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    said = " | ".join(r.getMessage() for r in shown)
    assert "iso start" in said and "half or double" in said, said
    assert not re.search(r"(?<![\w.])(84|42)(\.0)?(?![\w.])", said), said
    debug = " | ".join(r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert "heart rate 84 bpm" in debug and "42 bpm" in debug, debug
