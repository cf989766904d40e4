"""PulseAnalyser fed raw sensor blocks: finger, timing, tracking, agreement with analyze()."""

from __future__ import annotations

import numpy as np
import pytest
from ppg_synth import make_ppg, sensor_blocks

from calmtunes.pulse import analyze
from calmtunes.pulse.analyser import HR_SPAN_S, PulseAnalyser
from calmtunes.pulse.samples import SampleBlock
from calmtunes.pulse.stress import StressIndex

T0 = 1000.0


def run(ppg, analyser=None, **kw):
    """Feed every block; take a reading once a second. Returns (seconds since start, reading)."""
    a = analyser or PulseAnalyser(ppg.fs)
    out, nxt = [], T0 + 1.0
    for tend, block in sensor_blocks(ppg, t0=T0, **kw):
        a.feed(block)
        if tend >= nxt:
            out.append((tend - T0, a.reading(tend)))
            nxt += 1.0
    return a, out


def test_first_heart_rate_within_8_s_of_the_finger():
    ppg = make_ppg(seconds=30, fs=100, hr=66)
    _, out = run(ppg, finger_on_s=6.0)
    assert all(not r.finger and r.hr_bpm is None for t, r in out if t < 6.0)
    first = next(t for t, r in out if r.hr_bpm is not None)
    assert first - 6.0 <= 8.0


def test_finger_removal_reported_within_2_s_and_figures_cleared():
    ppg = make_ppg(seconds=40, fs=100, hr=80)
    _, out = run(ppg, finger_off_s=30.0)
    gone = next(t for t, r in out if t > 30.0 and not r.finger)
    assert gone - 30.0 <= 2.0
    for t, r in out:
        if t > gone:
            assert r.hr_bpm is None and r.spo2 is None and r.stress is None
            assert "finger" in r.reason


def test_heart_rate_tracks_truth_once_locked():
    ppg = make_ppg(seconds=90, fs=100, hr=58, rsa=0.03)
    _, out = run(ppg)
    hrs = [r.hr_bpm for t, r in out if t > 15]
    assert all(h is not None for h in hrs)
    assert np.max(np.abs(np.array(hrs) - ppg.hr_bpm)) < 2.0


def test_hrv_breathing_and_spo2_appear_with_enough_signal():
    ppg = make_ppg(seconds=70, fs=100, hr=70, br=12)
    _, out = run(ppg, spo2_ratio=0.6)
    early = dict(out)[min(t for t, _ in out if t > 12)]
    assert early.rmssd_ms is None and early.breathing_rate is None  # not yet honest
    last = out[-1][1]
    assert last.rmssd_ms == pytest.approx(ppg.rmssd_ms, rel=0.3)
    assert last.breathing_rate == pytest.approx(12, abs=1.0)
    # R = 0.6 → −45.060·0.36 + 30.354·0.6 + 94.845
    assert last.spo2 == pytest.approx(96.84, abs=1.0)


def test_streaming_uses_the_batch_analysis():
    ppg = make_ppg(seconds=45, fs=100, hr=75)
    a, out = run(ppg)
    t_last, r = out[-1]
    # the same samples the analyser holds, since the finger settled
    n = round(t_last * ppg.fs) + 1
    start = round(1.0 * ppg.fs)  # SETTLE_S after the first block
    ir = np.concatenate([b.ir for _, b in sensor_blocks(ppg, t0=T0)])[start:n]
    batch = analyze(ir, ppg.fs, hr_span_s=HR_SPAN_S)
    assert r.hr_bpm == pytest.approx(batch.hr_bpm, abs=0.2)
    assert r.quality == pytest.approx(batch.quality, abs=0.05)
    times, ibi = a.beats()
    assert len(times) == len(ibi) > 30
    assert np.all(np.diff(times) > 0)


