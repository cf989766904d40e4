"""What was played, as a Standard MIDI File: for music therapists, analysis tools and archives.

:class:`PlayLog` collects what the mixer actually scheduled — every note with its sounding time
in seconds (humanised timing included) and every phrase's tempo — and :func:`write_midi` writes
it as a format-1 Standard MIDI File (the MIDI Manufacturers Association's SMF 1.0): a tempo-map
track (tempo at every phrase start, 4/4 but for a cut phrase's last bar), then one track each
for the melody, the harmony's pad, the harmony's keyed accompaniment and the bass, each on a
channel of its own with a General MIDI programme (one channel a track: readers such as music21
group a track's notes by channel and misplace them when a track holds two). The mix's own
dynamics (the mixer's envelope: phrase swells, breaths and rests, section levels) are every
channel's CC11 expression, on General MIDI 2's curve, so a file read back swells and rests as
the sound did.
Ticks count beats of the tempo map, so a bar in the file is a bar of the music: every phrase
begins on a bar line of the file. Where a phrase was cut short by a crossfade (a preset change,
the iso start meeting the listener's heart), its last bar is a short one: a time signature gives
that bar the beats that were played, rounded to the coarsest note value (a beat, an eighth, …
a 128th) that keeps the phrase's tempo in the file within :data:`TEMPO_TOLERANCE` of the one
played (the rounding spread over all the beats it played), and 4/4 resumes where the new phrase
begins. So the tempo map carries only tempos that were played; a phrase cut too soon for that
(within its first beat and a half) is heard in the file as part of the phrase before it. The
times stay exact and the grid stays whole.

No dependency: an SMF is a few chunks of big-endian integers and variable-length quantities.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import itertools
import math
import os
import secrets
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

TICKS_PER_BEAT = 480
#: track name -> the voices it holds, each voice with (channel, General MIDI programme 0–127)
TRACKS: dict[str, dict[str, tuple[int, int]]] = {
    "melody": {"melody": (0, 46)},  # orchestral harp (the keyed voice is between harp and piano)
    "harmony pad": {"pad": (1, 89)},  # warm pad
    "harmony piano": {"harmony": (2, 0)},  # acoustic grand piano
    "bass": {"bass": (3, 32)},  # acoustic bass
}
#: the tracks that hold the harmony
HARMONY_TRACKS = ("harmony pad", "harmony piano")


@dataclass(frozen=True)
class PlayedNote:
    on_s: float  # note-on, seconds from the start of the session
    off_s: float  # note-off (end of the held part; the release rings on after it), seconds
    pitch: int  # MIDI note number
    velocity: float  # 0–1
    voice: str


@dataclass
class PlayLog:
    """Notes and tempi as played; filled by :meth:`calmtunes.music.mixer.Mixer.schedule`."""

    notes: list[PlayedNote] = field(default_factory=list)
    #: (phrase start in seconds, tempo in bpm, phrase length in beats), in order
    phrases: list[tuple[float, float, float]] = field(default_factory=list)
    #: the music's own dynamics as played: breakpoints (seconds, dB) of the mixer's envelope
    #: (phrase swells, breaths and rests, section levels), joined by straight lines in dB
    levels: list[tuple[float, float]] = field(default_factory=list)

    def add_level(self, t_s: float, db: float) -> None:
        self.levels.append((float(t_s), float(db)))

    def add_phrase(self, start_s: float, tempo_bpm: float, beats: float) -> None:
        self.phrases.append((float(start_s), float(tempo_bpm), float(beats)))

    def add_note(self, note: PlayedNote) -> None:
        self.notes.append(note)

    def cut(self, at_s: float) -> None:
        """A crossfade at ``at_s``: notes not yet begun were never heard; held ones end there."""
        kept = []
        for n in self.notes:
            if n.on_s >= at_s:
                continue
            if n.off_s > at_s:
                n = PlayedNote(n.on_s, at_s, n.pitch, n.velocity, n.voice)
            kept.append(n)
        self.notes = kept
        while self.phrases and self.phrases[-1][0] >= at_s:
            self.phrases.pop()
        if self.levels:  # the envelope ends at the cut, at its value there
            value = level_at(self.levels, at_s)
            self.levels = [p for p in self.levels if p[0] < at_s] + [(at_s, value)]

    def beat_at(self, t: float) -> float:
        """Beats of the tempo map at ``t`` seconds (each phrase's tempo holds until the next
        phrase begins; before the first phrase, the first tempo)."""
        if not self.phrases:
            return t
        starts = [p[0] for p in self.phrases]
        i = max(0, bisect.bisect_right(starts, t) - 1)
        beats = sum((starts[j + 1] - starts[j]) * self.phrases[j][1] / 60.0 for j in range(i))
        return beats + (t - starts[i]) * self.phrases[i][1] / 60.0


def level_at(levels: list[tuple[float, float]], t: float) -> float:
    """The envelope's dB at ``t`` seconds (level before the first and after the last point)."""
    times = [p[0] for p in levels]
    i = bisect.bisect_right(times, t)
    if i == 0:
        return levels[0][1]
    if i == len(levels):
        return levels[-1][1]
    (t0, d0), (t1, d1) = levels[i - 1], levels[i]
    return d0 if t1 <= t0 else d0 + (d1 - d0) * (t - t0) / (t1 - t0)


