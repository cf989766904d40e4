"""Just enough music theory: scales, chords and calm progressions."""

from __future__ import annotations

import numpy as np

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


# Krumhansl–Kessler probe-tone profiles (Krumhansl 1990), tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(pc_weight: np.ndarray) -> tuple[int, str]:
    """(tonic pitch class, "major"|"minor") by Krumhansl–Schmuckler key finding: the profile
    best correlated with duration-weighted pitch classes. The generator's training labels and
    its runtime both use this, so they agree on what a key is."""
    best, best_r = (0, "major"), -2.0
    if not np.any(pc_weight > 0):
        return best
    # Pearson's r with all 24 rotated profiles at once: one product instead of 24 corrcoef
    # calls (the composer asks this for every phrase). A near-tie (a tritone-symmetric set of
    # pitch classes ties exactly) is decided as before, pair by pair, so the answer is the
    # training labels' to the last rounding.
    w = np.asarray(pc_weight, dtype=np.float64)
    w = w - w.mean()
    norm = np.sqrt(w @ w)
    if norm > 0:
        r = _KEY_PROFILES @ (w / norm)
        i = int(np.argmax(r))
        if np.count_nonzero(r >= r[i] - 1e-9) == 1:
            return i % 12, ("major", "minor")[i // 12]
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = np.corrcoef(pc_weight, np.roll(profile, tonic))[0, 1]
            if r > best_r:
                best, best_r = (tonic, mode), r
    return best


def _key_profiles() -> np.ndarray:
    """(24, 12): the major then minor profile rotated to each tonic, centred and of unit norm."""
    rows = np.array([np.roll(p, tonic) for p in (MAJOR_PROFILE, MINOR_PROFILE)
                     for tonic in range(12)])
    rows -= rows.mean(axis=1, keepdims=True)
    return rows / np.sqrt((rows * rows).sum(axis=1, keepdims=True))


_KEY_PROFILES = _key_profiles()


def degree_root(key_pc: int, mode: str, degree: int) -> int:
    return (key_pc + SCALES[mode][degree % 7]) % 12
