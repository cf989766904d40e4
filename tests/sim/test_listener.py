"""The simulated listener: a trajectory that answers the music, and readings with noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from calmtunes.sim.listener import SCENARIOS, ListenerModel, MusicInput, SimulatedListener


def steady(tempo, breath):
    return lambda t: MusicInput(tempo, breath)


def test_heart_and_breathing_follow_slow_music():
    led = SimulatedListener("stressed", music=steady(66.0, 6.0))
    alone = SimulatedListener("stressed", music=lambda t: None)
    hr_led, br_led = led.at(900.0)
    hr_alone, br_alone = alone.at(900.0)
    assert hr_led < 72 < hr_alone
    assert br_led < br_alone - 3


def test_music_led_too_far_raises_stress():
    model = ListenerModel(hr0=90.0, br0=16.0, stress0=0.5)
    gentle = SimulatedListener(model, music=steady(84.0, 14.0))
    harsh = SimulatedListener(model, music=steady(50.0, 4.0))
    gentle.advance(120.0)
    harsh.advance(120.0)
    assert harsh.state.stress > 0.6 > gentle.state.stress


def test_an_unresponsive_listener_does_not_entrain():
    a = SimulatedListener("unresponsive", music=steady(55.0, 5.0))
    b = SimulatedListener("unresponsive", music=steady(85.0, 15.0))
    assert a.at(600.0)[0] == pytest.approx(b.at(600.0)[0], abs=0.01)


def test_trajectory_is_first_order_and_replays_history():
    lst = SimulatedListener("rest", music=steady(60.0, 6.0))
    hrs = [lst.at(float(t))[0] for t in range(0, 301)]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(hrs))  # monotone, no overshoot
    assert lst.at(100.0) == pytest.approx((hrs[100], lst.history[100].br))  # the past, unchanged
    assert lst.state.t == 300.0


def test_startle_event_steps_stress_up():
    lst = SimulatedListener("startled", music=steady(76.0, 10.0))
    lst.advance(359.0)
    before = lst.state.stress
    lst.advance(361.0)
    assert lst.state.stress > before + 0.4


def test_readings_carry_noise_lock_time_and_finger_off():
    lst = SimulatedListener("restless", seed=7, music=steady(80.0, 12.0))
    assert lst.reading(2.0).hr_bpm is None  # still locking on
    readings = [lst.reading(float(t)) for t in range(10, 200)]
    errors = [r.hr_bpm - h.hr for r, h in zip(readings, lst.history[10:200])]
    assert 0.5 < np.std(errors) < 1.5
    off = lst.reading(250.0)
    assert not off.finger and off.hr_bpm is None
    assert lst.reading(333.0).hr_bpm is None  # placed again at 330 s: locking on
    assert lst.reading(340.0).hr_bpm is not None


def test_same_seed_same_readings():
    a = SimulatedListener("stressed", seed=3, music=steady(70.0, 8.0))
    b = SimulatedListener("stressed", seed=3, music=steady(70.0, 8.0))
    assert [a.reading(float(t)) for t in range(30)] == [b.reading(float(t)) for t in range(30)]


def test_unknown_scenario_names_the_choices():
    with pytest.raises(ValueError, match="stressed"):
        SimulatedListener("panicked")
    assert {"stressed", "rest", "sleepy"} <= set(SCENARIOS)
