"""Just enough music theory: scales, chords and calm progressions."""

from __future__ import annotations

MAJOR = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)

SCALES = {"major": MAJOR, "minor": NATURAL_MINOR}

CHORD_INTERVALS = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "dom7": (0, 4, 7, 10),
}

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def scale_pcs(key_pc: int, mode: str) -> frozenset[int]:
    """The pitch classes of ``key_pc`` ``mode`` (0 = C)."""
    return frozenset((key_pc + step) % 12 for step in SCALES[mode])


def in_key(pitch: int, key_pc: int, mode: str) -> bool:
    return pitch % 12 in scale_pcs(key_pc, mode)


def chord_pcs(root_pc: int, quality: str) -> tuple[int, ...]:
    return tuple((root_pc + i) % 12 for i in CHORD_INTERVALS[quality])


def key_name(key_pc: int, mode: str) -> str:
    return f"{PITCH_NAMES[key_pc % 12]} {mode}"


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


# Progressions as (scale degree 0-6, quality) per bar; gentle, mostly diatonic, no leading-tone
# tension at the end of a phrase that would ask for resolution too urgently.
PROGRESSIONS = {
    "major": (
        ((0, "maj"), (5, "min"), (3, "maj"), (4, "sus4")),
        ((0, "maj7"), (3, "maj7"), (5, "min7"), (4, "sus2")),
        ((0, "maj"), (3, "maj"), (0, "maj"), (4, "maj")),
        ((5, "min"), (3, "maj"), (0, "maj"), (4, "sus4")),
        ((0, "maj"), (2, "min"), (3, "maj"), (3, "maj")),
        ((3, "maj7"), (0, "maj"), (1, "min7"), (4, "sus4")),
    ),
    "minor": (
        ((0, "min"), (5, "maj"), (2, "maj"), (6, "maj")),
        ((0, "min7"), (3, "min7"), (5, "maj7"), (4, "min")),
        ((0, "min"), (3, "min"), (0, "min"), (6, "sus2")),
        ((5, "maj7"), (2, "maj"), (6, "maj"), (0, "min")),
        ((0, "min"), (6, "maj"), (5, "maj"), (6, "sus4")),
    ),
}


def degree_root(key_pc: int, mode: str, degree: int) -> int:
    return (key_pc + SCALES[mode][degree % 7]) % 12
