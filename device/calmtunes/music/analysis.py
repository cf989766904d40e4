"""Measuring rendered audio: pitch, clicks and tonal balance (for the tests and the benchmark).

* :func:`measure_frequency` — the strongest partial's frequency, to a few hundredths of a Hz
  (Hann window, zero padding, parabolic interpolation of the log spectrum).
* :func:`find_clicks` — discontinuities. A jump between two samples spreads energy across the
  whole spectrum, up to the top; music — ours above all, which stops at 6.5 kHz — has next to
  nothing in the top octave. So the detector high-passes the signal at ``hf_hz`` (default
  10 kHz) and reports samples whose high-frequency magnitude is both above an absolute floor
  (default −80 dBFS, well under anything audible at a bedside level) and far (default 10×) above
  the median of that band in the surrounding 100 ms — i.e. beyond what the signal itself
  contains there, so recordings with a legitimately bright top do not count as clicks.
* :func:`band_levels` — energy per band (dB relative to the total), to check a mix for harsh
  highs and boomy lows.
"""

from __future__ import annotations

import numpy as np
from scipy import signal
from scipy.ndimage import median_filter


def measure_frequency(x: np.ndarray, fs: float, fmin: float = 20.0, fmax: float = 5000.0
                      ) -> float:
    """Frequency of the strongest spectral peak between ``fmin`` and ``fmax`` Hz (mono or the
    channel mean)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    n = len(x)
    if n < 64:
        raise ValueError("measure_frequency: need at least 64 samples")
    nfft = 1 << int(np.ceil(np.log2(n * 8)))
    spec = np.abs(np.fft.rfft(x * np.hanning(n), nfft))
    freqs = np.fft.rfftfreq(nfft, 1.0 / fs)
    band = (freqs >= fmin) & (freqs <= fmax)
    k = int(np.flatnonzero(band)[np.argmax(spec[band])])
    a, b, c = np.log(spec[k - 1:k + 2] + 1e-300)
    offset = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return float((k + offset) * fs / nfft)


def find_clicks(x: np.ndarray, fs: float, hf_hz: float = 10000.0, floor_db: float = -80.0,
                ratio: float = 10.0) -> np.ndarray:
    """Frame indices of clicks in ``x`` ((frames,) or (frames, channels)); empty if none.

    Neighbouring hits (within 5 ms) are reported once, at the first frame."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) < 64:
        return np.zeros(0, dtype=np.int64)
    sos = signal.butter(4, min(hf_hz, 0.45 * fs), "highpass", fs=fs, output="sos")
    hf = np.abs(signal.sosfilt(sos, x, axis=0)).max(axis=1)
    # the local level of the band: median over 100 ms, computed on a decimated envelope so it
    # stays fast on long signals
    step = max(1, int(fs / 2000))  # 0.5 ms
    env = hf[: len(hf) // step * step].reshape(-1, step).max(axis=1)
    local = median_filter(env, size=max(3, int(0.1 * fs / step)), mode="nearest")
    local = np.repeat(local, step)
    local = np.concatenate([local, np.full(len(hf) - len(local), local[-1] if len(local) else 0)])
    floor = 10.0 ** (floor_db / 20.0)
    hits = np.flatnonzero((hf > floor) & (hf > ratio * local))
    if hits.size == 0:
        return hits
    gap = int(0.005 * fs)
    keep = np.concatenate([[True], np.diff(hits) > gap])
    return hits[keep]


BANDS_HZ = ((20, 80), (80, 250), (250, 2000), (2000, 5000), (5000, 10000), (10000, 24000))


def band_levels(x: np.ndarray, fs: float, bands=BANDS_HZ) -> dict[str, float]:
    """Share of the signal's energy in each band, in dB relative to the total."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    freqs, psd = signal.welch(x, fs, nperseg=8192)
    total = psd.sum() + 1e-300
    out = {}
    for lo, hi in bands:
        if lo >= fs / 2:
            continue
        share = psd[(freqs >= lo) & (freqs < hi)].sum() / total
        out[f"{lo}-{hi} Hz"] = float(10.0 * np.log10(share + 1e-30))
    return out
