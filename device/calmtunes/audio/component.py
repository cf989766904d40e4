"""The audio component: renders phrases into the ring ahead of the sink, and keeps a sink open.

Its thread takes phrases from the composer when the scheduled music runs short, renders blocks
into the ring until it holds ``audio.buffer_ms``, and checks the sink: a sound card that vanished
is reopened with back-off while the music keeps its time unheard (so the composer and everything
upstream keep running, and the music fades in where it would have been when the card is back).
While it is missing, a new device node in ``/dev/snd`` (a card's driver probing late, a USB card
plugged in, the DAC back) has it tried half a second later, not at the back-off's next try.

On a virtual clock the sink has no thread of its own: each step first lets the sink take what
the output would have played by now (:meth:`~calmtunes.audio.sinks.Sink.catch_up`), then tops the
ring up, and returns when the next output block is due.

It publishes ``"output"`` (``{"heard": bool, "detail": str}``) whenever its output opens or is
lost: the panel flashes the preset LED while nothing is heard.

A reload reaches it when ``audio``, ``music`` or ``sound`` change: the mixer takes loudness,
volume limits and textures in place (every change glides); a new output (backend, device, file)
reopens the sink while the music goes on; a new sample rate or block size restarts the
component.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calmtunes.audio.ring import AudioRing
from calmtunes.audio.sinks import CARD_PERIOD_FRAMES, Sink, make_sink
from calmtunes.clock import SYSTEM
from calmtunes.component import Component
from calmtunes.config import Config
from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.music.engine import ComposerComponent
from calmtunes.music.mixer import Mixer

log = logging.getLogger(__name__)

CROSSFADE_S = 2.5  # preset changes glide over this long (≥ 2 s)
#: on a preset change in real time, how long the music already scheduled plays on while the
#: composer's thread writes the new preset's first phrase (a neural generator under load can take
#: a good part of a second): only past this, or with the scheduled music about to run out, does
#: the audio thread compose the phrase itself
PRESET_WAIT_S = 1.0
#: without a sound card the music keeps time in steps this long (s): the composer and the mixer's
#: schedule move on as if playing, but nothing is synthesised (:meth:`Mixer.skip`: the audio
#: thread of a daemon whose card is missing took 2.6 % of a core rendering a 20 ms block a wake,
#: 1.0 % rendering in these steps)
NO_CARD_STEP_S = 0.25
#: ... moving on at most this much music (s) in one step after a stall, the rest dropped: the
#: music resumes from where it stopped, not minutes on
NO_CARD_CATCH_UP_S = 1.0
#: an output lost within this long of opening is unsteady (a loose DAC, a failing driver): it
#: is reopened with back-off, not at once, and said once, until it has stayed up this long (s)
STEADY_S = 30.0
#: where the kernel puts a sound card's device nodes (ALSA: controlC0, pcmC0D0p, …). While the
#: output is missing, a node that appears here has the output tried NODE_SETTLE_S later: a card
#: plugged back is heard within a second of its driver, not up to audio.reopen_max_s later.
#: Listing the folder takes microseconds; it needs no access to the devices themselves (the
#: unit's DevicePolicy= governs opening them)
SOUND_DEVICES = Path("/dev/snd")
#: the kernel makes a card's nodes before udev has given them their group and mode and restored
#: the card's mixer (alsactl): tried at once, the first open would often fail on a permission
#: and be said as an error (s)
NODE_SETTLE_S = 0.5
#: a sound card that stays missing (or failing to open with the same error) is said again at most
#: this often (s); the retries between are logged at debug level, so a night without a card is a
#: few lines in the journal instead of one every audio.reopen_max_s (120 an hour at 30 s)
MISSING_REMINDER_S = 600.0
UNSTEADY = (f"audio output unsteady: lost again and again within {STEADY_S:.0f} s of opening; "
            "reopened with back-off")


class AudioComponent(Component):
    name = "audio"
    heartbeat_timeout_s = 5.0
    config_sections = ("audio", "music", "sound")
    #: options whose change needs a new sink (the music goes on meanwhile)
    SINK_OPTIONS = ("backend", "device", "wav_path", "realtime")
    #: options whose change needs a new ring and mixer: the component restarts
    RESTART_OPTIONS = ("sample_rate", "block_ms", "buffer_ms")

    def __init__(self, config: Config, hub: Hub, composer: ComposerComponent,
                 sink: Sink | None = None, clock: Callable[[], float] = SYSTEM,
                 sink_factory: Callable[[Config, AudioRing], Sink] | None = None) -> None:
        super().__init__(config, hub, clock)
        a = config.audio
        self.sample_rate = a.sample_rate
        self.block = int(a.sample_rate * a.block_ms / 1000)
        self.ring = AudioRing(int(a.sample_rate * a.buffer_ms / 1000) + self.block)
        self.target_fill = int(a.sample_rate * a.buffer_ms / 1000)
        self.low_water = self.target_fill * 2 // 3  # a read leaving less wakes the thread
        if not getattr(clock, "virtual", False):
            self.ring.notify_below(self.low_water, self._wake)
        self.composer = composer
        self.mixer = Mixer(a.sample_rate, config)  # the same chunks in renders and in real time
        self._sink_factory = sink_factory or (lambda cfg, ring: make_sink(
            cfg.audio.backend, ring, cfg.audio.sample_rate, device=cfg.audio.device,
            wav_path=cfg.audio.wav_path, realtime=cfg.audio.realtime, clock=clock))
        self.sink = sink or self._sink_factory(config, self.ring)
        self._sink_open = False
        self._published: bool | None = None  # the output's state last published ("output")
        self._next_reopen = 0.0
        self._reopen_delay = 1.0
        self._opened_at = 0.0  # when the output last opened (s, the component's clock)
        self._flaps = 0  # outputs lost in a row within STEADY_S of opening
        self._silent: tuple[float, int] | None = None  # no card since (s), frames kept time for
        self._pending_crossfade = False
        self._crossfade_by: int | None = None  # output frame by which the crossfade must start
        # a phrase queued wakes the audio thread, which may be waiting for it (a preset change)
        if hasattr(composer, "on_phrase"):
            composer.on_phrase = self.wake
        self.started_at = clock()
        self.sink_failures = 0
        self.sink_error: Exception | None = None  # why the output last failed to open
        # the output failing to open since (s), how often, what was last said and when next
        self._missing: tuple[float, int, str, float] | None = None
        self.sound_devices = SOUND_DEVICES
        self._nodes: frozenset[str] | None = None  # its nodes when the output went missing
        #: (start frame, phrase) of every phrase scheduled, when asked for (renders, analysis)
        self.played: list[tuple[int, Any]] | None = None
        self.mixer.fade_in(a.fade_in_s)

    def reconfigure(self, config: Config) -> str:
        old = self.config.audio
        new = config.audio
        if any(getattr(old, k) != getattr(new, k) for k in self.RESTART_OPTIONS):
            raise ValueError("audio.sample_rate, block_ms and buffer_ms take effect at the next "
                             "start: restart the service (systemctl restart calmtunes)")
        self.config = config
        self.mixer.reconfigure(config)
        if any(getattr(old, k) != getattr(new, k) for k in self.SINK_OPTIONS):
            log.info("audio output changes (%s); reopening it", new.backend)
            self._close_sink()
            self.sink = self._sink_factory(config, self.ring)
            self._next_reopen = 0.0
            self._flaps = 0
            self._reopen_delay = 1.0
            self._missing = None  # the new output's first failure is said at once
            self._nodes = None
            self.wake()
            return "reopened its output"
        return "reconfigured"

    # -- control (any thread) ----------------------------------------------------------------
    def set_controls(self, controls: Controls) -> None:
        self.mixer.set_controls(controls)

    def change_preset(self) -> None:
        """The next phrase crossfades in now instead of waiting for the phrase boundary."""
        self._pending_crossfade = True
        self.wake()

    def fade_out(self, seconds: float | None = None) -> None:
        self.mixer.fade_out(self.config.audio.fade_out_s if seconds is None else seconds)

    def fade_in(self, seconds: float | None = None) -> None:
        self.mixer.fade_in(self.config.audio.fade_in_s if seconds is None else seconds)

    @property
    def faded_out(self) -> bool:
        return self.mixer.faded_out

    @property
    def first_frame_at(self) -> float | None:
        return self.sink.first_frame_at

    # -- component ---------------------------------------------------------------------------
    def step(self, now: float) -> float:
        self._keep_sink(now)
        period = self.block / self.sample_rate
        if self._sink_open:
            self._silent = None  # heard again: the next loss clears the ring afresh
        if self._sink_open and self.sink.virtual:
            # A virtual clock: the ring full, the sink takes what the output played by now,
            # the ring full again; the next step when the output wants its next block.
            self._fill()
            next_block = self.sink.catch_up(now)
            self._fill()
            return max(1e-4, (next_block if next_block is not None else now + period) - now)
        if not self._sink_open:
            # No sound card: keep time as if playing, so the music is where it should be when
            # the card comes back (and the composer upstream keeps running): each step moves
            # the music on by what a card would have played since the last, unsynthesised;
            # when the card is back the music fades in from there.
            self._keep_time(now)
            return NO_CARD_STEP_S
        self._fill()
        if not self.config.audio.realtime:
            self.ring.wait_for_space(self.block, timeout=0.1)  # as fast as the sink drains
            return 0.0
        # Sleep until a third of the buffer has drained, then top it up in one go: a few wakes a
        # second instead of one per block, with about two thirds of the buffer in hand. The
        # output's read that drains it that far wakes this thread (AudioRing.notify_below), so
        # it runs just after the output's thread, not on a timer of its own: 12 wakes a second
        # instead of 16 here for the same buffer (scripts/bench). The timer, a card period
        # later than the read was due, only matters when the output stops reading (a card lost).
        spare = self.ring.available - self.low_water
        return max(period / 2, (spare + CARD_PERIOD_FRAMES) / self.sample_rate)

    def _keep_time(self, now: float) -> None:
        if self._silent is None:
            self._silent = (now, 0)
            # what the ring still holds was for the card that went: played when one is back,
            # it would be a blip of old music at full level before the music fades in
            self.ring.clear()
        since, kept = self._silent
        due = int((now - since) * self.sample_rate) - kept
        most = int(NO_CARD_CATCH_UP_S * self.sample_rate)
        if due > most:  # a stall: the music resumes from where it stopped, not minutes on
            kept += due - most
            due = most
        if due > 0:
            self._feed_phrases(due)
            self.mixer.skip(due)  # nothing hears it: the music moves on unsynthesised
            kept += due
        self._silent = (since, kept)

    def _fill(self) -> None:
        """Render blocks into the ring until it holds ``audio.buffer_ms``.

        The blocks a top-up wants are rendered by one call to the mixer: its master stage
        (gains, fades, limiter) costs a fixed number of numpy calls per call whatever its
        length, so one call per wake instead of one per block. Volume and fades still glide,
        joined linearly across the call, and nothing is heard later for it: what a top-up
        renders goes into the ring behind what is already there either way. Only when a sound
        card's ring has run low (a wake came late, or the start) is the first block rendered
        and written on its own, so the card has it as soon as it is ready."""
        ring, block = self.ring, self.block
        while ring.free >= block and ring.available < self.target_fill:
            blocks = min(ring.free // block, -(-(self.target_fill - ring.available) // block))
            if not self.sink.virtual and ring.available < self.target_fill // 3:
                blocks = 1
            self._feed_phrases(blocks * block)
            ring.write(self.mixer.render(blocks * block))

    def _feed_phrases(self, frames: int | None = None) -> None:
        """Schedule phrases until the music reaches a second past the next ``frames`` (default
        one block) of output, or crossfade into a new phrase now when a preset changed."""
        horizon = self.mixer.position + (self.block if frames is None else frames)
        if self._pending_crossfade:
            phrase = self.composer.take_phrase()
            if phrase is None and self._may_wait_for_phrase(horizon):
                return  # what is scheduled plays on; the composer's thread wakes us
            self._pending_crossfade = False
            self._crossfade_by = None
            phrase = phrase or self.composer.compose_now()
            self._schedule(phrase, self.mixer.position, crossfade_s=CROSSFADE_S)
            return
        while self.mixer.scheduled_until <= horizon + self.sample_rate:
            phrase = self.composer.take_phrase()
            if phrase is None:
                if self._may_wait(self.mixer.scheduled_until - horizon > self.sample_rate // 2):
                    break  # half a second and more still scheduled: the composer's thread
                phrase = self.composer.compose_now()  # never silence for want of a phrase
            self._schedule(phrase)

    def _may_wait(self, music_left: bool) -> bool:
        """The composer has no phrase ready: may the music scheduled play on while its thread
        writes one, instead of this thread writing it (and waiting on the generator, a good
        part of a second under load, while the ring drains)? Only in real time: on a virtual
        clock the phrase is written here at once, so a session replays sample for sample."""
        return music_left and not getattr(self.clock, "virtual", False)

    def _may_wait_for_phrase(self, horizon: int) -> bool:
        """A preset changed and the composer has no phrase yet: :meth:`_may_wait`, for at most
        ``PRESET_WAIT_S`` of output, while the music scheduled reaches past ``horizon``."""
        if self._crossfade_by is None:
            self._crossfade_by = self.mixer.position + int(PRESET_WAIT_S * self.sample_rate)
        return self._may_wait(self.mixer.position < self._crossfade_by
                              and self.mixer.scheduled_until > horizon)

    def _schedule(self, phrase: Any, start: int | None = None, **kw: Any) -> None:
        at = self.mixer.scheduled_until if start is None else start
        # a crossfade drops the earlier phrases' notes not yet begun where the synthesis is
        heard_until = max(at, self.mixer.synthesised)
        onsets = self.mixer.schedule(phrase, start, **kw)
        if self.played is not None:
            if kw.get("crossfade_s"):
                self.played = [(a, p, [o for o in ons if o[1] < heard_until])
                               for a, p, ons in self.played]
            self.played.append((at, phrase, onsets))

    def _keep_sink(self, now: float) -> None:
        if self._sink_open and self._flaps and now - self._opened_at >= STEADY_S:
            if self._flaps > 1:
                log.info("audio output steady again (%s)", self.sink.description)
                self.mark_ok(self.sink.description)
            self._flaps = 0
            self._reopen_delay = 1.0
            self._missing = None  # its failures to open while unsteady: said, and over
        if self._sink_open and not self.sink.is_alive():
            self.sink_failures += 1
            self.sink_error = getattr(self.sink, "error", None) or self.sink_error
            self._flaps = self._flaps + 1 if now - self._opened_at < STEADY_S else 1
            if self._flaps > 1:
                # lost soon after opening, again: reopened with back-off, and said once
                self._next_reopen = now + self._reopen_delay
                (log.error if self._flaps == 2 else log.debug)(
                    "audio output stopped %.1f s after opening (%s: %s); it is unsteady: "
                    "reopening it with back-off (a loose DAC or a failing driver? see "
                    "`calmtunes selftest`)", now - self._opened_at, self.sink.description,
                    self.sink_error)
                self._reopen_delay = min(self._reopen_delay * 2, self.config.audio.reopen_max_s)
            else:  # the first loss in a while: reopened at once
                log.error("audio output stopped (%s); reopening", self.sink.description)
                self._reopen_delay = 1.0
                self._next_reopen = now
            self.degrade(UNSTEADY if self._flaps > 1 else "audio output lost; reopening")
            self._close_sink()
        if (not self._sink_open and now < self._next_reopen and self._flaps <= 1
                and not getattr(self.clock, "virtual", False) and self._new_sound_device()):
            # tried once the nodes have settled, the back-off again from 1 s; not for an unsteady
            # output (a USB card on a loose cable takes its nodes with it and brings them back:
            # reopened at its pace it would bypass the back-off above), nor on a virtual clock,
            # where a replay must not depend on the host's sound cards
            self._next_reopen = now + NODE_SETTLE_S
            self._reopen_delay = 1.0
        if not self._sink_open and now >= self._next_reopen:
            try:
                self.sink.open()
            except Exception as exc:
                self.sink_error = exc
                self._say_missing(now, exc)
                self.degrade(f"no audio output: {exc}")
                self._publish_output(f"no audio output: {exc}")
                self._next_reopen = now + self._reopen_delay
                self._reopen_delay = min(self._reopen_delay * 2, self.config.audio.reopen_max_s)
                return
            self._sink_open = True
            self._opened_at = now
            self._nodes = None
            if self._missing is not None and self._flaps <= 1:  # (unsteady: kept till steady)
                since, tries, _, _ = self._missing
                log.info("audio output open (%s) after %.0f s without it (%d attempts)",
                         self.sink.description, now - since, tries)
                self._missing = None
            if self._flaps > 1:
                self.degrade(UNSTEADY)
            else:
                self._reopen_delay = 1.0
                self.mark_ok(self.sink.description)
            self._publish_output(self.sink.description)
        elif not self._sink_open:  # waiting out the back-off: the music is not heard
            self._publish_output(f"no audio output: {self.sink_error or 'output lost'}")

    def _new_sound_device(self) -> bool:
        """Whether a device node appeared in :attr:`sound_devices` since the output went missing
        (or since the last call that said so); nodes that went away do not count."""
        try:
            nodes = frozenset(os.listdir(self.sound_devices))
        except OSError:  # no sound devices at all (no ALSA, no card ever)
            nodes = frozenset()
        before, self._nodes = self._nodes, nodes
        if before is None or not nodes - before:
            return False
        log.debug("a new sound device (%s): trying the audio output in %.1f s",
                  ", ".join(sorted(nodes - before)), NODE_SETTLE_S)
        return True

    def _say_missing(self, now: float, exc: Exception) -> None:
        """Log a failed open: at once when the output is first missing or its error changes,
        then at most every :data:`MISSING_REMINDER_S` with how long and how often; the retries
        between at debug level."""
        since, tries, said, remind_at = self._missing or (now, 0, "", now)
        tries += 1
        text = str(exc)
        if text != said:
            log.error("audio output unavailable: %s (retrying in %.0f s)", text,
                      self._reopen_delay)
            said, remind_at = text, now + MISSING_REMINDER_S
        elif now >= remind_at:
            log.error("audio output still unavailable after %.0f min (%d attempts): %s "
                      "(retrying every %.0f s)", (now - since) / 60.0, tries, text,
                      self._reopen_delay)
            remind_at = now + MISSING_REMINDER_S
        else:
            log.debug("audio output unavailable: %s (retrying in %.0f s)", text,
                      self._reopen_delay)
        self._missing = (since, tries, said, remind_at)

    def _publish_output(self, detail: str) -> None:
        """Publish ``"output"`` when whether the music is heard changed."""
        if self._sink_open != self._published:
            self._published = self._sink_open
            self.hub.publish("output", {"heard": self._sink_open, "detail": detail})

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception as exc:
            log.debug("closing sink: %s", exc)
        self._sink_open = False

    def close(self) -> None:
        self._close_sink()
        # The output's reads set the wake (AudioRing.notify_below); one made during a step that
        # failed would end the back-off before it began (the step retried at once, the output
        # reopened each time). Closed, the output reads no more: what it set is dropped.
        self._wake.clear()

    def status(self) -> dict:
        return {
            "output": self.sink.description,
            # the output is open: what plays is heard (else it keeps its time unheard)
            "heard": self._sink_open,
            "underruns": self.ring.underruns,
            "played_s": round(self.sink.frames_played / self.sample_rate, 1),
            "sink_failures": self.sink_failures,
            # the sound card's own buffer, ms (a PortAudio stream, while open)
            **({"card_latency_ms": round(1000 * self.sink.latency_s, 1)}
               if getattr(self.sink, "latency_s", None) else {}),
        }