def test_breathing_is_measured_every_few_seconds_and_carried_between(monkeypatch):
    """A third of a reading's cost: measured afresh every BREATH_EVERY_S while the pulse is
    read, the last figure carried between, and afresh at once in a new segment."""
    import calmtunes.pulse.analyser as analyser_mod

    asked: list[bool] = []

    def spy(*args, **kw):
        asked.append(kw["breathing"])
        return analyze(*args, **kw)

    monkeypatch.setattr(analyser_mod, "analyze", spy)
    ppg = make_ppg(seconds=80, fs=100, hr=70, br=12)
    a, out = run(ppg)
    rates = [(t, r.breathing_rate) for t, r in out if r.breathing_rate is not None]
    assert rates and rates[-1][1] == pytest.approx(12, abs=1.0)
    once_there = asked[next(i for i, (t, _) in enumerate(out) if t >= rates[0][0]):]
    # one fresh measurement in about every BREATH_EVERY_S readings, never more than that apart
    assert len(once_there) / sum(once_there) == pytest.approx(analyser_mod.BREATH_EVERY_S, abs=0.6)
    gaps = np.diff(np.flatnonzero(once_there))
    assert gaps.max() <= analyser_mod.BREATH_EVERY_S
    # between two measurements the figure is the last one, with its confidence
    for (_, r0), (_, r1), fresh in zip(out, out[1:], asked[1:]):
        if not fresh and r0.breathing_rate is not None:
            assert r1.breathing_rate == r0.breathing_rate
    # lost samples restart the segment: nothing carried into it
    t = T0 + 81.0 + np.arange(25) / 100
    a.feed(SampleBlock(t=t, red=np.full(25, 9e4), ir=np.full(25, 1.2e5), lost=40))
    assert a.reading(t[-1]).breathing_rate is None


def test_lost_samples_restart_the_segment():
    ppg = make_ppg(seconds=30, fs=100, hr=70)
    a, out = run(ppg)
    assert out[-1][1].hr_bpm is not None
    t = T0 + 31.0 + np.arange(25) / 100
    a.feed(SampleBlock(t=t, red=np.full(25, 9e4), ir=np.full(25, 1.2e5), lost=40))
    r = a.reading(t[-1])
    assert r.finger and r.hr_bpm is None


def test_silent_sensor_is_not_a_finger():
    ppg = make_ppg(seconds=12, fs=100)
    a, _out = run(ppg)
    r = a.reading(T0 + 20.0)
    assert not r.finger and r.hr_bpm is None and "no samples" in r.reason


def test_saturated_sensor_is_refused_with_reason():
    a = PulseAnalyser(100)
    t = T0 + np.arange(1500) / 100
    a.feed(SampleBlock(t=t, red=np.full(1500, 262143.0), ir=np.full(1500, 262143.0)))
    r = a.reading(t[-1])
    assert r.finger and r.hr_bpm is None and r.quality == 0.0 and r.reason


def test_a_squeeze_that_saturates_the_sensor_does_not_stop_the_readings():
    # 1.5 s with the IR channel at the ADC's full scale (262 143 counts), 12 s after the start
    ppg = make_ppg(seconds=30, fs=100, hr=72, seed=7)
    a = PulseAnalyser(ppg.fs)
    out, nxt = [], T0 + 1.0
    for tend, block in sensor_blocks(ppg, t0=T0):
        rel = block.t - T0
        squeeze = (rel >= 12.0) & (rel < 13.5)
        if squeeze.any():
            block = SampleBlock(
                t=block.t,
                red=np.where(squeeze, 262143.0, block.red),
                ir=np.where(squeeze, 262143.0, block.ir),
            )
        a.feed(block)
        if tend >= nxt:
            out.append((tend - T0, a.reading(tend)))
            nxt += 1.0
    after = [(t, r) for t, r in out if 14.0 <= t <= 24.0]
    assert after and all(r.hr_bpm is not None for _, r in after), [r.reason for _, r in after]
    assert all(r.hr_bpm == pytest.approx(ppg.hr_bpm, abs=3) for _, r in after)
    assert any("left out" in r.reason for _, r in after)


