"""A simulated listener whose heart and breathing answer the music: the other half of the loop.

The response model (first order, one state per quantity, integrated in steps of at most 1 s):

- **Stress** *s* (0 calm – 1 stressed) relaxes toward the scenario's floor with time constant
  ``tau_stress_s`` while the music is acceptable, and is pushed up by *discomfort*: music led too
  far from the listener (tempo more than ``comfort_bpm`` from the heart rate, or breath pacing more
  than ``comfort_breaths`` from the breathing rate) raises its equilibrium by ``discomfort_gain``
  per 10 bpm (or 5 breaths/min) beyond the comfort zone. Scenario events (a door, a visitor) add a
  step to *s*.
- **Heart rate** *h* (bpm) follows ``h_eq = (1 − k_hr)·(hr_rest + hr_stress·s) + k_hr·tempo`` with
  time constant ``tau_hr_s``: part of it is the listener's own state, part is entrainment to the
  music's tempo (``k_hr`` = 0 for a listener who does not respond).
- **Breathing** *b* (breaths/min) follows ``b_eq = (1 − k_br)·(br_rest + br_stress·s) + k_br·pace``
  with time constant ``tau_br_s``, the paced rate being the bed's swell.

Heart-rate variability follows stress: RMSSD = ``rmssd_calm − (rmssd_calm − rmssd_stressed)·s``.

:meth:`SimulatedListener.at` gives the trajectory ``(hr_bpm, breath_rate)`` at a time, which the
physiology model of the emulated sensor can follow (it advances the listener, so call it with
non-decreasing times, or ask for a time already passed to read the history);
:meth:`SimulatedListener.reading` gives what an analyser would publish, with realistic measurement
noise, for driving the conductor directly.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from calmtunes.pulse.reading import PulseReading


@dataclass(frozen=True)
class ListenerModel:
    hr0: float  # bpm at t = 0
    br0: float  # breaths/min at t = 0
    stress0: float  # 0–1 at t = 0
    hr_rest: float = 60.0  # bpm when fully calm, without music
    hr_stress: float = 30.0  # bpm added at stress 1
    br_rest: float = 9.0  # breaths/min when fully calm
    br_stress: float = 9.0  # breaths/min added at stress 1
    stress_floor: float = 0.1  # where stress settles with acceptable music
    k_hr: float = 0.35  # entrainment of the heart rate to the tempo, 0–1
    k_br: float = 0.5  # entrainment of breathing to the pacing, 0–1
    tau_hr_s: float = 60.0
    tau_br_s: float = 45.0
    tau_stress_s: float = 300.0
    comfort_bpm: float = 12.0
    comfort_breaths: float = 4.0
    discomfort_gain: float = 0.4
    rmssd_calm: float = 55.0  # ms
    rmssd_stressed: float = 18.0  # ms
    events: tuple[tuple[float, float], ...] = ()  # (t_s, stress step)
    finger_off: tuple[tuple[float, float], ...] = ()  # (from_s, to_s) without a finger


SCENARIOS: dict[str, ListenerModel] = {
    # a stressed listener: ~90 bpm and 17 breaths/min, relaxing with the music
    "stressed": ListenerModel(hr0=90.0, br0=17.0, stress0=0.95),
    # calm already: little to lead
    "rest": ListenerModel(hr0=66.0, br0=12.0, stress0=0.3),
    # drifting off
    "sleepy": ListenerModel(hr0=62.0, br0=10.0, stress0=0.1, stress_floor=0.05),
    # stressed, then startled at minute 6 (a door, a visitor): stress jumps back up
    "startled": ListenerModel(hr0=88.0, br0=16.0, stress0=0.9, events=((360.0, 0.5),)),
    # the heart does not follow the music at all: the conductor must wait, not run away
    "unresponsive": ListenerModel(hr0=85.0, br0=15.0, stress0=0.8, k_hr=0.0, k_br=0.0,
                                  tau_stress_s=1e9),
    # the finger slips off for a while: the loop must open and close cleanly
    "restless": ListenerModel(hr0=86.0, br0=16.0, stress0=0.85,
                              finger_off=((240.0, 330.0), (600.0, 620.0))),
}


@dataclass
class _State:
    t: float
    hr: float
    br: float
    stress: float


@dataclass
class MusicInput:
    """What the listener hears: the sounding tempo and paced breathing rate."""

    tempo_bpm: float
    breath_rate: float


class SimulatedListener:
    """Integrates :class:`ListenerModel` against the music it is given.

    ``music`` is a callable ``t_s -> MusicInput | None`` (``None``: silence, no entrainment);
    it may be set later with :meth:`listen_to`.
    """

    def __init__(self, model: ListenerModel | str = "stressed", seed: int = 0,
                 music: Callable[[float], MusicInput | None] | None = None) -> None:
        if isinstance(model, str):
            if model not in SCENARIOS:
                raise ValueError(f"no listener scenario {model!r}; choose one of "
                                 f"{', '.join(SCENARIOS)}")
            model = SCENARIOS[model]
        self.model = model
        self.rng = np.random.default_rng(seed)
        self._music = music
        self.state = _State(0.0, model.hr0, model.br0, model.stress0)
        self.history: list[_State] = [replace(self.state)]
        self._history_t: list[float] = [0.0]  # the times of ``history``, for bisection
        self._events = sorted(model.events)

    #: steps of history kept (about 2 h at one step a second), then the oldest half is dropped
    HISTORY_STEPS = 7200

    def listen_to(self, music: Callable[[float], MusicInput | None]) -> None:
        self._music = music

    # -- the trajectory -----------------------------------------------------------------------
    def at(self, t_s: float) -> tuple[float, float]:
        """``(hr_bpm, breath_rate)`` at ``t_s`` seconds: the Trajectory interface."""
        if t_s < self.state.t:
            i = bisect.bisect_right(self._history_t, t_s) - 1
            h = self.history[max(0, i)]
            return h.hr, h.br
        self.advance(t_s)
        return self.state.hr, self.state.br

    def advance(self, t_s: float) -> _State:
        """Integrate up to ``t_s`` in steps of at most 1 s; return the state."""
        m = self.model
        while self.state.t < t_s - 1e-9:
            dt = min(1.0, t_s - self.state.t)
            s = self.state
            music = self._music(s.t) if self._music is not None else None
            stress_eq = m.stress_floor
            hr_own = m.hr_rest + m.hr_stress * s.stress
            br_own = m.br_rest + m.br_stress * s.stress
            hr_eq, br_eq = hr_own, br_own
            if music is not None:
                gap_hr = max(0.0, abs(music.tempo_bpm - s.hr) - m.comfort_bpm) / 10.0
                gap_br = max(0.0, abs(music.breath_rate - s.br) - m.comfort_breaths) / 5.0
                stress_eq = min(1.0, stress_eq + m.discomfort_gain * (gap_hr + gap_br))
                hr_eq = (1 - m.k_hr) * hr_own + m.k_hr * music.tempo_bpm
                br_eq = (1 - m.k_br) * br_own + m.k_br * music.breath_rate
            else:
                stress_eq = max(stress_eq, m.stress0 * 0.8)  # silence relaxes little
            stress = s.stress + (stress_eq - s.stress) * (1 - math.exp(-dt / m.tau_stress_s))
            t = s.t + dt
            while self._events and self._events[0][0] <= t:
                stress += self._events.pop(0)[1]
            self.state = _State(
                t=t,
                hr=s.hr + (hr_eq - s.hr) * (1 - math.exp(-dt / m.tau_hr_s)),
                br=s.br + (br_eq - s.br) * (1 - math.exp(-dt / m.tau_br_s)),
                stress=float(np.clip(stress, 0.0, 1.0)),
            )
            self.history.append(self.state)
            self._history_t.append(t)
            if len(self.history) > 2 * self.HISTORY_STEPS:  # bounded memory in long sessions
                del self.history[: self.HISTORY_STEPS]
                del self._history_t[: self.HISTORY_STEPS]
        return self.state

    # -- what an analyser would report --------------------------------------------------------
    def finger_on(self, t_s: float) -> bool:
        return not any(a <= t_s < b for a, b in self.model.finger_off)

    def reading(self, t_s: float, *, lock_s: float = 8.0, hr_noise: float = 1.0,
                breath_noise: float = 0.6, stress_noise: float = 0.03) -> PulseReading:
        """A :class:`PulseReading` at ``t_s`` with measurement noise (sd: ``hr_noise`` bpm,
        ``breath_noise`` breaths/min, ``stress_noise``); nothing measured for the first
        ``lock_s`` after the finger is placed, as a real analyser needs a few beats."""
        s = self.advance(t_s)
        rng = self.rng
        if not self.finger_on(t_s):
            return PulseReading(t=t_s, finger=False, quality=0.0, reason="no finger")
        placed = max([b for a, b in self.model.finger_off if b <= t_s], default=0.0)
        if t_s - placed < lock_s:
            return PulseReading(t=t_s, finger=True, quality=0.3, reason="locking on")
        m = self.model
        rmssd = m.rmssd_calm - (m.rmssd_calm - m.rmssd_stressed) * s.stress
        return PulseReading(
            t=t_s,
            finger=True,
            quality=float(np.clip(rng.normal(0.85, 0.05), 0.0, 1.0)),
            hr_bpm=float(s.hr + rng.normal(0.0, hr_noise)),
            rmssd_ms=float(max(3.0, rmssd + rng.normal(0.0, 3.0))),
            sdnn_ms=float(max(5.0, 1.3 * rmssd + rng.normal(0.0, 4.0))),
            breathing_rate=float(max(3.0, s.br + rng.normal(0.0, breath_noise))),
            spo2=float(np.clip(rng.normal(97.5, 0.5), 90.0, 100.0)),
            stress=float(np.clip(s.stress + rng.normal(0.0, stress_noise), 0.0, 1.0)),
            stress_sd=stress_noise,
        )


@dataclass
class LoopTrace:
    """Per-second record of a closed-loop run (for tests and the benchmark)."""

    t: list[float] = field(default_factory=list)
    tempo_plan: list[float] = field(default_factory=list)
    breath_plan: list[float] = field(default_factory=list)
    hr: list[float] = field(default_factory=list)
    br: list[float] = field(default_factory=list)
    stress: list[float] = field(default_factory=list)
    mode: list[str] = field(default_factory=list)

    def add(self, t: float, tempo: float, breath: float, state: _State, mode: str) -> None:
        self.t.append(t)
        self.tempo_plan.append(tempo)
        self.breath_plan.append(breath)
        self.hr.append(state.hr)
        self.br.append(state.br)
        self.stress.append(state.stress)
        self.mode.append(mode)


def run_loop(conductor, listener: SimulatedListener, seconds: float, scene=None,
             lag_s: float = 0.0) -> LoopTrace:
    """Drive ``conductor`` from ``listener`` once a simulated second, with no audio: the music
    the listener hears is the conductor's plan ``lag_s`` seconds ago (the composer's lookahead)."""
    trace = LoopTrace()
    plan: list[tuple[float, float, float]] = []

    def music(t: float) -> MusicInput | None:
        if not plan:
            return None
        i = bisect.bisect_right([p[0] for p in plan], t - lag_s) - 1
        _, tempo, breath = plan[max(0, i)]
        return MusicInput(tempo, breath)

    listener.listen_to(music)
    for k in range(int(seconds) + 1):
        t = float(k)
        reading = listener.reading(t)
        controls = conductor.update(t, reading, scene(t) if callable(scene) else scene)
        plan.append((t, controls.tempo_bpm, controls.breath_rate))
        trace.add(t, controls.tempo_bpm, controls.breath_rate, listener.state, conductor.mode)
    return trace
