"""A simulated listener's fingertip: beat-to-beat heart rate, breathing and the PPG they make.

The model answers one question for the emulated MAX30102: *how much light comes back* at given
times. :meth:`Listener.optics` returns, per sample time, the photocurrent per mA of LED current
(nA/mA) for the red and the IR LED and the ambient photocurrent (nA); the emulator multiplies by
its LED currents, adds the sensor's own noise and quantises to ADC codes.

What is modelled, and how:

- **Heart rate** follows a :class:`Trajectory` (bpm and breaths/min against session time, in s).
  Scenarios supply one; a closed-loop listener may supply its own (any object with
  ``at(t_s) -> (hr_bpm, breath_rate_per_min)``). Beats are drawn one by one in time order:
  ``IBI = 60/HR · (1 + RSA + LF + jitter)``, where RSA (respiratory sinus arrhythmia) is in phase
  with breathing (heart rate rises on inhalation), LF is a 0.1 Hz Mayer-wave term and jitter is
  white. Ectopic beats (premature, followed by a compensatory pause) occur at a chosen rate.
- **Breathing** has a phase obtained by integrating the trajectory's breathing rate, so the rate
  itself may slow down smoothly. It modulates the PPG three ways (as real fingertips do):
  baseline (intensity), pulse amplitude, and beat intervals (RSA).
- **Pulse shape**: a systolic Gaussian and a smaller, later diastolic one, leaving a dicrotic
  notch; blood absorbs light, so the raw signal dips at each beat (as the sensor reports it).
- **SpO2** sets the red/IR ratio of ratios ``R = (AC_red/DC_red)/(AC_ir/DC_ir)`` through the
  usual empirical line ``SpO2 = 110 − 25·R`` (this emulator's calibration, not a clinical one).
- **Finger on/off** events, **pressure** and **skin tone** (melanin absorbs red far more than IR)
  scale the returned light; **motion** adds large, low-frequency artefacts; **ambient light** leaks
  in when no finger covers the window.

Everything a test needs to judge an analyser is exported by :meth:`Listener.truth`.
Time is session time in seconds, starting at 0; the model draws beats lazily and may be asked for
any span, in any chunking, as fast as the caller likes (no real clock is involved).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

# Photocurrent per mA of LED current with a finger on the window, nA/mA, for a light-skinned
# finger at normal pressure. At 7 mA and a 4096 nA ADC range this gives ≈ 100 k of 262 k counts
# on IR, the level real MAX30102 breakouts show.
IR_COUPLING_NA_PER_MA = 230.0
RED_COUPLING_NA_PER_MA = 170.0
# With no finger the window sees only reflections from the cover glass and the room.
EMPTY_COUPLING_NA_PER_MA = 4.0
FINGER_RAMP_S = 0.6  # placing or lifting a finger takes about this long


def ratio_for_spo2(spo2: float) -> float:
    """The ratio of ratios R that this model produces for an SpO2 in % (``110 − 25·R``)."""
    return (110.0 - spo2) / 25.0


@runtime_checkable
class Trajectory(Protocol):
    """Where the listener's heart and breathing are heading.

    ``at(t_s)`` takes session time in s (0 at the start, called with non-decreasing times) and
    returns ``(hr_bpm, breath_rate_per_min)``: the mean heart rate (30–200 bpm) and the breathing
    rate (2–40 breaths/min) at that moment. Beat-to-beat variability is added by the model.
    """

    def at(self, t_s: float) -> tuple[float, float]: ...


@dataclass(frozen=True)
class Steady:
    """A constant heart and breathing rate."""

    hr_bpm: float
    breath_rate: float

    def at(self, t_s: float) -> tuple[float, float]:
        return self.hr_bpm, self.breath_rate


@dataclass(frozen=True)
class Relaxing:
    """Exponential settling from a start to an end rate: ``end + (start−end)·exp(−t/τ)``.

    ``tau_s`` is chosen so the rates are within 5 % of the way left after ``duration_s``.
    """

    hr_start: float
    hr_end: float
    breath_start: float
    breath_end: float
    duration_s: float
    delay_s: float = 0.0

    def at(self, t_s: float) -> tuple[float, float]:
        x = max(0.0, t_s - self.delay_s)
        k = math.exp(-3.0 * x / self.duration_s)  # exp(−3) ≈ 5 % left at duration_s
        return (
            self.hr_end + (self.hr_start - self.hr_end) * k,
            self.breath_end + (self.breath_start - self.breath_end) * k,
        )


@dataclass(frozen=True)
class Scenario:
    """A listener and a room. Times in s of session time; rates in bpm and breaths/min."""

    name: str
    description: str
    trajectory: Trajectory
    spo2: float = 97.0  # %
    #: finger on the sensor during these (start, end) spans; the rest of the time it is off
    finger: tuple[tuple[float, float], ...] = ((-math.inf, math.inf),)
    #: (start, end, strength) motion episodes; strength 1 is a fidgeting hand (±5 % of DC)
    motion: tuple[tuple[float, float, float], ...] = ()
    skin_red: float = 1.0  # red transmission factor (1 light skin, ≈0.35 very dark skin)
    skin_ir: float = 1.0  # IR transmission factor (melanin barely absorbs IR)
    pressure: float = 1.0  # light coupling from finger pressure (0.5 light touch – 2 pressed)
    perfusion: float = 0.015  # IR pulse amplitude as a fraction of DC (perfusion index)
    ambient_na: float = 300.0  # ambient photocurrent reaching the bare window, nA
    rsa: float = 0.04  # respiratory sinus arrhythmia, fraction of the IBI (peak)
    lf: float = 0.02  # 0.1 Hz Mayer-wave variability, fraction of the IBI (peak)
    jitter: float = 0.012  # white beat-to-beat jitter, fraction of the IBI (sd)
    ectopic_rate: float = 0.0  # premature beats per beat


STRESSED = Relaxing(hr_start=90.0, hr_end=62.0, breath_start=18.0, breath_end=9.0,
                    duration_s=900.0)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("rest", "a calm adult at rest: 66 bpm, 14 breaths/min", Steady(66.0, 14.0)),
        Scenario(
            "stressed",
            "a stressed listener relaxing from ~90 to ~62 bpm and 18 to 9 breaths/min over 15 min",
            STRESSED,
            rsa=0.025,
            jitter=0.01,
        ),
        Scenario(
            "sleepy",
            "drifting toward sleep: 64 → 54 bpm, 12 → 7 breaths/min over 20 min, deep RSA",
            Relaxing(64.0, 54.0, 12.0, 7.0, duration_s=1200.0),
            rsa=0.07,
            perfusion=0.02,
        ),
        Scenario(
            "finger",
            "at rest; the finger arrives at 3 s, is lifted at 40 s and put back at 50 s",
            Steady(70.0, 15.0),
            finger=((3.0, 40.0), (50.0, math.inf)),
        ),
        Scenario(
            "motion",
            "at rest, with fidgeting at 20–26 s and 60–63 s",
            Steady(72.0, 15.0),
            motion=((20.0, 26.0, 1.0), (60.0, 63.0, 2.0)),
        ),
        Scenario(
            "dark_skin",
            "a very dark-skinned listener with a light touch (weak red signal)",
            Steady(68.0, 13.0),
            skin_red=0.35,
            skin_ir=0.8,
            pressure=0.6,
        ),
        Scenario(
            "pressed",
            "a finger pressed hard on the window (strong, flattened signal)",
            Steady(75.0, 16.0),
            pressure=2.5,
            perfusion=0.006,
        ),
        Scenario(
            "ectopic",
            "at rest with frequent premature beats (about 1 in 25)",
            Steady(64.0, 12.0),
            ectopic_rate=0.04,
        ),
        Scenario("hypoxic", "at rest with an SpO2 of 90 %", Steady(80.0, 18.0), spo2=90.0),
    )
}


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; a clear error listing the names when there is none."""
    try:
        return SCENARIOS[name]
    except KeyError:
        names = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"unknown pulse scenario {name!r}; choose one of: {names}") from None


