"""Input checks and the signal-quality index (0 useless – 1 clean).

The index is the product of three scores, each in [0, 1]:

* **periodicity** – the normalised autocorrelation at the beat period (noise → 0);
* **morphology** – the median correlation of each beat with the window's average beat;
* **regularity** – the share of intervals that needed no correction (missed/extra/ectopic).

A product makes any one failure pull the whole index down. Figures are refused below
:data:`MIN_QUALITY`.
"""

from __future__ import annotations

import numpy as np

#: below this quality no figure is reported
MIN_QUALITY = 0.2
#: accepted sampling rates in Hz
FS_RANGE = (25.0, 1000.0)
#: shortest window that can hold enough beats for a heart rate, in s
MIN_SECONDS = 4.0
#: more than this share of missing samples (NaN/inf) makes the window unusable
MAX_MISSING = 0.1
#: more than this share of samples at the lowest or highest value means the sensor clips
MAX_CLIPPED = 0.05


def check_fs(fs: object) -> str | None:
    """None when ``fs`` is a usable sampling rate, else why not."""
    try:
        f = float(fs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"sampling rate {fs!r} is not a number; pass fs in Hz (25–1000)"
    if not np.isfinite(f) or not FS_RANGE[0] <= f <= FS_RANGE[1]:
        return f"sampling rate {f:g} Hz is outside 25–1000 Hz; pass the rate the PPG was sampled at"
    return None


def repair(x: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Fill short runs of NaN/inf by linear interpolation; refuse when too many are missing."""
    bad = ~np.isfinite(x)
    nbad = int(np.count_nonzero(bad))
    if nbad == 0:
        return x, ""
    if nbad > MAX_MISSING * len(x):
        return None, f"{nbad} of {len(x)} samples are NaN or infinite (more than 10 %)"
    idx = np.arange(len(x))
    y = x.copy()
    y[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return y, f"{nbad} missing samples interpolated"


def input_problem(x: np.ndarray, fs: float) -> str | None:
    """Why a finite window cannot be analysed at all (flat, clipped, too short), or None."""
    if len(x) < MIN_SECONDS * fs:
        return f"window of {len(x) / fs:.1f} s is too short; need at least {MIN_SECONDS:g} s"
    lo, hi = float(x.min()), float(x.max())
    top = max(abs(hi), abs(lo))
    if top == 0 or (hi / top - lo / top) <= 1e-12:  # relative span; no overflow at 1e308
        return "signal is flat (no finger, sensor off or LED off)"
    at_rail = max(np.count_nonzero(x == hi), np.count_nonzero(x == lo))
    if at_rail > MAX_CLIPPED * len(x):
        return (
            f"signal clips: {100 * at_rail / len(x):.0f} % of samples sit at one extreme "
            "(reduce LED current or finger pressure)"
        )
    return None


def morphology(x_up: np.ndarray, index: np.ndarray, fs: float, period_s: float) -> float:
    """Median correlation of each beat (−0.3 T … +0.6 T around its upstroke) with the mean beat."""
    if len(index) < 3 or not np.isfinite(period_s):
        return 0.0
    before, after = int(0.3 * period_s * fs), int(0.6 * period_s * fs)
    if before + after < 4:
        return 0.0
    idx = index[(index >= before) & (index + after < len(x_up))]
    if len(idx) < 3:
        return 0.0
    seg = x_up[idx[:, None] + np.arange(-before, after)]
    seg = seg - seg.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", seg, seg))
    norm[norm == 0] = 1.0
    seg /= norm[:, None]
    tmpl = seg.mean(axis=0)
    tn = float(np.sqrt(tmpl @ tmpl))
    if tn == 0:
        return 0.0
    corr = seg @ (tmpl / tn)
    return float(max(0.0, np.median(corr)))


def index(periodicity: float, morph: float, regular: float) -> float:
    """Combine the three scores (each 0–1) into the quality index."""
    q = max(0.0, periodicity) * max(0.0, morph) * max(0.0, regular)
    return float(min(1.0, q))
