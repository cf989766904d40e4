"""The conductor holds a sudden halving or doubling of the heart rate until it is confirmed,
driven by the emulated listener (calmtunes.sim)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from calmtunes.config import Config
from calmtunes.music.conductor import CONFIRM_READINGS, Conductor, HarmonicGuard
from calmtunes.sim.listener import SimulatedListener


def _session(corrupt, seconds: int = 240, seed: int = 3):
    """Run the conductor on the emulated stressed listener once a simulated second; the
    analyser's reading at t is passed through ``corrupt(t, reading)``. Returns per second
    (the listener's true HR, the conductor's HR, tempo)."""
    c = Conductor(Config(), "calm", -6.0)
    listener = SimulatedListener("stressed", seed=seed)
    out = []
    for k in range(seconds):
        t = float(k)
        r = corrupt(t, listener.reading(t))
        controls = c.update(t, r, None)
        out.append((listener.state.hr, c.state()["hr_bpm"], controls.tempo_bpm))
    return out


def _clean(t, r):
    return r


def _scaled(start: float, stop: float, factor: float):
    def corrupt(t, r):
        if start <= t < stop and r.hr_bpm is not None:
            return replace(r, hr_bpm=r.hr_bpm * factor)
        return r

    return corrupt


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_a_brief_half_or_double_reading_is_held(factor, caplog):
    clean = _session(_clean)
    with caplog.at_level(logging.WARNING, logger="calmtunes.music.conductor"):
        bad = _session(_scaled(120, 120 + CONFIRM_READINGS - 1, factor))
    for (_, hr0, tempo0), (_, hr1, tempo1) in zip(clean, bad):
        # the last good value held (taken in, two such readings would move it by ~8 bpm)
        assert hr1 == pytest.approx(hr0, abs=1.0)
        assert tempo1 == pytest.approx(tempo0, abs=0.5)
    assert "held" in caplog.text and "until confirmed" in caplog.text


def test_a_halving_that_persists_is_believed():
    # from 100 s on the reading is half the listener's rate for good (e.g. a new listener
    # whose heart really is that slow): after CONFIRM_READINGS readings the conductor takes it
    out = _session(_scaled(100, 1e9, 0.5), seconds=160)
    true_hr = out[130][0]
    for k in range(100, 100 + CONFIRM_READINGS - 1):
        assert out[k][1] == pytest.approx(out[99][1], abs=1.0)  # held at first
    assert out[130][1] == pytest.approx(true_hr / 2, rel=0.1)


def test_a_true_change_that_is_not_a_harmonic_is_followed():
    g = HarmonicGuard()
    assert not g.suspect(75.0, 60.0)  # +25 %: a real change, not a counting error
    assert not g.suspect(44.0, 60.0)
    assert g.suspect(31.0, 60.0) and g.suspect(30.0, 60.0)
    assert not g.suspect(30.5, 60.0)  # the third agreeing reading confirms it
