"""Motion without a pulse is refused; a pulse that fades to a flat line or beats irregularly is
not (round six, ANALYSIS.md)."""

from __future__ import annotations

import numpy as np
import pytest
from ppg_synth import make_ppg

from calmtunes.pulse import analyze, beats, quality

FS = 100.0


def motion_window(seed: int, k: int) -> np.ndarray:
    """The ``k``-th window of ``scripts/bench_pulse``'s motion family for ``seed``: smooth
    bursts of 0.3–3 Hz, a second or two long, on a little noise (10 s at 100 Hz)."""
    rng = np.random.default_rng([seed, 5])  # 5: the motion family's place in the benchmark
    n = int(10 * FS)
    t = np.arange(n) / FS
    for _ in range(k + 1):
        x = 0.05 * rng.standard_normal(n)
        for _ in range(rng.integers(2, 7)):
            c, w = rng.uniform(0, 10), rng.uniform(0.5, 2.0)
            f, a = rng.uniform(0.3, 3.0), rng.uniform(0.5, 3.0)
            phase = rng.uniform(0, 2 * np.pi)
            x += a * np.exp(-0.5 * ((t - c) / w) ** 2) * np.sin(2 * np.pi * f * t + phase)
    return x


@pytest.mark.parametrize(("seed", "k", "said"), [
    # extra development seeds (1000–1999) whose windows got a heart rate before round six
    (1035, 0, "quiet stretch"),  # beats counted in the noise floor between two bursts
    (1321, 3, "quiet stretch"),
    (1142, 2, "keep no rhythm"),  # bursts at 2.3 and 1 Hz: a weak shape and no rhythm
    (1391, 2, "keep no rhythm"),
    (1414, 0, "surges and fades"),  # one burst waxing and waning
    (1778, 9, "is a sine"),  # one frequency, no harmonics
])
def test_motion_bursts_are_refused(seed, k, said):
    r = analyze(motion_window(seed, k), FS)
    assert r.hr_bpm is None
    assert said in r.reason


def test_a_pulse_that_starts_flat_is_a_pulse():
    # the sensor lost the finger for 4 s (a flat line, as bidmc_05 at 125 s): quiet seconds
    # without beats, then the pulse; the strength comes and goes, the beats do not change size
    ppg = make_ppg(seconds=10, fs=FS, hr=95.0, seed=3, noise=0.0)
    x = ppg.x.copy()
    x[:400] = x[400]
    r = analyze(x, FS)
    truth = 60.0 / np.mean(np.diff(ppg.beat_times[ppg.beat_times > 4.3]))
    assert r.hr_bpm == pytest.approx(truth, abs=1.5), r.reason


def test_beats_in_a_quiet_stretch_are_counted():
    # ten seconds: loud, two quiet ones, loud; beats at 0.5 s, 2.5, 3.5 and 6.5 s
    rms = np.array([1.0, 1.0, 0.1, 0.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    kept = np.ones(10, dtype=bool)
    index = (np.array([0.5, 2.5, 3.5, 6.5]) * FS).astype(int)
    assert quality.beats_in_quiet((rms, kept), FS, index) == 2
    # one quiet second is no stretch; a quiet stretch that was left out does not count
    one = rms.copy()
    one[3] = 1.0
    assert quality.beats_in_quiet((one, kept), FS, index) == 0
    gone = kept.copy()
    gone[2:4] = False
    assert quality.beats_in_quiet((rms, gone), FS, index) == 0


def test_quiet_is_judged_against_the_seconds_around_it():
    # a long window whose pulse is four times weaker in its first minute than in its last 10 s
    # (the finger pressed harder): no second is quiet against its own 10 s
    rms = np.concatenate((np.full(60, 0.2), np.full(10, 1.0)))
    index = (np.arange(0.5, 70, 0.8) * FS).astype(int)
    assert quality.beats_in_quiet((rms, np.ones(70, dtype=bool)), FS, index) == 0


def test_rhythmless_needs_a_weak_shape_and_no_rhythm():
    irregular = np.array([0.5, 1.1, 0.45, 0.9, 0.4, 1.2, 0.6])
    assert beats.interval_cv(irregular) > beats.RHYTHMLESS_CV
    assert beats.looks_rhythmless(irregular, skew=0.3)
    assert not beats.looks_rhythmless(irregular, skew=1.2)  # a pulse's shape: an arrhythmia
    assert not beats.looks_rhythmless(np.full(7, 0.8), skew=0.3)
