"""Musical attributes measured from notes: the controls the model is conditioned on.

The same functions label the training data (per four-bar phrase) and measure generated music in
the benchmark, so "fidelity" compares like with like. Each attribute is normalised to 0–1:

- ``density``: melody notes per beat / 2 (0.5 ≈ one note per quarter note);
- ``register``: (mean melody pitch − 53) / 28 (0.5 ≈ G4, MIDI 67);
- ``rhythm``: share of melody onsets off the quarter-note beat (rhythmic activity);
- ``harmony``: chord changes per beat (harmonic rhythm; 0.25 = one chord a bar);
- key and mode by Krumhansl–Schmuckler key finding on duration-weighted pitch classes.
"""

from __future__ import annotations

import numpy as np

from calmtunes.music.theory import estimate_key  # noqa: F401 (re-exported)
from models.generator.vocab import STEPS_PER_BEAT, ChordMark, Note

CHORD_TONES = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "sus4": (0, 5, 7),
    "dom7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
}
NAMES = ("density", "register", "rhythm", "harmony")
REGISTER_LO, REGISTER_SPAN = 53.0, 28.0


def pitch_class_weights(notes: list[Note], chords: list[ChordMark], end: int) -> np.ndarray:
    """Duration-weighted pitch classes of melody and chord tones (chords count half)."""
    w = np.zeros(12)
    for n in notes:
        w[n.pitch % 12] += n.dur
    for i, c in enumerate(chords):
        stop = chords[i + 1].start if i + 1 < len(chords) else end
        for iv in CHORD_TONES[c.quality]:
            w[(c.root + iv) % 12] += 0.5 * max(1, stop - c.start)
    return w


def measure(notes: list[Note], chords: list[ChordMark], beats: float) -> dict[str, float]:
    """The normalised attributes of a stretch of music ``beats`` long (see module doc)."""
    beats = max(beats, 1.0)
    if notes:
        density = len(notes) / beats / 2.0
        register = (np.mean([n.pitch for n in notes]) - REGISTER_LO) / REGISTER_SPAN
        rhythm = float(np.mean([n.start % STEPS_PER_BEAT != 0 for n in notes]))
    else:
        density, register, rhythm = 0.0, 0.5, 0.0
    changes = sum(
        1 for i, c in enumerate(chords)
        if i == 0 or (c.root, c.quality) != (chords[i - 1].root, chords[i - 1].quality)
    )
    return {
        "density": float(np.clip(density, 0.0, 1.0)),
        "register": float(np.clip(register, 0.0, 1.0)),
        "rhythm": rhythm,
        "harmony": float(np.clip(changes / beats, 0.0, 1.0)),
    }


#: layout of the conditioning vector fed with every token (also written to the manifest)
CONTROL_LAYOUT = (*(f"tonic_{pc}" for pc in range(12)), "minor", *NAMES)
N_CONTROLS = len(CONTROL_LAYOUT)


def control_vector(tonic: int, mode: str, attrs: dict[str, float]) -> np.ndarray:
    v = np.zeros(N_CONTROLS, dtype=np.float32)
    v[tonic % 12] = 1.0
    v[12] = 1.0 if mode == "minor" else 0.0
    for i, name in enumerate(NAMES):
        v[13 + i] = attrs[name]
    return v
