"""Where the audio goes: the sound card, a WAV file, or nowhere — all behind one interface.

Every sink drains an :class:`~calmtunes.audio.ring.AudioRing`. ``open()`` starts draining and
raises :class:`~calmtunes.errors.HardwareError` when it cannot; ``is_alive()`` tells the audio
component whether to reopen; ``frames_played`` counts frames handed to the output so far.
"""

from __future__ import annotations

import logging
import threading
import time
import wave
from pathlib import Path

import numpy as np

from calmtunes.audio.ring import AudioRing
from calmtunes.errors import HardwareError

log = logging.getLogger(__name__)


class Sink:
    kind = "sink"

    def __init__(self, ring: AudioRing, sample_rate: int) -> None:
        self.ring = ring
        self.sample_rate = sample_rate
        self.first_frame_at: float | None = None  # monotonic time real audio first went out
        self.description = self.kind

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def is_alive(self) -> bool:
        raise NotImplementedError

    @property
    def frames_played(self) -> int:
        return self.ring.frames_out


class _ThreadSink(Sink):
    """Drains the ring from a thread, paced by the clock or as fast as the producer goes."""

    block_frames = 1024

    def __init__(self, ring: AudioRing, sample_rate: int, realtime: bool) -> None:
        super().__init__(ring, sample_rate)
        self.realtime = realtime
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None

    def open(self) -> None:
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.kind}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._error is None

    def _consume(self, block: np.ndarray, real: int) -> None:
        """Handle one block drained from the ring (``real`` frames of it were audio)."""

    def _run(self) -> None:
        block = np.zeros((self.block_frames, self.ring.channels), dtype=np.float32)
        period = self.block_frames / self.sample_rate
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.realtime:
                    next_t += period
                    delay = next_t - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                    elif delay < -1.0:
                        next_t = time.monotonic()  # we were suspended; do not catch up
                    real = self.ring.read_into(block)
                else:
                    # Not paced by a clock: wait for a whole block of real audio instead.
                    while self.ring.available < self.block_frames and not self._stop.is_set():
                        time.sleep(0.0005)
                    if self._stop.is_set():
                        break
                    real = self.ring.read_into(block)
                if real and self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                self._consume(block, real)
        except BaseException as exc:  # reported through is_alive(); the component reopens
            self._error = exc
            log.error("%s sink failed: %s", self.kind, exc)


class NullSink(_ThreadSink):
    """Drops the audio (benchmarks, soaks, headless checks)."""

    kind = "null"


class WavSink(_ThreadSink):
    """Writes 16-bit PCM WAV, with TPDF dither; the header is kept valid as it grows."""

    kind = "wav"

    def __init__(self, ring: AudioRing, sample_rate: int, path: str | Path, realtime: bool) -> None:
        super().__init__(ring, sample_rate, realtime)
        self.path = Path(path)
        self._wav: wave.Wave_write | None = None
        self._rng = np.random.default_rng(1)
        self.description = f"wav:{self.path}"

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            wav = wave.open(str(self.path), "wb")
        except OSError as exc:
            raise HardwareError(
                f"cannot write {self.path}: {exc.strerror}; choose a writable audio.wav_path"
            ) from exc
        wav.setnchannels(self.ring.channels)
        wav.setsampwidth(2)
        wav.setframerate(self.sample_rate)
        self._wav = wav
        super().open()

    def close(self) -> None:
        super().close()
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    def _consume(self, block: np.ndarray, real: int) -> None:
        if self._wav is None:
            return
        dither = (self._rng.random(block.shape) - self._rng.random(block.shape)) / 32768.0
        pcm = np.clip((block + dither) * 32767.0, -32768, 32767).astype("<i2")
        self._wav.writeframes(pcm.tobytes())


class SoundDeviceSink(Sink):
    """A PortAudio output stream; its callback only copies from the ring."""

    kind = "sounddevice"

    def __init__(self, ring: AudioRing, sample_rate: int, device: str = "") -> None:
        super().__init__(ring, sample_rate)
        self.device_query = device
        self._stream = None
        self._callback_errors = 0
        self.device_name = ""

    def _find_device(self, sd) -> int | None:
        """The output device whose name contains ``device_query`` (case-insensitive)."""
        if not self.device_query:
            return None
        wanted = self.device_query.lower()
        names = []
        for index, info in enumerate(sd.query_devices()):
            if info["max_output_channels"] >= 2:
                names.append(info["name"])
                if wanted in info["name"].lower():
                    return index
        raise HardwareError(
            f"no output device matching {self.device_query!r} (found: "
            f"{', '.join(names) or 'none'}); check the DAC overlay in /boot/firmware/config.txt "
            "and `aplay -l`, or set audio.device"
        )

    def open(self) -> None:
        try:
            import sounddevice as sd
        except OSError as exc:  # libportaudio2 missing
            raise HardwareError(
                f"PortAudio is not available ({exc}); install it: sudo apt install libportaudio2"
            ) from exc
        ring = self.ring

        def callback(outdata, frames, time_info, status):  # PortAudio's thread: copy only
            if status.output_underflow:
                ring.underruns += 1
            if ring.read_into(outdata) and self.first_frame_at is None:
                self.first_frame_at = time.monotonic()

        try:
            device = self._find_device(sd)
            stream = sd.OutputStream(
                samplerate=self.sample_rate,
                channels=ring.channels,
                dtype="float32",
                device=device,
                callback=callback,
                latency="low",
            )
            stream.start()
        except HardwareError:
            raise
        except Exception as exc:  # sd.PortAudioError, ValueError for a bad device
            raise HardwareError(
                f"cannot open the sound device ({exc}); check `aplay -l` and audio.device"
            ) from exc
        self._stream = stream
        info = sd.query_devices(stream.device)
        self.device_name = info["name"]
        self.description = f"sounddevice:{self.device_name}"
        log.info("audio: playing on %r at %d Hz", self.device_name, self.sample_rate)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:
                log.debug("closing the stream: %s", exc)

    def is_alive(self) -> bool:
        stream = self._stream
        return stream is not None and stream.active and not stream.closed


def make_sink(kind: str, ring: AudioRing, sample_rate: int, *, device: str = "",
              wav_path: str = "calmtunes.wav", realtime: bool = True) -> Sink:
    """The factory: one sink for the configured backend."""
    if kind == "sounddevice":
        return SoundDeviceSink(ring, sample_rate, device)
    if kind == "wav":
        return WavSink(ring, sample_rate, wav_path, realtime)
    if kind == "null":
        return NullSink(ring, sample_rate, realtime)
    raise ValueError(f"unknown audio backend {kind!r}")
