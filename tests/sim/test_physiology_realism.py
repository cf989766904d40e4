"""The simulated pulse wave looks like real fingertip PPG (BIDMC recordings, where present).

Each signal is band-passed, cut into foot-to-foot cycles, each cycle resampled to 64 points and
scaled to 0–1; the median cycle is the signal's template. The model's template must correlate
with the real ones about as well as real ones do with each other, and its systolic rise must
take the share of the cycle that real ones take (a sine, for comparison, scores 0.54 and 0.5).
"""

from __future__ import annotations

import csv
import gzip
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, find_peaks, sosfiltfilt

from calmtunes.sim.physiology import Listener

ROOT = Path(__file__).resolve().parents[2]
# ../shared/data/ppg beside the checkout (or beside the folder of worktrees), or where
# CALMTUNES_PPG_DATA points
_CANDIDATES = [Path(os.environ["CALMTUNES_PPG_DATA"])] if "CALMTUNES_PPG_DATA" in os.environ else []
_CANDIDATES += [base / "shared" / "data" / "ppg" for base in (ROOT.parent, ROOT.parent.parent)]
BIDMC = next((c / "bidmc" for c in _CANDIDATES if (c / "bidmc").is_dir()), _CANDIDATES[-1])
FILES = sorted(BIDMC.glob("bidmc_*_Signals.csv.gz"))
pytestmark = pytest.mark.skipif(not FILES, reason=f"no BIDMC recordings under {BIDMC}")


def pleth(path: Path, seconds: float = 120.0, fs: float = 125.0) -> np.ndarray:
    with gzip.open(path, "rt") as f:
        rows = csv.reader(f)
        header = [h.strip() for h in next(rows)]
        col = header.index("PLETH")
        out = []
        for i, row in enumerate(rows):
            if i >= seconds * fs:
                break
            out.append(float(row[col]))
    return np.asarray(out)


def template(x: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    """Median normalised foot-to-foot cycle, and the share of the cycle taken by the rise."""
    y = sosfiltfilt(butter(2, [0.5, 8.0], btype="band", fs=fs, output="sos"), x)
    feet, _ = find_peaks(-y, distance=int(0.33 * fs), prominence=0.3 * np.std(y))
    cycles, rises = [], []
    for a, b in itertools.pairwise(feet):
        if not 0.33 * fs < b - a < 1.5 * fs:
            continue
        seg = y[a : b + 1]
        c = np.interp(np.linspace(0, len(seg) - 1, 64), np.arange(len(seg)), seg)
        cycles.append((c - c.min()) / (np.ptp(c) + 1e-12))
        rises.append(np.argmax(seg) / (len(seg) - 1))
    return np.median(cycles, axis=0), float(np.median(rises))


@pytest.fixture(scope="module")
def real_templates():
    return [template(pleth(f), 125.0) for f in FILES]


@pytest.mark.parametrize("name", ["rest", "stressed", "sleepy"])
def test_pulse_shape_matches_real_fingertips(name, real_templates):
    t = np.arange(0, 120, 0.01)
    _, ir, _ = Listener(name, seed=1).optics(t)
    model, rise = template(-ir, 100.0)  # more blood, less light: invert to blood volume
    cors = [np.corrcoef(model, ref)[0, 1] for ref, _ in real_templates]
    real_rises = [r for _, r in real_templates]
    assert np.median(cors) > 0.85
    assert min(real_rises) - 0.03 <= rise <= max(real_rises) + 0.03
