"""A small PPG generator with known truth, for the pulse tests.

Beats follow a mean heart rate with respiratory sinus arrhythmia and random beat-to-beat jitter;
each beat is a systolic Gaussian and a smaller, later diastolic one; breathing also moves the
baseline and the amplitude. The true intervals are returned, so HR and RMSSD are known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SynthPPG:
    x: np.ndarray  # upright PPG, arbitrary units
    fs: float
    beat_times: np.ndarray  # s, the systolic foot of each beat
    hr_bpm: float  # 60 / mean interval
    rmssd_ms: float
    breathing_rate: float  # breaths per minute


def make_ppg(
    seconds: float = 60.0,
    fs: float = 100.0,
    hr: float = 70.0,
    br: float = 15.0,
    rsa: float = 0.04,
    jitter: float = 0.015,
    noise: float = 0.02,
    seed: int = 0,
    dicrotic: float = 0.4,
    dicrotic_delay_s: float | None = None,
    fall: float = 1.0,
    baseline: float = 0.3,
    slow_wave: tuple[float, float] = (0.0, 0.0),
) -> SynthPPG:
    """``dicrotic`` is the diastolic (reflected) wave's amplitude relative to the systolic
    one; it peaks ``dicrotic_delay_s`` after the systolic peak (default 0.33 of the period).
    ``fall`` > 1 makes the systolic wave fall that many times slower than it rises, as a real
    pulse does (1: a symmetric wave). ``baseline`` is the breathing's baseline swing (relative
    to a beat); ``slow_wave`` = (cycles/min, amplitude) adds a baseline wave that is not
    breathing (a vasomotor wave, the sensor settling)."""
    rng = np.random.default_rng(seed)
    period = 60.0 / hr
    fb = br / 60.0
    times = [rng.uniform(0.0, period)]
    while times[-1] < seconds + 2:
        t = times[-1]
        ibi = period * (1 + rsa * np.sin(2 * np.pi * fb * t)) + rng.normal(0, jitter)
        times.append(t + ibi)
    bt = np.array(times)
    t = np.arange(int(seconds * fs)) / fs
    x = np.zeros_like(t)
    for b in bt:
        a = 1.0 + 0.15 * np.sin(2 * np.pi * fb * b)
        u = t - b - 0.12 * period
        x += a * np.exp(-0.5 * (u / (0.09 * period * np.where(u > 0, fall, 1.0))) ** 2)
        lag = 0.33 * period if dicrotic_delay_s is None else dicrotic_delay_s
        x += dicrotic * a * np.exp(-0.5 * ((t - b - 0.12 * period - lag) / (0.12 * period)) ** 2)
    x += baseline * np.sin(2 * np.pi * fb * t) + noise * rng.standard_normal(len(t))
    x += slow_wave[1] * np.sin(2 * np.pi * slow_wave[0] / 60.0 * t + 1.0)
    inside = bt[(bt > 0) & (bt < seconds)]
    ibi = np.diff(inside)
    return SynthPPG(
        x=x,
        fs=fs,
        beat_times=inside,
        hr_bpm=60.0 / float(np.mean(ibi)),
        rmssd_ms=float(np.sqrt(np.mean(np.diff(ibi) ** 2)) * 1000),
        breathing_rate=br,
    )


def to_counts(x: np.ndarray, dc: float = 120_000.0, ac: float = 0.01) -> np.ndarray:
    """Raw MAX30102-like IR counts: a large DC level, falling with blood volume."""
    span = float(np.ptp(x)) or 1.0
    return dc * (1.0 - ac * (x - x.min()) / span)


def sensor_blocks(
    ppg: SynthPPG,
    finger_on_s: float = 0.0,
    finger_off_s: float | None = None,
    block_s: float = 0.25,
    t0: float = 1000.0,
    spo2_ratio: float = 0.6,
    seed: int = 1,
):
    """Yield (block end time, SampleBlock) as a MAX30102 driver would, in raw 18-bit counts.

    Before ``finger_on_s`` and after ``finger_off_s`` the sensor sees ambient light only (a few
    hundred counts). The red AC/DC ratio is ``spo2_ratio`` times the IR one (ratio of ratios).
    """
    from calmtunes.pulse.samples import SampleBlock

    rng = np.random.default_rng(seed)
    fs = ppg.fs
    n = len(ppg.x)
    t = t0 + np.arange(n) / fs
    ir = to_counts(ppg.x, dc=120_000.0, ac=0.01)
    red = to_counts(ppg.x, dc=90_000.0, ac=0.01 * spo2_ratio)
    rel = np.arange(n) / fs
    off = (rel < finger_on_s) | ((rel >= finger_off_s) if finger_off_s is not None else False)
    ir[off] = 300 + 20 * rng.standard_normal(np.count_nonzero(off))
    red[off] = 250 + 20 * rng.standard_normal(np.count_nonzero(off))
    step = max(1, int(block_s * fs))
    for i in range(0, n, step):
        sl = slice(i, min(n, i + step))
        yield float(t[sl][-1]), SampleBlock(t=t[sl], red=np.round(red[sl]), ir=np.round(ir[sl]))


def ppg_from_beats(
    beat_times: np.ndarray,
    amplitudes: np.ndarray,
    seconds: float,
    fs: float = 100.0,
    width_s: float = 0.07,
    noise: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """An upright PPG with a beat of the given amplitude at each of ``beat_times`` (s): a systolic
    Gaussian ``width_s`` wide and a diastolic one, for rhythms make_ppg cannot draw (ectopics)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    x = np.zeros_like(t)
    for b, a in zip(beat_times, amplitudes):
        x += a * np.exp(-0.5 * ((t - b - 0.1) / width_s) ** 2)
        x += 0.35 * a * np.exp(-0.5 * ((t - b - 0.38) / (1.4 * width_s)) ** 2)
    return x + noise * rng.standard_normal(len(t))
