"""What composers produce and the renderer plays: notes grouped in phrases.

Times are in beats from the start of the phrase, so tempo stays a property of the phrase: the
conductor's tempo changes land on phrase boundaries, musically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from calmtunes.music.controls import Controls

#: voices a phrase may use; the renderer gives each its instrument
VOICES = ("melody", "harmony", "bass", "pad")


@dataclass(frozen=True)
class NoteEvent:
    start_beat: float  # from the start of the phrase, in beats (≥ 0)
    duration_beats: float  # in beats (> 0)
    pitch: int  # MIDI note number (60 = C4, 69 = A4 = 440 Hz)
    velocity: float  # 0–1
    voice: str = "melody"  # one of VOICES


@dataclass(frozen=True)
class Chord:
    start_beat: float
    duration_beats: float
    root_pc: int  # pitch class of the root, 0 = C
    quality: str  # "maj", "min", "dim", "sus2", "sus4", "maj7", "min7", "dom7"


@dataclass(frozen=True)
class Phrase:
    notes: tuple[NoteEvent, ...]
    beats: float  # length of the phrase, in beats
    tempo_bpm: float
    key_pc: int  # tonic pitch class, 0 = C
    mode: str  # "major" or "minor"
    controls: Controls
    chords: tuple[Chord, ...] = ()
    source: str = "procedural"  # which composer made it
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def seconds(self) -> float:
        return self.beats * 60.0 / self.tempo_bpm