#: CC11 (expression) for a level of the envelope: 0 dB at :data:`EXPRESSION_0DB`, with the
#: General MIDI 2 curve (gain = 40·log10(value/127) dB), so the envelope's +6 dB top is 127
EXPRESSION_HEADROOM_DB = 6.0
EXPRESSION_STEP_S = 0.25  # where the envelope moves, CC11 follows it this often


def expression(db: float) -> int:
    return min(127, max(1, round(127.0 * 10.0 ** ((db - EXPRESSION_HEADROOM_DB) / 40.0))))


def expression_events(levels: list[tuple[float, float]]) -> list[tuple[float, int]]:
    """(seconds, CC11 value) wherever the value changes, following the envelope's lines."""
    if not levels:
        return []
    out: list[tuple[float, int]] = []
    t, end = levels[0][0], levels[-1][0]
    times = sorted({*(p[0] for p in levels)})
    k = 0
    while True:
        value = expression(level_at(levels, t))
        if not out or out[-1][1] != value:
            out.append((t, value))
        if t >= end:
            return out
        while k < len(times) and times[k] <= t:
            k += 1
        t = min(t + EXPRESSION_STEP_S, times[k] if k < len(times) else end)


def _vlq(n: int) -> bytes:
    """A MIDI variable-length quantity (7 bits a byte, high bit set on all but the last)."""
    n = max(0, int(n))
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _meta(kind: int, data: bytes) -> bytes:
    return bytes([0xFF, kind]) + _vlq(len(data)) + data


def _track(events: list[tuple[int, int, bytes]]) -> bytes:
    """Events as (tick, order, bytes): sorted by tick, then order (offs before ons)."""
    body = bytearray()
    last = 0
    for tick, _, data in sorted(events, key=lambda e: (e[0], e[1])):
        body += _vlq(tick - last) + data
        last = tick
    body += _vlq(0) + _meta(0x2F, b"")
    return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


BEATS_PER_BAR = 4  # the file's 4/4
#: the lengths a cut phrase's beats are rounded to in the file, coarsest first, in beats: a bar,
#: a beat, down to a 128th note (the bar it ends with then has a time signature n/128)
GRIDS_BEATS = (4.0, 1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32)
#: how far a cut phrase's tempo in the file may be from the tempo it was played at (1 %: under a
#: bpm at the plans' 50–90, well under what a listener tells apart); a phrase whose played beats
#: cannot be rounded that closely even to a 128th note is taken into the phrase before it
TEMPO_TOLERANCE = 0.01


def _on_grid(beats: float) -> float | None:
    """``beats`` played, rounded to the coarsest of :data:`GRIDS_BEATS` that changes the tempo
    by at most :data:`TEMPO_TOLERANCE`; None where none does (or nothing was played)."""
    for grid in GRIDS_BEATS:
        whole = round(beats / grid) * grid
        if whole > 0 and abs(whole - beats) <= TEMPO_TOLERANCE * beats:
            return whole
    return None


def _time_signature(beats: float) -> tuple[int, int]:
    """A bar of ``beats`` (a multiple of a 128th note) as (numerator, denominator)."""
    numerator, denominator = round(beats * 32), 128
    while numerator % 2 == 0 and denominator > 4:
        numerator, denominator = numerator // 2, denominator // 2
    return numerator, denominator


class TempoMap:
    """Seconds ↔ beats of the file: knots (time s, beat), one at every phrase start, joined at
    the phrase's tempo, each phrase starting on a bar line (see the module docstring)."""

    def __init__(self, phrases: list[tuple[float, float, float]]) -> None:
        kept: list[tuple[float, float, float]] = []
        spans: list[float] = []  # beats of the file from each kept phrase to the next
        for phrase in phrases or [(0.0, 60.0, 4.0)]:
            while kept:
                start, bpm, _ = kept[-1]
                span = _on_grid((phrase[0] - start) * bpm / 60.0)
                if span is not None:
                    spans.append(span)
                    break
                # Cut too soon to be a bar of its own: the phrase before it holds on over it
                # (or, for the first, the next one takes over from its start).
                kept.pop()
                if not kept:
                    phrase = (start, *phrase[1:])
                else:
                    spans.pop()
            kept.append(phrase)
        self.first_bpm, self.last_bpm = kept[0][1], kept[-1][1]
        self.times = [p[0] for p in kept]
        self.beats = [0.0]
        for span in spans:
            self.beats.append(self.beats[-1] + span)

    def beat_at(self, t: float) -> float:
        times, beats = self.times, self.beats
        if t <= times[0]:
            return beats[0] + (t - times[0]) * self.first_bpm / 60.0
        if t >= times[-1]:
            return beats[-1] + (t - times[-1]) * self.last_bpm / 60.0
        i = bisect.bisect_right(times, t) - 1
        return beats[i] + (t - times[i]) * (beats[i + 1] - beats[i]) / (times[i + 1] - times[i])

    def tempi(self) -> list[tuple[float, float]]:
        """(beat, bpm) at every knot."""
        out = []
        for i in range(len(self.times)):
            if i + 1 < len(self.times):
                bpm = 60.0 * (self.beats[i + 1] - self.beats[i]) / (self.times[i + 1] -
                                                                    self.times[i])
            else:
                bpm = self.last_bpm
            out.append((self.beats[i], bpm))
        return out

    def time_signatures(self) -> list[tuple[float, int, int]]:
        """(beat, numerator, denominator) where the bars change: 4/4 from the start, a short
        bar where a phrase was cut, and 4/4 again where the next one begins."""
        out = [(0.0, BEATS_PER_BAR, 4)]
        for b0, b1 in itertools.pairwise(self.beats):
            bars = math.floor((b1 - b0) / BEATS_PER_BAR)
            short = b1 - b0 - bars * BEATS_PER_BAR
            if short > 0:
                out.append((b0 + bars * BEATS_PER_BAR, *_time_signature(short)))
                out.append((b1, BEATS_PER_BAR, 4))
        return out