def test_bad_rate_is_refused_at_construction():
    with pytest.raises(ValueError, match="25–1000"):
        PulseAnalyser(5)


def test_stress_index_learns_baseline_then_rises_with_arousal():
    s = StressIndex(baseline_s=60, tau_s=10, min_baseline=30)
    rng = np.random.default_rng(0)
    for i in range(61):
        hr, rmssd, br = 65 + rng.normal(0, 1), 45 + rng.normal(0, 3), 12 + rng.normal(0, 0.5)
        v = s.update(float(i), hr, rmssd, br)
        assert v == (None, None)
    calm = [s.update(61.0 + i, 65.0, 45.0, 12.0) for i in range(30)][-1]
    assert calm[0] == pytest.approx(0.5, abs=0.1)
    assert 0 < calm[1] < 0.25
    aroused = [s.update(91.0 + i, 80.0, 25.0, 18.0) for i in range(60)][-1]
    assert aroused[0] > 0.9
    relaxed = [s.update(151.0 + i, 58.0, 70.0, 8.0) for i in range(60)][-1]
    assert relaxed[0] < 0.1
    partial = s.update(212.0, 58.0, None, None)
    assert partial[1] is not None


def test_stress_uncertainty_grows_when_figures_are_missing():
    s = StressIndex(baseline_s=10, min_baseline=10)
    for i in range(12):
        s.update(float(i), 60.0 + i % 3, 40.0 + i % 5, 12.0 + i % 2)
    full = s.update(13.0, 60.0, 40.0, 12.0)[1]
    s2 = StressIndex(baseline_s=10, min_baseline=10)
    for i in range(12):
        s2.update(float(i), 60.0 + i % 3, 40.0 + i % 5, 12.0 + i % 2)
    hr_only = s2.update(13.0, 60.0, None, None)[1]
    assert hr_only > full


@pytest.mark.parametrize("burst_s", [22.0, 30.0, 40.0])
def test_motion_longer_than_half_the_hr_window_does_not_block_the_rate_after_it(burst_s):
    # Motion from 40 s (a 1.1 Hz sway plus jitter, six times the pulse's swing); once it fills
    # half of the 60 s window it is the swing test's own reference there. The heart rate is
    # judged on its own 10 s span: back once that span is (nearly) clear, not 40 s later.
    ppg = make_ppg(seconds=110, fs=100, hr=72, seed=3)
    a = PulseAnalyser(ppg.fs)
    rng = np.random.default_rng(5)
    out, nxt, amp = [], T0 + 1.0, 1000.0  # about the pulse's swing in sensor_blocks' counts
    for tend, block in sensor_blocks(ppg, t0=T0):
        rel = block.t - T0
        m = (rel >= 40.0) & (rel < 40.0 + burst_s)
        if m.any():
            sway = 6 * amp * (np.sin(2 * np.pi * 1.1 * rel) + 0.7 * rng.standard_normal(len(rel)))
            block = SampleBlock(t=block.t, red=block.red + sway * m, ir=block.ir + sway * m)
        a.feed(block)
        if tend >= nxt:
            out.append((tend - T0, a.reading(tend)))
            nxt += 1.0
    end = 40.0 + burst_s
    after = [(t, r) for t, r in out if end + HR_SPAN_S <= t]
    assert all(r.hr_bpm is not None for _, r in after), [(t, r.reason) for t, r in after]
    assert all(r.hr_bpm == pytest.approx(ppg.hr_bpm, abs=3) for _, r in after)
    # where the 60 s window is refused, HRV and breathing are left out, not read from motion
    alone = [r for _, r in after if "HRV and breathing left out" in r.reason]
    assert alone and all(r.rmssd_ms is None and r.breathing_rate is None for r in alone)
    # the span alone is read only where the window around it shows the span clear of motion
    early = [r.hr_bpm for t, r in out if t < end + HR_SPAN_S and "HRV and breathing" in r.reason]
    assert all(h == pytest.approx(ppg.hr_bpm, abs=3) for h in early)
