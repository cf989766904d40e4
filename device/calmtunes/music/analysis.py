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

from calmtunes.iir import block_iir, butter_sos


def _median_filter(x: np.ndarray, size: int) -> np.ndarray:
    """Running median over ``size`` samples, edges extended with the edge value (as
    ``scipy.ndimage.median_filter(x, size, mode="nearest")``: for an even size, the upper of
    the two middle values)."""
    left = size // 2
    padded = np.concatenate([np.full(left, x[0]), x, np.full(size - 1 - left, x[-1])])
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)
    out = np.empty(len(x))
    for i in range(0, len(x), 20000):  # bounded temporary memory on long signals
        part = np.partition(windows[i:i + 20000], size // 2, axis=1)
        out[i:i + 20000] = part[:, size // 2]
    return out


def _welch(x: np.ndarray, fs: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density (periodic Hann, 50 % overlap, mean removed per segment,
    one-sided, V²/Hz), as ``scipy.signal.welch(x, fs, nperseg=nperseg)``."""
    n = min(nperseg, len(x))
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    segs = np.lib.stride_tricks.sliding_window_view(x, n)[:: n - n // 2]
    segs = segs - segs.mean(axis=1, keepdims=True)
    psd = (np.abs(np.fft.rfft(segs * win, axis=1)) ** 2).mean(axis=0) / (fs * (win**2).sum())
    psd[1:len(psd) - (1 if n % 2 == 0 else 0)] *= 2.0
    return np.fft.rfftfreq(n, 1.0 / fs), psd


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
    f = block_iir(butter_sos(4, min(hf_hz, 0.45 * fs), "highpass", fs=fs))
    hf = np.abs(f.run(x.T, np.zeros((x.shape[1], f.order)))[0]).max(axis=0)
    # the local level of the band: median over 100 ms, computed on a decimated envelope so it
    # stays fast on long signals
    step = max(1, int(fs / 2000))  # 0.5 ms
    env = hf[: len(hf) // step * step].reshape(-1, step).max(axis=1)
    local = _median_filter(env, max(3, int(0.1 * fs / step)))
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
    freqs, psd = _welch(x, fs, 8192)
    total = psd.sum() + 1e-300
    out = {}
    for lo, hi in bands:
        if lo >= fs / 2:
            continue
        share = psd[(freqs >= lo) & (freqs < hi)].sum() / total
        out[f"{lo}-{hi} Hz"] = float(10.0 * np.log10(share + 1e-30))
    return out
