"""The personaliser as the daemon's loop uses it, and the nights study on simulated listeners."""

from __future__ import annotations

import csv
import io
import logging

import numpy as np
import pytest

from calmtunes.care.arms import Arm
from calmtunes.care.personaliser import Personaliser
from calmtunes.care.store import CareStore, Night
from calmtunes.care.trace import TracePoint
from calmtunes.config import Config
from calmtunes.sessions import DB_NAME, SessionStore
from calmtunes.sim.profiles import PROFILES, night_model, profile
from calmtunes.sim.study import expected_rewards, run_study


def cfg(tmp_path, **care):
    return Config().replace(device={"state_dir": str(tmp_path)}, care=care)


def falling(minutes=15):
    return [TracePoint(t_s=k * 10.0, hr_bpm=85.0 - min(15.0, k / 4), rmssd_ms=30.0,
                       breathing_rate=14.0, quality=0.9, usable=1.0, pace_rate=6.0)
            for k in range(minutes * 6)]


def test_start_and_end_of_a_session(tmp_path):
    care = Personaliser(cfg(tmp_path, seed=3))
    choice = care.start_session(1000.0)
    status = care.status()
    assert status["arm"] == choice.arm.id and status["why"] == choice.why
    assert status["listener"] == choice.listener and status["problem"] is None
    assert choice.config.music.default_preset == choice.arm.preset
    response = care.end_session(choice, falling(), 1900.0, session_id=4)
    assert response.reward > 2.0
    [night] = CareStore(tmp_path).load(choice.listener).nights
    assert (night.arm, night.reward, night.session) == (choice.arm.id, response.reward, 4)
    status = care.status()
    assert status["arm"] is None and status["last_reward"] == response.reward
    assert status["best"][0]["nights"] in (0, 1)
    short = care.end_session(care.start_session(2000.0), falling(minutes=4), 2240.0)
    assert short.reward is None and "too short" in care.status()["last_reward_reason"]
    # a night nobody heard (no audio output for two minutes of it) teaches nothing
    silent = care.end_session(care.start_session(3000.0), falling(), 3900.0,
                              unheard=[(200.0, 320.0)])
    assert silent.reward is None and "no audio output" in silent.reason
    night = CareStore(tmp_path).load(choice.listener).nights[-1]
    assert night.reward is None and "unheard" in night.reason


