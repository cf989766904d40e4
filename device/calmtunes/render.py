"""Offline rendering: the composer and the mixer straight into a WAV file, no hardware, no clock."""

from __future__ import annotations

import logging
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from calmtunes.config import Config
from calmtunes.music.conductor import Conductor
from calmtunes.music.engine import load_generator
from calmtunes.music.fallback import ProceduralComposer
from calmtunes.music.mixer import Mixer

log = logging.getLogger(__name__)


def to_pcm16(block: np.ndarray, rng: np.random.Generator) -> bytes:
    """Float frames (−1…1) to little-endian 16-bit PCM with TPDF dither."""
    dither = (rng.random(block.shape) - rng.random(block.shape)) / 32768.0
    return np.clip((block + dither) * 32767.0, -32768, 32767).astype("<i2").tobytes()


def render_offline(config: Config, minutes: float, out: str | Path, *, preset: str | None = None,
                   progress: Callable[[float], None] | None = None) -> dict:
    """Render ``minutes`` of music to ``out``; return a summary (composer, seconds, peak)."""
    sr = config.audio.sample_rate
    conductor = Conductor(config, preset or config.music.default_preset, config.music.volume_db)
    composer = ProceduralComposer(config.music.seed or None)
    if config.music.generator == "onnx":
        try:
            composer = load_generator(config, config.music.seed or None)
        except Exception as exc:
            log.warning("generator unavailable (%s); rendering with the procedural composer", exc)
    mixer = Mixer(sr, config)
    mixer.set_controls(conductor.controls())
    mixer.fade_in(config.audio.fade_in_s)
    total = int(minutes * 60 * sr)
    block = int(sr * config.audio.block_ms / 1000)
    rng = np.random.default_rng(0)
    peak = 0.0
    done = 0
    fade_at = total - int(config.audio.fade_out_s * sr)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(sr)
        while done < total:
            while mixer.scheduled_until <= mixer.position + block + sr:
                mixer.schedule(composer.next_phrase(conductor.controls()))
            if done >= fade_at and not mixer.faded_out:
                mixer.fade_out(config.audio.fade_out_s)
            n = min(block, total - done)
            audio = mixer.render(n)
            peak = max(peak, float(np.max(np.abs(audio))) if n else 0.0)
            wav.writeframes(to_pcm16(audio, rng))
            done += n
            if progress is not None:
                progress(done / total)
    return {"composer": composer.name, "seconds": total / sr, "peak": peak}
