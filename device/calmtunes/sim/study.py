"""Nights in a row on one device state: the personaliser against a simulated listener.

Each night: the personaliser chooses an arm (:meth:`Personaliser.start_session`), a session of
``duration_s`` seconds is simulated on the virtual clock with the real conductor driven once a
second by the simulated listener's readings, the session is
recorded by the real :class:`~calmtunes.sessions.SessionRecorder` (summary, trace, arm and
response in ``sessions.db``), and the personaliser is rewarded and learns
(:meth:`Personaliser.end_session`).

What the listener hears is written by the real composer (:class:`ComposedMusic`): the
configured one (the int8 generator, or the procedural composer where ``music.generator`` says
so or the model cannot load), writing phrases from the conductor's controls ahead of a playhead
as the composer component does, a fresh piece each night; the listener's heart answers the
tempo and breath pacing of the phrase sounding now, so it hears the plan as late as the
composer's lookahead makes it. No sound is synthesised. ``composed=False`` leaves the composer
out and hears the plan :data:`LAG_S` seconds late (a quicker approximation for large sweeps).

The readings come one of two ways:

- by default from :meth:`SimulatedListener.reading`: what the pulse analyser publishes, with its
  measurement noise (heart rate ± 1 bpm …), about 0.2 s of CPU a 15-minute night;
- with ``ppg=True`` through the real pulse path: the listener's heart and breathing drive the
  physiology model (beats, RSA, pulse shape), the emulated MAX30102 turns it into ADC samples,
  the real driver reads them on the virtual clock and the real :class:`PulseAnalyser` makes the
  once-a-second reading: about 10 s of CPU a 15-minute night.
"""

from __future__ import annotations

import bisect
import calendar
import collections
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calmtunes.care.arms import Arm, apply_arm
from calmtunes.care.personaliser import Choice, Personaliser, chosen_by
from calmtunes.care.reward import Response, session_response
from calmtunes.care.store import CareStore
from calmtunes.care.trace import SessionTrace, TracePoint
from calmtunes.config import Config
from calmtunes.music.composer import Composer
from calmtunes.music.conductor import Conductor, check_reading
from calmtunes.music.controls import Controls
from calmtunes.music.events import Phrase
from calmtunes.pulse.reading import PulseReading
from calmtunes.sessions import SessionRecorder
from calmtunes.sim import physiology
from calmtunes.sim.closed_loop import finger_spans
from calmtunes.sim.listener import MusicInput, SimulatedListener
from calmtunes.sim.profiles import Profile, night_model

log = logging.getLogger(__name__)

LAG_S = 4.0  # s between the conductor's plan and the sound the listener hears (composed=False)
FIRST_NIGHT = calendar.timegm((2026, 1, 5, 22, 0, 0))  # Unix s: the study's first bedtime
NIGHT_S = 86400.0


@dataclass(frozen=True)
class NightResult:
    night: int
    arm: str
    why: str
    response: Response
    composer: str = "none"  # which composer wrote what the listener heard ("none": the plan)


def ppg_readings(listener: SimulatedListener, seed: int) -> Callable[[float], PulseReading]:
    """``t -> reading``: the real driver and analyser on the emulated MAX30102 watching
    ``listener`` (call with increasing session times, s)."""
    from calmtunes.pulse.analyser import PulseAnalyser
    from calmtunes.pulse.max30102 import MAX30102
    from calmtunes.sim.clock import ManualClock
    from calmtunes.sim.max30102 import emulated_bus

    scenario = dataclasses.replace(
        physiology.SCENARIOS["rest"], name="night", description="a night of the care study",
        trajectory=listener, finger=finger_spans(listener.model.finger_off))
    clock = ManualClock(100.0)
    bus = emulated_bus(scenario, seed=seed, clock=clock)
    chip = bus.devices[0x57]
    driver = MAX30102(bus, clock=clock, sleep=clock.sleep)
    driver.start()
    analyser = PulseAnalyser(driver.fs)
    t0 = clock() - chip.session_time

    def read(t: float) -> PulseReading:
        while clock() - t0 < t:
            clock.sleep(driver.poll_delay())
            analyser.feed(driver.read())
        return dataclasses.replace(analyser.reading(clock()), t=t)

    return read


