"""The streaming analyser: raw sensor blocks in, one :class:`PulseReading` a second out.

Samples go into a ring holding the last :data:`HISTORY_S` seconds (vectorised copies, no
per-sample Python). Finger presence is decided per block from the IR level: a fingertip
reflects most of the IR LED back (typically > 50 000 of 262 143 counts at the default LED
current), an empty sensor only a few thousand; on/off thresholds with hysteresis sit between.

:meth:`PulseAnalyser.reading` runs :func:`calmtunes.pulse.analysis.analyze` — the very function
the benchmarks score — on the IR samples since the finger settled (at most the last 60 s), with
the heart rate taken over the last 10 s, then tracked across readings
(:class:`~calmtunes.pulse.tracker.RateTracker`: a sudden halving or doubling is read back on
the tracked rate until it persists, a true change is followed at once). Where the 60 s window
is refused (motion filling much of it), the heart rate is judged on the last 10 s alone, HRV
and breathing left out, if the window around shows that span clear of motion. The breathing rate, a
third of a reading's cost, is measured afresh every :data:`BREATH_EVERY_S` and carried between
while the segment lasts. The analysis is cached per sample count, so calling ``reading`` more
often than samples arrive costs nothing. A gap
in the samples (FIFO overflow, ``lost`` > 0, or a jump in the timestamps) restarts the
segment, because beat intervals across a gap would be wrong; so does placing the finger
(after :data:`SETTLE_S` for the pressure transient). Every figure is None when it cannot be
measured now, never a stale value.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from calmtunes.pulse import filters, quality
from calmtunes.pulse import spo2 as spo2_mod
from calmtunes.pulse.analysis import PulseAnalysis, analyze
from calmtunes.pulse.finger import FingerDetector
from calmtunes.pulse.reading import PulseReading
from calmtunes.pulse.samples import SampleBlock
from calmtunes.pulse.stats import median
from calmtunes.pulse.stress import StressIndex
from calmtunes.pulse.tracker import RateTracker

#: seconds of samples kept
HISTORY_S = 64.0
#: heart rate over the last this many seconds
HR_SPAN_S = 10.0
#: HRV and breathing over the last this many seconds
HRV_SPAN_S = 60.0
#: HRV is reported once the segment spans this long
HRV_MIN_S = 30.0
#: the breathing rate is measured afresh this often, s, and carried between (see reading()):
#: over a 60 s window it moves little in a few seconds, and it is a third of a reading's cost
BREATH_EVERY_S = 5.0
#: the first second after the finger lands is pressure transient, not pulse
SETTLE_S = 1.0
#: no sample for this long means the sensor is silent, s
STALE_S = 1.0
#: gap between timestamps, in sample periods, taken as lost samples
GAP_PERIODS = 3.0


class PulseAnalyser:
    """Streaming pulse analysis at a nominal ``fs`` samples/s (25–1000)."""

    def __init__(self, fs: float, *, stress: StressIndex | None = None) -> None:
        fs = float(fs)
        if not np.isfinite(fs) or not 25.0 <= fs <= 1000.0:
            raise ValueError(f"sample rate {fs:g} sps is outside 25–1000; pass the sensor's rate")
        self.fs = fs
        self._cap = int(HISTORY_S * fs) + 1
        self._t = np.zeros(self._cap)
        self._red = np.zeros(self._cap)
        self._ir = np.zeros(self._cap)
        self._count = 0  # samples written in total
        self._finger = False
        self._finger_rule = FingerDetector()  # for blocks that come without the driver's mark
        self._seg_start = -np.inf  # monotonic time the current clean segment starts
        self._last_t = -np.inf
        self._cache: tuple[int, float, PulseAnalysis, float | None, float] | None = None
        self.stress = stress if stress is not None else StressIndex()
        self.tracker = RateTracker()
        #: the last breathing measured: (rate, confidence, reason, last sample's time, segment)
        self._breath: tuple[float, float, str, float, float] | None = None
        self._tracked: tuple[float | None, str] = (None, "")  # rate reported, note

    # -- input ---------------------------------------------------------------------------
    def feed(self, block: SampleBlock) -> None:
        """Take one block of raw samples (t in s monotonic, red/ir in ADC counts)."""
        n = len(block)
        if n == 0:
            return
        t = np.asarray(block.t, dtype=float)
        red = np.asarray(block.red, dtype=float)
        ir = np.asarray(block.ir, dtype=float)
        if block.lost > 0 or t[0] - self._last_t > GAP_PERIODS / self.fs:
            self._seg_start = float(t[0])
        # The driver's judgement (light returned per mA of LED current) where it marked the
        # block; else the same rule at the sensor's nominal settings (calmtunes.pulse.finger).
        finger = block.finger
        if finger is None:
            finger = self._finger_rule.update(float(median(ir)))
        if self._finger and not finger:
            self._finger = False
        elif not self._finger and finger:
            self._finger = True
            self._seg_start = float(t[0])
            self.tracker.reset()  # perhaps another listener
        if n > self._cap:
            t, red, ir = t[-self._cap :], red[-self._cap :], ir[-self._cap :]
            self._count += n - self._cap
            n = self._cap
        idx = (self._count + np.arange(n)) % self._cap
        self._t[idx], self._red[idx], self._ir[idx] = t, red, ir
        self._count += n
        self._last_t = float(t[-1])

    def _window(self, start: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = min(self._count, self._cap)
        idx = (self._count - n + np.arange(n)) % self._cap
        t = self._t[idx]
        k = int(np.searchsorted(t, start))
        return t[k:], self._red[idx[k:]], self._ir[idx[k:]]

    def _analyze(self, t: np.ndarray, ir: np.ndarray, fs: float) -> PulseAnalysis:
        """:func:`analyze` with the breathing rate measured every :data:`BREATH_EVERY_S`: in
        between, the last one is carried while the segment goes on and the pulse is read (a
        figure from the same 60 s window, moved on by a few seconds); a refused window, a new
        segment or no figure last time measure it afresh."""
        end, seg, last = float(t[-1]), self._seg_start, self._breath
        # (readings come about a second apart, each a FIFO round late or early)
        fresh = last is None or last[4] != seg or end - last[3] >= BREATH_EVERY_S - 0.5
        res = analyze(ir, fs, hr_span_s=HR_SPAN_S, breathing=fresh)
        if res.hr_bpm is None:
            self._breath = None
        elif fresh:
            br = res.breathing_rate
            self._breath = (None if br is None else
                            (br, res.breathing_confidence, res.breathing_reason, end, seg))
        elif last is not None:
            br, conf, why, _, _ = last
            res = replace(res, breathing_rate=br, breathing_confidence=conf,
                          breathing_reason=why,
                          reason="; ".join(r for r in (res.reason, why) if r))
        return res

    @staticmethod
    def _span_clean(ir: np.ndarray, fs: float, k: int) -> bool:
        """Whether the HR span (``ir[k:]``) is usable as the analysis counts it (at most
        1 - MIN_USABLE of it swinging like motion), judged against the quietest HR_SPAN_S of
        the whole window: a span of motion is told from the pulse by the window around it as
        long as the motion leaves HR_SPAN_S of that window clean (a span judged alone takes
        its own motion for the reference)."""
        x = ir / float(np.max(np.abs(ir)))
        x_bp = filters.pulse_band(x - float(np.mean(x)), fs)
        bad = quality.swings(x_bp, fs, quiet_s=HR_SPAN_S)[k:]
        return float(np.mean(bad)) <= 1.0 - quality.MIN_USABLE

    # -- output --------------------------------------------------------------------------
    @property
    def finger(self) -> bool:
        return self._finger

    def beats(self) -> tuple[np.ndarray, np.ndarray]:
        """Beat times (s, monotonic) and the corrected intervals ending at them (ms)."""
        if self._cache is None:
            return np.zeros(0), np.zeros(0)
        _, t0, res, _, _ = self._cache
        return t0 + res.beat_times[1:], res.ibi_ms

    def reading(self, now: float) -> PulseReading:
        """The figures measurable now; None for every figure that is not."""
        if self._count == 0 or now - self._last_t > STALE_S:
            return PulseReading(t=now, finger=False, quality=0.0, reason="no samples from sensor")
        if not self._finger:
            return PulseReading(t=now, finger=False, quality=0.0, reason="no finger on the sensor")
        start = max(self._seg_start + SETTLE_S, self._last_t - HRV_SPAN_S)
        if self._cache is not None and self._cache[0] == self._count:
            _, t0, res, spo2, span = self._cache
        else:
            t, red, ir = self._window(start)
            if len(t) < 2:
                return PulseReading(t=now, finger=True, quality=0.0, reason="finger settling")
            span = float(t[-1] - t[0])
            fs = self.fs
            if span > 0:
                measured = (len(t) - 1) / span
                if abs(measured / fs - 1.0) < 0.1:
                    fs = measured  # the sensor's own clock, a few % off nominal
            res = self._analyze(t, ir, fs)
            t0 = float(t[0])
            k = len(t) - int(HR_SPAN_S * fs)
            if res.hr_bpm is None and k > 0.05 * HR_SPAN_S * fs and self._span_clean(ir, fs, k):
                # The heart rate is judged on its own span: artefacts that fill much of the
                # longer window (motion > HRV_SPAN_S / 2 becomes the swing test's own
                # reference, and the usable share is counted over all of it) must not refuse
                # a clean last HR_SPAN_S. HRV and breathing need that window: left out here.
                alone = analyze(ir[k:], fs, breathing=False)
                if alone.hr_bpm is not None:
                    why = "; ".join(r for r in (alone.reason, f"HRV and breathing left out "
                                                f"({HRV_SPAN_S:g} s window: {res.reason})") if r)
                    res = replace(alone, rmssd_ms=None, sdnn_ms=None, reason=why)
                    t0 = float(t[k])
            spo2 = None
            if res.hr_bpm is not None:
                k = max(0, len(t) - int(HR_SPAN_S * fs))
                spo2 = spo2_mod.spo2_percent(spo2_mod.ratio_of_ratios(red[k:], ir[k:], fs))
            self._cache = (self._count, t0, res, spo2, span)
            self._tracked = (None, "")
            if res.hr_bpm is not None:
                tr = self.tracker.update(float(t[-1]), res.hr_bpm)
                note = ""
                if tr.factor != 1.0:
                    note = (f"{res.hr_bpm:.0f} bpm measured, {tr.hr_bpm:.0f} reported: "
                            f"{'twice' if tr.factor > 1 else 'half'} the measured rate "
                            "continues the tracked rate (held until the change persists)")
                self._tracked = (tr.hr_bpm, note)
        rmssd, sdnn = res.rmssd_ms, res.sdnn_ms
        reasons = [res.reason] if res.reason else []
        hr, note = self._tracked
        if note:
            reasons.append(note)
        if rmssd is not None and span < HRV_MIN_S:
            rmssd = sdnn = None
            reasons.append(f"HRV after {HRV_MIN_S:g} s of steady signal")
        stress, stress_sd = (None, None)
        if hr is not None:
            stress, stress_sd = self.stress.update(now, hr, rmssd, res.breathing_rate)
            if stress is None and self.stress.learning:
                reasons.append("stress: learning the listener's baseline")
        return PulseReading(
            t=now,
            finger=True,
            quality=res.quality,
            hr_bpm=hr,
            rmssd_ms=rmssd,
            sdnn_ms=sdnn,
            breathing_rate=res.breathing_rate,
            spo2=spo2,
            stress=stress,
            stress_sd=stress_sd,
            reason="; ".join(reasons),
        )
