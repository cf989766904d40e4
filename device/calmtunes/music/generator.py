"""The neural composer: the int8 ONNX generator, streamed one token at a time.

The model (``models/calmtunes-generator.onnx``, see ``models/MODEL_CARD.md``) is a conditioned
GRU over event tokens — ``BAR``, ``POS_p`` (sixteenth in the bar), ``CHORD_root_quality``,
``PITCH_m`` (melody, MIDI), ``DUR_d`` (sixteenths). Each call of the step graph takes one token,
the conditioning vector and the recurrent state, and returns next-token logits and the new state,
so the token stream — and with it the music — continues from phrase to phrase.

Each phrase is four bars of 4/4, placed in the form (:mod:`calmtunes.music.form`): the
section sets register, density and harmonic area (the key the model is conditioned on), chords
may change only in the bars the preset's harmonic rhythm allows, and a phrase that brings a
stored theme back (:mod:`calmtunes.music.motifs`) feeds the transformed line to the model token
by token while the model chooses the chords under it — the conditioning "repeat/vary this
motif" is the forced melody itself. The accompaniment is :mod:`calmtunes.music.arrange`'s and
the phrase is performed by :mod:`calmtunes.music.perform`. The conditioning (key, mode,
density, register, rhythmic activity, harmonic rhythm) is set from the :class:`Controls` when
a phrase starts, so control changes land on phrase boundaries. Sampling is constrained: a
grammar keeps the token stream well formed, melody pitches stay in the key's scale and within
:data:`~calmtunes.music.form.MELODY_REACH` semitones of the register centre, tiring of pitches
played often lately, chords stay diatonic, sparse requests keep onsets on half bars and the
fourth beat; melody pitches are pulled toward the phrase's melodic arch
(:data:`~calmtunes.music.form.CONTOUR_ST`, bar by bar around the register centre); within
that, temperature and nucleus (top-p) sampling. Each phrase is drawn ``candidates`` times from
the same state and the draw whose measured attributes come nearest the request is kept.

The model's manifest (``<model>.json`` beside it) holds its SHA-256, checked at load, and its
token list; the manifest's own SHA-256 must be one this release pins (:mod:`model_pin`, in the
package, outside the model's folder), unless ``music.model_trust`` is ``any``. After the hashes,
a probe writes :data:`PROBE_BARS` bars with the default controls and a fixed seed and rejects a
model whose output is degenerate (see :meth:`NeuralComposer._probe`). Any problem — missing
file, unpinned manifest, wrong hash, onnxruntime failure, non-finite or degenerate output —
raises :class:`ModelError`; the composer component then plays the procedural composer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from calmtunes.errors import ModelError
from calmtunes.music import theory
from calmtunes.music.arrange import accompany, area_key, bars_per_chord
from calmtunes.music.controls import TEMPO_RANGE, Controls
from calmtunes.music.events import Chord, NoteEvent, Phrase
from calmtunes.music.form import CONTOUR_ST, MELODY_REACH, Form
from calmtunes.music.model_pin import PINNED_MANIFESTS
from calmtunes.music.motifs import MotifMemory
from calmtunes.music.perform import perform

log = logging.getLogger(__name__)

MODEL_NAME = "calmtunes-generator.onnx"
ENV_MODEL = "CALMTUNES_MODEL"
SYSTEM_MODEL = Path("/usr/share/calmtunes") / MODEL_NAME
BARS = 4
CALM_MAJOR_KEYS = (0, 5, 7, 2, 3)  # C F G D Eb; the minor mode uses the relative minor
REGISTER_PULL = 5.0  # semitones: the melody's log-odds fall by 1 per this distance from the arch
FATIGUE = 2.0  # log-odds a melody pitch loses each time it is played (decaying by FATIGUE_DECAY
FATIGUE_DECAY = 0.85  # a note), so the line travels instead of circling one pitch
LONGING = 0.25  # log-odds every other pitch class gains per note (decaying too, so at most
#                 about 1.7): a degree long unheard is wanted back, and a sparse sleep line of
#                 sixty notes still uses all seven (without it one went missing for some seeds)
SPARSE_DENSITY = 0.3  # below this density, melody onsets and chord changes fall on half bars
MAX_TOKENS_PER_BAR = 80  # a bar holds at most 16 onsets of 4 tokens; more means a bad model
TRUST = ("pinned", "any")  # music.model_trust
# The load-time probe: PROBE_BARS bars with the default controls, sampled with PROBE_SEED (the
# same music at every load, whatever music.seed is), must pass these limits.
PROBE_BARS = 4
PROBE_SEED = 20240601
# The share of its probability the model puts, before the grammar's mask, on tokens the grammar
# allows. The shipped model: 0.99 on average over the probe (0.97–0.99 over seeds); a network with
# random or zeroed output weights spreads it over all 160 tokens, about 0.1.
MIN_GRAMMAR_MASS = 0.5
# Logits that move less than this (largest standard deviation of one token's logit over the
# probe's steps) come from a network that no longer reads its input.
MIN_LOGIT_SPREAD = 1e-3
# Logits (natural log-odds) beyond this size come from a damaged scale or bias: the shipped model
# stays within ±21 over every preset and the extremes of density and register.
MAX_ABS_LOGIT = 200.0


def default_model_path() -> Path:
    """Where the model is looked for when ``music.model_path`` is empty, in order:
    ``$CALMTUNES_MODEL`` (the unit sets the release's), the release's own ``model/`` beside
    the virtual environment running (``/opt/calmtunes/current/model/``: so a technician's
    ``calmtunes selftest`` from that release checks the file the daemon loads, without the
    unit's environment), ``/usr/share/calmtunes/calmtunes-generator.onnx``, then the source
    tree's ``models/calmtunes-generator.onnx``. The first that exists wins; if none does, the
    last candidate is returned and loading it reports it missing."""
    candidates = []
    if os.environ.get(ENV_MODEL):
        candidates.append(Path(os.environ[ENV_MODEL]))
    candidates.append(Path(sys.prefix).parent / "model" / MODEL_NAME)
    candidates.append(SYSTEM_MODEL)
    candidates.append(Path(__file__).resolve().parents[3] / "models" / MODEL_NAME)
    for c in candidates:
        if c.exists():
            return c
    return candidates[-1]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(model_path: Path, trust: str = "pinned") -> dict:
    """The manifest of ``model_path``, after checking that the manifest is pinned by this
    release (unless ``trust`` is ``"any"``) and that the model file matches its hash."""
    if trust not in TRUST:
        raise ModelError(f"music.model_trust is {trust!r}; use one of {', '.join(TRUST)}")
    manifest_path = model_path.with_suffix(".json")
    if not model_path.is_file():
        raise ModelError(f"generator model {model_path} not found: reinstall calmtunes, set "
                         f"music.model_path, or run `python -m models.generator.train`")
    if not manifest_path.is_file():
        raise ModelError(f"generator manifest {manifest_path} not found: it is written with the "
                         f"model by `python -m models.generator.train`")
    raw = manifest_path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest not in PINNED_MANIFESTS:
        if trust != "any":
            raise ModelError(
                f"generator manifest {manifest_path} is not one this calmtunes release trusts "
                f"(its SHA-256 {digest[:12]}… is not pinned): reinstall calmtunes and its model "
                f"together (sudo ./scripts/install-pi); for a model of your own set "
                f"music.model_trust: any")
        log.warning("music.model_trust is 'any': loading generator manifest %s (SHA-256 %s), "
                    "which this release does not pin; for developing a model only", manifest_path,
                    digest)
    try:
        manifest = json.loads(raw)
        _check_manifest(manifest)
        expected = manifest["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"generator manifest {manifest_path} is unreadable ({exc}); "
                         f"reinstall the model") from exc
    actual = file_sha256(model_path)
    if actual != expected:
        raise ModelError(f"generator model {model_path} is corrupt: SHA-256 {actual[:12]}… "
                         f"differs from the manifest's {expected[:12]}…; reinstall the model")
    return manifest


def _check_manifest(m: Any) -> None:
    """ValueError naming what a manifest lacks or holds of the wrong kind."""
    if not isinstance(m, dict):
        raise ValueError(f"a JSON object expected, not {type(m).__name__}")
    for key in ("sha256", "tokens", "controls", "state_shape"):
        if key not in m:
            raise ValueError(f"no {key!r}")
    if not isinstance(m["sha256"], str):
        raise ValueError("'sha256' is not text")
    for key in ("tokens", "controls"):
        if not isinstance(m[key], list) or not m[key] or \
                not all(isinstance(t, str) for t in m[key]):
            raise ValueError(f"{key!r} is not a list of names")
    shape = m["state_shape"]
    if not (isinstance(shape, list) and len(shape) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 1 << 16
                    for n in shape)):
        raise ValueError(f"'state_shape' is {shape!r}, not [layers, hidden]")


class TokenTable:
    """The token list split into kinds, with what each token means."""

    def __init__(self, tokens: list[str]) -> None:
        self.size = len(tokens)
        self.kind = np.zeros(self.size, dtype=np.int8)  # 0 other, 1 POS, 2 CHORD, 3 PITCH, 4 DUR
        self.value = np.zeros(self.size, dtype=np.int64)
        self.chord: dict[int, tuple[int, str]] = {}
        try:
            self.bos, self.bar = tokens.index("BOS"), tokens.index("BAR")
        except ValueError as exc:
            raise ModelError("generator token list lacks BOS or BAR; reinstall the model") from exc
        for i, name in enumerate(tokens):
            head, _, rest = name.partition("_")
            if head == "POS":
                self.kind[i], self.value[i] = 1, int(rest)
            elif head == "CHORD":
                root, quality = rest.split("_")
                if quality not in theory.CHORD_INTERVALS:
                    raise ModelError(f"generator chord quality {quality!r} unknown")
                self.kind[i], self.value[i] = 2, int(root)
                self.chord[i] = (int(root), quality)
            elif head == "PITCH":
                self.kind[i], self.value[i] = 3, int(rest)
            elif head == "DUR":
                self.kind[i], self.value[i] = 4, int(rest)
        self.pos = self.kind == 1
        self.dur = self.kind == 4

    def chord_mask(self, key_pc: int, mode: str) -> np.ndarray:
        """Chords whose every tone is in the scale (diatonic)."""
        scale = theory.scale_pcs(key_pc, mode)
        m = np.zeros(self.size, dtype=bool)
        for i, (root, quality) in self.chord.items():
            m[i] = all(pc in scale for pc in theory.chord_pcs(root, quality))
        return m

    def pitch_mask(self, key_pc: int, mode: str, lo: int, hi: int) -> np.ndarray:
        scale = theory.scale_pcs(key_pc, mode)
        v = self.value
        inside = (self.kind == 3) & (v >= lo) & (v <= hi)
        return inside & np.isin(v % 12, list(scale))


class NeuralComposer:
    """Composes phrases with the ONNX generator; see the module docstring."""

    name = "onnx"
    form: Form | None = None  # shared with the procedural composer by the composer component
    motifs: MotifMemory | None = None
    _fatigue: np.ndarray | None = None
    _index: dict[str, int] | None = None

    def __init__(self, model_path: Path | str, seed: int | None = None, temperature: float = 0.9,
                 top_p: float = 0.92, candidates: int = 4, trust: str = "pinned") -> None:
        self.model_path = Path(model_path)
        self.manifest = load_manifest(self.model_path, trust)
        try:
            self.tokens = TokenTable(list(self.manifest["tokens"]))
            self.control_layout = list(self.manifest["controls"])
            self.steps_per_bar = int(self.manifest.get("steps_per_bar", 16))
            lo, span = self.manifest.get("register_pitch", (53.0, 28.0))
            self.register_lo, self.register_span = float(lo), float(span)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"generator manifest of {self.model_path} is malformed ({exc}); "
                             f"reinstall the model") from exc
        self._lock = threading.Lock()  # the audio thread may ask for a phrase (compose_now)
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.candidates = max(1, int(candidates))
        layers, hidden = self.manifest["state_shape"]
        try:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # one core: the Pi's others render audio
            opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(self.model_path), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"generator model {self.model_path} does not load: {exc}") from exc
        self.state = np.zeros((layers, 1, hidden), dtype=np.float32)
        self._grammar_key: tuple | None = None
        self._grammar_table: dict = {}
        self._pull = np.zeros(self.tokens.size)
        self._probing: list[tuple[np.ndarray, float]] | None = None
        self.major_key = CALM_MAJOR_KEYS[0]
        self.tokens_generated = 0
        # one step now: a model whose graph or outputs do not fit fails here, not mid-music
        probe = self._step(self.tokens.bos, self.conditioning(Controls()))
        if probe.shape != (self.tokens.size,):
            raise ModelError(f"generator gives {probe.shape} logits for {self.tokens.size} "
                             f"tokens; model and manifest do not belong together")
        self.probe_report = self._probe()
        # the music proper starts afresh, from music.seed (the probe leaves no trace in it)
        self.rng = np.random.default_rng(seed)
        self.major_key = int(self.rng.choice(CALM_MAJOR_KEYS))
        self.state[:] = 0.0
        self.started = False
        self.last_chord: tuple[int, str] | None = None
        self._fatigue = None
        self.tokens_generated = 0

    @classmethod
    def from_config(cls, config, seed: int | None = None) -> NeuralComposer:
        path = Path(config.music.model_path) if config.music.model_path else default_model_path()
        music = config.music
        return cls(path, seed=seed, temperature=music.temperature, top_p=music.top_p,
                   candidates=music.candidates, trust=music.model_trust)

    def _probe(self) -> dict:
        """Write :data:`PROBE_BARS` bars with the default controls from a fixed seed and raise
        :class:`ModelError` if the output is degenerate: logits that ignore the input or are
        absurdly large (a damaged scale saturates sampling into one choice), most of
        the model's probability on tokens the grammar forbids (out-of-range or ill-formed
        tokens: the mask would be doing all the composing), no melody notes, or one pitch
        throughout. Non-finite logits and runaway bars already raise in :meth:`_step` and
        :meth:`generate_bars`. Returns what it measured."""
        self.rng = np.random.default_rng(PROBE_SEED)
        self.major_key = CALM_MAJOR_KEYS[0]
        self.state[:] = 0.0
        self.started = False
        self.last_chord = None
        self._probing = []
        try:
            notes, _chords, _key, _mode = self.generate_bars(Controls(), PROBE_BARS)
            seen = self._probing
        finally:
            self._probing = None
        logits = np.array([lg for lg, _ in seen])
        with np.errstate(over="ignore"):  # absurd logits are reported below, not warned about
            spread = float(logits.std(axis=0).max()) if len(logits) > 1 else 0.0
        size = float(np.abs(logits).max()) if len(logits) else 0.0
        mass = float(np.mean([m for _, m in seen])) if seen else 0.0
        pitches = {p for _, _, p in notes}
        report = {"steps": len(seen), "grammar_mass": round(mass, 3),
                  "logit_spread": round(spread, 4), "max_abs_logit": round(size, 1),
                  "notes": len(notes), "pitches": len(pitches)}
        where = f"generator model {self.model_path} failed its load probe"
        if spread < MIN_LOGIT_SPREAD:
            raise ModelError(f"{where}: its logits do not change with its input (spread "
                             f"{spread:.2g}); the weights are damaged; reinstall the model")
        if size > MAX_ABS_LOGIT:
            raise ModelError(f"{where}: logits as large as {size:.3g} (a sound model stays "
                             f"within ±{MAX_ABS_LOGIT:g}); the weights are damaged; reinstall the "
                             f"model")
        if mass < MIN_GRAMMAR_MASS:
            raise ModelError(f"{where}: it puts only {mass:.0%} of its probability on "
                             f"well-formed tokens (a sound model: about 99 %); reinstall the model")
        if not notes:
            raise ModelError(f"{where}: {PROBE_BARS} bars without a melody note (all rests); "
                             f"reinstall the model")
        if len(pitches) < 2:
            raise ModelError(f"{where}: one pitch repeated through {len(notes)} notes; "
                             f"reinstall the model")
        log.debug("generator probe: %s", report)
        return report

    # -- conditioning -------------------------------------------------------------------------
    def key_for(self, mode: str) -> int:
        """The tonic: a calm major key, or its relative minor (same notes, smooth changes)."""
        return self.major_key if mode == "major" else (self.major_key + 9) % 12

    def conditioning(self, controls: Controls, tonic: int | None = None,
                     harmony: float | None = None) -> np.ndarray:
        """The model's conditioning vector for ``controls`` (layout from the manifest).

        density and register map one to one (density 0.5 ≈ one melody note a beat; register 0.5
        ≈ melody around G4); rhythmic activity and harmonic rhythm follow density, so a sparse
        setting is also rhythmically plain with slow harmony. ``tonic`` (default: the home key
        of the mode) and ``harmony`` (chord changes per beat) override those two."""
        mode = controls.mode if controls.mode in theory.SCALES else "major"
        density = float(np.clip(controls.density, 0.0, 1.0))
        values = {
            "minor": 1.0 if mode == "minor" else 0.0,
            "density": density,
            "register": float(np.clip(controls.register, 0.0, 1.0)),
            "rhythm": rhythm_for(density),
            "harmony": harmony_for(density) if harmony is None else float(harmony),
        }
        if tonic is None:
            tonic = self.key_for(mode)
        vec = np.zeros((1, len(self.control_layout)), dtype=np.float32)
        for i, name in enumerate(self.control_layout):
            if name.startswith("tonic_"):
                vec[0, i] = 1.0 if int(name[6:]) == tonic else 0.0
            elif name in values:
                vec[0, i] = values[name]
            else:
                raise ModelError(f"generator control {name!r} is not one calmtunes knows")
        return vec

    # -- streaming ----------------------------------------------------------------------------
    def _step(self, token: int, controls: np.ndarray) -> np.ndarray:
        try:
            logits, self.state = self.session.run(
                None, {"token": np.array([token], dtype=np.int64), "controls": controls,
                       "state": self.state})
        except Exception as exc:
            raise ModelError(f"generator inference failed: {exc}") from exc
        logits = logits[0]
        if not np.all(np.isfinite(logits)):
            raise ModelError("generator produced non-finite logits")
        self.tokens_generated += 1
        return logits

    def _sample(self, logits: np.ndarray, choices: np.ndarray) -> int:
        """One of ``choices`` (token ids): temperature, the register pull on melody pitches,
        then nucleus (top-p) sampling."""
        if len(choices) == 0:
            raise ModelError("generator grammar left no token to choose")
        if self._probing is not None:  # the load probe: the model's own mass on the choices
            e = np.exp(logits - logits.max())
            self._probing.append((logits.copy(), float(e[choices].sum() / e.sum())))
        z = logits[choices] / self.temperature + self._pull[choices]
        if self._fatigue is not None:
            z = z - self._fatigue[choices]
        p = np.exp(z - z.max())
        order = np.argsort(-p)
        cum = np.cumsum(p[order])
        k = int(np.searchsorted(cum, self.top_p * cum[-1])) + 1
        j = int(np.searchsorted(cum[:k], self.rng.random() * cum[k - 1], side="right"))
        return int(choices[order[min(j, k - 1)]])

    def _grammar(self, key: int, mode: str, centre: float, sparse: bool = False) -> dict:
        """Allowed next tokens by (last kind, position), as token ids, for one phrase's key,
        mode and register: after BAR, DUR or CHORD a later position (or the bar's end; for a
        ``sparse`` request only the half-bar positions and the fourth beat, as the model alone
        stays busier than about 0.75 notes a beat);
        after POS a diatonic chord or a melody pitch in scale and register; after CHORD also
        a pitch; after PITCH a duration."""
        t = self.tokens
        pitch_ok = t.pitch_mask(key, mode, int(centre - MELODY_REACH),
                                int(centre + MELODY_REACH))
        chord_ok = t.chord_mask(key, mode)
        bar = np.zeros(t.size, dtype=bool)
        bar[t.bar] = True
        table = {}
        grid = self.steps_per_bar // 2 if sparse else 1
        # a sparse line may also move on the fourth beat (a pickup into the next bar): on the
        # first and third beats only, its notes marked every other beat, and sped up to meet a
        # stressed listener's heart (sleep at 88 bpm) it was heard at half the plan (44) by a
        # beat tracker expecting 60
        pickup = 3 * self.steps_per_bar // 4 if sparse else 0
        for pos in range(-1, self.steps_per_bar):
            later = (t.pos & (t.value > pos) & ((t.value % grid == 0) | (t.value == pickup))
                     ) | bar
            table["BAR", pos] = np.flatnonzero(later)
            table["DUR", pos] = np.flatnonzero(later)
            table["CHORD", pos] = np.flatnonzero(later | pitch_ok)
            table["POS", pos] = np.flatnonzero(chord_ok | pitch_ok)
            table["POS-", pos] = np.flatnonzero(pitch_ok)  # in a bar where harmony holds
            table["PITCH", pos] = np.flatnonzero(t.dur)
        table["CHORDS"] = np.flatnonzero(chord_ok)
        return table

    def generate_bars(self, controls: Controls, bars: int = BARS, key: int | None = None,
                      chord_bars: set[int] | None = None,
                      forced: dict[int, list[tuple[int, int, int]]] | None = None,
                      harmony: float | None = None):
        """Feed the token stream for ``bars`` bars under ``controls``.

        ``key`` is the tonic to write in (default: the mode's home key); chords may change only
        in the bars in ``chord_bars`` (default: any), at most once in such a bar; ``forced``
        holds, per bar, a melody to play — (position, duration, pitch) in sixteenths — which is
        fed to the model while it chooses the chords. Returns (notes as (start, dur, pitch) in
        sixteenths from the first bar, chord changes as (start, root, quality), tonic, mode)."""
        mode = controls.mode if controls.mode in theory.SCALES else "major"
        key = self.key_for(mode) if key is None else key
        cond = self.conditioning(controls, tonic=key, harmony=harmony)
        if self._fatigue is None:
            self._fatigue = np.zeros(self.tokens.size)
        centre = self.register_lo + self.register_span * float(np.clip(controls.register, 0, 1))
        sparse = controls.density < SPARSE_DENSITY
        grammar_key = (key, mode, round(centre), sparse)
        if self._grammar_key != grammar_key:
            self._grammar_table = self._grammar(key, mode, centre, sparse)
            self._grammar_key = grammar_key
        grammar = self._grammar_table
        is_pitch = self.tokens.kind == 3
        pitches = self.tokens.value.astype(float)
        t = self.tokens
        kinds = ("", "POS", "CHORD", "PITCH", "DUR")
        notes: list[tuple[int, int, int]] = []
        chords: list[tuple[int, int, str]] = []
        if not self.started:
            self._step(t.bos, cond)
            self.started = True
        spb = self.steps_per_bar
        for bar in range(bars):
            arch = centre + CONTOUR_ST[bar % len(CONTOUR_ST)]
            self._pull = np.where(is_pitch, -np.abs(pitches - arch) / REGISTER_PULL, 0.0)
            logits = self._step(t.bar, cond)
            chord_free = chord_bars is None or bar in chord_bars
            if forced is not None:
                self._forced_bar(bar, forced.get(bar, []), cond, chord_free, notes, chords)
                continue
            pos, pitch, after = -1, 0, "BAR"
            for _ in range(MAX_TOKENS_PER_BAR):
                tok = self._sample(logits, grammar[after if after != "POS" or chord_free
                                                   else "POS-", pos])
                if tok == t.bar:
                    break  # fed when the next bar (or phrase) opens, with its controls
                after = kinds[t.kind[tok]]
                if after == "POS":
                    pos = int(t.value[tok])
                elif after == "CHORD":
                    chords.append((bar * spb + pos, *t.chord[tok]))
                    chord_free = False
                elif after == "PITCH":
                    pitch = int(t.value[tok])
                    self._tire(tok)
                else:
                    notes.append((bar * spb + pos, int(t.value[tok]), pitch))
                logits = self._step(tok, cond)
                if after == "DUR" and pos >= spb - 1:
                    break
            else:
                raise ModelError("generator ran on in one bar; the model misbehaves")
        return notes, chords, key, mode

    def _tire(self, token: int) -> None:
        """A melody pitch was played: it loses :data:`FATIGUE` log-odds, every pitch of its
        pitch class a third of that, and every other pitch class gains :data:`LONGING` (all
        decaying), so the line uses the whole scale."""
        t = self.tokens
        self._fatigue *= FATIGUE_DECAY
        pitch = t.kind == 3
        same_pc = pitch & (t.value % 12 == t.value[token] % 12)
        self._fatigue[pitch & ~same_pc] -= LONGING
        self._fatigue[same_pc] += FATIGUE / 3.0
        self._fatigue[token] += FATIGUE * 2.0 / 3.0

    def _token(self, name: str) -> int:
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.manifest["tokens"])}
        return self._index[name]

    def _forced_bar(self, bar: int, line: list[tuple[int, int, int]], cond: np.ndarray,
                    chord_free: bool, notes: list, chords: list) -> None:
        """Feed one bar of a given melody; the model may put a chord under a note where the
        harmonic rhythm allows one (re-harmonising the line)."""
        t, spb = self.tokens, self.steps_per_bar
        for pos, dur, pitch in line:
            logits = self._step(self._token(f"POS_{pos}"), cond)
            pitch_tok = self._token(f"PITCH_{pitch}")
            if chord_free:
                choices = np.append(self._grammar_table["CHORDS"], pitch_tok)
                tok = self._sample(logits, choices)
                if tok != pitch_tok:
                    chords.append((bar * spb + pos, *t.chord[tok]))
                    chord_free = False
                    self._step(tok, cond)
            self._step(pitch_tok, cond)
            self._tire(pitch_tok)
            dur = max(1, min(dur, spb - pos, 16))
            self._step(self._token(f"DUR_{dur}"), cond)
            notes.append((bar * spb + pos, dur, pitch))

    def forced_line(self, line: list[tuple[float, float, int, float]]
                    ) -> dict[int, list[tuple[int, int, int]]]:
        """A recalled motif — (start beat, duration beats, pitch, velocity) — as the model's
        tokens allow it: per bar (position, duration, pitch) in sixteenths, pitches folded by
        octaves into the model's melody range, one note per position, none across a bar line."""
        pitches = [int(t.value[i]) for t in (self.tokens,) for i in np.flatnonzero(t.kind == 3)]
        lo, hi = min(pitches), max(pitches)
        spb = self.steps_per_bar
        out: dict[int, list[tuple[int, int, int]]] = {}
        last = -1
        for start, dur, pitch, _ in sorted(line):
            s16 = round(start * spb / 4)
            if s16 <= last or s16 >= BARS * spb:
                continue
            while pitch < lo:
                pitch += 12
            while pitch > hi:
                pitch -= 12
            bar, pos = divmod(s16, spb)
            out.setdefault(bar, []).append((pos, max(1, round(dur * spb / 4)), pitch))
            last = s16
        return out

    def compose_bars(self, controls: Controls, bars: int = BARS, **kwargs):
        """Like :meth:`generate_bars`, but draws ``candidates`` continuations from the same
        state and keeps the one whose measured attributes come nearest the request (the
        stream then continues from that one)."""
        if self.candidates == 1:
            return self.generate_bars(controls, bars, **kwargs)
        state, started = self.state.copy(), self.started
        fatigue = None if self._fatigue is None else self._fatigue.copy()
        best = None
        for _ in range(self.candidates):
            self.state, self.started = state.copy(), started
            self._fatigue = None if fatigue is None else fatigue.copy()
            drawn = self.generate_bars(controls, bars, **kwargs)
            d = self.distance(drawn, controls, bars, kwargs.get("harmony"))
            if best is None or d < best[0]:
                best = (d, drawn, self.state.copy(), self._fatigue.copy())
        self.state, self.started, self._fatigue = best[2], True, best[3]
        return best[1]

    def distance(self, drawn, controls: Controls, bars: int,
                 harmony: float | None = None) -> float:
        """How far generated bars are from the request, in tolerance units (see
        ``scripts/bench_generator``): density, register, rhythm, harmonic rhythm, plus 2 when
        key finding names another key or mode. The measures mirror
        ``models/generator/attributes.py``, which labelled the training data."""
        notes, marks, key, mode = drawn
        spb = self.steps_per_bar
        beats = bars * 4.0
        step_beats = spb // 4
        density = float(np.clip(controls.density, 0.0, 1.0))
        if notes:
            got_density = min(1.0, len(notes) / beats / 2.0)
            got_register = float(np.clip(
                (np.mean([p for _, _, p in notes]) - self.register_lo) / self.register_span, 0, 1))
            got_rhythm = float(np.mean([s % step_beats != 0 for s, _, _ in notes]))
        else:
            got_density, got_register, got_rhythm = 0.0, 0.5, 0.0
        changes = sum(1 for i, m in enumerate(marks) if i == 0 or m[1:] != marks[i - 1][1:])
        d = (abs(got_density - density) / 0.15
             + abs(got_register - float(np.clip(controls.register, 0, 1))) / 0.1
             + abs(got_rhythm - rhythm_for(density)) / 0.15
             + abs(min(1.0, changes / beats)
                   - (harmony_for(density) if harmony is None else harmony)) / 0.15)
        weights = np.zeros(12)
        for _, dur, p in notes:
            weights[p % 12] += dur
        total = bars * spb
        for i, (start, root, quality) in enumerate(marks):
            stop = marks[i + 1][0] if i + 1 < len(marks) else total
            for pc in theory.chord_pcs(root, quality):
                weights[pc] += 0.5 * max(1, stop - start)
        if theory.estimate_key(weights) != (key, mode):
            d += 2.0
        return d

    def next_phrase(self, controls: Controls) -> Phrase:
        with self._lock:
            return self._next_phrase(controls)

    def _next_phrase(self, controls: Controls) -> Phrase:
        if self.form is None:
            self.form = Form(int(self.rng.integers(1 << 31)))
        if self.motifs is None:
            self.motifs = MotifMemory(int(self.rng.integers(1 << 31)))
        mode = controls.mode if controls.mode in theory.SCALES else "major"
        plan = self.form.next(controls)
        played = plan.apply(controls)
        area = area_key(self.key_for(mode), mode, plan)
        span = bars_per_chord(played.density)
        if plan.role == "close":
            span = max(2, span)
        centre = self.register_lo + self.register_span * float(np.clip(played.register, 0, 1))
        forced = None
        if plan.role == "return" and self.motifs.has(plan.theme_id, plan.part):
            forced = self.forced_line(self.motifs.recall(
                plan.theme_id, plan.part, plan.transform, area, mode, centre))
        notes, marks, key, mode = self.compose_bars(
            played, BARS, key=area, chord_bars=set(range(0, BARS, span)), forced=forced,
            harmony=1.0 / (4.0 * span))
        spb = self.steps_per_bar
        beats_per_step = 4.0 / spb
        total = BARS * spb
        beats = float(BARS * 4)
        events: list[NoteEvent] = []
        melodic = float(np.clip(played.melodic, 0.0, 1.0))  # the section's
        velocity = 0.35 + 0.25 * melodic
        for i, (start, dur, pitch) in enumerate(notes):
            stop = notes[i + 1][0] if i + 1 < len(notes) else total
            length = max(1, min(dur, stop - start, total - start))
            accent = 1.0 if start % (spb // 2) == 0 else 0.85 if start % (spb // 4) == 0 else 0.75
            events.append(NoteEvent(start * beats_per_step, length * beats_per_step, pitch,
                                    round(velocity * accent, 3), "melody"))
        # a chord the model brought in on the way through a bar sounds from the bar line
        marks = [(m[0] - m[0] % spb, m[1], m[2]) for m in marks]
        marks = [m for i, m in enumerate(marks) if i + 1 == len(marks) or marks[i + 1][0] > m[0]]
        if plan.role == "theme":
            self.motifs.store(plan.theme_id, plan.part, [
                (n.start_beat, n.duration_beats, n.pitch, n.velocity) for n in events], key, mode)
        if not marks or marks[0][0] > 0:
            first = self.last_chord
            if first is None or not all(pc in theory.scale_pcs(key, mode)
                                        for pc in theory.chord_pcs(*first)):
                first = (key, "maj" if mode == "major" else "min")
            marks.insert(0, (0, *first))
        chords: list[Chord] = []
        for i, (start, root, quality) in enumerate(marks):
            stop = marks[i + 1][0] if i + 1 < len(marks) else total
            if stop <= start:
                continue
            chords.append(Chord(start * beats_per_step, (stop - start) * beats_per_step, root,
                                quality))
        self.last_chord = (marks[-1][1], marks[-1][2])
        events += accompany(chords, plan, key, played.register, beats)
        tempo = float(np.clip(controls.tempo_bpm, *TEMPO_RANGE))
        events, envelope = perform(events, plan, beats, tempo, self.rng, played.density)
        return Phrase(
            notes=tuple(sorted(events, key=lambda n: (n.start_beat, n.voice))),
            beats=beats,
            tempo_bpm=tempo,
            key_pc=key,
            mode=mode,
            controls=controls,
            chords=tuple(chords),
            source=self.name,
            meta={"melody_notes": len(notes), "tokens": self.tokens_generated,
                  "dynamics": envelope, "section": plan.section.name, "role": plan.role,
                  "brightness_shift": plan.brightness_shift(controls),
                  "room": plan.room(controls)},
        )


# Medians in the training corpus (per four-bar phrase) of rhythmic activity and harmonic rhythm
# for a given note density: asking for a density with its usual companions keeps the request
# inside what the model has seen. Sparse music is rhythmically plain, with slow harmony.
_DENSITY = (0.35, 0.45, 0.55, 0.65, 0.75, 1.0)
_RHYTHM = (0.0, 0.13, 0.26, 0.40, 0.44, 0.48)
_HARMONY = (0.25, 0.31, 0.31, 0.31, 0.31, 0.31)


def rhythm_for(density: float) -> float:
    """Requested rhythmic activity (share of off-beat onsets, 0–1) for a density (0–1)."""
    return float(np.interp(density, _DENSITY, _RHYTHM))


def harmony_for(density: float) -> float:
    """Requested harmonic rhythm (chord changes per beat, 0–1) for a density (0–1)."""
    return float(np.interp(density, _DENSITY, _HARMONY))