def test_the_rewarded_night_is_logged_without_the_listeners_heart_rate(tmp_path, caplog):
    """The reward goes to the journal, the heart rates it came from only at debug (the journal
    reaches more people than health figures may; `calmtunes sessions` has them)."""
    care = Personaliser(cfg(tmp_path, seed=3))
    caplog.set_level(logging.DEBUG, logger="calmtunes")
    response = care.end_session(care.start_session(1000.0), falling(), 1900.0)
    said = " | ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert f"reward {response.reward:+.2f}" in said, said
    figures = {f"{response.hr_base:.1f}", f"{response.hr_resp:.1f}"}
    assert not [f for f in figures if f in said], said
    debug = " | ".join(r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert all(f in debug for f in figures), debug


def test_a_pinned_arm_is_played_and_still_learnt_from(tmp_path):
    care = Personaliser(cfg(tmp_path, pinned_arm="sleep/slower"))
    choice = care.start_session(1000.0)
    assert choice.arm == Arm("sleep", "slower") and "pinned" in choice.why
    assert choice.config.music.presets["sleep"]["tempo_bpm"] == 56.0


def test_an_unusable_state_folder_never_stops_the_music(tmp_path):
    (tmp_path / "state").write_text("a file where the folder should be")
    care = Personaliser(cfg(tmp_path / "state"))
    choice = care.start_session(1000.0)
    assert choice.arm == Arm("calm") and "unusable" in care.status()["problem"]
    assert care.end_session(choice, falling(), 1900.0).reward > 0  # nothing saved or raised
    assert "unusable" in care.status()["problem"]


def test_care_files_in_a_folder_every_user_may_write_are_not_believed(tmp_path):
    # anyone could have planted them: a listener whose twenty nights all loved uplift
    state = tmp_path / "state"
    care = Personaliser(cfg(state))
    care.start_session(1000.0)  # the folders made, the daemon's own
    planted = CareStore(state)
    for k in range(20):
        planted.add_night(care.listener, Night(2000.0 + k * 86400, "uplift", 3.0))
    state.chmod(0o777)
    try:
        fooled = Personaliser(cfg(state))
        choice = fooled.start_session(3_000_000.0)
        assert choice.arm == Arm("calm")  # the default preset, nothing learnt believed
        problem = fooled.status()["problem"]
        assert "may be written by every user" in problem and str(state) in problem
    finally:
        state.chmod(0o750)


def test_profiles_answer_best_to_their_preset():
    config = Config()
    for name, best, worse in (("prefers-sleep", "sleep", "calm"),
                              ("prefers-calm", "calm", "sleep")):
        r = expected_rewards(config, profile(name), [Arm(best), Arm(worse)], 3, 900.0, seed=5)
        assert r[best] > r[worse] + 0.5, (name, r)


def test_nights_vary_and_some_have_too_little_signal():
    p = PROFILES["prefers-sleep"]
    rng = np.random.default_rng(0)
    models = [night_model(p, Arm("sleep"), rng) for _ in range(200)]
    assert np.std([m.hr0 for m in models]) > 3.0
    assert len({m.stress_floor for m in models}) > 150
    assert 2 <= sum(bool(m.finger_off) and m.finger_off[0][1] - m.finger_off[0][0] > 300
                    for m in models) <= 25
    with pytest.raises(ValueError, match="prefers-sleep"):
        profile("prefers-noise")


def test_a_study_records_each_night_with_its_arm_and_reward(tmp_path):
    results = run_study(Config(), profile("prefers-calm"), 3, 600.0, seed=2, state_dir=tmp_path)
    assert len(results) == 3
    assert {r.composer for r in results} == {"onnx"}  # the shipped generator wrote the music
    store = SessionStore(tmp_path / DB_NAME, readonly=True)
    rows = store.rows()
    assert [r["arm"] for r in rows] == [r.arm for r in results]
    assert [r["reward"] for r in rows] == [r.response.reward for r in results]
    assert all(r["preset"] == r["arm"].split("/")[0] for r in rows)
    assert all(r["ended_by"] == "sleep_timer" for r in rows)
    assert len(store.points(rows[0]["id"])) == 60  # 600 s in 10-s steps
    out = io.StringIO()
    store.export_csv(out)
    store.close()
    exported = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {"preset", "arm", "reward", "hr_fall", "rmssd_rise", "breath_toward"} <= set(
        exported[0])
    assert exported[0]["arm"] == results[0].arm
    listener = CareStore(tmp_path).peek_current()
    assert len(CareStore(tmp_path).load(listener).nights) == 3


@pytest.mark.slow
def test_a_night_through_the_real_pulse_path_measures_the_listener():
    """Emulated MAX30102, real driver and analyser: the heart rate the trace holds is the
    simulated listener's (the fast path's, within a few bpm)."""
    from calmtunes.care.arms import apply_arm
    from calmtunes.sim.study import simulate_night

    arm, p = Arm("sleep"), profile("prefers-sleep")
    config = apply_arm(Config(), arm)
    real = simulate_night(config, arm, p, seed=3, duration_s=360.0, ppg=True)
    fast = simulate_night(config, arm, p, seed=3, duration_s=360.0)
    assert np.mean([q.usable for q in real]) > 0.8
    for a, b in zip(real[6:], fast[6:]):  # after the first minute (locking on)
        if a.hr_bpm is not None and b.hr_bpm is not None:
            assert abs(a.hr_bpm - b.hr_bpm) < 6.0, (a.t_s, a.hr_bpm, b.hr_bpm)


def test_the_listener_hears_the_phrase_the_composer_wrote_not_the_plan():
    """Phrases are written from the controls of their time, ahead of the playhead: a tempo the
    conductor asks for at 60 s is heard only once the phrases written before it have played,
    and each moment sounds the tempo and breath pacing of the phrase that covers it."""
    from calmtunes.music.controls import Controls
    from calmtunes.music.fallback import ProceduralComposer
    from calmtunes.sim.study import ComposedMusic

    music = ComposedMusic(ProceduralComposer(4), lookahead_s=8.0)
    assert music(0.0) is None  # nothing written yet: silence, no entrainment
    heard = {}
    for k in range(180):
        t = float(k)
        fast = t < 60
        music.write_ahead(t, Controls(tempo_bpm=80.0 if fast else 60.0,
                                      breath_rate=9.0 if fast else 6.0))
        assert music.written_s >= t + 8.0
        heard[k] = music(t)
    assert heard[59].tempo_bpm == 80.0 and heard[59].breath_rate == 9.0
    assert heard[60].tempo_bpm == 80.0  # already written at 80: the lookahead's lag
    first_slow = min(k for k, m in heard.items() if m.tempo_bpm == 60.0)
    assert 60 < first_slow <= 60 + 8 + 30  # lookahead plus at most one long phrase
    assert all(heard[k].tempo_bpm == 60.0 and heard[k].breath_rate == 6.0
               for k in range(first_slow, 180))
    assert music.phrases >= 180 / 30 and set(music.sources) == {"procedural"}
    assert len(music._phrases) <= 4  # played phrases are let go


def test_a_paused_phrase_is_silence_to_the_listener():
    from calmtunes.music.controls import Controls
    from calmtunes.music.fallback import ProceduralComposer
    from calmtunes.sim.study import ComposedMusic

    music = ComposedMusic(ProceduralComposer(1), lookahead_s=4.0)
    music.write_ahead(0.0, Controls(playing=False))
    assert music(1.0) is None


def test_who_chose_is_kept_with_the_choice_not_read_from_its_words(tmp_path):
    # "personaliser off ...: the default preset" read as the personaliser's choice (who chose
    # was read from the words of why, and these did not match)
    from calmtunes.care.personaliser import chosen_by

    pinned = Personaliser(cfg(tmp_path / "a", pinned_arm="sleep")).start_session(1000.0)
    assert chosen_by(pinned, False) == "clinician pin"
    free = Personaliser(cfg(tmp_path / "b")).start_session(1000.0)
    assert chosen_by(free, False) == "personaliser" and chosen_by(free, True) == "person"
    off = Personaliser(cfg(tmp_path / "c", enabled=False)).start_session(1000.0)
    assert "personaliser off" in off.why
    assert chosen_by(off, False) == "config"
