"""Breathing from the PPG: Smart Fusion of the intensity, amplitude and interval modulations."""

from __future__ import annotations

import pytest
from ppg_synth import make_ppg

from calmtunes.pulse import analyze
from calmtunes.pulse.respiration import Modulation, smart_fusion


@pytest.mark.parametrize(
    "br, slow, baseline, seed",
    [(18.0, (8.0, 0.4), 0.0, 0), (18.0, (8.0, 0.3), 0.05, 1), (15.0, (7.0, 0.5), 0.0, 2),
     (20.0, (9.0, 0.4), 0.0, 3)],
)
def test_amplitude_and_intervals_outvote_a_slow_baseline_wave(br, slow, baseline, seed):
    # the baseline carries a slow wave that is not breathing (vasomotor, the sensor settling);
    # the beats' size and spacing carry the breaths. Counting the baseline alone gives the slow
    # wave, or a refusal when the spectrum disagrees with it.
    ppg = make_ppg(seconds=60, fs=50, hr=72, br=br, rsa=0.05, baseline=baseline,
                   slow_wave=slow, seed=seed)
    r = analyze(ppg.x, ppg.fs)
    assert r.breathing_rate == pytest.approx(br, abs=1.0), r.reason


def _mod(name: str, count: float | None, spectral: float, peakedness: float) -> Modulation:
    return Modulation(name, count, spectral, peakedness)


def test_each_modulation_passes_its_own_gate():
    assert _mod("amplitude", 15.0, 15.5, 8.0).passes_gate()
    assert not _mod("amplitude", 15.0, 15.5, 2.0).passes_gate()  # flat spectrum
    assert not _mod("amplitude", 11.0, 15.5, 8.0).passes_gate()  # count and spectrum disagree
    assert not _mod("amplitude", None, 15.5, 8.0).passes_gate()  # fewer than two breaths


def test_agreeing_modulations_are_fused_and_two_outvote_one():
    agree = [_mod("intensity", 14.0, 14.0, 6.0), _mod("amplitude", 16.0, 16.0, 6.0)]
    assert smart_fusion(agree)[0] == pytest.approx(15.0)
    # a very peaked slow wave in the baseline against amplitude and intervals that agree
    two_one = [_mod("intensity", 8.0, 8.0, 20.0), _mod("amplitude", 18.0, 18.0, 5.0),
               _mod("frequency", 18.5, 18.5, 5.0)]
    assert smart_fusion(two_one)[0] == pytest.approx(18.25)
    # no two agree: the most peaked
    apart = [_mod("intensity", 8.0, 8.0, 5.0), _mod("amplitude", 18.0, 18.0, 9.0)]
    assert smart_fusion(apart)[0] == pytest.approx(18.0)
    # nothing passes its gate: no answer from the fusion
    assert smart_fusion([_mod("intensity", 8.0, 14.0, 9.0)])[0] is None


def test_a_modulation_passing_alone_needs_another_to_see_its_rhythm():
    # the amplitude passes its own gate at ~16 /min; the baseline and the intervals see other
    # rhythms (a slow wave, ectopic noise): one mechanism alone does not vouch for a rate
    alone = [_mod("intensity", 11.0, 6.5, 3.0), _mod("amplitude", 16.0, 16.5, 8.0),
             _mod("frequency", 22.0, 25.0, 3.0)]
    assert not alone[0].passes_gate() and not alone[2].passes_gate()
    assert smart_fusion(alone)[0] is None
    # the baseline's breath count, too weak to pass its own gate, sees the same rhythm
    counted = [_mod("intensity", 15.0, 6.5, 3.0), *alone[1:]]
    assert smart_fusion(counted)[0] == pytest.approx(16.25)
    # ... or the intervals' spectral peak does: within 3 /min of the gated rate
    peaked = [alone[0], alone[1], _mod("frequency", 22.0, 18.5, 3.0)]
    assert smart_fusion(peaked)[0] == pytest.approx(16.25)
    # 3.5 /min away is another rhythm, not the same one seen differently
    apart = [alone[0], alone[1], _mod("frequency", 22.0, 19.75, 3.0)]
    assert smart_fusion(apart)[0] is None
    # its own count and spectrum do not corroborate it: the intensity is the only other one
    only = [_mod("amplitude", 16.0, 16.5, 8.0), _mod("intensity", None, 9.0, 2.0)]
    assert smart_fusion(only)[0] is None