@dataclass
class GroundTruth:
    """What really happened between ``t0`` and ``t1`` (session time, s)."""

    t0: float
    t1: float
    beat_times: np.ndarray  # s, each beat's onset (foot of the pulse wave)
    ibi_s: np.ndarray  # s, interval before each beat (NaN for the first one drawn)
    ectopic: np.ndarray  # bool, the beat is premature
    breath_times: np.ndarray  # s, start of each inhalation
    spo2: float  # %
    finger: tuple[tuple[float, float], ...]  # finger-on spans overlapping [t0, t1]
    # the trajectory's mean rate at t, and breathing rate (these call the trajectory again)
    hr_bpm: Callable[[float], float] = field(repr=False)
    breath_rate: Callable[[float], float] = field(repr=False)

    def mean_hr(self) -> float | None:
        """Mean heart rate from the beats in the span (60 / mean IBI), bpm."""
        ibi = self.ibi_s[np.isfinite(self.ibi_s)]
        return float(60.0 / ibi.mean()) if len(ibi) else None

    def rmssd_ms(self) -> float | None:
        ibi = self.ibi_s[np.isfinite(self.ibi_s)]
        if len(ibi) < 3:
            return None
        return float(np.sqrt(np.mean(np.diff(ibi) ** 2)) * 1000.0)


