"""Pieces from music21's bundled corpus, as melody notes and chord changes on a sixteenth grid.

Sources (all shipped inside the music21 package, no network):

- ``bach``: the four-part chorales. Melody = soprano; chords are read from all four voices at
  each beat (template match, bass note as the root hint).
- ``essenFolksong``: the Essen folk-song collection (monophonic). Chords are inferred per half
  bar from the melody, among the key's diatonic triads.
- ``airdsAirs``: Aird's airs (monophonic), treated like the folk songs.

Only duple meters whose bar is two or four quarter notes are kept (2/4, 4/4, 2/2); 2/4 bars are
paired into bars of four quarters. A pickup sits at the end of bar 0. Pieces with many notes off
the sixteenth grid (triplets) are dropped. The held-out split is by piece: a stable hash of the
piece id puts one piece in ten into ``test``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.generator.attributes import CHORD_TONES, estimate_key, pitch_class_weights
from models.generator.vocab import STEPS_PER_BAR, ChordMark, Note

log = logging.getLogger(__name__)
WORK = Path(__file__).resolve().parent / "cache"
SOURCES = ("bach", "essenFolksong", "airdsAirs")  # every collection this module can read
#: the shipped model's training set: collections whose terms allow a commercial product (see
#: models/MODEL_CARD.md, "Data and licences"). The Essen encodings are distributed with music21
#: under a permission for non-commercial use only (corpus/essenFolksong/license.txt), so they
#: stay out; ``--sources`` can still add them for research.
COMMERCIAL_SOURCES = ("bach", "airdsAirs")


@dataclass
class Piece:
    id: str
    source: str
    tonic: int
    mode: str
    notes: list[Note]
    chords: list[ChordMark]

    @property
    def split(self) -> str:
        h = int(hashlib.sha1(self.id.encode()).hexdigest()[:8], 16)
        return "test" if h % 10 == 0 else "train"

    def to_json(self) -> dict:
        return {"id": self.id, "source": self.source, "tonic": self.tonic, "mode": self.mode,
                "notes": [[n.start, n.dur, n.pitch] for n in self.notes],
                "chords": [[c.start, c.root, c.quality] for c in self.chords]}

    @classmethod
    def from_json(cls, d: dict) -> Piece:
        return cls(d["id"], d["source"], d["tonic"], d["mode"],
                   [Note(*n) for n in d["notes"]], [ChordMark(*c) for c in d["chords"]])


# -- chords ---------------------------------------------------------------------------------
_TEMPLATES = [(r, q, frozenset((r + i) % 12 for i in iv)) for r in range(12)
              for q, iv in CHORD_TONES.items()]


def chord_from_pcs(weights: np.ndarray, bass_pc: int | None,
                   allowed: list[tuple[int, str]] | None = None,
                   previous: tuple[int, str] | None = None) -> tuple[int, str] | None:
    """Best chord for duration-weighted pitch classes: tones covered minus tones not explained,
    a bonus when the bass is the root, triads preferred over sevenths and sus chords."""
    total = weights.sum()
    if total <= 0:
        return previous
    best, best_s = None, -1e9
    for r, q, pcs in _TEMPLATES:
        if allowed is not None and (r, q) not in allowed:
            continue
        inside = sum(weights[p] for p in pcs)
        s = (2 * inside - total) / total - 0.15 * sum(weights[p] == 0 for p in pcs)
        if bass_pc is not None and bass_pc == r:
            s += 0.3
        if q in ("maj", "min"):
            s += 0.1
        if (r, q) == previous:
            s += 0.15
        if s > best_s:
            best, best_s = (r, q), s
    return best


def diatonic_triads(tonic: int, mode: str) -> list[tuple[int, str]]:
    if mode == "major":
        steps, quals = (0, 2, 4, 5, 7, 9, 11), ("maj", "min", "min", "maj", "maj", "min", "dim")
    else:  # natural minor plus the major dominant folk tunes often imply
        steps, quals = (0, 2, 3, 5, 7, 8, 10), ("min", "dim", "maj", "min", "min", "maj", "maj")
    out = [((tonic + s) % 12, q) for s, q in zip(steps, quals)]
    if mode == "minor":
        out.append(((tonic + 7) % 12, "maj"))
    return out


def chords_from_voices(voices: list[list[Note]]) -> list[ChordMark]:
    """One chord per beat from all voices sounding at the beat (chorales)."""
    allnotes = [n for v in voices for n in v]
    if not allnotes:
        return []
    end = max(n.start + n.dur for n in allnotes)
    out: list[ChordMark] = []
    prev = None
    for t in range(0, end, 4):
        w = np.zeros(12)
        bass = None
        for n in allnotes:
            overlap = min(n.start + n.dur, t + 4) - max(n.start, t)
            if overlap > 0:
                w[n.pitch % 12] += overlap + (2 if n.start <= t else 0)
                if bass is None or n.pitch < bass:
                    bass = n.pitch
        c = chord_from_pcs(w, None if bass is None else bass % 12, previous=prev)
        if c is not None and c != prev:
            out.append(ChordMark(t, *c))
            prev = c
    return out


def chords_from_melody(notes: list[Note], tonic: int, mode: str) -> list[ChordMark]:
    """One chord per half bar implied by the melody, among the key's diatonic triads."""
    if not notes:
        return []
    allowed = diatonic_triads(tonic, mode)
    end = max(n.start + n.dur for n in notes)
    out: list[ChordMark] = []
    prev = None
    half = STEPS_PER_BAR // 2
    for t in range(0, end, half):
        w = np.zeros(12)
        for n in notes:
            overlap = min(n.start + n.dur, t + half) - max(n.start, t)
            if overlap > 0:
                w[n.pitch % 12] += overlap + (2 if n.start == t else 0)
        # the tonic chord is the calm default: a small prior toward I (i) and its dominant
        c = chord_from_pcs(w, None, allowed, previous=prev or allowed[0])
        if c is not None and c != prev:
            out.append(ChordMark(t, *c))
            prev = c
    return out


