"""The composer component: keeps phrases written ahead of the playhead.

It starts with the procedural composer, so the first sound comes at once, then loads the
neural generator in the background (when configured) and hands over at the next phrase. If the
generator fails at any point, the procedural composer takes over with a clear log line and the
music does not stop. The audio component takes phrases from :meth:`take_phrase`.

On a virtual clock the generator is loaded in :meth:`ComposerComponent.open`, in line: the
hand-over then falls at the same phrase on every run, so a session replays sample for sample.

The form and the motif memory follow what is *heard*, not what was written: each phrase is
kept with the plan's state before it (:class:`PlanMark`), and :meth:`ComposerComponent.flush`
(a preset change, the iso start meeting the listener's heart — both crossfade now) takes the
piece back to the state before the phrase last handed to the audio component, the one the
crossfade cuts. Phrases written ahead and dropped are then never counted as played: a theme
whose statement was cut after a few seconds, or never played, is not stored and so never
"returns", and the section's clock and the phrase pairs (statement, answer: eight bars) start
again on the music that follows. (Before, the iso start cut the first theme after ~6 s and
dropped its answer, so every later return in a closed-loop session brought back a theme nobody
had heard: 0–16 % returning phrases where the open-loop presets had 20–28 %.)
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from calmtunes.clock import SYSTEM
from calmtunes.component import Component
from calmtunes.config import Config
from calmtunes.hub import Hub
from calmtunes.music.composer import Composer
from calmtunes.music.controls import Controls
from calmtunes.music.events import Phrase
from calmtunes.music.fallback import ProceduralComposer

log = logging.getLogger(__name__)


class PlanMark:
    """The state of a composer's form and motif memory before a phrase (see the module
    docstring); :meth:`restore` puts it back in place (objects shared by the two composers stay
    shared)."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer
        self.form = getattr(composer, "form", None)
        self.motifs = getattr(composer, "motifs", None)
        self.form_state = self.form.state() if self.form is not None else None
        self.motifs_state = self.motifs.state() if self.motifs is not None else None

    def restore(self) -> None:
        if self.form is None:  # written before the piece began: it begins anew
            self.composer.form = None  # type: ignore[attr-defined]
        else:
            self.form.restore(self.form_state)
        if self.motifs is None:
            self.composer.motifs = None  # type: ignore[attr-defined]
        else:
            self.motifs.restore(self.motifs_state)


def load_generator(config: Config, seed: int | None) -> Composer:
    """The neural generator, or an exception saying why it cannot be used."""
    from calmtunes.music.generator import NeuralComposer  # onnxruntime is imported there

    return NeuralComposer.from_config(config, seed=seed)


