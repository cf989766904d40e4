"""Where the audio goes: the sound card, a WAV file, or nowhere — all behind one interface.

Every sink drains an :class:`~calmtunes.audio.ring.AudioRing`. ``open()`` starts draining and
raises :class:`~calmtunes.errors.HardwareError` when it cannot; ``is_alive()`` tells the audio
component whether to reopen; ``frames_played`` counts frames handed to the output so far.

On a virtual clock the file and null sinks have no thread: the audio component calls
:meth:`Sink.catch_up` with the clock's time and the sink takes from the ring every block the
output would have played by then, exactly as its thread would in real time. ``max_frames`` ends
a file at an exact length (a render of N minutes is N minutes long).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from calmtunes.audio.ring import AudioRing
from calmtunes.clock import SYSTEM
from calmtunes.errors import HardwareError

log = logging.getLogger(__name__)

#: the sound card takes audio in periods of this many frames (42.7 ms at 48 kHz), two of them
#: queued in the card; the null and wav sinks in real time take the same periods, so a
#: simulation wakes as often as the device's callback thread. Each period costs one wake of a
#: thread that takes the GIL, about the same whatever its length: 2048 frames are 23 wakes a
#: second where 1024 were 47 (the null sink's thread: 0.70 → 0.32 % of a core here,
#: scripts/bench_audio). The music is rendered 150 ms ahead in the ring anyway; the card's
#: 85 ms are the only latency this adds to a press (ring + a block + card ≈ 255 ms at the
#: defaults, under the 300 ms asked).
CARD_PERIOD_FRAMES = 2048
#: ... and this many periods queued in the card. The periods of the null and wav sinks in real
#: time are emulated against the same card: a sink thread that wakes more than the queued music
#: (less the period being refilled) late has let the card run dry, and counts an underrun as the
#: card's driver would (a Python callback waits for the GIL like any thread: an import in
#: another thread that holds it for 50 ms is a gap in the sound)
CARD_PERIODS_QUEUED = 2


class Sink:
    kind = "sink"
    virtual = False  # paced by the audio component on a virtual clock (catch_up), not a thread

    def __init__(self, ring: AudioRing, sample_rate: int,
                 clock: Callable[[], float] = SYSTEM) -> None:
        self.ring = ring
        self.sample_rate = sample_rate
        self.clock = clock
        self.first_frame_at: float | None = None  # monotonic time real audio first went out
        self.description = self.kind

    def catch_up(self, now: float) -> float | None:
        """Virtual clock only: play what is due by ``now``; the clock time of the next block
        (None for a sink with its own thread or callback)."""
        return None

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

    block_frames = CARD_PERIOD_FRAMES
    periods_queued = CARD_PERIODS_QUEUED
    #: on a virtual clock nobody listens while it runs: the sink takes up to this many frames
    #: at a time (85 ms at 48 kHz), so the audio component wakes, renders and hands over
    #: less often (each wake costs a fixed number of Python and numpy calls, whatever its
    #: length). At least a card period, else whole 1024-frame steps that the ring always
    #: holds: its capacity less the largest producer block (audio.block_ms ≤ 100 ms) is what
    #: the producer keeps in it (150 ms of buffer at 48 kHz: 3072 frames)
    virtual_block_frames = 4096

    def __init__(self, ring: AudioRing, sample_rate: int, realtime: bool,
                 clock: Callable[[], float] = SYSTEM, max_frames: int | None = None) -> None:
        super().__init__(ring, sample_rate, clock)
        self.realtime = realtime
        self.max_frames = max_frames
        self.frames_written = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._virtual = self.virtual = bool(getattr(clock, "virtual", False))
        if self._virtual:
            held = (ring.capacity - sample_rate // 10) // 1024 * 1024
            self.block_frames = max(self.block_frames, min(self.virtual_block_frames, held))
        self._next_t: float | None = None  # virtual clock: when the next block is due
        self._block = np.zeros((self.block_frames, ring.channels), dtype=np.float32)

    def open(self) -> None:
        self._stop.clear()
        self._error = None
        if self._virtual:
            self._next_t = self.clock()
            return
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.kind}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._next_t = None
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    @property
    def error(self) -> BaseException | None:
        """Why the sink stopped (a failed write), or None while it runs or after a clean stop."""
        return self._error

    def is_alive(self) -> bool:
        if self._virtual:
            return self._next_t is not None and self._error is None
        return self._thread is not None and self._thread.is_alive() and self._error is None

    def catch_up(self, now: float) -> float | None:
        if self._next_t is None:
            return None
        period = self.block_frames / self.sample_rate
        try:
            while self._next_t <= now:
                self._pump(self._block)
                self._next_t += period
        except Exception as exc:  # as from the thread: is_alive() tells, the component reopens
            self._error = exc
            log.error("%s sink failed: %s", self.kind, exc)
            return None
        return self._next_t

    def _pump(self, block: np.ndarray) -> None:
        real = self.ring.read_into(block)
        if real and self.first_frame_at is None:
            self.first_frame_at = self.clock()
        self._emit(block, real)

    def _emit(self, block: np.ndarray, real: int) -> None:
        """Hand a block on, cut at ``max_frames``."""
        n = len(block)
        if self.max_frames is not None:
            n = max(0, min(n, self.max_frames - self.frames_written))
            if n == 0:
                return
        self.frames_written += n
        self._consume(block[:n], min(real, n))

    def _consume(self, block: np.ndarray, real: int) -> None:
        """Handle one block drained from the ring (``real`` frames of it were audio)."""

    def _run(self) -> None:
        block = np.zeros((self.block_frames, self.ring.channels), dtype=np.float32)
        period = self.block_frames / self.sample_rate
        late = (self.periods_queued - 1) * period  # a wake later than this: the card ran dry
        next_t = self.clock()
        sleep = time.sleep
        try:
            while not self._stop.is_set():
                if self.realtime:
                    next_t += period
                    delay = next_t - self.clock()
                    if delay > 0:
                        # a plain sleep, one call, where an Event's wait builds a lock and a
                        # waiter list every period: close() is seen within one period instead
                        sleep(delay)
                        if self._stop.is_set():
                            break
                        # how late this read is: a wake from the sleep can come late too
                        # (a wait for the GIL), not only a period that ran long
                        delay = next_t - self.clock()
                    if delay < -late:
                        # The emulated card has played all it held: a gap, as the card's
                        # callback status says for a real one (once the music has begun);
                        # the music resumes from now.
                        if self.first_frame_at is not None:
                            self.ring.underruns += 1
                        next_t = self.clock()
                    real = self.ring.read_into(block)
                else:
                    # Not paced by a clock: wait for a whole block of real audio instead.
                    while self.ring.available < self.block_frames and not self._stop.is_set():
                        time.sleep(0.0005)
                    if self._stop.is_set():
                        break
                    real = self.ring.read_into(block)
                if real and self.first_frame_at is None:
                    self.first_frame_at = self.clock()
                self._emit(block, real)
        except BaseException as exc:  # reported through is_alive(); the component reopens
            self._error = exc
            log.error("%s sink failed: %s", self.kind, exc)


class NullSink(_ThreadSink):
    """Drops the audio (benchmarks, soaks, headless checks)."""

    kind = "null"


#: below this magnitude a sample scaled to 16 bits plus dither (< 1 LSB) cannot leave the range
_NO_CLIP = 0.999
#: a WAV file's RIFF header counts its size in 32 bits: at most this many bytes of samples
#: (6 h 12 min of 48 kHz stereo); Python's wave module raises past it
WAV_MAX_DATA_BYTES = 2**32 - 1 - 36


def wav_max_frames(channels: int = 2) -> int:
    """The most 16-bit frames one WAV file holds."""
    return WAV_MAX_DATA_BYTES // (2 * channels)


class WavSink(_ThreadSink):
    """Writes 16-bit PCM WAV, with TPDF dither; written once a second, so the header is valid
    to within a second as the file grows. A file that reaches the format's size limit
    (:func:`wav_max_frames`) is kept as it is: the music goes on, no longer written, and a
    warning says so once (a failed write would make the output reopen and truncate it)."""

    kind = "wav"

    def __init__(self, ring: AudioRing, sample_rate: int, path: str | Path, realtime: bool,
                 clock: Callable[[], float] = SYSTEM, max_frames: int | None = None) -> None:
        super().__init__(ring, sample_rate, realtime, clock, max_frames)
        self.path = Path(path)
        self._wav: wave.Wave_write | None = None
        self._file: BinaryIO | None = None  # the file the WAV is written to
        self._rng = np.random.default_rng(1)
        self.description = f"wav:{self.path}"
        self.peak = 0.0  # largest sample magnitude written (full scale 1.0)
        self.full = False  # the file holds all a WAV file can
        self._pending: list[bytes] = []  # PCM not yet written: one write a second
        self._pending_frames = 0

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # opened here, not by wave.open(path): a Wave_write whose open failed prints a
            # traceback from its __del__ at each retry
            file = open(self.path, "wb")  # closed in close()
        except OSError as exc:
            raise HardwareError(
                f"cannot write {self.path}: {exc.strerror}; choose a writable audio.wav_path"
            ) from exc
        self._file = file
        wav = wave.open(file, "wb")
        wav.setnchannels(self.ring.channels)
        wav.setsampwidth(2)
        wav.setframerate(self.sample_rate)
        self._wav = wav
        self.full = False
        super().open()

    def close(self) -> None:
        super().close()
        wav = self._wav
        try:
            if wav is not None and self._error is None:
                self._flush()
                if self.max_frames is not None and self.frames_written < self.max_frames:
                    # A file of a stated length: what the output had not yet played is silence.
                    missing = self.max_frames - self.frames_written
                    self._pending.append(bytes(2 * self.ring.channels * missing))
                    self._flush()
                    self.frames_written = self.max_frames
        except OSError as exc:  # a full disk, a file too large: the file is not whole
            self._error = exc
            log.error("%s could not be finished: %s", self.path, exc.strerror or exc)
        finally:
            # once, whatever happened: a Wave_write left open retries its header from __del__
            # and prints a traceback when that fails too
            self._wav, self._pending, self._pending_frames = None, [], 0
            for closing in (wav, self._file):
                try:
                    if closing is not None:
                        closing.close()
                except OSError:
                    pass
            self._file = None

    def _consume(self, block: np.ndarray, real: int) -> None:
        if self._wav is None:
            return
        hi = lo = 0.0
        if real:
            hi, lo = float(block[:real].max()), float(block[:real].min())
            self.peak = max(self.peak, hi, -lo)
        # TPDF dither of ±1 LSB: the difference of two uniform draws, each 16 random bits (four
        # to a 64-bit draw of the generator: a third of the cost of two float draws per sample,
        # and a 1/65536 LSB grid is far finer than the dither needs), in float32 in place
        frames, channels = block.shape
        bits = self._rng.bit_generator.random_raw(-(-frames * channels // 2))
        u = bits.view(np.uint16)[:2 * frames * channels].reshape(2, frames, channels)
        pcm = u[0].astype(np.float32)
        pcm -= u[1]
        pcm *= np.float32(1.0 / 65536.0)
        pcm += np.multiply(block, np.float32(32767.0))
        # rounded to the nearest step, not truncated (astype): truncation moves every sample
        # toward zero, by half a step on average, and leaves a signal within a step of zero at
        # nearly nothing, a crossover distortion of every quiet tail and fade that the dither
        # is there to prevent; rounded, the error is the dither's alone, whatever the music
        np.rint(pcm, out=pcm)
        if hi > _NO_CLIP or lo < -_NO_CLIP:  # the mixer's output stays under −1 dBTP: never
            np.clip(pcm, -32768, 32767, out=pcm)
        pcm = pcm.astype("<i2")
        self._pending.append(pcm.tobytes())
        self._pending_frames += len(pcm)
        if self._pending_frames >= self.sample_rate:  # one write (and header update) a second
            self._flush()

    def _flush(self) -> None:
        if self._wav is not None and self._pending:
            data = b"".join(self._pending)
            room = wav_max_frames(self.ring.channels) - self._wav.getnframes()
            frame_bytes = 2 * self.ring.channels
            if len(data) > room * frame_bytes and not self.full:
                self.full = True
                log.warning("%s holds all a WAV file can (%.1f h); the music goes on, no longer "
                            "written to it", self.path, wav_max_frames(self.ring.channels)
                            / self.sample_rate / 3600)
            data = data[: max(0, room) * frame_bytes]
            if data:
                self._wav.writeframes(data)
        self._pending, self._pending_frames = [], 0


class SoundDeviceSink(Sink):
    """A PortAudio output stream; its callback only copies from the ring.

    The card takes fixed periods of :attr:`period_frames` (:data:`CARD_PERIOD_FRAMES`: 42.7 ms
    at 48 kHz, as the null sink's emulated card) with about two of them queued in the card
    (PortAudio rounds the latency asked for to whole periods: 85.3 ms at 48 kHz). Left to
    itself ("low" latency) PortAudio on ALSA takes 104-frame periods and an 8.7 ms card buffer:
    460 Python callbacks a second, each taking the GIL, and an underrun whenever the callback
    thread waits longer than that — for the GIL, whose switch interval is 5 ms, or for a core
    on a loaded Pi. The music is rendered 150 ms ahead in the ring anyway, so the deeper card
    buffer makes nothing answer later that a listener could notice (a press: ring + a block +
    card, about 0.26 s).
    """

    kind = "sounddevice"
    period_frames = CARD_PERIOD_FRAMES
    periods_queued = CARD_PERIODS_QUEUED

    def __init__(self, ring: AudioRing, sample_rate: int, device: str = "") -> None:
        super().__init__(ring, sample_rate)
        self.device_query = device
        self._stream = None
        self._callback_errors = 0
        self.device_name = ""
        self.latency_s: float | None = None  # the card's, as PortAudio set it
        self._tried = False  # open() was called before: PortAudio's device list may be stale

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
        if self._tried:
            self._restart_portaudio(sd)
        self._tried = True
        ring = self.ring

        def callback(outdata, frames, time_info, status):  # PortAudio's thread: copy only
            if status.output_underflow:
                ring.underruns += 1
            if ring.read_into(outdata) and self.first_frame_at is None:
                self.first_frame_at = self.clock()

        stream = None
        try:
            device = self._find_device(sd)
            stream = sd.OutputStream(
                samplerate=self.sample_rate,
                channels=ring.channels,
                dtype="float32",
                device=device,
                callback=callback,
                blocksize=self.period_frames,
                latency=self.periods_queued * self.period_frames / self.sample_rate,
            )
            stream.start()
        except Exception as exc:  # sd.PortAudioError, ValueError for a bad device
            if stream is not None:  # made but not started: it holds the device all the same
                with contextlib.suppress(Exception):  # the start's error is the one to report
                    stream.close()
            if isinstance(exc, HardwareError):
                raise
            raise HardwareError(
                f"cannot open the sound device ({exc}); check `aplay -l` and audio.device"
            ) from exc
        self._stream = stream
        info = sd.query_devices(stream.device)
        self.device_name = info["name"]
        self.description = f"sounddevice:{self.device_name}"
        self.latency_s = float(stream.latency)
        log.info("audio: playing on %r at %d Hz, %d-frame periods, %.1f ms in the card",
                 self.device_name, self.sample_rate, stream.blocksize, 1000 * self.latency_s)

    @staticmethod
    def _restart_portaudio(sd) -> None:
        """PortAudio lists the sound cards once, when it starts, and never again: a card that
        appeared since (a DAC whose driver probed after the daemon started, a USB card plugged
        in, or one back under a new index) is seen only once PortAudio starts anew. Called
        before each reopen, when no stream of ours is open, the way sounddevice's maintainer
        gives for it (its _terminate() and _initialize(); its count of starts says whether
        PortAudio is running to be stopped)."""
        try:
            if getattr(sd, "_initialized", 1) > 0:
                sd._terminate()
            sd._initialize()
        except Exception as exc:  # sd.PortAudioError; left stopped, the next try starts it
            raise HardwareError(f"cannot restart PortAudio to look for the sound card again "
                                f"({exc}); check `aplay -l`") from exc

    def close(self) -> None:
        stream, self._stream = self._stream, None
        self.latency_s = None  # no card buffer while closed: status stops showing one
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
              wav_path: str = "calmtunes.wav", realtime: bool = True,
              clock: Callable[[], float] = SYSTEM, max_frames: int | None = None) -> Sink:
    """The factory: one sink for the configured backend."""
    if kind == "sounddevice":
        if getattr(clock, "virtual", False):
            raise ValueError("a sound card plays in real time: on the virtual clock use "
                             "audio.backend wav or null")
        return SoundDeviceSink(ring, sample_rate, device)
    if kind == "wav":
        return WavSink(ring, sample_rate, wav_path, realtime, clock, max_frames)
    if kind == "null":
        return NullSink(ring, sample_rate, realtime, clock, max_frames)
    raise ValueError(f"unknown audio backend {kind!r}")
