"""The conductor: turns the preset, the listener's state and the room into musical controls.

:meth:`Conductor.update` is called about once a second with the latest
:class:`~calmtunes.pulse.reading.PulseReading` and :class:`~calmtunes.scene.features.SceneFeatures`
(either may be ``None``); :meth:`Conductor.controls` gives the composer the current plan, which it
takes once per phrase, so every change lands on a phrase boundary.

**Tempo, the iso principle.** The music meets the listener where they are and leads them:

- *Iso start.* When a segment starts (daemon start, play after pause, a preset chosen) and a
  reliable pulse arrives within :data:`ISO_WINDOW_S`, the tempo is set once to the heart rate,
  clamped to ``conductor.start_tempo_min``–``start_tempo_max``. A preset chosen while a reliable
  pulse is there starts at the heart rate at once (the change crossfades in).
- *Leading.* The tempo then glides toward the preset's tempo (shifted by the scene, below) at no
  more than ``conductor.glide_bpm_per_min``, and never more than ``conductor.max_lead_bpm`` away
  from the listener's (smoothed) heart rate: if the heart does not follow, the music waits.
  Should the tempo be outside that band (a finger placed late), it moves into it at
  :data:`MATCH_RATE_FACTOR` times the glide rate — still a glide, never a jump.
- *Stress.* The stress index is followed by a fast (:data:`STRESS_FAST_TAU_S`) and a slow
  (:data:`STRESS_SLOW_TAU_S`) average. When the fast one rises above the slow one by
  ``conductor.stress_pause_rise`` the glide pauses; by ``conductor.stress_ease_rise`` the tempo
  eases back toward the heart rate at half the glide rate. A stress index whose uncertainty
  exceeds :data:`MAX_STRESS_SD` is not acted on.

**Breath pacing** (the swell of the bed and pad) follows the same scheme: it starts at the measured
breathing rate, leads toward ``conductor.target_breath_rate`` at ``conductor.breath_glide_per_min``
and stays within :data:`MAX_BREATH_LEAD` breaths/min of the measured rate. Without a measured
breathing rate it paces at the preset's ``breath_rate``.

**Open loop.** A reading is used only when a finger is on, a heart rate is there and the signal
quality is at least ``conductor.min_quality``; impossible values (heart rate outside
:data:`HR_RANGE`, NaN anywhere, quality outside 0–1, breathing outside :data:`BREATH_RANGE`,
stress outside 0–1) make the whole reading ignored with a log line (at most one per
:data:`LOG_EVERY_S` per kind). A reading older than :data:`STALE_S` is not the listener's state
now. A heart rate about half or double the last good one (:data:`SUSPECT_RATIOS`) is held
as suspect — the last good rate stands — until :data:`CONFIRM_READINGS` readings in a row
confirm it: a half-rate reading would otherwise start the music at 45 BPM for a heart at 90.
Without a usable reading the conductor does not react to anything the pulse says: it keeps
gliding toward the preset (shifted by the scene) at the glide rate.

**Scene** (``conductor.scene_influence`` = *s*, 0–1). Each label's weight follows the camera's
label with a time constant of :data:`SCENE_TAU_S` (so a label change glides in over a minute or
so), and is held as last seen when there is no scene (stale, the camera lost or off for privacy:
the room has not changed, and fading it out would make the music louder by itself). The room as the
music finds it is not a change: the first fresh scene within :data:`SCENE_FOUND_S` of a segment's
start sets the weights at once (as the iso start meets the heart), so a session begun with visitors
in the room starts softer, where a glide from an empty room would move the music's colour through
its first minute and a half — a change of character nobody asked for, heard as a section of its
own. Never louder: a room found quieter than the weights held (a preset pressed as the visitors
leave) glides as any change does. At full weight:

=============  =====================================================================================
night          tempo −4·s bpm, density ×(1−0.4·s), brightness −0.25·s, register −0.15·s,
               bed +0.10·s, volume −4·s dB  (tends to Sleep: slower, darker, quieter)
dim            tempo −2·s bpm, density ×(1−0.2·s), brightness −0.12·s, volume −2·s dB
active/people  density ×(1−0.3·s), melodic ×(1−0.6·s), volume −3·s dB  (softer, less melodic)
quiet_day      brightness +0.12·s  (daylight: slightly brighter timbre)
=============  =====================================================================================

So at most 4 bpm, 4 dB and a quarter of the brightness range come from the camera.

Explicit choices by a person (a preset, the volume, play/pause) take effect at once; everything
the conductor decides by itself is rate-limited as above.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

from calmtunes.commands import quote
from calmtunes.config import Config
from calmtunes.music.controls import TEMPO_RANGE, Controls

log = logging.getLogger(__name__)

HR_RANGE = (30.0, 220.0)  # bpm: a heart rate outside this is a measurement error, not a person
BREATH_RANGE = (2.0, 40.0)  # breaths/min: likewise
PACE_RANGE = (4.0, 20.0)  # breaths/min the bed may pace at (PRESET_KEYS' breath_rate range)
STALE_S = 5.0  # s: the analyser publishes once a second; older readings are not "now"
ISO_WINDOW_S = 60.0  # s after a segment starts during which the first pulse sets the tempo
MATCH_RATE_FACTOR = 3.0  # entering the iso band goes this many times faster than leading
BAND_SLACK_BPM = 1.0  # the band's edge is held this loosely, so heart-rate noise moves nothing
MAX_BREATH_LEAD = 3.0  # breaths/min the pacing may be away from the measured rate
HR_TAU_S = 10.0  # s: smoothing of the heart rate the tempo follows
BREATH_TAU_S = 20.0  # s: smoothing of the breathing rate
STRESS_FAST_TAU_S = 15.0  # s
STRESS_SLOW_TAU_S = 120.0  # s
MAX_STRESS_SD = 0.25  # a stress index less certain than this is not acted on
PULSE_GAP_S = 60.0  # s without a usable reading after which the smoothing starts afresh
SCENE_TAU_S = 30.0  # s: how fast the scene's weights follow the label
SCENE_STALE_S = 30.0  # s: a scene record older than this no longer counts
SCENE_FOUND_S = 10.0  # s after a segment starts in which the first fresh scene is taken at once
LOG_EVERY_S = 60.0  # s between log lines about the same kind of bad reading
# a heart rate this many times the last good one is suspect: half or double the true rate
# (a beat missed each time, or a dicrotic wave counted as a beat) is the pulse analysis's
# typical gross error, and a real heart does not halve or double within seconds
SUSPECT_RATIOS = ((0.4, 0.6), (1.67, 2.5))
CONFIRM_READINGS = 3  # a suspect rate is believed once this many readings in a row agree …
CONFIRM_AGREE = 0.1  # … within this share of each other

# label -> (tempo bpm, density factor, brightness, register, bed, melodic factor, volume dB),
# each at full weight and scene_influence = 1 (see the table in the module docstring)
SCENE_EFFECTS: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "night": (-4.0, -0.4, -0.25, -0.15, 0.10, 0.0, -4.0),
    "dim": (-2.0, -0.2, -0.12, 0.0, 0.0, 0.0, -2.0),
    "active": (0.0, -0.3, 0.0, 0.0, 0.0, -0.6, -3.0),
    "quiet_day": (0.0, 0.0, 0.12, 0.0, 0.0, 0.0, 0.0),
}


def _room_volume(weights: dict[str, float]) -> float:
    """The volume offset (dB, ≤ 0) the scene weights make, before ``scene_influence``."""
    return sum(SCENE_EFFECTS[label][6] * w for label, w in weights.items())


@dataclass(frozen=True)
class Usable:
    """What :func:`check_reading` found: ``ok``, or why not (``impossible`` is a sensor fault)."""

    ok: bool
    impossible: bool = False
    reason: str = ""


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_reading(reading: Any, min_quality: float) -> Usable:
    """May the conductor act on ``reading``? Impossible values and unreliable readings say no."""
    if reading is None:
        return Usable(False, reason="no reading")
    try:
        quality, hr, finger = reading.quality, reading.hr_bpm, reading.finger
    except AttributeError:
        return Usable(False, True, f"not a pulse reading: {type(reading).__name__}")
    if not _finite(quality) or not 0.0 <= quality <= 1.0:
        return Usable(False, True, f"quality {quality!r} is not in 0–1")
    if hr is not None and (not _finite(hr) or not HR_RANGE[0] <= hr <= HR_RANGE[1]):
        return Usable(False, True, f"heart rate {hr!r} bpm is impossible "
                                   f"(expected {HR_RANGE[0]:.0f}–{HR_RANGE[1]:.0f})")
    br = getattr(reading, "breathing_rate", None)
    if br is not None and (not _finite(br) or not BREATH_RANGE[0] <= br <= BREATH_RANGE[1]):
        return Usable(False, True, f"breathing rate {br!r}/min is impossible")
    stress = getattr(reading, "stress", None)
    if stress is not None and (not _finite(stress) or not 0.0 <= stress <= 1.0):
        return Usable(False, True, f"stress index {stress!r} is not in 0–1")
    for name in ("rmssd_ms", "stress_sd"):
        v = getattr(reading, name, None)
        if v is not None and (not _finite(v) or v < 0):
            return Usable(False, True, f"{name} {v!r} is impossible")
    if not finger:
        return Usable(False, reason="no finger")
    if hr is None:
        return Usable(False, reason=reading.reason or "no heart rate")
    if quality < min_quality:
        return Usable(False, reason=f"quality {quality:.2f} below {min_quality:.2f}")
    return Usable(True)


class HarmonicGuard:
    """Holds a sudden halving or doubling of the heart rate as suspect until it is confirmed.

    ``suspect(hr, last_good)`` is True while ``hr`` is about ½× or 2× ``last_good``
    (:data:`SUSPECT_RATIOS`) and fewer than :data:`CONFIRM_READINGS` consecutive readings
    agree on the new rate; then the new rate is believed (False). Any other reading clears it.
    """

    def __init__(self) -> None:
        self._rates: list[float] = []

    def suspect(self, hr: float, last_good: float | None) -> bool:
        if last_good is None or last_good <= 0:
            self._rates = []
            return False
        ratio = hr / last_good
        if not any(lo <= ratio <= hi for lo, hi in SUSPECT_RATIOS):
            self._rates = []
            return False
        if self._rates and abs(hr * len(self._rates) / sum(self._rates) - 1.0) > CONFIRM_AGREE:
            self._rates = []
        self._rates.append(hr)
        if len(self._rates) >= CONFIRM_READINGS:
            self._rates = []
            return False
        return True


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _toward(x: float, target: float, max_step: float) -> float:
    return x + _clip(target - x, -max_step, max_step)


def _ema(old: float | None, new: float, dt: float, tau: float) -> float:
    if old is None:
        return new
    return old + (new - old) * (1.0 - math.exp(-dt / tau))


class Conductor:
    """The closed loop: see the module docstring. Thread-safe; ``update`` costs well under 1 ms."""

    def __init__(self, config: Config, preset: str, volume_db: float) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.preset = preset if preset in config.music.presets else config.music.default_preset
        m = config.music
        # calmtunes.commands checks what reaches here; this is the last guard before the sound.
        self.volume_db = _clip(volume_db, m.min_volume_db, m.max_volume_db) \
            if _finite(volume_db) else min(m.volume_db, m.max_volume_db)
        self._playing = True
        self._last: float | None = None  # time of the last update
        self._segment_start: float | None = None  # set at the first update of a segment
        self._iso_done = False
        self._breath_started = False
        self._hr: float | None = None  # smoothed, bpm
        self._br: float | None = None  # smoothed, breaths/min
        self._stress_fast: float | None = None
        self._stress_slow: float | None = None
        self._last_usable: float | None = None
        self._last_usable_breath: float | None = None
        self._harmonic = HarmonicGuard()
        self._scene_w = dict.fromkeys(SCENE_EFFECTS, 0.0)
        self._scene_found = False  # the segment's room taken as found (see SCENE_FOUND_S)
        self._logged: dict[str, float] = {}
        self.mode = "open"  # open | iso start | matching | waiting | leading | paused | easing
        self.ignored_readings = 0
        p = self._preset()
        self._tempo = float(p.get("tempo_bpm", 66.0))
        self._breath = float(p.get("breath_rate", config.conductor.target_breath_rate))

    # -- person-made changes (take effect at once) ----------------------------------------------
    @property
    def playing(self) -> bool:
        return self._playing

    @playing.setter
    def playing(self, value: bool) -> None:
        with self._lock:
            if value and not self._playing:
                self._restart_segment()
            self._playing = bool(value)

    def reconfigure(self, config: Config) -> None:
        with self._lock:
            self.config = config
            if self.preset not in config.music.presets:
                log.warning("preset %r is gone from the new config; switching to %r",
                            self.preset, config.music.default_preset)
                self.preset = config.music.default_preset
            # A reload never makes the music louder: a lower ceiling brings the volume down to
            # it, but a higher floor leaves a volume under it where it is (a 19 dB jump at the
            # bedside from a config file is not a person's choice) until a person changes it
            # or the daemon next starts.
            if self.volume_db < config.music.min_volume_db:
                log.warning("volume %+.1f dB is under the new music.min_volume_db (%+.1f dB); it "
                            "stays until a person changes it", self.volume_db,
                            config.music.min_volume_db)
            self.volume_db = min(self.volume_db, config.music.max_volume_db)

    def set_preset(self, name: str) -> bool:
        with self._lock:
            if name not in self.config.music.presets:
                log.warning("no preset named %s in the config (have: %s); ignored",
                            quote(name), ", ".join(self.config.music.presets))
                return False
            changed = name != self.preset
            self.preset = name
            if changed:
                self._restart_segment()
                p = self._preset()
                if self._hr is not None and self._pulse_fresh(self._last):
                    self._tempo = self._iso_tempo(self._hr)
                    self._iso_done = True
                    self.mode = "iso start"
                else:
                    self._tempo = self._target_tempo()
                if self._br is not None and self._breath_fresh(self._last):
                    self._breath = _clip(self._br, *PACE_RANGE)
                    self._breath_started = True
                else:
                    self._breath = float(p.get("breath_rate", self._breath))
            return changed

    def set_volume_db(self, db: float) -> float:
        """Set the volume (dB), clamped to ``music.min_volume_db``–``max_volume_db``; a value
        that is not a finite number is ignored (the volume stays) and the volume returned. A
        volume left under the floor by a reload (see :meth:`reconfigure`) moves up from where it
        is, a step at a time, not to the floor at once."""
        m = self.config.music
        with self._lock:
            if not _finite(db):
                log.warning("volume %s is not a finite number of dB; ignored", quote(db))
                return self.volume_db
            floor = min(m.min_volume_db, self.volume_db)
            # + 0.0: a request for -0 dB is 0 dB, and status says so (not "-0.0")
            self.volume_db = _clip(float(db), floor, m.max_volume_db) + 0.0
            return self.volume_db

    # -- the loop ------------------------------------------------------------------------------
    def update(self, now: float, pulse: Any = None, scene: Any = None) -> Controls:
        """Advance the plan to ``now`` (monotonic s) with the latest reading and scene."""
        with self._lock:
            c = self.config.conductor
            dt = 0.0 if self._last is None else _clip(now - self._last, 0.0, 5.0)
            self._last = now
            if self._segment_start is None:
                self._segment_start = now
            usable = self._take_reading(now, pulse, dt)
            self._take_scene(now, scene, dt)
            target = self._target_tempo()
            glide = c.glide_bpm_per_min * dt / 60.0
            if usable and self._hr is not None:
                hr = self._hr
                lo, hi = hr - c.max_lead_bpm, hr + c.max_lead_bpm
                rise = self._stress_rise()
                if not self._iso_done and now - self._segment_start <= ISO_WINDOW_S:
                    self._tempo = self._iso_tempo(hr)
                    self._iso_done = True
                    self.mode = "iso start"
                    # the figures only at debug: the journal reaches more people than the
                    # health figures may (device.status_health), and the tempo is the heart rate
                    log.info("iso start: the music begins at the listener's heart rate")
                    log.debug("iso start: heart rate %.0f bpm, tempo %.1f bpm", hr, self._tempo)
                elif not lo - BAND_SLACK_BPM <= self._tempo <= hi + BAND_SLACK_BPM:
                    self._tempo = _toward(self._tempo, _clip(self._tempo, lo, hi),
                                          MATCH_RATE_FACTOR * glide)
                    self.mode = "matching"
                elif not lo <= self._tempo <= hi:
                    self.mode = "waiting"  # at the edge of the band: the heart has not followed
                elif rise >= c.stress_ease_rise:
                    self._tempo = _toward(self._tempo, self._iso_tempo(hr), glide / 2)
                    self.mode = "easing"
                elif rise >= c.stress_pause_rise:
                    self.mode = "paused"
                else:
                    self._tempo = _toward(self._tempo, _clip(target, lo, hi), glide)
                    self.mode = "leading"
                self._iso_done = True  # past the window, a late pulse is met by matching
            else:
                self._tempo = _toward(self._tempo, target, glide)
                self.mode = "open"
            self._tempo = _clip(self._tempo, *TEMPO_RANGE)
            self._update_breath(now, dt)
            return self._controls()

    def controls(self, now: float | None = None) -> Controls:
        """The current plan as controls (the composer calls this once per phrase)."""
        with self._lock:
            return self._controls()

    @property
    def tempo_bpm(self) -> float:
        return self._tempo

    def state(self) -> dict[str, Any]:
        """A few facts for status and benchmarks."""
        with self._lock:
            return {
                "mode": self.mode,
                "tempo_bpm": round(self._tempo, 2),
                "breath_rate": round(self._breath, 2),
                "hr_bpm": None if self._hr is None else round(self._hr, 1),
                "stress_rise": round(self._stress_rise(), 3),
                "scene": {k: round(v, 2) for k, v in self._scene_w.items() if v > 0.01},
                "ignored_readings": self.ignored_readings,
            }

    # -- internals (called with the lock held) ---------------------------------------------------
    def _preset(self) -> dict[str, Any]:
        return self.config.music.presets[self.preset]

    def _restart_segment(self) -> None:
        self._segment_start = None
        self._iso_done = False
        self._scene_found = False
        self._breath_started = False

    def _iso_tempo(self, hr: float) -> float:
        c = self.config.conductor
        return _clip(hr, c.start_tempo_min, c.start_tempo_max)

    def _pulse_fresh(self, now: float | None) -> bool:
        return (now is not None and self._last_usable is not None
                and now - self._last_usable <= STALE_S)

    def _breath_fresh(self, now: float | None) -> bool:
        return (now is not None and self._last_usable_breath is not None
                and now - self._last_usable_breath <= STALE_S)

    def _warn(self, key: str, now: float, message: str) -> None:
        last = self._logged.get(key)
        if last is None or now - last >= LOG_EVERY_S or now < last:
            self._logged[key] = now
            log.warning("pulse reading ignored: %s (the music goes on open-loop)", message)

    def _take_reading(self, now: float, pulse: Any, dt: float) -> bool:
        c = self.config.conductor
        u = check_reading(pulse, c.min_quality)
        if u.impossible:
            self.ignored_readings += 1
            self._warn("impossible", now, u.reason)
            return False
        if not u.ok:
            return False
        if not _finite(getattr(pulse, "t", None)) or now - pulse.t > STALE_S:
            return False  # an old reading: not the listener's state now
        if self._last_usable is None or now - self._last_usable > PULSE_GAP_S:
            self._hr = self._br = self._stress_fast = self._stress_slow = None
        self._last_usable = now
        hr = float(pulse.hr_bpm)
        if self._harmonic.suspect(hr, self._hr):
            # half or double the last good rate: hold it until the change is confirmed
            last = self._logged.get("suspect")
            if last is None or now - last >= LOG_EVERY_S or now < last:
                self._logged["suspect"] = now
                log.warning("a heart rate about half or double the last good one: the last "
                            "good one is held until confirmed")
                log.debug("heart rate %.0f bpm against the last good %.0f bpm", hr, self._hr)
            return True
        if self._hr is not None and not 0.6 < hr / self._hr < 1.67:
            self._hr = None  # a confirmed jump: start the smoothing at the new rate
        self._hr = _ema(self._hr, hr, dt, HR_TAU_S)
        if pulse.breathing_rate is not None:
            if self._last_usable_breath is None or now - self._last_usable_breath > PULSE_GAP_S:
                self._br = None
            self._br = _ema(self._br, float(pulse.breathing_rate), dt, BREATH_TAU_S)
            self._last_usable_breath = now
        sd = pulse.stress_sd
        if pulse.stress is not None and (sd is None or sd <= MAX_STRESS_SD):
            s = float(pulse.stress)
            self._stress_fast = _ema(self._stress_fast, s, dt, STRESS_FAST_TAU_S)
            self._stress_slow = _ema(self._stress_slow, s, dt, STRESS_SLOW_TAU_S)
        return True

    def _stress_rise(self) -> float:
        if self._stress_fast is None or self._stress_slow is None:
            return 0.0
        return self._stress_fast - self._stress_slow

    def _take_scene(self, now: float, scene: Any, dt: float) -> None:
        want = dict.fromkeys(SCENE_EFFECTS, 0.0)
        fresh = (scene is not None and _finite(getattr(scene, "t", None))
                 and now - scene.t <= SCENE_STALE_S)
        if fresh:
            label = getattr(scene, "label", "")
            if label in want:
                want[label] = 1.0
            people = getattr(scene, "people", 0)
            if isinstance(people, int) and people > 0:
                want["active"] = 1.0  # visitors: softer and less melodic, whatever the light
        if fresh and not self._scene_found:
            self._scene_found = True
            if self._segment_start is not None and now - self._segment_start <= SCENE_FOUND_S \
                    and _room_volume(want) <= _room_volume(self._scene_w):
                # the room as the music finds it: no glide, unless that would make it louder
                # (a preset pressed as visitors leave: the room's cut glides off as ever)
                self._scene_w = want
                return
        if not fresh:
            # No scene now (the camera off for privacy, lost, or gone quiet): the room is held
            # as last seen, not faded out. It has not changed because the camera stopped
            # looking, and fading its effects out would make the music louder by itself (up to
            # 4 dB at night) for a press of the privacy button.
            return
        if dt > 0:
            for k, v in want.items():
                w = _ema(self._scene_w[k], v, dt, SCENE_TAU_S)
                self._scene_w[k] = 0.0 if w < 1e-3 else 1.0 if w > 1 - 1e-3 else w

    def _scene_offsets(self) -> tuple[float, float, float, float, float, float, float]:
        s = self.config.conductor.scene_influence
        total = [0.0] * 7
        for label, w in self._scene_w.items():
            if w <= 0.0:
                continue
            for i, effect in enumerate(SCENE_EFFECTS[label]):
                total[i] += effect * w * s
        return tuple(total)  # type: ignore[return-value]

    def _target_tempo(self) -> float:
        base = float(self._preset().get("tempo_bpm", 66.0))
        return _clip(base + self._scene_offsets()[0], *TEMPO_RANGE)

    def _update_breath(self, now: float, dt: float) -> None:
        c = self.config.conductor
        step = c.breath_glide_per_min * dt / 60.0
        if self._br is not None and self._breath_fresh(now):
            br = self._br
            if not self._breath_started:
                if self._segment_start is not None and now - self._segment_start <= ISO_WINDOW_S:
                    self._breath = _clip(br, *PACE_RANGE)
                self._breath_started = True
            lo, hi = br - MAX_BREATH_LEAD, br + MAX_BREATH_LEAD
            if not lo <= self._breath <= hi:
                self._breath = _toward(self._breath, _clip(self._breath, lo, hi),
                                       MATCH_RATE_FACTOR * step)
            else:
                self._breath = _toward(self._breath, _clip(c.target_breath_rate, lo, hi), step)
        else:
            target = float(self._preset().get("breath_rate", c.target_breath_rate))
            self._breath = _toward(self._breath, target, step)
        self._breath = _clip(self._breath, *PACE_RANGE)

    def _controls(self) -> Controls:
        p = self._preset()
        _d_tempo, f_density, d_bright, d_reg, d_bed, f_melodic, d_vol = self._scene_offsets()
        base = Controls.from_preset(self.preset, p, volume_db=self.volume_db, playing=self._playing)
        m = self.config.music
        return base.with_(
            tempo_bpm=round(self._tempo, 3),
            density=_clip(base.density * (1.0 + f_density), 0.0, 1.0),
            brightness=_clip(base.brightness + d_bright, 0.0, 1.0),
            register=_clip(base.register + d_reg, 0.0, 1.0),
            bed_level=_clip(base.bed_level + d_bed, 0.0, 1.0),
            melodic=_clip(base.melodic * (1.0 + f_melodic), 0.0, 1.0),
            breath_rate=round(self._breath, 3),
            volume_db=_clip(self.volume_db + d_vol, min(m.min_volume_db, self.volume_db),
                            m.max_volume_db),
        )