class ComposerComponent(Component):
    name = "composer"
    heartbeat_timeout_s = 10.0
    config_sections = ("music",)

    def __init__(self, config: Config, hub: Hub, controls: Callable[[], Controls],
                 generator_loader: Callable[[Config, int | None], Composer] = load_generator,
                 clock: Callable[[], float] = SYSTEM) -> None:
        super().__init__(config, hub, clock)
        self._controls = controls
        self._loader = generator_loader
        seed = config.music.seed or None
        self.fallback = ProceduralComposer(seed)
        self.composer: Composer = self.fallback
        self._queue: collections.deque[tuple[Phrase, PlanMark]] = collections.deque()
        self._lock = threading.Lock()
        # One phrase written at a time: the form and the themes are one piece's state, and the
        # audio thread's compose_now would otherwise write into them while this component's
        # thread is halfway through a phrase (held for a whole phrase; _lock only briefly)
        self._compose_lock = threading.Lock()
        self._generation = 0  # bumped by flush(); phrases of older generations are dropped
        self._handed: PlanMark | None = None  # the plan before the phrase last handed out
        self._rewind: PlanMark | None = None  # set by flush(), applied before the next phrase
        self._loader_thread: threading.Thread | None = None
        self.phrases_composed = 0
        self.fallbacks = 0
        #: called (from this component's thread) when a phrase is queued: the audio component
        #: waiting for the first phrase after a preset change takes it at once
        self.on_phrase: Callable[[], None] | None = None

    # -- interface for the audio component ---------------------------------------------------
    def take_phrase(self) -> Phrase | None:
        with self._lock:
            phrase, mark = self._queue.popleft() if self._queue else (None, None)
            if mark is not None:
                self._handed = mark
        if phrase is not None:
            self.wake()
        return phrase

    def flush(self) -> None:
        """Drop phrases written for old controls (a preset change, the iso start) and compose
        anew at once; the piece goes back to where it stood before the phrase the crossfade
        cuts (see the module docstring)."""
        with self._lock:
            self._queue.clear()
            self._generation += 1
            if self._handed is not None:
                self._rewind, self._handed = self._handed, None
        self.wake()

    def compose_now(self) -> Phrase:
        """One phrase for the current controls, written in the caller's thread (used when the
        audio component finds the queue empty: never silence for want of a phrase). Where this
        component's thread is writing one, it waits for that phrase and takes it instead of
        writing a second."""
        with self._compose_lock:
            phrase = self.take_phrase()
            if phrase is not None:
                return phrase
            phrase, mark = self._compose(self._controls())
            with self._lock:
                self._handed = mark
        return phrase

    @property
    def queued_seconds(self) -> float:
        with self._lock:
            return sum(p.seconds for p, _ in self._queue)

    # -- component ---------------------------------------------------------------------------
    def reconfigure(self, config: Config) -> str:
        """A new generator choice or seed is taken at the next phrase; the rest (presets, the
        conductor's ranges) is read afresh with each phrase."""
        old, new = self.config.music, config.music
        self.config = config
        if (old.generator, old.seed) != (new.generator, new.seed):
            if new.generator != "onnx":
                self.composer = self.fallback
                self.mark_ok("procedural composer")
            elif self.composer is self.fallback:
                self._loader_thread = None
                self.open()
            return "reconfigured (composer from the next phrase)"
        return "reconfigured"

    def open(self) -> None:
        if self.config.music.generator == "onnx" and getattr(self.clock, "virtual", False):
            if self._loader_thread is None and self.composer is self.fallback:
                self._loader_thread = threading.current_thread()  # loaded once, in line
                self._load_generator()
            return
        if self.config.music.generator == "onnx" and self._loader_thread is None:
            self._loader_thread = threading.Thread(
                target=self._load_generator, name="generator-load", daemon=True
            )
            self._loader_thread.start()
        if self.config.music.generator == "procedural":
            self.mark_ok("procedural composer")

    def _load_generator(self) -> None:
        try:
            composer = self._loader(self.config, self.config.music.seed or None)
        except Exception as exc:
            self.fallbacks += 1
            log.error("generator unavailable (%s); playing the procedural composer", exc)
            self.degrade(f"generator unavailable: {exc}")
            return
        with self._compose_lock:  # not while a phrase is being written from the old one
            if hasattr(composer, "form") and self.phrases_composed:
                # the piece already begun goes on: same form, same themes (a generator loaded
                # before the first phrase, as on the virtual clock, starts the piece with its own)
                composer.form, composer.motifs = self.fallback.form, self.fallback.motifs
            self.composer = composer
        log.info("generator loaded; it takes over at the next phrase")
        self.mark_ok(f"{composer.name} generator")

    def step(self, now: float) -> float:
        if self.queued_seconds >= self.config.music.lookahead_s:
            return 0.5
        with self._compose_lock:
            with self._lock:
                generation = self._generation
            phrase, mark = self._compose(self._controls())
            with self._lock:
                queued = generation == self._generation
                if queued:
                    self._queue.append((phrase, mark))
        if queued and self.on_phrase is not None:
            self.on_phrase()
        return 0.0

    def _compose(self, controls: Controls) -> tuple[Phrase, PlanMark]:
        """The next phrase, and the plan's state before it."""
        with self._lock:
            rewind, self._rewind = self._rewind, None
        if rewind is not None:
            rewind.restore()
        composer = self.composer
        mark = PlanMark(composer)
        try:
            phrase = composer.next_phrase(controls)
        except Exception as exc:
            if composer is self.fallback:
                raise
            self.fallbacks += 1
            log.error("generator failed (%s: %s); the procedural composer takes over",
                      type(exc).__name__, exc)
            self.composer = self.fallback
            self.degrade(f"generator failed: {exc}")
            mark.restore()  # the failed phrase was never played (the form may be shared)
            mark = PlanMark(self.fallback)
            phrase = self.fallback.next_phrase(controls)
        self.phrases_composed += 1
        return phrase, mark

    def status(self) -> dict:
        return {
            "composer": self.composer.name,
            "queued_s": round(self.queued_seconds, 1),
            "phrases": self.phrases_composed,
            "fallbacks": self.fallbacks,
        }

    def wait_until_ready(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout  # real time: it waits for the component's thread
        while time.monotonic() < deadline:
            with self._lock:
                if self._queue:
                    return True
            self._wake.wait(0.005)
        return False
