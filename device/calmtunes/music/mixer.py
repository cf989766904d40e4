"""The renderer and mixer: phrases in, stereo float32 out, block by block, always finite.

Signal flow (module that does each step in brackets)::

    notes ─► instruments [instruments] ─► pad+chorus [chorus]·breath, melody·prominence,
                                          harmony, bass
                 └─► sends ─► FDN reverb [reverb]
    bed [bed] · breath [pacing]
    ─► sum ─► 55 Hz high-pass ─► running loudness [normaliser] ─► ×3 upsampling (6.5 kHz top)
    ─► gain (normalisation + volume + fade) ─► + entrainment [entrainment] ─► limiter [limiter]

Instruments, bed and reverb run at a third of the output rate (16 kHz for 48 kHz output): the
warm, small-speaker sound wanted here has nothing above ~6.5 kHz, and the synthesis costs a third.
They run in fixed chunks (``chunk_s``: 400 ms by default) into a small queue; the master stage
(gains, fades, limiter) runs on whatever block the caller asks for, so volume and fades answer
within one block. Most of a chunk's cost is a fixed number of numpy calls, and in real time each
call costs more than back to back (the other threads have run since, and the caches are cold),
so a longer chunk is cheaper per second of audio: in the daemon the audio thread took 1.25–1.44 %
of a core with 400 ms chunks against 1.52–1.66 % with 200 ms (``scripts/bench_audio``, five runs
each, alternated), and 100 ms cost about a quarter more again. The price is that a conductor's
control or a preset's crossfade starts within 0.4 s instead of 0.2 (a crossfade lasts 2.5 s;
volume and fades act on the master stage, within one output block), and one chunk's synthesis
runs at once: about 2–4 ms here, a good margin under the 150 ms the ring holds. Renders and
the daemon use the same chunks, so a render sounds as the daemon plays.

Times: ``position`` and ``scheduled_until`` are absolute output frames. A note due before the
synthesis has reached it plays as soon as it can (at most one chunk late), never cut in half.

Transitions: ``schedule(..., crossfade_s=2.5)`` releases the old phrase's sounding notes over the
crossfade and brings the new phrase's first notes in along the same span; bed, reverb and pacing
run on through, so nothing restarts. Volume moves at most ``VOLUME_SLEW_DB_PER_S``; the
normalisation at most 0.5 dB/s; fades are smoothstep curves. None of these can make a step.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from calmtunes.config import Config
from calmtunes.iir import butter_sos, ellip_lowpass_sos
from calmtunes.music.bed import Bed
from calmtunes.music.chorus import Chorus
from calmtunes.music.controls import Controls
from calmtunes.music.dsp import SosFilter, clamp, ramp, smoothstep
from calmtunes.music.entrainment import Entrainment, amplitude_for_lufs
from calmtunes.music.events import Phrase
from calmtunes.music.instruments import BUSES, TIMBRES, Ensemble, NoteRow
from calmtunes.music.limiter import TruePeakLimiter
from calmtunes.music.midi import PlayedNote, PlayLog
from calmtunes.music.normaliser import SLEW_DB_PER_S, SURGE_DB_PER_S, Normaliser
from calmtunes.music.pacing import BreathPacer
from calmtunes.music.reverb import FDNReverb
from calmtunes.music.score import clean_phrase
from calmtunes.music.theory import midi_to_hz

log = logging.getLogger(__name__)

OVERSAMPLE = 3  # output rate / instrument rate
CHUNK_S = 0.400  # instrument chunk, s (per-chunk costs are fixed: longer is cheaper)
CHUNK_RANGE_S = (0.02, 1.0)  # chunk_s accepted, s
VOLUME_SLEW_DB_PER_S = 20.0  # a 3 dB step takes 150 ms: heard as a quick glide, never a click
CEILING_DBTP = -1.0
#: the lowest volume the mixer takes, dB: the lowest ``music.min_volume_db`` the config allows
VOLUME_FLOOR_DB = -60.0
BED_GAIN = 0.12  # bed behind the music: at level 1.0 ~12 LU under the instruments, at 0.35 ~21
SENDS = {"pad": 0.55, "melody": 0.4, "harmony": 0.45, "bass": 0.06}  # reverb sends per bus
REVERB_GAIN = 0.9
REVERB_GLIDE_PER_S = 0.1  # sound.reverb moves at most this much a second (0 → 1 in 10 s)
HIGHPASS_HZ = 55.0  # below this a small speaker only rattles: no boom (2nd order, −3 dB here)

_CONTROL_RANGES = {  # Controls field: (min, max) for clamping; NaN keeps the previous value
    "brightness": (0.0, 1.0), "bed_level": (0.0, 1.0), "breath_rate": (4.0, 20.0),
    "melodic": (0.0, 1.0), "volume_db": (-60.0, 12.0), "density": (0.0, 1.0),
    "register": (0.0, 1.0), "tempo_bpm": (30.0, 200.0),
}


class Mixer:
    def __init__(self, sample_rate: int, config: Config, chunk_s: float = CHUNK_S) -> None:
        if not isinstance(sample_rate, int) or not 24000 <= sample_rate <= 192000 \
                or sample_rate % OVERSAMPLE:
            raise ValueError(f"mixer: sample rate {sample_rate!r} Hz is not usable; use 44100 "
                             "or 48000 (audio.sample_rate)")
        lo, hi = CHUNK_RANGE_S
        if not lo <= chunk_s <= hi:
            raise ValueError(f"mixer: chunk of {chunk_s!r} s is outside {lo}…{hi} s")
        self.sr = sample_rate
        self.rate = sample_rate / OVERSAMPLE  # instrument rate, Hz
        self.chunk = round(chunk_s * self.rate)
        self.config = config
        self.position = 0  # absolute output frame of the next rendered sample
        self.scheduled_until = 0  # absolute output frame where the scheduled music ends
        self.controls = Controls()
        self.current_phrase: Phrase | None = None
        #: when set, every scheduled note and phrase tempo is recorded (``render --midi``)
        self.log: PlayLog | None = None
        self._rng = np.random.default_rng(config.music.seed or None)

        self.ensemble = Ensemble(self.rate)
        self.reverb = FDNReverb(self.rate)
        self.chorus = Chorus(self.rate)
        self.bed = Bed(self.rate, config.sound.bed, seed=int(self._rng.integers(1 << 31)))
        self._old_bed: Bed | None = None  # the previous texture, fading out after a change
        self._bed_mix = 1.0  # 0 → 1 while a new texture fades in
        self.pacer = BreathPacer(self.controls.breath_rate, config.sound.breath_depth_db,
                                 config.sound.breath_pacing)
        self.normaliser = Normaliser(self.rate, config.music.target_lufs)
        self.limiter = TruePeakLimiter(sample_rate, CEILING_DBTP)
        self.entrainment = Entrainment(sample_rate, config.sound.entrainment,
                                       config.sound.entrainment_hz)
        self._highpass = SosFilter(
            butter_sos(2, HIGHPASS_HZ, "highpass", fs=self.rate), 2)
        # image rejection for the ×3 upsampling: flat (0 to −0.1 dB) to 6.5 kHz, −70 dB from 11 kHz
        self._upsample = SosFilter(
            ellip_lowpass_sos(6500.0, fs=sample_rate), 2)

        self._synth_pos = 0  # instrument frames rendered
        # the phrases' dynamic envelopes: (instrument frame, dB) breakpoints, joined linearly
        self._dyn_x: list[float] = [0.0]
        self._dyn_y: list[float] = [0.0]
        self._queue = np.zeros((0, 2))  # upsampled programme not yet through the master stage
        self._melodic = 1.0  # glided melody prominence gain
        # (controls, room) → the controls with the room's colour: made once per change
        self._room_controls: tuple[Controls, dict[str, float], Controls] | None = None
        # (instrument frame, {melodic, bed_level, brightness}) from the phrases' meta["room"]:
        # the section's room colour, played from where the phrase starts (see music/form.py)
        self._rooms: list[tuple[float, dict[str, float]]] = []
        self._reverb_level = config.sound.reverb
        self._volume_db = self._clamp_volume(config.music.volume_db)
        self._volume_now = self._volume_db  # until the conductor's first controls (see them)
        self._fade = 0.0  # 0 silent – 1 full (linear position along the fade)
        self._fade_target = 0.0
        self._fade_rate = 1.0  # per frame
        self._skipping = False  # the last frames were skipped (:meth:`skip`), not rendered
        self._entrain_lufs: float | None = None  # the entrainment tone's level, gliding

    # -- control -------------------------------------------------------------------------------
    def reconfigure(self, config: Config) -> None:
        """Take a new config; every change glides (texture and entrainment crossfade over 2 s)."""
        old = self.config
        self.config = config
        s = config.sound
        self.normaliser.set_target(config.music.target_lufs)
        # never louder: a lower max brings the volume down, a higher min leaves it (the
        # conductor raises a volume under the floor only when a person presses)
        self._volume_db = min(self._volume_db, config.music.max_volume_db)
        self.pacer.depth_db = s.breath_depth_db
        self.pacer.enabled = s.breath_pacing
        if s.bed != old.sound.bed:
            log.info("bed texture %s → %s (crossfading)", old.sound.bed, s.bed)
            self._old_bed = self.bed
            self.bed = Bed(self.rate, s.bed, seed=int(self._rng.integers(1 << 31)))
            self.bed.level, self.bed.colour = self._old_bed.level, self._old_bed.colour
            self._bed_mix = 0.0
        if (s.entrainment, s.entrainment_hz) != (old.sound.entrainment, old.sound.entrainment_hz):
            self.entrainment.set(s.entrainment, s.entrainment_hz)

    def set_controls(self, controls: Controls) -> None:
        """Take the conductor's controls; out-of-range values are clamped (and logged)."""
        fixes = {}
        for name, (lo, hi) in _CONTROL_RANGES.items():
            value = getattr(controls, name)
            try:
                v = float(value)
            except (TypeError, ValueError):
                v = math.nan
            if not math.isfinite(v):
                fixes[name] = getattr(self.controls, name)
            elif not lo <= v <= hi:
                fixes[name] = min(hi, max(lo, v))
        if fixes:
            log.warning("controls out of range, clamped: %s", ", ".join(
                f"{k} {getattr(controls, k)!r} → {v!r}" for k, v in fixes.items()))
            controls = controls.with_(**fixes)
        self.controls = controls
        self.set_volume_db(controls.volume_db)

    def _clamp_volume(self, db: float) -> float:
        """Under ``music.max_volume_db`` and over the lowest floor the config allows: a volume
        under ``music.min_volume_db`` is the conductor's to keep (a reload that raised the
        floor leaves it), never the mixer's to raise."""
        return float(min(self.config.music.max_volume_db, max(VOLUME_FLOOR_DB, db)))

    def set_volume_db(self, db: float) -> None:
        """Volume relative to the loudness target, in dB; clamped to ``music.max_volume_db``
        and :data:`VOLUME_FLOOR_DB` (the conductor keeps it within its own limits)."""
        try:
            db = float(db)
        except (TypeError, ValueError):
            db = math.nan
        if not math.isfinite(db):
            log.warning("volume %r dB is not a number; keeping %.1f dB", db, self._volume_db)
            return
        self._volume_db = self._clamp_volume(db)
        if self.position == 0 and self._fade == 0.0:
            # nothing heard yet (the daemon's start: the saved volume arrives with the first
            # controls): the music begins at this volume, not gliding to it from the config's
            self._volume_now = self._volume_db

    @property
    def volume_db(self) -> float:
        return self._volume_db

    def fade_in(self, seconds: float) -> None:
        self._fade_target = 1.0
        self._fade_rate = 1.0 / max(1.0, _finite_or(seconds, 1.0) * self.sr)

    def fade_out(self, seconds: float) -> None:
        self._fade_target = 0.0
        self._fade_rate = 1.0 / max(1.0, _finite_or(seconds, 1.0) * self.sr)

    @property
    def synthesised(self) -> int:
        """Output frame the synthesis has reached (it runs up to a chunk ahead of ``position``):
        a crossfade cannot drop a note that starts before it, it is already sounding."""
        return self._synth_pos * OVERSAMPLE

    @property
    def faded_out(self) -> bool:
        return self._fade <= 0.0 and self._fade_target == 0.0

    # -- scheduling ----------------------------------------------------------------------------
    def schedule(self, phrase: Phrase, start_frame: int | None = None,
                 crossfade_s: float = 0.0) -> list[tuple[float, float]]:
        """Queue ``phrase`` at ``start_frame`` (output frames; default: after what is scheduled).

        Returns ``(start_beat, note-on output frame)`` for every note that will sound, so the
        tempo actually played can be measured from the output.

        With ``crossfade_s`` (≥ 2 s for a preset change), notes of earlier phrases that have not
        started are dropped and sounding ones released over that time, while the new phrase's
        first notes swell in over the same span."""
        notes, tempo, beats, problems = clean_phrase(phrase)
        if problems:
            log.warning("phrase from the %s composer: %s", phrase.source, "; ".join(problems))
        start = self.scheduled_until if start_frame is None else int(start_frame)
        start_i = start / OVERSAMPLE  # instrument frames
        earliest = float(self._synth_pos)  # what is rendered cannot change any more
        fade = 0.0
        if crossfade_s and math.isfinite(crossfade_s) and crossfade_s > 0:
            fade = min(float(crossfade_s), 30.0) * self.rate
            cut = max(start_i, earliest)
            kept = []
            for r in self.ensemble.rows:
                if r.start >= cut:
                    continue  # not begun: never heard
                if r.end > cut:  # still held: release from the cut, over at least the fade
                    r.end = cut
                    r.release = max(r.release, fade)
                kept.append(r)  # (a note already in its release is left exactly as it is)
            self.ensemble.replace(kept)
            if self.log is not None:
                self.log.cut(cut * OVERSAMPLE / self.sr)
            self._cut_dynamics(cut)
            self._rooms = [r for r in self._rooms if r[0] < cut]
        spb = 60.0 / tempo * self.rate  # instrument frames per beat
        shift = phrase.meta.get("brightness_shift", 0.0) if isinstance(phrase.meta, dict) else 0.0
        shift = _finite_or(shift, 0.0)
        if self.log is not None:
            self.log.add_phrase(start / self.sr, tempo, beats)
        c = self.controls
        rows: list[NoteRow] = []
        onsets: list[tuple[float, float]] = []
        for n in notes:
            timbre = TIMBRES[n.voice]
            on = start_i + n.start_beat * spb
            off = on + max(1.0, n.duration_beats * spb)
            if on < earliest:  # already past: play it now, as long as it was meant to last
                off += earliest - on
                on = earliest
            attack = timbre.attack_s * self.rate
            if fade:  # the new phrase glides in along the crossfade
                attack = max(attack, start_i + fade - on)
            onsets.append((n.start_beat, on * OVERSAMPLE))
            if self.log is not None:
                to_s = OVERSAMPLE / self.sr
                self.log.add_note(PlayedNote(on * to_s, off * to_s, n.pitch, n.velocity,
                                             n.voice))
            freq = midi_to_hz(n.pitch)
            bright = 0.15 + 0.85 * clamp(float(c.brightness) + shift, 0.0, 1.0)
            base = dict(end=off, velocity=n.velocity, voice=n.voice, attack=attack,
                        release=timbre.release_s * self.rate, bright=bright)
            if timbre.detune_cents:
                for sign in (-1.0, 1.0):
                    f = freq * 2.0 ** (sign * timbre.detune_cents / 1200.0)
                    rows.append(NoteRow(start=on, freq=f, pan=timbre.pan + sign * timbre.spread,
                                        phase0=float(self._rng.random()), **base))
            else:
                rows.append(NoteRow(start=on, freq=freq, pan=timbre.pan, **base))
        self.ensemble.add(rows)
        self._add_dynamics(phrase, start_i, spb, beats, earliest)
        room = phrase.meta.get("room") if isinstance(phrase.meta, dict) else None
        if isinstance(room, dict):
            self._rooms.append((start_i, {k: clamp(_finite_or(room.get(k), getattr(c, k)),
                                                   0.0, 1.0)
                                          for k in ("melodic", "bed_level", "brightness")}))
        self.scheduled_until = start + max(1, round(beats * spb * OVERSAMPLE))
        self.current_phrase = phrase
        return onsets

    def _add_dynamics(self, phrase: Phrase, start_i: float, spb: float, beats: float,
                      earliest: float) -> None:
        """Append the phrase's (beat, dB) envelope (``meta["dynamics"]``; 0 dB without one).
        Levels are clamped to −30…+6 dB and points already rendered are left out."""
        points = phrase.meta.get("dynamics") if isinstance(phrase.meta, dict) else None
        if not points:
            points = [(0.0, 0.0), (beats, 0.0)]
        if self.log is not None and not self.log.levels:  # where the envelope stands now
            self.log.add_level(self._dyn_x[-1] / self.rate, self._dyn_y[-1])
        for beat, db in points:
            try:
                x, y = start_i + float(beat) * spb, clamp(float(db), -30.0, 6.0)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x) and math.isfinite(y) and x > max(earliest, self._dyn_x[-1]):
                self._dyn_x.append(x)
                self._dyn_y.append(y)
                if self.log is not None:
                    self.log.add_level(x / self.rate, y)

    def _cut_dynamics(self, cut: float) -> None:
        """A crossfade at ``cut``: the old phrases' envelope ends there, at its value there."""
        value = float(np.interp(cut, self._dyn_x, self._dyn_y))
        keep = [i for i, x in enumerate(self._dyn_x) if x < cut]
        self._dyn_x = [self._dyn_x[i] for i in keep] + [cut]
        self._dyn_y = [self._dyn_y[i] for i in keep] + [value]

    def _dynamics(self, t0: int, n: int) -> np.ndarray | float:
        """Linear gains of the dynamic envelope for instrument frames t0 … t0 + n (one number
        when the envelope is level over them, as it is most of the time)."""
        x, y = self._dyn_x, self._dyn_y
        while len(x) > 2 and x[1] <= t0:  # forget what is past
            del x[0], y[0]
        last = t0 + n - 1
        level = y[0] if x[0] >= t0 or len(x) == 1 else float(np.interp(t0, x, y))
        for xi, yi in zip(x, y):  # the breakpoints up to the last frame (a few at most)
            if xi > t0 and yi != level:
                break
            if xi >= last:
                return 10.0 ** (level / 20.0)
        else:
            return 10.0 ** (level / 20.0)  # level after the last breakpoint too
        frames = np.arange(t0, t0 + n, dtype=np.float64)
        return 10.0 ** (np.interp(frames, x, y) / 20.0)

    # -- rendering -----------------------------------------------------------------------------
    def render(self, frames: int) -> np.ndarray:
        """The next ``frames`` of output: (frames, 2) float32, finite, under −1 dBTP."""
        frames = max(0, int(frames))
        queue = self._queue
        if len(queue) >= frames:
            programme, self._queue = queue[:frames], queue[frames:]
        else:  # only the frames wanted are joined; the rest of the new chunk waits as a view
            pieces, have = [queue], len(queue)
            while have < frames:
                chunk = self._synthesise()
                take = min(len(chunk), frames - have)
                pieces.append(chunk[:take])
                have += take
                queue = chunk[take:]
            programme, self._queue = np.concatenate(pieces, axis=0), queue
        self.position += frames
        self._skipping = False
        return self._master(programme)

    def skip(self, frames: int) -> None:
        """Move the music on by ``frames`` output frames without sounding them: for an output
        nobody hears (no sound card). The scheduled notes pass by their times, as played; the
        synthesis resumes on an instrument chunk's edge (the rest of that chunk is silence),
        its reverb, chorus, filters and limiter cleared of what they held before, and the
        music fades in from silence at the last fade's rate, as at a start: whatever sounds
        then does not start abruptly. Fades out, volume and loudness glides move on as they
        would have (a stop with no card still ends in silence, at once)."""
        frames = max(0, int(frames))
        if frames == 0:
            return
        if not self._skipping:  # what the DSP holds was heard before the gap: not after it
            self._skipping = True
            self._reset_dsp()
            self.chorus = Chorus(self.rate)
            self.limiter = TruePeakLimiter(self.sr, CEILING_DBTP)
        queue = self._queue
        if len(queue) >= frames:
            self._queue = queue[frames:]
        else:
            span = self.chunk * OVERSAMPLE
            chunks = -(-(frames - len(queue)) // span)
            self._synth_pos += chunks * self.chunk
            self._queue = np.zeros((len(queue) + chunks * span - frames, 2))
            t = self._synth_pos
            self.ensemble.forget(t)
            while len(self._rooms) > 1 and self._rooms[1][0] <= t:
                del self._rooms[0]
            self._dynamics(t, 1)  # forgets the breakpoints past
        self.position += frames
        self.normaliser.advance(frames / self.sr)
        self._volume_now = self._volume_db
        self._fade = 0.0  # silence now: the next render fades in (or stays out)

    def _synthesise(self) -> np.ndarray:
        """One instrument chunk → (chunk × OVERSAMPLE, 2) upsampled programme, before gain."""
        n = self.chunk
        t0 = self._synth_pos
        self._synth_pos += n
        c = self.controls
        while len(self._rooms) > 1 and self._rooms[1][0] <= t0:
            del self._rooms[0]
        if self._rooms and self._rooms[0][0] <= t0:  # the playing phrase's section colour
            c = self._with_room(c, self._rooms[0][1])
        buses = self.ensemble.render(t0, n)
        self.ensemble.prune(t0 + n)
        breath = self.pacer.gains(n, self.rate, c.breath_rate)
        goal = 0.35 + 0.65 * float(c.melodic)
        melodic = _glide(self._melodic, goal, n)
        self._melodic = goal
        pad, mel = 2 * BUSES.index("pad"), 2 * BUSES.index("melody")
        buses[pad:pad + 2] = self.chorus.process(buses[pad:pad + 2]) * breath
        buses[mel:mel + 2] *= melodic
        dry = _DRY @ buses
        send = _SEND @ buses
        # a new sound.reverb glides over seconds (0 → 1 adds ~2.5 dB: not within one chunk)
        goal = float(self.config.sound.reverb)
        step = REVERB_GLIDE_PER_S * n / self.rate
        goal = self._reverb_level + clamp(goal - self._reverb_level, -step, step)
        wet_gain = _glide(self._reverb_level, goal, n)
        self._reverb_level = goal
        wet = self.reverb.process(send)
        wet *= wet_gain * REVERB_GAIN
        dry *= 1.0 - 0.35 * wet_gain
        mix = dry + wet
        bed = self._render_bed(n, c)
        bed *= breath * BED_GAIN
        mix += bed
        mix = self._highpass(mix)
        if not math.isfinite(float(mix.sum())):  # one pass: |mix| is far from overflowing
            log.error("non-finite samples in the mix; resetting the synthesis state")
            mix = np.zeros_like(mix)
            self._reset_dsp()
        self.normaliser.measure(mix.T)
        # the music's own dynamics come after the loudness measurement, so the slow
        # normalisation does not flatten them (the envelopes are centred on about 0 dB); the
        # ×OVERSAMPLE makes up for the zero-stuffing's loss of level
        dynamics = self._dynamics(t0, n)
        if isinstance(dynamics, float):
            mix *= dynamics * OVERSAMPLE
        else:
            dynamics *= OVERSAMPLE
            mix *= dynamics
        # zero-stuffed to the output rate and image-filtered (the zeros are not computed on)
        return self._upsample.upsample(mix, OVERSAMPLE).T

    def _with_room(self, c: Controls, room: dict[str, float]) -> Controls:
        """``c`` with the section's room colour (the same object while neither changes)."""
        got = self._room_controls
        if got is None or got[0] is not c or got[1] is not room:
            got = self._room_controls = (c, room, c.with_(**room))
        return got[2]

    def _render_bed(self, n: int, c: Controls) -> np.ndarray:
        out = self.bed.render(n, c.bed_level, c.brightness)
        if self._old_bed is None:
            return out
        step = n / (2.0 * self.rate)  # new texture in over 2 s, old one out
        new = min(1.0, self._bed_mix + step)
        mix = ramp(self._bed_mix, new, n)
        self._bed_mix = new
        out = out * mix + self._old_bed.render(n, c.bed_level, c.brightness) * (1.0 - mix)
        if new >= 1.0:
            self._old_bed = None
        return out

    def _reset_dsp(self) -> None:
        self.reverb = FDNReverb(self.rate)
        self._highpass.reset()
        self._upsample.reset()

    def _master(self, x: np.ndarray) -> np.ndarray:
        frames = len(x)
        if frames == 0:
            return np.zeros((0, 2), dtype=np.float32)
        seconds = frames / self.sr
        norm0, norm1 = self.normaliser.advance(seconds)
        step = VOLUME_SLEW_DB_PER_S * seconds
        vol1 = self._volume_now + clamp(self._volume_db - self._volume_now, -step, step)
        # gains join linearly between the block's ends (a block moves them by < 0.5 dB)
        g0 = 10.0 ** ((norm0 + self._volume_now) / 20.0)
        g1 = 10.0 ** ((norm1 + vol1) / 20.0)
        fade1 = self._fade + clamp(self._fade_target - self._fade, -self._fade_rate * frames,
                                   self._fade_rate * frames)
        if fade1 == self._fade:
            fade: np.ndarray | float = float(smoothstep(self._fade))
            y = x * ramp(g0 * fade, g1 * fade, frames)[:, None] if g0 != g1 else x * (g0 * fade)
        else:
            fade = smoothstep(ramp(self._fade, fade1, frames))
            y = x * (ramp(g0, g1, frames) * fade)[:, None]
        if self.entrainment.active:
            # its level glides to the config's as the music's own does (a new target or a new
            # entrainment level: up at the normaliser's slow rate, down at its fast one), and
            # follows volume and fades, not the normalisation (it is already at its level)
            goal = self.config.music.target_lufs + self.config.sound.entrainment_level_db
            e0 = goal if self._entrain_lufs is None else self._entrain_lufs
            e1 = e0 + clamp(goal - e0, -SURGE_DB_PER_S * seconds, SLEW_DB_PER_S * seconds)
            self._entrain_lufs = e1
            v0, v1 = 10.0 ** (self._volume_now / 20.0), 10.0 ** (vol1 / 20.0)
            amp = ramp(amplitude_for_lufs(e0) * v0, amplitude_for_lufs(e1) * v1, frames) * fade
            y = y + self.entrainment.render(frames, amp)
        self._volume_now = vol1
        self._fade = fade1
        # Checked before the limiter, not after: a NaN reaching it would set its release state
        # to NaN, and every block after would be NaN too (silenced here, for the rest of the
        # night). One pass, no temporary; a finite block whose sum overflows is garbage too.
        if not math.isfinite(float(y.sum())):
            log.error("non-finite output replaced by silence")
            y = np.zeros_like(y)
        y = self.limiter.process(y)  # finite in, finite out: its gain is at most 1
        return y.astype(np.float32)


# (2 × 2·buses) matrices summing the buses' left and right rows, dry and into the reverb
_DRY = np.tile(np.eye(2), len(BUSES))
_SEND = np.tile(np.eye(2), len(BUSES)) * np.repeat([SENDS[b] for b in BUSES], 2)[None, :]


def _glide(start: float, stop: float, n: int) -> np.ndarray | float:
    """A gain moving from ``start`` toward ``stop`` over ``n`` frames, or one number when it
    stays put (most chunks: a multiply by a number is cheaper than by a row of them)."""
    return start if start == stop else ramp(start, stop, n)


def _finite_or(value: float, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default