def write_midi(path: str | Path, log: PlayLog, title: str = "calmtunes session") -> int:
    """Write ``log`` to ``path`` as a format-1 SMF; return the number of notes written."""
    tpb = TICKS_PER_BEAT
    tempo_map = TempoMap(log.phrases)
    tempo_events: list[tuple[int, int, bytes]] = [
        (0, 0, _meta(0x03, title.encode("ascii", "replace"))),
    ]
    for beat, numerator, denominator in tempo_map.time_signatures():
        # n/2**d, 24 MIDI clocks a click, 8 32nds a beat
        data = bytes([numerator, denominator.bit_length() - 1, 24, 8])
        tempo_events.append((round(beat * tpb), 1, _meta(0x58, data)))
    for beat, bpm in tempo_map.tempi():
        us = min(0xFFFFFF, max(1, round(60_000_000 / max(1.0, bpm))))
        tempo_events.append((round(beat * tpb), 2, _meta(0x51, us.to_bytes(3, "big"))))
    chunks = [_track(tempo_events)]
    written = 0
    for name, voices in TRACKS.items():
        events: list[tuple[int, int, bytes]] = [(0, 0, _meta(0x03, name.encode()))]
        for ch, program in voices.values():
            events.append((0, 1, bytes([0xC0 | ch, program])))
            # the mix's dynamics (phrase swells, breaths, section levels) as every channel's
            # expression, so what is read from the file swells and rests as the sound did
            for t_s, value in expression_events(log.levels):
                events.append((max(0, round(tempo_map.beat_at(t_s) * tpb)), 1,
                               bytes([0xB0 | ch, 11, value])))
        # A key sounds once on a channel: where two notes of the same pitch overlap on one
        # channel (two voices of a chord, a crossfade), the earlier one ends as the next begins,
        # so every note-off closes the note-on it belongs to.
        keyed: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for n in log.notes:
            if n.voice not in voices:
                continue
            ch = voices[n.voice][0]
            # nothing before the file's first tick: a delta time cannot be negative, and one
            # clamped to 0 would move every later event of the track late
            on = max(0, round(tempo_map.beat_at(n.on_s) * tpb))
            off = max(on + 1, round(tempo_map.beat_at(n.off_s) * tpb))
            vel = min(127, max(1, round(n.velocity * 127)))
            pitch = min(127, max(0, int(n.pitch)))
            keyed.setdefault((ch, pitch), []).append((on, off, vel))
        for (ch, pitch), struck in keyed.items():
            struck.sort()
            notes = []  # two strikes of one key at one tick are one note: the longer, louder
            for on, off, vel in struck:
                if notes and notes[-1][0] == on:
                    notes[-1] = (on, max(off, notes[-1][1]), max(vel, notes[-1][2]))
                else:
                    notes.append((on, off, vel))
            for i, (on, off, vel) in enumerate(notes):
                if i + 1 < len(notes) and notes[i + 1][0] < off:
                    off = max(on + 1, notes[i + 1][0])
                events.append((on, 3, bytes([0x90 | ch, pitch, vel])))
                events.append((off, 2, bytes([0x80 | ch, pitch, 0])))
                written += 1
        chunks.append(_track(events))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), tpb)
    _write_whole(Path(path), header + b"".join(chunks))
    return written


def _write_whole(path: Path, data: bytes) -> None:
    """``data`` to ``path`` whole or not at all: written beside it and renamed over it, so a
    write that fails (a full disk, a file-size limit) leaves no cut file, and an earlier file
    of that name as it was (its mode kept). A path that is not a regular file (/dev/null, a
    FIFO), or a file in a folder this user may not write in, is written to directly; an error
    names ``path``, not the file beside it."""
    if path.exists() and not path.is_file():
        path.write_bytes(data)
        return
    target = path.resolve()  # a link is written through, as write_bytes would
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None  # a new file: 0666 less the umask, as any file the command writes
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if mode is not None and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            path.write_bytes(data)  # the folder is not ours to write in; the file is
            return
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if mode is not None:
                os.fchmod(out.fileno(), mode)
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError) and exc.errno is not None:  # said of the user's file
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