class ComposedMusic:
    """The real composer writing ahead of a playhead, and what the listener hears of it.

    :meth:`write_ahead` composes phrases from the conductor's latest controls until
    ``lookahead_s`` seconds are written past ``t`` (what
    :class:`~calmtunes.music.engine.ComposerComponent` keeps queued); calling the object with a
    time gives the sounding phrase's tempo and breath pacing (``None`` before the first phrase or
    while paused). Phrases already played are let go, so a night keeps a few in memory.
    """

    def __init__(self, composer: Composer, lookahead_s: float) -> None:
        self.composer = composer
        self.lookahead_s = lookahead_s
        self._phrases: collections.deque[tuple[float, Phrase]] = collections.deque()
        self.written_s = 0.0  # session s where the written music ends
        self.phrases = 0
        self.sources: collections.Counter[str] = collections.Counter()

    def write_ahead(self, t: float, controls: Controls) -> None:
        while self.written_s < t + self.lookahead_s:
            phrase = self.composer.next_phrase(controls)
            if phrase.seconds <= 0:
                raise ValueError(f"{self.composer.name} composer wrote a phrase of "
                                 f"{phrase.seconds} s")
            self._phrases.append((self.written_s, phrase))
            self.written_s += phrase.seconds
            self.phrases += 1
            self.sources[phrase.source] += 1
        while len(self._phrases) > 1 and self._phrases[1][0] <= t - LAG_S:
            self._phrases.popleft()

    def __call__(self, t: float) -> MusicInput | None:
        sounding = None
        for start, phrase in self._phrases:
            if start > t:
                break
            sounding = phrase
        if sounding is None or not sounding.controls.playing:
            return None
        return MusicInput(sounding.tempo_bpm, sounding.controls.breath_rate)


def night_composer(seed: int, generator: Composer | None = None) -> Composer:
    """A composer for one night: a fresh piece (new form and themes) from ``generator`` when
    one is loaded, else the procedural composer seeded for the night."""
    if generator is not None:
        generator.form = None  # type: ignore[attr-defined]  # the next phrase starts a new piece
        generator.motifs = None  # type: ignore[attr-defined]
        return generator
    from calmtunes.music.fallback import ProceduralComposer

    return ProceduralComposer(seed)


def load_study_generator(config: Config, seed: int) -> Composer | None:
    """The configured generator, loaded once for a study; ``None`` (procedural composer) where
    the config asks for it or the model cannot be used — said in the log, as the device says it."""
    if config.music.generator != "onnx":
        return None
    from calmtunes.music.engine import load_generator

    try:
        return load_generator(config, seed)
    except Exception as exc:
        log.error("generator unavailable (%s); the nights play the procedural composer", exc)
        return None


