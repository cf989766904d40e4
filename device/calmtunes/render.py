"""Sessions on the virtual clock: ``calmtunes render`` and ``calmtunes simulate --virtual-clock``.

Both run the daemon itself — its control loop, supervisor, composer, audio component and mixer,
the emulated sensor and camera when there is a listener — on a
:class:`~calmtunes.clock.VirtualClock`, as fast as the CPU allows, into a WAV file of exactly the
length asked for. So what a render, a benchmark or a check hears is what the device plays, and
the same config, scenario and seed give the same samples, whichever of the two commands ran it
(with the personaliser off: ``simulate`` keeps a device state and its listener's record, from
which the personaliser chooses each session's arm; a render keeps none).

With a ``scenario`` (a :data:`~calmtunes.sim.listener.SCENARIOS` name) the session is
closed-loop: the emulated MAX30102 watches a simulated listener who hears the music, the pulse
analysis reads it, and the conductor leads it, exactly as on the device. Without one there is no
listener (no sensor, no camera): the music plays its preset as planned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calmtunes.clock import VirtualClock
from calmtunes.config import Config
from calmtunes.errors import HardwareError

log = logging.getLogger(__name__)


def render_overlay(scenario: str | None, seed: int | None = None) -> dict[str, dict[str, Any]]:
    """The senses for a render: emulated ones around a simulated listener, or none."""
    if scenario is None:
        return {"pulse": {"backend": "none"}, "scene": {"backend": "none"},
                "panel": {"backend": "none"}}
    sim: dict[str, Any] = {"scenario": scenario}
    if seed is not None:
        sim["seed"] = seed
    return {"device": {"hardware": "sim"}, "sim": sim}


def run_session(config: Config, seconds: float, out: str | Path, *,
                preset: str | None = None, midi: str | Path | None = None,
                progress: Callable[[float], None] | None = None,
                overlay: dict[str, dict[str, Any]] | None = None,
                config_path: str | None = None, control: bool = False,
                persist: bool = False, epoch: float = 0.0) -> dict[str, Any]:
    """Run the daemon for ``seconds`` of virtual time, its sound into the WAV file ``out``.

    Returns a summary: ``composer`` (the one playing at the end), ``seconds``, ``peak`` (largest
    sample, full scale 1.0), ``phrases`` (for every phrase played: ``(start_s, beats,
    tempo_bpm, onsets_s, onset_beats)``, the onsets being the note-on times the mixer actually
    scheduled), ``steps`` (scheduler steps), ``busy_s`` (seconds spent in each part's task),
    ``emulator_cpu_s`` (CPU seconds the emulated sensors and listener took, 0 without them),
    and with a simulated listener ``trace`` (a
    per-second :class:`~calmtunes.sim.listener.LoopTrace`). With ``midi``, the notes played
    (melody, harmony, bass tracks and the tempo map) go there as a Standard MIDI File.
    :class:`~calmtunes.errors.HardwareError` when ``out`` could not be written whole."""
    from calmtunes.daemon import Daemon
    from calmtunes.music.midi import PlayLog, write_midi

    sr = config.audio.sample_rate
    total = round(seconds * sr)
    overlay = {**(overlay or {})}
    overlay["audio"] = {**overlay.get("audio", {}), "backend": "wav", "wav_path": str(out),
                        "realtime": True}
    clock = VirtualClock(epoch=epoch)
    daemon = Daemon(config, config_path, clock=clock, overlay=overlay, control=control,
                    persist=persist, preset=preset, record=True, max_frames=total)
    if midi is not None:
        daemon.audio.mixer.log = PlayLog()
    assert daemon.scheduler is not None
    if progress is not None:
        def report(now: float) -> float:
            progress(min(1.0, now / seconds) if seconds else 1.0)
            return 1.0

        daemon.scheduler.add("progress", report)

    def watch_output(now: float) -> float:
        """A write to the file failed (a full disk, a file too large): the render cannot be
        whole, so it stops at once rather than render the rest for nothing."""
        if daemon.audio.sink_failures:
            daemon.request_stop(1)
        return 1.0

    daemon.scheduler.add("output", watch_output)
    # The fade-out at the end is part of the file: the loop stops that much before the end.
    fade = daemon.config.audio.fade_out_s
    daemon.run(duration=max(0.0, seconds - fade - 0.05))
    if progress is not None:
        progress(1.0)
    sink = daemon.audio.sink
    error = getattr(sink, "error", None) or daemon.audio.sink_error
    failed = daemon.audio.sink_failures or getattr(sink, "error", None) is not None
    if failed or getattr(sink, "frames_written", 0) < total:
        # the file could not be written, or not all of it (a write failed: a full disk, a
        # file too large; the output reopened from the start): it is not the render asked for
        _discard(Path(out))
        cause = getattr(error, "__cause__", None)
        if not isinstance(cause, OSError) and isinstance(error, OSError) \
                and not isinstance(error, HardwareError):
            cause = error  # a failed write, as the sink's thread met it
        if isinstance(cause, OSError):  # says which file and why: "No space left on device"
            raise OSError(cause.errno, cause.strerror or str(cause),
                          cause.filename or str(out)) from cause
        raise HardwareError(f"{out} was not written ({error or 'the output never opened'})")
    summary: dict[str, Any] = {
        "composer": daemon.composer.composer.name,
        "seconds": total / sr,
        "peak": getattr(sink, "peak", 0.0),
        "frames": getattr(sink, "frames_written", 0),
        "steps": daemon.scheduler.steps if daemon.scheduler else 0,
        "busy_s": dict(daemon.scheduler.cpu_s) if daemon.scheduler else {},
        # CPU s the emulated sensors and listener took (a simulated session's, not the device's)
        "emulator_cpu_s": sum(c.status().get("emulator_cpu_s", 0.0) for c in daemon.components),
        "phrases": [(start / sr, phrase.beats, phrase.tempo_bpm,
                     [frame / sr for _, frame in onsets], [beat for beat, _ in onsets])
                    for start, phrase, onsets in (daemon.audio.played or [])],
    }
    if midi is not None:
        daemon.audio.mixer.log.cut(total / sr)  # what was scheduled past the end was never heard
        try:
            summary["midi_notes"] = write_midi(midi, daemon.audio.mixer.log)
        except OSError as exc:  # name the file: a write to a full disk does not
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror or str(exc), str(midi)) from exc
            raise
    if daemon.hardware.listener is not None and daemon.trace is not None:
        summary.update(trace=daemon.trace, scenario=daemon.config.sim.scenario)
    return summary


def _discard(path: Path) -> None:
    """Remove a WAV file that was not written whole, so nobody takes it for the render; a
    device or a FIFO named as the output is left alone."""
    try:
        if path.is_file() and not path.is_symlink():
            path.unlink()
    except OSError:
        pass


def render_offline(config: Config, minutes: float, out: str | Path, *, preset: str | None = None,
                   scenario: str | None = None, midi: str | Path | None = None,
                   progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Render ``minutes`` of music to ``out``: :func:`run_session` with the senses of
    :func:`render_overlay` (a simulated listener for ``scenario``, else none)."""
    return run_session(config, minutes * 60.0, out, preset=preset, midi=midi, progress=progress,
                       overlay=render_overlay(scenario))
