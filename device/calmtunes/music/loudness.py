"""Loudness after ITU-R BS.1770-4: K-weighting, gated integrated loudness, true peak.

Units: loudness in LUFS (= LKFS), differences in LU, peaks in dBTP. Channels are weighted 1.0
(left and right; surround channels are not used here).

* :func:`k_weighting_sos` — the two-stage K filter (pre-filter high shelf, +4 dB above ~1.7 kHz,
  and the RLB high-pass at ~38 Hz), derived from the analog prototypes of the BS.1770 48 kHz
  coefficients so it is exact at 48 kHz and correct at any other rate.
* :class:`LoudnessMeter` — streaming: push blocks of any length; it keeps 100 ms sub-block
  energies and forms 400 ms gating blocks with 75 % overlap, as the standard prescribes.
  ``momentary`` (400 ms), ``short_term`` (3 s) and ``integrated`` (absolute gate −70 LUFS,
  relative gate −10 LU) are read at any time. With ``window_s`` the integrated value covers
  only the most recent gating blocks (a running measurement for the mixer's normaliser).
* :func:`integrated_loudness` and :func:`true_peak_dbtp` — offline, on whole signals.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from calmtunes.music.dsp import SosFilter

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
_OFFSET = -0.691  # BS.1770 eq. 2: makes a 997 Hz full-scale sine read −3.01 LUFS per channel


def k_weighting_sos(fs: float) -> np.ndarray:
    """K-weighting as second-order sections at ``fs`` Hz (pre-filter, then RLB high-pass)."""
    # High shelf: analog prototype of the BS.1770 stage 1 (f0 ≈ 1681.97 Hz, +4 dB, Q ≈ 0.7072).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / fs)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
        1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0,
    ]
    # RLB high-pass: f0 ≈ 38.14 Hz, Q ≈ 0.5003. The standard's numerator is 1, −2, 1 at 48 kHz,
    # not divided by a0 as a bilinear design's would be: its passband gain is a0(48 kHz), +0.043
    # dB, which the −0.691 offset takes in. At another rate a0 differs (+0.129 dB at the
    # normaliser's 16 kHz): the numerator is scaled so the passband gain is the standard's.
    f0, q = 38.13547087602444, 0.5003270373238773

    def a0_at(rate: float) -> float:
        k = math.tan(math.pi * f0 / rate)
        return 1.0 + k / q + k * k

    k = math.tan(math.pi * f0 / fs)
    a0 = a0_at(fs)
    g = a0_at(48000.0) / a0
    highpass = [g, -2.0 * g, g, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


def energy_to_lufs(mean_square: float) -> float:
    """Summed channel mean square of K-weighted audio → LUFS (−inf for silence)."""
    return _OFFSET + 10.0 * math.log10(mean_square) if mean_square > 0 else -math.inf


def lufs_to_energy(lufs: float) -> float:
    return 10.0 ** ((lufs - _OFFSET) / 10.0)


def gated_stats(block_energies: np.ndarray) -> tuple[float, int]:
    """(mean energy, count) of the 400 ms blocks passing both BS.1770 gates; (0.0, 0) if none."""
    z = np.asarray(block_energies, dtype=np.float64)
    z = z[z > lufs_to_energy(ABSOLUTE_GATE_LUFS)]
    if z.size == 0:
        return 0.0, 0
    relative = energy_to_lufs(float(z.mean())) + RELATIVE_GATE_LU
    z = z[z > lufs_to_energy(relative)]
    return (float(z.mean()), int(z.size)) if z.size else (0.0, 0)


def gated_mean(block_energies: np.ndarray) -> float:
    """Mean energy of 400 ms blocks passing both BS.1770 gates (0.0 when none passes)."""
    return gated_stats(block_energies)[0]


class LoudnessMeter:
    """Streaming BS.1770 meter for (frames, channels) float blocks at ``fs`` Hz."""

    def __init__(self, fs: float, channels: int = 2, window_s: float | None = None) -> None:
        if not 8000 <= fs <= 384000:
            raise ValueError(f"loudness meter: sample rate {fs} Hz is outside 8–384 kHz")
        self.fs = float(fs)
        self.channels = channels
        self._filter = SosFilter(k_weighting_sos(fs), channels)
        self._sub_len = round(0.1 * fs)  # 100 ms sub-blocks (75 % overlap of 400 ms)
        self._acc = 0.0  # energy summed in the current sub-block
        self._acc_n = 0
        self._subs: deque[float] = deque(maxlen=30)  # last 3 s of sub-block energies (sums)
        maxlen = None if window_s is None else max(1, round(window_s * 10))
        self._blocks: deque[float] = deque(maxlen=maxlen)  # 400 ms block mean squares
        self.blocks_done = 0  # gating blocks completed so far (grows by ~10 per second)

    def reset(self) -> None:
        self._filter.reset()
        self._acc, self._acc_n = 0.0, 0
        self._subs.clear()
        self._blocks.clear()

    def push(self, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ValueError(f"loudness meter: expected {self.channels} channels, got {x.shape[1]}")
        if not len(x):
            return
        y = self._filter(x.T)
        power = np.einsum("ij,ij->j", y, y)  # summed over channels (all weights 1.0)
        start = 0
        while start < len(power):
            take = min(self._sub_len - self._acc_n, len(power) - start)
            self._acc += float(power[start:start + take].sum())
            self._acc_n += take
            start += take
            if self._acc_n == self._sub_len:
                self._subs.append(self._acc)
                self._acc, self._acc_n = 0.0, 0
                if len(self._subs) >= 4:
                    last4 = list(self._subs)[-4:]
                    self._blocks.append(sum(last4) / (4 * self._sub_len))
                    self.blocks_done += 1

    def _recent(self, n: int) -> float:
        if len(self._subs) < n:
            return -math.inf
        return energy_to_lufs(sum(list(self._subs)[-n:]) / (n * self._sub_len))

    @property
    def momentary(self) -> float:
        """Loudness of the last 400 ms, in LUFS (−inf until 400 ms were pushed)."""
        return self._recent(4)

    @property
    def short_term(self) -> float:
        """Loudness of the last 3 s, in LUFS (−inf until 3 s were pushed)."""
        return self._recent(30)

    @property
    def integrated(self) -> float:
        """Gated loudness of everything pushed (or of the window), in LUFS; −inf if all silent."""
        return energy_to_lufs(gated_mean(np.fromiter(self._blocks, float)))

    @property
    def block_energies(self) -> np.ndarray:
        return np.fromiter(self._blocks, float)


def integrated_loudness(x: np.ndarray, fs: float) -> float:
    """Integrated loudness of a whole signal ((frames,) or (frames, channels)), in LUFS."""
    x = np.asarray(x, dtype=np.float64)
    meter = LoudnessMeter(fs, 1 if x.ndim == 1 else x.shape[1])
    meter.push(x)
    return meter.integrated


# 4× oversampling interpolator for true peak (BS.1770-4 Annex 2 asks for ≥ 4× at 48 kHz).
def _interpolator(taps_per_phase: int = 12, factor: int = 4) -> np.ndarray:
    # windowed-sinc low-pass at 0.9 × the original Nyquist, Kaiser window (β = 8), unity gain
    # at DC (as scipy.signal.firwin(n, 0.9 / factor, window=("kaiser", 8.0)))
    n = taps_per_phase * factor
    cutoff = 0.9 / factor  # relative to the oversampled Nyquist
    h = cutoff * np.sinc(cutoff * (np.arange(n) - (n - 1) / 2.0)) * np.kaiser(n, 8.0)
    return factor * h / h.sum()


_TP_FIR = _interpolator()


TP_TAPS_PER_PHASE = len(_TP_FIR) // 4

# (taps, 4): column p holds phase p's taps, oldest sample first (matching a sliding window)
_TP_PHASES = np.ascontiguousarray(_TP_FIR.reshape(TP_TAPS_PER_PHASE, 4)[::-1])

#: frames by which :func:`oversampled_peaks` lags its input (the interpolator's group delay)
TP_LAG_FRAMES = math.ceil((len(_TP_FIR) - 1) / 2 / 4)


def oversampled_peaks(x: np.ndarray, history: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame true-peak magnitude (max over 4 interpolated points and all channels).

    ``x`` is (frames, channels); ``history`` is the previous call's returned tail, so that
    consecutive blocks are interpolated as one signal. ``peaks[i]`` describes the signal around
    frame ``i - TP_LAG_FRAMES`` (the interpolator is causal). Returns (peaks, new history)."""
    taps = len(_TP_FIR) // 4
    if history is None:
        history = np.zeros((taps, x.shape[1]))
    joined = np.concatenate([history, x], axis=0)
    # polyphase: the interpolated point 4q + p is Σ_t h[4t + p]·x[q − t]
    windows = np.lib.stride_tricks.sliding_window_view(joined, taps, axis=0)[1:]
    up = windows @ _TP_PHASES  # (frames, channels, 4)
    peaks = np.abs(up).reshape(len(x), 4 * x.shape[1]).max(axis=1)
    return peaks, joined[-taps:].copy()


def true_peak_dbtp(x: np.ndarray) -> float:
    """True peak of a whole signal, in dBTP (4× oversampled)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if not len(x):
        return -math.inf
    peaks, _ = oversampled_peaks(np.concatenate([x, np.zeros((2 * TP_LAG_FRAMES, x.shape[1]))]))
    top = max(float(peaks.max()), float(np.abs(x).max()))
    return 20.0 * math.log10(top) if top > 0 else -math.inf
