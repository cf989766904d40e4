"""The simulated listener: rates follow the trajectory, the PPG carries what it should."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from calmtunes.sim.physiology import SCENARIOS, Listener, Steady, Trajectory, ratio_for_spo2


def test_stressed_listener_relaxes_from_90_to_62():
    lis = Listener("stressed", seed=3)
    early = lis.truth(0, 60).mean_hr()
    late = lis.truth(840, 900).mean_hr()
    assert 85 < early < 92
    assert 60 < late < 66


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_renders_and_exports_truth(name):
    lis = Listener(name, seed=1)
    t = np.arange(0, 70, 0.01)
    red, ir, ambient = lis.optics(t)
    assert red.shape == ir.shape == ambient.shape == t.shape
    assert np.all(np.isfinite(ir)) and np.all(ir > 0)
    truth = lis.truth(0, 70)
    assert len(truth.beat_times) > 40 and len(truth.breath_times) > 5
    assert np.all(np.diff(truth.beat_times) > 0.25)


def test_beats_in_the_signal_match_the_truth():
    lis = Listener("rest", seed=2)
    t = np.arange(0, 60, 0.01)
    _, ir, _ = lis.optics(t)
    f, p = welch(-ir + ir.mean(), fs=100, nperseg=2048)
    band = (f > 0.7) & (f < 3)
    assert abs(f[band][np.argmax(p[band])] * 60 - lis.truth(0, 60).mean_hr()) < 4


def test_breathing_rate_and_rsa():
    lis = Listener("sleepy", seed=0)
    truth = lis.truth(0, 120)
    rate = 60 / np.mean(np.diff(truth.breath_times))
    assert 9 < rate < 13
    # RSA: intervals shorten while inhaling (first half of each breath)
    phase = lis.breath_phase(truth.beat_times) % 1.0
    ibi = truth.ibi_s
    ok = np.isfinite(ibi)
    assert ibi[ok & (phase < 0.5)].mean() < ibi[ok & (phase >= 0.5)].mean()
    assert truth.rmssd_ms() > 20


def test_red_ir_ratio_follows_spo2():
    lis = Listener("hypoxic", seed=0)
    t = np.arange(0, 30, 0.01)
    red, ir, _ = lis.optics(t)

    def ac_dc(x):
        return (np.percentile(x, 95) - np.percentile(x, 5)) / x.mean()

    r = ac_dc(red) / ac_dc(ir)
    assert abs(r - ratio_for_spo2(90.0)) < 0.1


def test_finger_off_is_dark_and_bright():
    lis = Listener("finger", seed=0)
    _red, ir, amb = lis.optics(np.array([1.0, 20.0, 45.0, 60.0]))
    assert ir[0] < 10 and ir[2] < 10 and ir[1] > 100 and ir[3] > 100
    assert amb[0] > 200 > amb[1]


def test_rendering_does_not_depend_on_chunking():
    a, b = Listener("ectopic", seed=5), Listener("ectopic", seed=5)
    t = np.arange(0, 40, 0.01)
    whole = a.optics(t)[1]
    parts = np.concatenate([b.optics(c)[1] for c in np.array_split(t, 37)])
    np.testing.assert_allclose(whole, parts)


def test_a_pluggable_trajectory_steers_the_heart():
    class Slowing:
        def at(self, t_s: float) -> tuple[float, float]:
            return (80.0 if t_s < 60 else 55.0), 12.0

    assert isinstance(Slowing(), Trajectory)
    lis = Listener("rest", seed=0, trajectory=Slowing())
    assert abs(lis.truth(10, 55).mean_hr() - 80) < 3
    assert abs(lis.truth(70, 120).mean_hr() - 55) < 3


def test_bad_scenarios_and_trajectories_say_what_is_wrong():
    with pytest.raises(ValueError, match="choose one of"):
        Listener("jogging")
    with pytest.raises(TypeError, match="at"):
        Listener("rest", trajectory=object())
    with pytest.raises(ValueError, match="30–200 bpm"):
        Listener("rest", trajectory=Steady(400.0, 12.0)).optics(np.array([1.0]))


def test_long_sessions_keep_bounded_history():
    lis = Listener("stressed", seed=0)
    lis.history_s = 60.0
    for start in range(0, 1200, 10):
        lis.optics(np.arange(start, start + 10, 0.01))
    assert len(lis._bphase.values) < 2 * 60.0 / lis._BREATH_DT
    assert len(lis._beats.values) < 2 * 60.0 * 100 / 60
    assert 60 < lis.truth(1150, 1200).mean_hr() < 68
    with pytest.raises(ValueError, match="history_s"):
        lis.truth(0, 1200)