class _Series:
    """A float array that grows at its end and forgets its oldest part (bounded memory)."""

    def __init__(self, first: float) -> None:
        self._data = np.empty(1024)
        self._data[0] = first
        self._start, self._end = 0, 1

    def append(self, value: float) -> None:
        if self._end == len(self._data):
            live = self._data[self._start : self._end]
            size = max(1024, 2 * len(live))
            data = np.empty(size)
            data[: len(live)] = live
            self._data, self._start, self._end = data, 0, len(live)
        self._data[self._end] = value
        self._end += 1

    def drop(self, count: int) -> None:
        """Forget the oldest ``count`` values (never the newest one)."""
        self._start = min(self._start + max(count, 0), self._end - 1)

    @property
    def values(self) -> np.ndarray:
        return self._data[self._start : self._end]

    @property
    def last(self) -> float:
        return float(self._data[self._end - 1])


class Listener:
    """The physiology of one scenario, drawn lazily with a seeded generator.

    ``trajectory`` overrides the scenario's (for a closed-loop listener steered by the music).
    """

    _BREATH_DT = 0.05  # s, grid on which the breathing phase is integrated
    #: seconds of beats and breathing kept for rendering and :meth:`truth` (bounded memory)
    history_s = 3600.0

    def __init__(
        self, scenario: Scenario | str = "rest", seed: int = 0, trajectory: Trajectory | None = None
    ) -> None:
        self.scenario = globals()["scenario"](scenario) if isinstance(scenario, str) else scenario
        if trajectory is not None and not isinstance(trajectory, Trajectory):
            raise TypeError("trajectory needs a method at(t_s) -> (hr_bpm, breath_rate_per_min)")
        self.trajectory = trajectory or self.scenario.trajectory
        self._rng = np.random.default_rng(seed)
        # breathing phase in cycles on a regular grid, extended as time goes on
        self._b0 = 0.0  # time of the oldest kept breathing-grid point, s
        self._bphase = _Series(float(self._rng.uniform()))
        self._beats = _Series(float(self._rng.uniform(0.0, 0.8)))
        self._ibis = _Series(math.nan)
        self._ectopic = _Series(0.0)
        self._forgot = False  # beats older than history_s have been dropped
        self._lf_phase = float(self._rng.uniform(0.0, 2 * math.pi))
        # motion: a few incommensurate sinusoids per episode, drawn once (chunking-independent)
        self._motion = [
            (t0, t1, s, self._rng.uniform(0.3, 3.0, 6), self._rng.uniform(0, 2 * math.pi, 6))
            for (t0, t1, s) in self.scenario.motion
        ]
        self._wander_phase = self._rng.uniform(0, 2 * math.pi, 2)
        # a finger that never leaves the window covers it fully at every moment (cover 1)
        self._always_covered = any(not (math.isfinite(a) or math.isfinite(b))
                                   for a, b in self.scenario.finger)

    # -- rates --------------------------------------------------------------------------------
    def _rates(self, t: float) -> tuple[float, float]:
        hr, br = self.trajectory.at(t)
        hr, br = float(hr), float(br)
        if not (30.0 <= hr <= 200.0 and 2.0 <= br <= 40.0):
            raise ValueError(
                f"trajectory gave {hr:.1f} bpm, {br:.1f} breaths/min at t={t:.1f} s; "
                "keep heart rate in 30–200 bpm and breathing in 2–40 breaths/min"
            )
        return hr, br

    def _extend_breath(self, t_end: float) -> None:
        dt = self._BREATH_DT
        t = self._b0 + (len(self._bphase.values) - 1) * dt
        while t < t_end:
            _, br = self._rates(t)
            self._bphase.append(self._bphase.last + br / 60.0 * dt)
            t += dt
        old = int((t - self.history_s - self._b0) / dt)
        if old > 0:
            self._bphase.drop(old)
            self._b0 += old * dt

    def breath_phase(self, t: np.ndarray | float) -> np.ndarray:
        """Breathing phase in cycles (integer part counts breaths; 0 = start of inhalation)."""
        t = np.asarray(t, dtype=float)
        self._extend_breath(float(np.max(t, initial=0.0)) + self._BREATH_DT)
        phase = self._bphase.values
        # (np.minimum(np.maximum(…)): np.clip's values, without its Python-level wrapper)
        x = np.minimum(np.maximum((t - self._b0) / self._BREATH_DT, 0.0), len(phase) - 1.000001)
        i = x.astype(np.int64)
        return phase[i] + (x - i) * (phase[np.minimum(i + 1, len(phase) - 1)] - phase[i])

    def _breath_phase_at(self, t: float) -> float:
        """:meth:`breath_phase` at one time, in the same arithmetic without arrays (each beat
        drawn asks for one)."""
        self._extend_breath(max(t, 0.0) + self._BREATH_DT)
        phase = self._bphase.values
        x = min(max((t - self._b0) / self._BREATH_DT, 0.0), len(phase) - 1.000001)
        i = int(x)
        p = float(phase[i])
        return p + (x - i) * (float(phase[min(i + 1, len(phase) - 1)]) - p)

    def _extend_beats(self, t_end: float) -> None:
        sc = self.scenario
        while self._beats.last < t_end:
            t = self._beats.last
            hr, _ = self._rates(t)
            ibi = 60.0 / hr
            # RSA: inhalation (phase 0–0.5) shortens intervals
            rsa = -sc.rsa * math.sin(2 * math.pi * self._breath_phase_at(t))
            lf = sc.lf * math.sin(2 * math.pi * 0.1 * t + self._lf_phase)
            ibi *= 1.0 + rsa + lf + sc.jitter * float(self._rng.standard_normal())
            ectopic = False
            after_ectopic = bool(self._ectopic.last)
            if sc.ectopic_rate and not after_ectopic and self._rng.uniform() < sc.ectopic_rate:
                ibi *= 0.65  # premature; the next interval compensates
                ectopic = True
            elif after_ectopic:
                ibi *= 1.3
            ibi = max(ibi, 0.25)
            self._beats.append(t + ibi)
            self._ibis.append(ibi)
            self._ectopic.append(float(ectopic))
        old = int(np.searchsorted(self._beats.values, t_end - self.history_s))
        if old > 0:
            for series in (self._beats, self._ibis, self._ectopic):
                series.drop(old)
            self._forgot = True

    # -- finger -------------------------------------------------------------------------------
    def finger_cover(self, t: np.ndarray) -> np.ndarray:
        """0 (no finger) – 1 (finger on), ramping over FINGER_RAMP_S at each event."""
        if self._always_covered:
            return np.ones_like(t)
        cover = np.zeros_like(t)
        for start, end in self.scenario.finger:
            up = np.clip((t - start) / FINGER_RAMP_S, 0.0, 1.0) if math.isfinite(start) else 1.0
            down = np.clip((end - t) / FINGER_RAMP_S, 0.0, 1.0) if math.isfinite(end) else 1.0
            cover = np.maximum(cover, np.minimum(up, down) * np.ones_like(t))
        return cover

    # -- the signal ---------------------------------------------------------------------------
    def _pulse(self, t: np.ndarray) -> np.ndarray:
        """Blood-volume pulse 0 (diastole) – ~1 (systolic peak) at times t."""
        self._extend_beats(float(t.max(initial=0.0)) + 3.0)
        beats = self._beats.values
        idx = np.searchsorted(beats, t, side="right") - 1
        idx = np.minimum(np.maximum(idx, 0), len(beats) - 2)
        start = beats[idx]
        period = beats[idx + 1] - start
        x = (t - start) / period
        # shape times scale gently with the period (systole shortens less than diastole)
        s = np.sqrt(period / 0.9)
        sec = x * period / s
        systolic = np.exp(-0.5 * ((sec - 0.17) / 0.065) ** 2)
        diastolic = 0.42 * np.exp(-0.5 * ((sec - 0.42) / 0.09) ** 2)
        decay = 0.25 * np.exp(-np.maximum(sec - 0.17, 0.0) / 0.35) * (sec > 0.17)
        return systolic + diastolic + decay

    def _motion_at(self, t: np.ndarray) -> np.ndarray:
        out = np.zeros_like(t)
        for t0, t1, strength, freqs, phases in self._motion:
            inside = (t >= t0) & (t < t1)
            if not inside.any():
                continue
            tt = t[inside]
            env = np.sin(np.pi * np.clip((tt - t0) / (t1 - t0), 0, 1)) ** 0.5
            wave = sum(np.sin(2 * np.pi * f * tt + p) for f, p in zip(freqs, phases)) / 3.0
            out[inside] += 0.05 * strength * env * wave
        return out

    def optics(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Light returned at times ``t`` (s): (red nA/mA, IR nA/mA, ambient nA).

        The ambient photocurrent is what reaches the photodiode regardless of the LEDs; a finger
        shades most of it.
        """
        t = np.atleast_1d(np.asarray(t, dtype=float))
        sc = self.scenario
        phase = self.breath_phase(t)
        breath = np.sin(2 * np.pi * phase)
        pulse = self._pulse(t)
        # breathing: baseline (±0.4 % of DC) and amplitude (±12 %) modulation; slow vasomotion
        wander = 0.004 * breath + 0.003 * np.sin(2 * np.pi * 0.03 * t + self._wander_phase[0])
        amp = sc.perfusion * (1.0 + 0.12 * breath)
        r_ratio = ratio_for_spo2(sc.spo2)
        # (without motion episodes or finger events the terms they add are exactly 0 and the
        # factors exactly 1, and are left out: the same numbers, fewer array operations)
        motion = self._motion_at(t) if self._motion else None
        base = sc.pressure * (1.0 + wander + motion if motion is not None else 1.0 + wander)
        ir = IR_COUPLING_NA_PER_MA * sc.skin_ir * base * (1.0 - amp * pulse)
        red = RED_COUPLING_NA_PER_MA * sc.skin_red * base * (1.0 - r_ratio * amp * pulse)
        if self._always_covered:
            ambient = np.full_like(t, sc.ambient_na * (1.0 - 0.97 * 1.0))
        else:
            cover = self.finger_cover(t)
            ir = cover * ir + (1.0 - cover) * EMPTY_COUPLING_NA_PER_MA
            red = cover * red + (1.0 - cover) * EMPTY_COUPLING_NA_PER_MA
            ambient = sc.ambient_na * (1.0 - 0.97 * cover)
        if motion is not None:
            ambient = ambient * (1.0 + 0.5 * np.abs(motion))
        return red, ir, ambient

    # -- ground truth -------------------------------------------------------------------------
    def truth(self, t0: float, t1: float) -> GroundTruth:
        """The beats, breaths and finger spans between ``t0`` and ``t1`` (s)."""
        if t1 < t0:
            raise ValueError(f"truth span ends ({t1}) before it starts ({t0})")
        self._extend_beats(t1 + 3.0)
        beats = self._beats.values
        if self._forgot and t0 < beats[0]:
            raise ValueError(
                f"truth from {t0:.0f} s is older than the {self.history_s:.0f} s kept; "
                "raise Listener.history_s for longer spans"
            )
        sel = (beats >= t0) & (beats < t1)
        grid = np.arange(max(t0 - 30.0, self._b0), t1 + self._BREATH_DT, self._BREATH_DT)
        ph = self.breath_phase(grid)
        starts = grid[1:][np.floor(ph[1:]) > np.floor(ph[:-1])]
        spans = tuple((a, b) for a, b in self.scenario.finger if b > t0 and a < t1)
        return GroundTruth(
            t0=t0,
            t1=t1,
            beat_times=beats[sel].copy(),
            ibi_s=self._ibis.values[sel].copy(),
            ectopic=self._ectopic.values[sel].astype(bool),
            breath_times=starts[(starts >= t0) & (starts < t1)],
            spo2=self.scenario.spo2,
            finger=spans,
            hr_bpm=lambda t: self._rates(t)[0],
            breath_rate=lambda t: self._rates(t)[1],
        )
