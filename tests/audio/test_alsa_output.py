"""The real audio path: sounddevice → PortAudio → ALSA, captured by an ALSA `file` PCM.

The test gives a subprocess its own HOME with an ~/.asoundrc whose default PCM is a `file`
plugin writing WAV (over the `null` plugin, which takes audio as fast as it is given: there is no
sound card here, so the capture is not paced by a clock and may contain underrun gaps)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest

from calmtunes.audio.sinks import CARD_PERIOD_FRAMES

sd = pytest.importorskip("sounddevice", exc_type=OSError)

SCRIPT = textwrap.dedent("""
    import sys
    from calmtunes.config import Config
    from calmtunes.daemon import Daemon
    cfg = Config().replace(
        device={"state_dir": sys.argv[1] + "/state", "runtime_dir": sys.argv[1] + "/run"},
        audio={"backend": "sounddevice", "device": "default", "fade_in_s": 0.05},
        music={"generator": "procedural", "seed": 1},
        pulse={"backend": "none"}, scene={"backend": "none"}, panel={"backend": "none"})
    d = Daemon(cfg)
    import threading
    t = threading.Thread(target=d.run, daemon=True); t.start()
    # Until half a second of music has gone out (PortAudio's thread; unpaced, so quickly).
    # Music, not frames: the unpaced device takes silence by the second before the first
    # block is rendered.
    d.wait(60.0, lambda: d.audio.ring.frames_read >= 24000 and d.audio.sink.description
           != "sounddevice")  # on a loaded machine PortAudio may take a while to open
    s = d.status()["components"]["audio"]
    print("OUTPUT", s["output"], s["state"], d.audio.ring.frames_read)
    print("CARD", d.audio.sink._stream.blocksize, s.get("card_latency_ms"))
    d.request_stop(); t.join(5)
""")


def decode(raw: bytes, width: int) -> np.ndarray:
    """The capture's samples, full scale 1.0. PortAudio hands ALSA float32 frames, and alsa-lib's
    file plugin writes them under a WAV header that says 32-bit integer PCM (format tag 1): read
    4-byte frames as float where that gives finite audio in range, else as the integers the
    header names (a setup where ALSA converted to S32)."""
    if width == 4:
        floats = np.frombuffer(raw, "<f4").astype(np.float64)
        if np.isfinite(floats).all() and np.abs(floats).max(initial=0.0) <= 1.5:
            return floats
    dtype = {2: "<i2", 4: "<i4"}[width]
    return np.frombuffer(raw, dtype).astype(np.float64) / float(2 ** (8 * width - 1))


def file_pcm(capture: Path) -> str:
    """An ~/.asoundrc whose default PCM is a `file` plugin writing WAV to ``capture``."""
    return textwrap.dedent(f"""
        pcm.!default {{
            type file
            slave.pcm "null"
            file "{capture}"
            format "wav"
        }}
    """)


def run_daemon(script: str, home: Path) -> subprocess.CompletedProcess:
    """``script`` in a subprocess whose HOME (and so ~/.asoundrc) is ``home``."""
    env = dict(os.environ, HOME=str(home))
    env.pop("ALSA_CONFIG_PATH", None)
    return subprocess.run([sys.executable, "-c", script, str(home)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_daemon_audio_reaches_alsa(tmp_path: Path):
    capture = tmp_path / "capture.wav"
    (tmp_path / ".asoundrc").write_text(file_pcm(capture))
    proc = run_daemon(SCRIPT, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "OUTPUT sounddevice:default ok" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    # fixed 2048-frame periods, two of them in the card (not PortAudio's 104-frame, 8.7 ms
    # "low" latency: 460 callbacks a second, each waiting for the GIL)
    card = next(line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("CARD"))
    assert card[0] == str(CARD_PERIOD_FRAMES) == "2048", proc.stdout
    assert 80.0 <= float(card[1]) <= 180.0, proc.stdout
    # The null device takes frames as fast as PortAudio gives them, so the capture is mostly
    # the silence PortAudio plays while the ring is empty, with the music's frames among it
    # wherever they were ready: gather the frames that carry a signal, wherever they lie.
    heard: list[np.ndarray] = []
    count = 0
    size = capture.stat().st_size
    with wave.open(str(capture)) as w:
        declared = w.getnframes()
        assert w.getframerate() == 48000
        assert w.getnchannels() == 2
        width = w.getsampwidth()
        while count < 24000:
            raw = w.readframes(48000)
            if not raw:
                break
            frames = decode(raw, width).reshape(-1, 2)
            frames = frames[np.any(frames != 0.0, axis=1)]
            heard.append(frames)
            count += len(frames)
    capture.unlink()  # hundreds of MB: the null device is not paced
    # the daemon stopped once 24000 frames of music had left the ring; PortAudio may not have
    # handed its last buffers on to ALSA when the stream closed
    assert count >= 12000, (f"capture is silent: {count} frames with a signal "
                            f"({declared} frames declared, {size} bytes)")
    audio = np.concatenate(heard)
    assert np.sqrt(np.mean(audio**2)) > 1e-4, "capture is silent"
    assert np.abs(audio).max() < 0.99, "capture is clipped"


LATE_CARD = textwrap.dedent("""
    import os, sys, threading
    from calmtunes.config import Config
    from calmtunes.daemon import Daemon
    cfg = Config().replace(
        device={"state_dir": sys.argv[1] + "/state", "runtime_dir": sys.argv[1] + "/run"},
        audio={"backend": "sounddevice", "device": "", "fade_in_s": 0.05, "reopen_max_s": 1.0},
        music={"generator": "procedural", "seed": 1},
        pulse={"backend": "none"}, scene={"backend": "none"}, panel={"backend": "none"})
    d = Daemon(cfg)
    t = threading.Thread(target=d.run, daemon=True); t.start()
    d.wait(30.0, lambda: d.audio.health().state == "degraded")
    print("BEFORE", d.audio.health().state, flush=True)
    os.rename(sys.argv[1] + "/asoundrc.later", sys.argv[1] + "/.asoundrc")  # the card appears
    d.wait(30.0, lambda: d.audio.health().state == "ok" and d.audio.ring.frames_read >= 4800)
    print("AFTER", d.audio.health().state, d.audio.sink.description, d.audio.ring.frames_read)
    d.request_stop(); t.join(5)
""")


def test_a_card_that_appears_after_the_start_is_found(tmp_path: Path):
    # PortAudio lists the cards once, when it starts: a card whose driver probes after the
    # daemon started (or a USB card plugged in later) was never found until a restart. Here
    # the daemon starts with no card at all (no ~/.asoundrc: ALSA's default is card 0, which
    # this machine lacks), and the card appears while it retries.
    (tmp_path / "asoundrc.later").write_text(file_pcm(tmp_path / "capture.wav"))
    proc = run_daemon(LATE_CARD, tmp_path)
    for f in tmp_path.glob("capture.wav"):
        f.unlink()  # the null device is not paced: it grows fast
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "BEFORE ok" in proc.stdout:
        pytest.skip("this machine has a sound card of its own: the late card cannot be shown")
    assert "BEFORE degraded" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "AFTER ok sounddevice:default" in proc.stdout, proc.stdout + proc.stderr[-3000:]