def simulate_night(config: Config, arm: Arm, p: Profile, seed: int, duration_s: float,
                   started_at: float = FIRST_NIGHT, recorder: SessionRecorder | None = None,
                   ppg: bool = False, composer: Composer | None = None) -> list[TracePoint]:
    """One session of ``arm`` for the profile's listener; its trace points. ``config`` is the
    session's (the arm applied); with a ``recorder`` the session is recorded too; ``ppg``: the
    readings come through the real pulse path; ``composer``: the listener hears what it writes
    (:class:`ComposedMusic`), else the plan :data:`LAG_S` s late (see the module docstring)."""
    rng = np.random.default_rng(seed)
    listener = SimulatedListener(night_model(p, arm, rng, duration_s),
                                 seed=int(rng.integers(2**31)))
    read = ppg_readings(listener, seed) if ppg else listener.reading
    conductor = Conductor(config, arm.preset, config.music.volume_db)
    plan_t: list[float] = []
    plan: list[MusicInput] = []

    def planned(t: float) -> MusicInput | None:
        i = bisect.bisect_right(plan_t, t - LAG_S) - 1
        return plan[max(0, i)] if plan else None

    composed = (ComposedMusic(composer, config.music.lookahead_s)
                if composer is not None else None)
    listener.listen_to(composed if composed is not None else planned)
    trace = SessionTrace(started_at)
    if recorder is not None:
        recorder.start(started_at, arm.preset)
    min_q = config.conductor.min_quality
    for k in range(int(duration_s)):
        t = float(k)
        reading = read(t)
        controls = conductor.update(t, reading, None)
        if composed is not None:
            composed.write_ahead(t, controls)
        else:
            plan_t.append(t)
            plan.append(MusicInput(controls.tempo_bpm, controls.breath_rate))
        now = started_at + t
        if recorder is not None:
            recorder.reading(now, reading)
            recorder.controls(now, controls)
            recorder.tick(now)
        else:
            trace.reading(now, reading, check_reading(reading, min_q).ok)
            trace.controls(now, controls)
    end = started_at + duration_s
    return recorder.points(end) if recorder is not None else trace.finish(end)


def run_study(config: Config, p: Profile, nights: int, duration_s: float, seed: int,
              state_dir: str | Path | None = None, record: bool = True,
              new_listener: bool = True, ppg: bool = False,
              composed: bool = True) -> list[NightResult]:
    """``nights`` nights in a row; the device state lives in ``state_dir`` (config's if None).
    ``record=False`` skips sessions.db (faster; the care record is still kept); ``ppg``: the
    readings come through the real pulse path; ``composed``: the real composer writes what the
    listener hears."""
    if state_dir is not None:
        config = config.replace(device={"state_dir": str(state_dir)})
    store = CareStore(config.device.state_dir)
    if new_listener:
        store.new_listener(FIRST_NIGHT)
    care = Personaliser(config, store, rng=np.random.default_rng(seed))
    recorder = SessionRecorder.open(config, now=FIRST_NIGHT) if record else None
    generator = load_study_generator(config, seed) if composed else None
    results = []
    try:
        for n in range(nights):
            start = FIRST_NIGHT + n * NIGHT_S
            choice: Choice = care.start_session(start)
            night_seed = seed * 100_003 + n
            composer = (night_composer(night_seed, generator) if composed
                        else None)
            points = simulate_night(choice.config, choice.arm, p, night_seed, duration_s,
                                    start, recorder, ppg, composer)
            sid = recorder.session_id if recorder is not None else None
            response = care.end_session(choice, points, start + duration_s, sid)
            if recorder is not None:
                recorder.note(listener=choice.listener, arm=choice.arm.id,
                              chosen_by=chosen_by(choice, False), **response.columns())
                recorder.end(start + duration_s, "sleep_timer")
            results.append(NightResult(n, choice.arm.id, choice.why, response,
                                       composer.name if composer is not None else "none"))
    finally:
        if recorder is not None:
            recorder.close(FIRST_NIGHT + nights * NIGHT_S)
    return results


def expected_rewards(config: Config, p: Profile, arms: list[Arm], nights: int,
                     duration_s: float, seed: int = 999, ppg: bool = False,
                     composed: bool = True) -> dict[str, float]:
    """Each arm's mean reward over ``nights`` simulated nights (the study's ground truth), with
    the same music path as :func:`run_study`."""
    out = {}
    generator = load_study_generator(config, seed) if composed else None
    for arm in arms:
        cfg = apply_arm(config, arm)
        rewards = []
        for n in range(nights):
            night_seed = seed * 7919 + n
            composer = night_composer(night_seed, generator) if composed else None
            resp = session_response(simulate_night(cfg, arm, p, night_seed, duration_s,
                                                   ppg=ppg, composer=composer))
            if resp.reward is not None:
                rewards.append(resp.reward)
        out[arm.id] = float(np.mean(rewards)) if rewards else float("nan")
    return out
