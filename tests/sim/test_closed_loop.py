"""The emulated finger answers the music: the whole pulse path, closed."""

from __future__ import annotations

import math

import numpy as np

from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.pulse.analyser import PulseAnalyser
from calmtunes.pulse.max30102 import MAX30102
from calmtunes.sim.clock import ManualClock
from calmtunes.sim.closed_loop import finger_spans, sim_scenario
from calmtunes.sim.max30102 import emulated_bus


def test_finger_spans_complement_the_off_spans():
    assert finger_spans(()) == ((-math.inf, math.inf),)
    assert finger_spans(((240.0, 330.0), (600.0, 620.0))) == (
        (-math.inf, 240.0), (330.0, 600.0), (620.0, math.inf))


def test_unknown_names_fall_through_to_the_physiology_scenarios():
    assert sim_scenario("hypoxic", 0).name == "hypoxic"


def heart_rate_after(minutes: float, tempo: float) -> float:
    """Run the emulated chip and the real analyser for ``minutes`` of music at ``tempo``."""
    hub = Hub()
    hub.publish("controls", Controls(tempo_bpm=tempo, breath_rate=6.0))
    clock = ManualClock()
    bus = emulated_bus(scenario=sim_scenario("stressed", 1, hub), seed=1, clock=clock)
    driver = MAX30102(bus, clock=clock, sleep=clock.advance)
    driver.start()
    analyser = PulseAnalyser(100.0)
    readings = []
    while clock() < minutes * 60:
        clock.advance(0.25)
        block = driver.read()
        if block is not None and len(block):
            analyser.feed(block)
        if clock() % 5 < 0.25:
            readings.append(analyser.reading(clock()).hr_bpm)
    hrs = [r for r in readings[-6:] if r is not None]
    return float(np.median(hrs))


def test_slow_music_leads_the_emulated_heart_down():
    slow = heart_rate_after(6.0, 60.0)
    fast = heart_rate_after(6.0, 95.0)
    assert slow < 82.0
    assert fast - slow > 4.0