# -- music21 --------------------------------------------------------------------------------
def _part_notes(part, origin: float) -> tuple[list[Note], int]:
    """(notes on the grid, count off the grid) of a part, offsets from ``origin`` quarters."""
    out, off_grid = [], 0
    flat = part.stripTies().flatten()
    for el in flat.notes:
        pitch = max(p.midi for p in el.pitches) if el.isChord else el.pitch.midi
        t = (float(el.offset) - origin) * 4
        d = float(el.duration.quarterLength) * 4
        if abs(t - round(t)) > 0.05 or (d > 0 and abs(d - round(d)) > 0.05):
            off_grid += 1
        t, d = round(t), round(d)
        if d <= 0 or t < 0:
            continue
        out.append(Note(t, d, pitch))
    out.sort(key=lambda n: (n.start, -n.pitch))
    mono, last = [], -1
    for n in out:
        if n.start != last:
            mono.append(n)
            last = n.start
    return mono, off_grid


def piece_from_score(score, pid: str, source: str) -> Piece | None:
    """A :class:`Piece` from a music21 score, or None when its meter or rhythm does not fit."""
    sigs = list(score.recurse().getElementsByClass("TimeSignature"))
    if not sigs:
        return None
    ratios = {ts.ratioString for ts in sigs}
    if not ratios <= {"2/4", "4/4", "2/2"}:
        return None
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    bar_q = sigs[0].barDuration.quarterLength
    measures = list(parts[0].getElementsByClass("Measure"))
    pickup = 0.0
    if measures:
        first = measures[0]
        content = float(first.highestTime)
        if 0 < content < bar_q:
            pickup = content
    origin = pickup - 4.0 if pickup > 0 else 0.0  # the pickup ends bar 0
    melody, off = _part_notes(parts[0], origin)
    if len(melody) < 16 or off > 0.05 * len(melody):
        return None
    voices = [melody]
    if source == "bach":
        if len(parts) < 4:
            return None
        for p in parts[1:]:
            v, _ = _part_notes(p, origin)
            voices.append(v)
    end = max(n.start + n.dur for n in melody)
    w = pitch_class_weights([n for v in voices for n in v], [], end)
    tonic, mode = estimate_key(w)
    if source == "bach":
        chords = chords_from_voices(voices)
    else:
        chords = chords_from_melody(melody, tonic, mode)
    return Piece(pid, source, tonic, mode, melody, chords)


def _paths(sources: tuple[str, ...]) -> list[str]:
    from music21 import corpus

    out = []
    for p in corpus.getPaths():
        s = str(p)
        rel = s.split("/corpus/", 1)[-1]
        src = rel.split("/", 1)[0]
        if src not in sources:
            continue
        if src == "bach" and not s.endswith((".mxl", ".xml", ".krn")):
            continue
        out.append(s)
    return sorted(out)


def _extract_file(args: tuple[str, int | None]) -> list[dict]:
    path, limit = args
    import warnings

    from music21 import converter

    warnings.filterwarnings("ignore")
    rel = path.split("/corpus/", 1)[-1]
    source = rel.split("/", 1)[0]
    try:
        parsed = converter.parse(path)
    except Exception as exc:  # a file music21 cannot read is skipped, not fatal
        log.warning("skipping %s: %s", rel, exc)
        return []
    scores = list(parsed.scores) if hasattr(parsed, "scores") and parsed.scores else [parsed]
    out = []
    for i, sc in enumerate(scores[:limit]):
        try:
            piece = piece_from_score(sc, f"{rel}#{i}", source)
        except Exception as exc:
            log.warning("skipping %s#%d: %s", rel, i, exc)
            continue
        if piece is not None:
            out.append(piece.to_json())
    return out


def extract(sources: tuple[str, ...] = SOURCES, max_files: int | None = None,
            per_file: int | None = None, workers: int = 2,
            cache: Path | None = WORK / "corpus.json.gz") -> list[Piece]:
    """Parse the corpus (or read the cache). ``max_files``/``per_file`` make a small corpus."""
    if cache is not None and cache.exists():
        with gzip.open(cache, "rt") as f:
            return [Piece.from_json(d) for d in json.load(f)]
    paths = _paths(sources)
    if max_files is not None:
        by_src: dict[str, list[str]] = {}
        for p in paths:
            by_src.setdefault(p.split("/corpus/", 1)[-1].split("/", 1)[0], []).append(p)
        paths = [p for v in by_src.values() for p in v[:max_files]]
    jobs = [(p, per_file) for p in paths]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            results = pool.map(_extract_file, jobs, chunksize=1)
    else:
        results = [_extract_file(j) for j in jobs]
    dicts = [d for r in results for d in r]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(cache, "wt") as f:
            json.dump(dicts, f)
    return [Piece.from_json(d) for d in dicts]


def stats(pieces: list[Piece]) -> dict:
    by = {}
    for p in pieces:
        s = by.setdefault(p.source, {"train": 0, "test": 0})
        s[p.split] += 1
    return by


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    ps = extract()
    print(json.dumps(stats(ps), indent=1))
    print(json.dumps(asdict(ps[0])["notes"][:5]))
