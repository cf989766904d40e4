"""The analysis on real recordings (BIDMC, Welltory); skipped where the data is absent.

The data lives outside the project, at ../shared/data/ppg or $CALMTUNES_PPG_DATA; the full
figures come from scripts/bench_pulse, these tests only guard against regressions on a few
records.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from calmtunes.pulse import analyze

ROOT = Path(__file__).resolve().parents[2]


def _data() -> Path | None:
    env = os.environ.get("CALMTUNES_PPG_DATA")
    # ../shared/data/ppg from the project; one level further up from a worktree of it
    cands = [Path(env)] if env else [p / "shared/data/ppg" for p in (ROOT.parent, ROOT.parents[1])]
    return next((c for c in cands if c.is_dir()), None)


DATA = _data()
pytestmark = pytest.mark.skipif(DATA is None, reason="real PPG data (../shared/data/ppg) absent")


def _bidmc(name: str):
    with gzip.open(DATA / "bidmc" / f"{name}_Signals.csv.gz", "rt") as f:
        head = [c.strip() for c in f.readline().split(",")]
        sig = np.loadtxt(f, delimiter=",")
    num = np.genfromtxt(DATA / "bidmc" / f"{name}_Numerics.csv", delimiter=",", skip_header=1)
    with open(DATA / "bidmc" / f"{name}_Numerics.csv") as f:
        nhead = [c.strip() for c in f.readline().split(",")]
    col = nhead.index
    return sig[:, head.index("PLETH")], num[:, col("Time [s]")], num[:, col("PULSE")]


@pytest.mark.parametrize("name", ["bidmc_16", "bidmc_42"])
def test_bidmc_heart_rate_against_monitor(name):
    if not (DATA / "bidmc" / f"{name}_Signals.csv.gz").exists():
        pytest.skip(f"{name} not in the data folder")
    x, t, pulse = _bidmc(name)
    fs, w = 125.0, 1250
    err = []
    for i in range(0, len(x) - w + 1, w):
        ref = np.nanmean(pulse[(t >= i / fs) & (t < i / fs + 10)])
        r = analyze(x[i : i + w], fs)
        assert r.hr_bpm is not None, r.reason
        err.append(abs(r.hr_bpm - ref))
    assert np.mean(err) < 1.5


def _welltory(sub: str, channel: str = "R"):
    from scipy.interpolate import CubicSpline

    a = np.genfromtxt(DATA / "welltory" / sub / "PPG.csv", delimiter=",", names=True)
    t = a["time"] / 1000.0
    keep = np.concatenate(([True], np.diff(t) > 0))
    grid = np.arange(t[0], t[keep][-1], 1 / 60)
    rr = np.loadtxt(DATA / "welltory" / sub / "RR.txt").ravel() / 1000
    return CubicSpline(t[keep], a[channel][keep])(grid), rr


@pytest.mark.parametrize("sub", ["subject_04", "subject_15", "subject_18"])
def test_welltory_camera_ppg_against_chest_strap(sub):
    if not (DATA / "welltory" / sub).exists():
        pytest.skip(f"{sub} not in the data folder")
    x, rr = _welltory(sub)
    r = analyze(x, 60.0)  # inverted camera brightness, arbitrary scale
    assert r.flipped
    assert r.hr_bpm == pytest.approx(60 / rr.mean(), abs=1.5)
    ref_rmssd = np.sqrt(np.mean(np.diff(rr * 1000) ** 2))
    assert r.rmssd_ms == pytest.approx(ref_rmssd, abs=15)


def test_saturated_camera_recording_is_refused_honestly():
    sub = DATA / "welltory" / "subject_20"
    if not sub.exists():
        pytest.skip("subject_20 not in the data folder")
    x, _ = _welltory("subject_20")
    r = analyze(x[: 60 * 30], 60.0)
    assert r.hr_bpm is None and r.quality < 0.2 and r.reason


def test_saturated_red_but_green_channel_carries_the_pulse():
    if not (DATA / "welltory" / "subject_20").exists():
        pytest.skip("subject_20 not in the data folder")
    x, rr = _welltory("subject_20", "G")
    t = np.cumsum(rr)
    fs, w = 60.0, 600
    answered = 0
    for i in range(w, len(x) - w + 1, w):  # the first 10 s settle
        r = analyze(x[i : i + w], fs)
        if r.hr_bpm is None:
            continue
        answered += 1
        m = (t >= i / fs) & (t < (i + w) / fs)
        assert r.hr_bpm == pytest.approx(60 / rr[m].mean(), abs=4.0)
    assert answered >= 4
