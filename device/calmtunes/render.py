"""Offline rendering: the composer and the mixer straight into a WAV file, no hardware, no clock.

With a ``scenario`` the session is closed-loop: a :class:`~calmtunes.sim.listener.SimulatedListener`
hears what is being rendered (the tempo and breath pacing of the phrase sounding at that moment),
and once every simulated second the conductor is updated with the reading an analyser would
publish, exactly as the daemon does with the live sensor, only faster than real time.
"""

from __future__ import annotations

import bisect
import logging
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from calmtunes.config import Config
from calmtunes.music.conductor import Conductor
from calmtunes.music.engine import load_generator
from calmtunes.music.events import Phrase
from calmtunes.music.fallback import ProceduralComposer
from calmtunes.music.midi import PlayLog, write_midi
from calmtunes.music.mixer import Mixer

log = logging.getLogger(__name__)


def to_pcm16(block: np.ndarray, rng: np.random.Generator) -> bytes:
    """Float frames (−1…1) to little-endian 16-bit PCM with TPDF dither."""
    dither = (rng.random(block.shape) - rng.random(block.shape)) / 32768.0
    return np.clip((block + dither) * 32767.0, -32768, 32767).astype("<i2").tobytes()


def render_offline(config: Config, minutes: float, out: str | Path, *, preset: str | None = None,
                   scenario: str | None = None, midi: str | Path | None = None,
                   progress: Callable[[float], None] | None = None) -> dict:
    """Render ``minutes`` of music to ``out``; return a summary (composer, seconds, peak).

    With ``scenario`` (a :data:`~calmtunes.sim.listener.SCENARIOS` name) the summary also holds
    ``trace`` (a per-second :class:`~calmtunes.sim.listener.LoopTrace` of the conductor's plan and
    the listener) and ``phrases``: for every phrase played, ``(start_s, beats, tempo_bpm,
    onsets_s, onset_beats)``, the onsets being the note-on times the mixer actually scheduled.

    With ``midi`` the notes that were played (melody, harmony, bass tracks and the tempo map) are
    also written there as a Standard MIDI File (:mod:`calmtunes.music.midi`)."""
    sr = config.audio.sample_rate
    conductor = Conductor(config, preset or config.music.default_preset, config.music.volume_db)
    listener = trace = None
    played: list[tuple[int, Phrase]] = []  # (start frame, phrase), in order
    phrases: list[tuple[float, float, float, list[float], list[float]]] = []
    if scenario is not None:
        from calmtunes.sim.listener import LoopTrace, MusicInput, SimulatedListener

        listener = SimulatedListener(scenario, seed=config.sim.seed)
        trace = LoopTrace()

        def hearing(t: float) -> MusicInput | None:
            frame = int(t * sr)
            i = bisect.bisect_right([p[0] for p in played], frame) - 1
            if i < 0:
                return None
            c = played[i][1].controls
            return MusicInput(played[i][1].tempo_bpm, c.breath_rate)

        listener.listen_to(hearing)
    composer = ProceduralComposer(config.music.seed or None)
    if config.music.generator == "onnx":
        try:
            composer = load_generator(config, config.music.seed or None)
        except Exception as exc:
            log.warning("generator unavailable (%s); rendering with the procedural composer", exc)
    mixer = Mixer(sr, config)
    if midi is not None:
        mixer.log = PlayLog()
    mixer.set_controls(conductor.controls())
    mixer.fade_in(config.audio.fade_in_s)
    total = int(minutes * 60 * sr)
    block = int(sr * config.audio.block_ms / 1000)
    rng = np.random.default_rng(0)
    peak = 0.0
    done = 0
    fade_at = total - int(config.audio.fade_out_s * sr)
    next_second = 0
    pending: list[bytes] = []  # PCM not yet written: one write (and header update) a second
    pending_frames = 0
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(sr)
        while done < total:
            if listener is not None and done >= next_second * sr:
                t = float(next_second)
                controls = conductor.update(t, listener.reading(t), None)
                mixer.set_controls(controls)
                trace.add(t, controls.tempo_bpm, controls.breath_rate, listener.state,
                          conductor.mode)
                next_second += 1
            while mixer.scheduled_until <= mixer.position + block + sr:
                phrase = composer.next_phrase(conductor.controls())
                start = mixer.scheduled_until
                onsets = mixer.schedule(phrase)
                played.append((start, phrase))
                if listener is not None:
                    phrases.append((start / sr, phrase.beats, phrase.tempo_bpm,
                                    [frame / sr for _, frame in onsets],
                                    [beat for beat, _ in onsets]))
            if done >= fade_at and not mixer.faded_out:
                mixer.fade_out(config.audio.fade_out_s)
            n = min(block, total - done)
            audio = mixer.render(n)
            peak = max(peak, float(np.max(np.abs(audio))) if n else 0.0)
            pending.append(to_pcm16(audio, rng))
            pending_frames += n
            done += n
            if pending_frames >= sr or done >= total:
                wav.writeframes(b"".join(pending))
                pending, pending_frames = [], 0
            if progress is not None:
                progress(done / total)
    summary = {"composer": composer.name, "seconds": total / sr, "peak": peak}
    if midi is not None:
        mixer.log.cut(total / sr)  # what was scheduled past the end was never heard
        summary["midi_notes"] = write_midi(midi, mixer.log)
    if listener is not None:
        summary.update(trace=trace, phrases=phrases, scenario=scenario)
    return summary
