"""The daemon: one control loop that owns the device's state; the parts around it.

**One loop, one queue.** Everything that happens to the device reaches the control loop as an
event on one queue: a button or socket command, a pulse reading, a scene record, a reload, a
status request. Only the loop's thread changes the device's state — preset, volume, playing,
the sleep timer, privacy, the session record — so it needs no locks and cannot be torn by two
threads. The parts (composer, audio, pulse, scene, panel) publish what they measure on the hub
and take what the loop tells them; they never call each other. Every second the loop updates the
conductor with the latest pulse and scene records and hands its controls to the audio.

**One clock.** Time comes from the injected :class:`~calmtunes.clock.Clock`: the system's on the
device; on a :class:`~calmtunes.clock.VirtualClock` the whole daemon — every component, the
emulated hardware, the WAV output — runs as tasks of one :class:`~calmtunes.scheduler.Scheduler`
in one thread, as fast as the CPU allows, and the same scenario and seed give the same samples
(``calmtunes simulate --virtual-clock``; ``calmtunes render`` is that path).

**One hardware profile.** :class:`~calmtunes.hardware.Hardware` gives every part its backend from
the config (``device.hardware: pi | sim``); the command line's overlay (``calmtunes simulate``'s
emulated senses and folders) is applied to every config taken, the reloaded ones included.

Start order is chosen so sound comes first: the composer (procedural at once, the generator
loading behind it), then audio, then the senses (pulse, scene) and the panel. Signals:
SIGTERM/SIGINT fade the music out (≤ 2 s) and exit 0; SIGHUP reloads the config; SIGUSR1 logs
every thread's stack.

**Reload** (SIGHUP, ``calmtunes reload``): the new file is validated whole first; a bad one is
refused and nothing changes. Then each part whose config sections changed
(:attr:`~calmtunes.component.Component.config_sections`) takes the new config in place or is
restarted; the others are left running untouched. A part that cannot take it puts every part
back on the old config. ``status`` says under ``config`` the generation (one more per accepted
reload), the file, when it was loaded and what the last reload did to each part.

Commands beyond preset/volume/play_pause: ``sleep_timer`` (arg: minutes; none for
``panel.sleep_timer_min``, 0 to cancel) fades out over :data:`SLEEP_FADE_S` when the time is up
and pauses. ``shutdown`` (accepted only when ``panel.long_press_action`` is "shutdown") fades out
and exits with :data:`EXIT_POWEROFF`. The daemon runs sandboxed without the right to power the
machine off, so it only asks: ``systemd/calmtunes.service`` takes exit status 10 as success,
does not restart on it, and powers off in a privileged ``ExecStopPost=``. Without that unit (a
workstation), the daemon just stops, saying so. "privacy" is owned by the loop (it survives power
cuts, through the saved state) and published on the hub's ``"privacy"`` topic, which the scene
component obeys.

Every command passes :func:`calmtunes.commands.check` first, wherever it comes from (socket,
panel, saved state); a refused one changes nothing and, over the socket, is answered ``ok: false``
with the reason. Commands that change the device's state are rate-limited on the socket
(:data:`SOCKET_RATE_PER_S`, bursts of :data:`SOCKET_BURST`). ``status`` carries health figures
(pulse, heart-rate-led conductor figures) only for the daemon's own user and root, unless
``device.status_health`` is "group".

Folders: the runtime folder (the control socket's) must belong to the daemon's user and not be
writable by group or others; it is made 0750 when missing, and anything else stops the start with
exit status 78 and how to fix it (:func:`prepare_runtime_dir`); so does a daemon already
answering on its control socket (:func:`refuse_second_daemon`). ``calmtunes run`` takes systemd's
``$STATE_DIRECTORY`` and ``$RUNTIME_DIRECTORY`` over the config's (:func:`with_systemd_dirs`).

systemd: READY=1 goes out once audio flows, or after :data:`READY_WITHOUT_SOUND_S` without a
sound card (the daemon is up and keeps trying the card; its status line says what is missing), so
a missing DAC is retried in place instead of the service being killed and restarted.
"""

from __future__ import annotations

import collections
import importlib
import logging
import os
import queue
import re
import signal
import stat
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calmtunes import __version__
from calmtunes import config as config_mod
from calmtunes.audio.component import AudioComponent
from calmtunes.audio.sinks import Sink
from calmtunes.care.arms import default_arm, personaliser_runs, preset_forbidden
from calmtunes.clock import SYSTEM, Clock
from calmtunes.commands import (
    AUTO,
    SOCKET_COMMANDS,
    UNDO_VOLUME_MAX_STEPS,
    TokenBucket,
    check,
    checked_state,
    no_argument,
    quote,
    suggest,
)
from calmtunes.component import Component, name_os_threads
from calmtunes.config import Config
from calmtunes.control import ControlServer, Peer, SocketTaken, in_use, socket_path
from calmtunes.errors import ConfigError
from calmtunes.fault import clear_fault
from calmtunes.hardware import Hardware, resolve
from calmtunes.hub import Command, Hub
from calmtunes.music.conductor import Conductor
from calmtunes.music.engine import ComposerComponent
from calmtunes.notify import Notifier
from calmtunes.scheduler import Scheduler
from calmtunes.state import StateStore
from calmtunes.supervisor import Supervisor

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
EXIT_POWEROFF = 10  # "fade out and power off, please": see the module docstring
SLEEP_FADE_S = 30.0  # the sleep timer's fade, in s
READY_WITHOUT_SOUND_S = 10.0  # READY=1 after this long even without a sound card (see above)
SOUND_FIRST_S = 1.0  # the senses start once audio flows, or after this long without a card
CONDUCT_EVERY_S = 1.0  # s between conductor updates (the analyser publishes once a second)
THREAD_NAMING_S = 5.0  # s between naming new threads for the kernel (top -H, scripts/bench)
LOOP_TICK_S = 0.25  # s: the loop's own cadence (supervisor, watchdog, saved state)
ISO_CROSSFADE_BPM = 3.0  # a tempo step larger than this (the iso start) crossfades in at once
#: a wall clock this far from where the monotonic clock says it should be has been set (s)
WALL_JUMP_S = 60.0
SOCKET_RATE_PER_S = 5.0  # state-changing socket commands per second, on average
SOCKET_BURST = 10  # ... and at once (the socket's commands that change the music, and reload)
REQUEST_WAIT_S = 2.0  # s a socket request waits for the loop to take and answer it …
REQUEST_TAKEN_WAIT_S = 0.5  # … and then, once taken, for its answer (within the client's 3 s)
SLOW_DOWN = "too many requests; slow down"
LOOP_BUSY = ("the daemon's control loop was busy and did not take the request in time; nothing "
             "was done; try again")
LOOP_LATE = ("the daemon's control loop took the request but did not finish it in time; it may "
             "still take effect: see `calmtunes status` before trying again")
HEALTH_HIDDEN = "health figures hidden (ask as the calmtunes user or root)"
# Figures about the listener's body: withheld from status unless the client may see them.
# The pulse record keeps only whether a finger is on and how clean the signal is. The conductor's
# tempo and breath pacing follow the listener (the iso start sets the tempo to the heart rate, the
# pacing starts at the measured breathing rate) and its mode follows the stress index, so they go.
HEALTH_PULSE_KEEP = ("t", "finger", "quality", "reason")
HEALTH_CONDUCTOR = ("hr_bpm", "stress_rise", "breath_rate", "tempo_bpm", "mode")
HEALTH_CONTROLS = ("breath_rate", "tempo_bpm")
#: the personaliser's figures are built from the heart rate, RMSSD and breathing: they go too
HEALTH_CARE = ("last_reward", "best")
#: texts that may carry a figure: shown with every number left out
HEALTH_TEXTS = {"pulse": ("reason",), "care": ("why", "last_reward_reason")}
#: config sections the loop itself reads (the conductor, commands, state, sessions)
LOOP_SECTIONS = ("music", "conductor", "sessions", "device", "panel")
#: options that only a new start can take (the loop refuses a reload that changes them)
START_ONLY = (("device", "state_dir"), ("device", "runtime_dir"), ("device", "hardware"))


@dataclass
class _Request:
    """A control-socket request waiting for the loop's answer.

    The loop takes it (:meth:`take`) or the client's wait gives up first and withdraws it
    (:meth:`withdraw`), never both: a request the client was told failed is never carried out
    afterwards (a "try again" would otherwise do it twice: two volume steps for one)."""

    request: dict[str, Any]
    peer: Peer | None
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    state: str = "queued"  # queued | taken | withdrawn

    def take(self) -> bool:
        """The loop's: True if the request is still wanted (it is now taken)."""
        return self._settle("taken", unless="withdrawn")

    def withdraw(self) -> bool:
        """The client's wait: True if the loop had not taken the request (it never will)."""
        return self._settle("withdrawn", unless="taken")

    def _settle(self, state: str, unless: str) -> bool:
        with self.lock:
            if self.state == unless:
                return False
            self.state = state
            return True


class Daemon:
    """The device: its parts, and the control loop that owns its state.

    ``clock``: the system clock (default) or a :class:`~calmtunes.clock.VirtualClock`.
    ``overlay``: config changes (``Config.replace`` sections) applied over every config taken,
    at start and at each reload (``calmtunes simulate``'s emulated senses and folders).
    ``control``: whether to serve the control socket. ``persist``: whether to keep the device's
    state and session records in ``device.state_dir`` (a render keeps none: it starts from the
    defaults and leaves the device's own state alone). ``preset``: start on this preset.
    ``record``: keep the phrases played and, with a simulated listener, a per-second
    :class:`~calmtunes.sim.listener.LoopTrace` (renders, benchmarks). ``max_frames``: end the
    audio file at exactly this length."""

    def __init__(self, config: Config, config_path: str | None = None,
                 notifier: Notifier | None = None, sink: Sink | None = None,
                 composer_loader: Any = None, *, clock: Clock = SYSTEM,
                 overlay: dict[str, dict[str, Any]] | None = None, control: bool = True,
                 persist: bool = True, preset: str | None = None, record: bool = False,
                 max_frames: int | None = None) -> None:
        self.overlay = overlay or {}
        config = resolve(config.replace(**self.overlay) if self.overlay else config)
        self.config = config
        self.config_path = config_path
        self.clock = clock
        self.scheduler = Scheduler(clock) if clock.virtual else None
        self.notifier = notifier or Notifier()
        self.hub = Hub()
        self.hardware = Hardware(clock, self.hub)
        self._stop = threading.Event()
        self._next_thread_naming = 0.0
        self.exit_code = 0
        self.started_at = clock.monotonic()
        self.ready_at: float | None = None
        self.generation = 1
        self.loaded_at = clock.time()
        self.last_reload: dict[str, Any] | None = None
        self.records_problems: list[str] = []  # what went wrong with the session records
        # the volume before each of the panel's last volume steps (those at a limit too, which
        # change nothing): a chattering button's are taken back by count (undo_volume N)
        self._panel_volume_steps: collections.deque[float] = collections.deque(
            maxlen=UNDO_VOLUME_MAX_STEPS)
        self.persist = persist and self._state_folder_usable(config.device.state_dir)
        self._records_locked: str | None = None  # records locked by another program at start
        self._records_retry_at: float | None = None  # monotonic s of the next try to open them
        self._wall_anchor: tuple[float, float] | None = None  # (Unix s, monotonic s)
        self._wall_jump = 0.0  # the wall clock's jump last said (s)
        if control:
            prepare_runtime_dir(config.device.runtime_dir)
            refuse_second_daemon(config.device.runtime_dir)

        # -- the device's state: owned by the loop's thread ----------------------------------
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._loop_thread: int | None = None  # ident of the thread running the loop
        self._loop_task: Any = None
        m = config.music
        self.state = StateStore(
            Path(config.device.state_dir) / STATE_FILE,
            {"preset": m.default_preset, "volume_db": m.volume_db, "playing": True,
             "privacy": False, "manual": False, "manual_listener": "",
             "sleep_until": 0.0},  # Unix time the sleep timer ends; 0: none
        )
        saved = checked_state(self.state.load() if self.persist else dict(self.state.defaults),
                              config)  # clamped: never saved back as it was
        if preset is not None:  # `simulate --preset`: a person's choice, as a press would be
            saved["preset"] = preset
            saved["manual"] = True
            saved["manual_listener"] = ""  # for the listener at the bedside when it starts
        self.privacy = bool(saved["privacy"])  # camera off by the privacy button
        self.conductor = self._make_conductor(saved)
        self._pulse = self._scene = None
        self._next_conduct = 0.0
        self.sleep_at: float | None = None  # clock time the sleep timer ends
        until = saved.get("sleep_until")  # a timer that ran when the power went: it runs on
        if until and self.conductor.playing and until > clock.time():
            self.sleep_at = clock.monotonic() + (until - clock.time())
        self.trace = None
        if record:
            from calmtunes.sim.listener import LoopTrace

            self.trace = LoopTrace()

        # -- the parts -----------------------------------------------------------------------
        kwargs = {"generator_loader": composer_loader} if composer_loader else {}
        self.composer = ComposerComponent(config, self.hub, self.conductor.controls,
                                          clock=clock, **kwargs)
        self.audio = AudioComponent(
            config, self.hub, self.composer, sink=sink, clock=clock,
            sink_factory=lambda cfg, ring: self.hardware.sink(cfg, ring, max_frames))
        if record:
            self.audio.played = []
        self.audio.set_controls(self.conductor.controls())
        if not self.conductor.playing:
            # paused when it stopped (a pause, the sleep timer's end), as the saved state says:
            # a power blip or a restart at 3 a.m. does not start the music by itself, and what
            # is heard agrees with `status` (the audio faded in regardless; the first press of
            # play then seemed to do nothing)
            self.audio.fade_out(0.0)
        # The senses (pulse, scene, panel) are built once sound flows: their modules and gpiozero
        # take a second or more to import on a Pi, and a nurse waits for sound (the compiled
        # libraries, which hold the GIL as they load, come before it: _load_native_libraries).
        self.components: list[Component] = [self.composer, self.audio]
        self.supervisor = Supervisor(self.components, self.notifier, clock, self.scheduler)
        self.control = (ControlServer(socket_path(config.device.runtime_dir), self.handle_request)
                        if control else None)
        self.socket_rate = TokenBucket(SOCKET_RATE_PER_S, SOCKET_BURST)
        # Personal care (calmtunes.care): the arm of each session, chosen at its start and
        # rewarded at its end; a preset chosen by a person overrides it until "preset auto".
        self.care = self._make_care()
        self.choice: Any = None  # the running session's arm (a care Choice), when chosen
        self._by_hand = False  # a person chose the running session's preset, or took it over
        # a person chose the preset: the personaliser stands aside (kept across power cuts) for
        # the listener it was chosen for; a new listener lets it go
        self.manual = bool(saved.get("manual", False))
        listener = saved.get("manual_listener")
        self.manual_listener: str | None = listener if isinstance(listener, str) and listener \
            else None
        self.sessions = self._make_sessions()
        for topic in ("command", "pulse", "scene", "output"):
            self.hub.subscribe(topic, lambda value, t=topic: self.post(t, value))

    def _state_folder_usable(self, state_dir: str) -> bool:
        """Whether ``device.state_dir`` is a folder (or can become one). One that is a file
        (or lies under a file) gets one error naming it and the fix, and the device plays
        without keeping anything, rather than each part failing on it in its own words."""
        path = Path(state_dir)
        for above in (path, *path.parents):
            if above.exists():
                if above.is_dir():
                    return True
                problem = (f"device.state_dir {path} " + ("is a file" if above == path else
                           f"lies under {above}, a file") + ", not a folder: nothing is kept "
                           "(volume, preset, sessions, care); move it away (sudo mv "
                           f"{above} {above}.old) and restart, or set device.state_dir")
                log.error("%s; the music plays all the same", problem)
                self.records_problems.append(problem)
                return False
        return True

    # -- construction (kept apart so the closed loop can extend it) ---------------------------
    def _make_conductor(self, saved: dict) -> Conductor:
        conductor = Conductor(self.config, saved["preset"], saved["volume_db"])
        conductor.playing = bool(saved.get("playing", True))
        return conductor

    def _make_sessions(self, start: bool = True):
        from calmtunes.sessions import OPEN_RETRY_S, SessionRecorder

        if not self.persist:
            return None
        locked: list[str] = []
        recorder = SessionRecorder.open(self.config, self.record_time(), self.records_problems,
                                        locked)
        self._records_locked = locked[0] if locked else None
        self._records_retry_at = self.clock.monotonic() + OPEN_RETRY_S if locked else None
        if locked:
            self.records_problems.append(locked[0])
        self.sessions = recorder
        if self.conductor.playing and start:  # power-on: a session starts
            self._start_session(self.record_time())
        return recorder

    def _retry_records(self) -> None:
        """Records another program held locked at start: tried again every
        :data:`~calmtunes.sessions.OPEN_RETRY_S`; once open, the session playing is recorded
        from now, and the problem leaves ``status``."""
        if self._records_retry_at is None or self.clock.monotonic() < self._records_retry_at:
            return
        said = self._records_locked
        if said in self.records_problems:
            self.records_problems.remove(said)
        self._make_sessions(start=False)
        if self.sessions is not None:
            log.info("session records: open now; the session playing is recorded from here")
            if self.conductor.playing:  # the same session and arm: only its record starts
                self.sessions.start(self.record_time(), self.conductor.preset)
                self._note_choice()

    def _make_care(self):
        if not (self.persist and personaliser_runs(self.config)):
            return None
        from calmtunes.care.personaliser import Personaliser

        try:
            return Personaliser(self.config)
        except Exception:  # the music never waits for the personaliser
            log.exception("care: the personaliser cannot start; playing the presets as chosen")
            return None

    # -- sessions and the personaliser -------------------------------------------------------
    def record_time(self) -> float:
        """Unix time for the session records and the personaliser: the wall clock, except that
        while a session runs it moves with the monotonic clock. A wall clock set forward or
        back during a session (a technician's ``date -s``; a Pi has no battery clock, and this
        device no network time) then neither stretches, reverses nor prunes the record being
        written; the jump is logged. Between sessions it follows the wall clock again."""
        wall, mono = self.clock.time(), self.clock.monotonic()
        anchor = self._wall_anchor
        if anchor is None or self.sessions is None or not self.sessions.active:
            self._wall_anchor = (wall, mono)
            self._wall_jump = 0.0
            return wall
        steady = anchor[0] + (mono - anchor[1])
        jump = wall - steady
        if abs(jump - self._wall_jump) > WALL_JUMP_S:
            self._wall_jump = jump
            log.warning("the wall clock moved %+.0f s against the monotonic clock during a "
                        "session; the session's record keeps its own time (it ends on the clock "
                        "it began on), the next one takes the new time", jump)
        return steady

    def _start_session(self, now: float) -> None:
        """A session starts (power-on, play, ``preset auto``): the personaliser chooses its arm
        unless a person chose the preset; the record starts."""
        self.choice = None
        if self.care is not None and self.manual:
            self._let_go_of_a_previous_listeners_choice(now)
        self._by_hand = self.manual  # a session of a person's choice from its start
        if self.care is not None and not self.manual:
            try:
                self.choice = self.care.start_session(now)
            except Exception:
                log.exception("care: choosing the session's arm failed; playing %s",
                              self.conductor.preset)
            if self.choice is not None:
                self._play_arm(self.choice)
        elif self.care is not None:  # a person's choice: the listener's session all the same
            try:
                self.choice = self.care.person_session(now, self.conductor.preset)
            except Exception:
                log.exception("care: the session of a person's choice cannot be noted")
        if self.sessions is not None:
            self.sessions.start(now, self.conductor.preset)
            self._note_choice()

    def _note_choice(self) -> None:
        """The session record's listener, arm and who chose it."""
        from calmtunes.care.personaliser import chosen_by

        assert self.sessions is not None
        by = chosen_by(self.choice, self._by_hand)
        if self.choice is not None:
            self.sessions.note(listener=self.choice.listener, arm=self.choice.arm.id,
                               chosen_by=by)
        else:
            self.sessions.note(chosen_by=by)

    def _let_go_of_a_previous_listeners_choice(self, now: float) -> None:
        """A preset a person chose binds the listener it was chosen for: after a new listener
        (the panel's chord, or ``calmtunes listener new`` over SSH while the daemon runs) the
        personaliser chooses again."""
        try:
            listener = self.care.store.current(now)[0]
        except Exception:  # an unreadable record: the choice stays (the music never waits)
            return
        if self.manual_listener is None:
            self.manual_listener = listener
        elif listener != self.manual_listener:
            log.info("care: listener %s is new here; the preset chosen by hand for %s no "
                     "longer binds: the personaliser chooses", listener, self.manual_listener)
            self.manual, self.manual_listener = False, None
            self.save_state()

    def _choose_by_hand(self, source: str, preset: str) -> None:
        """A person chose ``preset``: the personaliser stands aside for this listener (the one
        at the bedside now, at each press) until 'preset auto', the panel's chord or a new
        listener; the session playing is a person's, not rewarded."""
        self._by_hand = True
        if self.care is None:
            return
        try:  # read only: a press never makes a listener (the next session start may)
            listener = self.care.store.peek_current() or self.care.listener
        except OSError:  # an unreadable record: the listener the personaliser last knew
            listener = self.care.listener
        self.manual_listener = listener
        if self.manual:
            return
        self.manual = True
        log.info("care: %s chose preset %s; the personaliser stands aside for this listener "
                 "until `calmtunes preset auto`, the panel's new-listener chord or a new "
                 "listener", source, preset)

    def _play_arm(self, choice: Any) -> None:
        """Play ``choice``'s arm: its preset, and its variation of the config (tempo target,
        bed, breath pacing) for the conductor, composer and mixer. Never louder."""
        arm_config = choice.config
        self.conductor.reconfigure(arm_config)
        changed = self.conductor.set_preset(choice.arm.preset)
        for part in (self.composer, self.audio):
            part.reconfigure(arm_config)
        if changed:
            self.composer.flush()
            self.audio.change_preset()
        log.info("care: playing %s (%s)", choice.arm.describe(), choice.why)

    def _end_session(self, now: float, why: str) -> None:
        """A session ends: it is rewarded (unless a person chose its preset or took it over)
        and recorded; its arm's variation is undone either way."""
        choice, self.choice = self.choice, None
        by_hand, self._by_hand = self._by_hand, False
        if choice is not None and self.care is not None and self.sessions is not None:
            from calmtunes.care.personaliser import PERSON_CHOSE

            try:  # a person's choice: measured and kept as the listener's night, not rewarded
                response = self.care.end_session(
                    choice, self.sessions.points(now), now, self.sessions.session_id,
                    unheard=self.sessions.unheard_spans(now),
                    unrewarded=PERSON_CHOSE if by_hand or self.manual else None)
                self.sessions.note(listener=choice.listener, arm=choice.arm.id,
                                   **response.columns())
            except Exception:
                log.exception("care: measuring the session failed; the record goes on")
        if (by_hand or self.manual) and self.sessions is not None:
            self.sessions.note(chosen_by="person")  # a person took it over: theirs from then
        if choice is not None and self.config is not choice.config:  # the next starts afresh
            self._unplay_arm()
        if self.sessions is not None:
            self.sessions.end(now, why)

    def _new_listener(self, source: str) -> None:
        """A nurse starts a new listener at this bedside (the panel's chord): the session
        playing ends for the previous listener, and a new one starts with a fresh belief and the
        personaliser choosing again (a preset the previous listener's carer chose is let go)."""
        if self.care is None:
            log.warning("new listener (%s): personal care is not running (care.enabled: false, "
                        "or no state folder); nothing to start", source)
            return
        now = self.record_time()
        try:
            listener = self.care.store.new_listener(now)
        except OSError as exc:
            log.error("new listener (%s): the care record cannot be written (%s); the "
                      "current listener stays. Check %s", source, exc, self.care.store.dir)
            return
        log.info("new listener %s (%s): the personaliser starts afresh", listener, source)
        self.manual, self.manual_listener = False, None
        if self.conductor.playing:
            self._end_session(now, "new_listener")
            self._start_session(now)

    def _unplay_arm(self) -> None:
        for part in (self.conductor, self.composer, self.audio):
            part.reconfigure(self.config)

    def _load_native_libraries(self) -> None:
        """Load the compiled libraries the parts will need before the first sound, not after.

        Loading one holds Python's GIL for as long as the dynamic loader reads and relocates it,
        and the sound card's callback needs the GIL every period (42.7 ms, two queued): OpenCV
        held it for 20 ms here with its files in the page cache and 95 ms with them on disk,
        onnxruntime 25-30 ms; a Pi 4 core is about three times slower and its SD card slower
        still. Loaded while the music plays (the generator's loader thread, the camera's first
        frame), that is a gap in the sound in the first seconds after power-on; loaded here, it
        is the same time before the first note (`scripts/bench`: start → first audio). The
        pure-Python parts (gpiozero, the senses' own modules) let the GIL go every few ms and
        still load once sound flows. A library that will not load is left for its part to
        report (the music plays on without it). OpenCV loads with the camera off for privacy
        too (about 17 MB of the budget the camera's running takes anyway): turned back on by a
        press, it would otherwise load while the music plays."""
        wanted = []
        if self.config.music.generator == "onnx":
            wanted.append("onnxruntime")
        scene = self.config.scene
        if scene.enabled and scene.backend != "none":
            wanted.append("cv2")  # the scene's analysis, whichever camera
        for name in wanted:
            try:
                importlib.import_module(name)
            except Exception as exc:  # ImportError, or a library's own failure to load
                log.debug("%s not loaded before the sound (%s); its part will say why", name,
                          exc)

    def _make_senses(self) -> list[Component]:
        from calmtunes.panel.component import make_component as make_panel
        from calmtunes.pulse.component import make_component as make_pulse
        from calmtunes.scene.component import make_component as make_scene

        parts = []
        for make in (make_pulse, make_scene, make_panel):
            try:
                parts.append(make(self.config, self.hub, self.hardware))
            except Exception:
                log.exception("cannot build a component; carrying on without it")
        return parts

    # -- events: every input reaches the loop through here ---------------------------------------
    def post(self, kind: str, value: Any = None) -> None:
        """Hand an event to the control loop (any thread).

        Before the loop runs (or after it ended) there is no other thread to race with, and the
        event is handled at once, in the caller's thread."""
        self._events.put((kind, value))
        loop = self._loop_thread
        if loop is None:
            self._drain_events()
        elif self._loop_task is not None and loop == threading.get_ident():
            self.scheduler.wake(self._loop_task)

    def _drain_events(self) -> None:
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                return
            try:
                self._handle_event(kind, value)
            except Exception:  # one bad event must not end the loop
                log.exception("control loop: handling a %r event failed; carrying on", kind)

    def _handle_event(self, kind: str, value: Any) -> None:
        if kind == "command":
            self.handle_command(value)
        elif kind == "pulse":
            self._pulse = value
            if self.sessions is not None:
                self.sessions.reading(self.record_time(), value)
        elif kind == "scene":
            self._scene = value
        elif kind == "output":  # the audio output opened or was lost: its music heard or not
            if self.sessions is not None and isinstance(value, dict):
                self.sessions.output(self.record_time(), value.get("heard") is not False)
        elif kind == "reload":
            self.reload()
        elif kind == "request":
            if not value.take():
                return  # its client was told it was not done: it is not done now either
            try:
                value.reply = self._answer(value.request, value.peer)
            except Exception as exc:  # said to the client as what it is, not as "too slow"
                log.exception("control loop: answering a %r request failed",
                              value.request.get("cmd"))
                value.reply = {"ok": False, "error": f"the daemon failed to carry out the "
                               f"request ({type(exc).__name__}); see its journal"}
            finally:
                value.done.set()
        elif kind == "stop":
            self.exit_code = value
            self._stop.set()
        else:
            log.error("control loop: unknown event %r ignored", kind)

    # -- running -------------------------------------------------------------------------------
    def request_stop(self, code: int = 0) -> None:
        self.exit_code = code
        self._stop.set()

    def request_reload(self) -> None:
        self.post("reload")

    def install_signal_handlers(self) -> None:
        # A signal handler only posts: the loop does the work in its own thread.
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop(0))
        signal.signal(signal.SIGINT, lambda *_: self.request_stop(0))
        signal.signal(signal.SIGHUP, lambda *_: self._events.put(("reload", None)))
        signal.signal(signal.SIGUSR1, lambda *_: dump_threads())

    def run(self, duration: float | None = None) -> int:
        """Run until asked to stop (or for ``duration`` s of clock time); the exit code."""
        log.info("calmtunes %s starting%s", __version__,
                 " on a virtual clock" if self.scheduler is not None else "")
        self._loop_thread = threading.get_ident()
        try:
            self._load_native_libraries()
            self.supervisor.start()
            self._wait_for_sound(SOUND_FIRST_S)
            senses = self._make_senses()
            # the saved switch, once the senses listen and before any of them runs: a camera
            # switched off for privacy is never opened at a start (it was, for a frame)
            self.hub.publish("privacy", self.privacy)
            if self.privacy:
                log.info("camera off for privacy (saved state)")
            for part in senses:
                self.components.append(part)
                self.supervisor.add(part)
            if self.control is not None:
                try:
                    self.control.start()
                except SocketTaken as exc:  # started at the same moment as another daemon
                    raise ConfigError(f"device.runtime_dir {self.config.device.runtime_dir}", [
                        f"{exc}: it started at the same moment as this one, which stops; "
                        "give each daemon its own device.runtime_dir and device.state_dir"
                    ]) from None
                except OSError as exc:
                    log.error("control socket unavailable (%s); `calmtunes status` will not "
                              "answer", exc)
            deadline = None if duration is None else self.clock.monotonic() + duration
            if self.scheduler is not None:
                self._run_virtual(deadline)
            else:
                self._run_threaded(deadline)
        finally:
            self.shutdown()
            self._loop_thread = None
        return self.exit_code

    def _run_threaded(self, deadline: float | None) -> None:
        next_tick = self.clock.monotonic()
        while not self._stop.is_set():
            now = self.clock.monotonic()
            if now >= next_tick:
                self.tick(now)
                next_tick = now + LOOP_TICK_S
            if deadline is not None and now >= deadline:
                break
            wait = next_tick - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            try:  # an event wakes the loop at once
                kind, value = self._events.get(timeout=max(0.0, wait))
            except queue.Empty:
                continue
            self._events.put((kind, value))  # keep the order: handled with the rest, now
            self._drain_events()

    def _run_virtual(self, deadline: float | None) -> None:
        assert self.scheduler is not None
        self._loop_task = self.scheduler.add("loop", self._loop_step)
        until = float("inf") if deadline is None else deadline
        self.scheduler.run_until(until, stop=self._stop.is_set)
        self.scheduler.end(self._loop_task)  # as on the system clock: no loop turns in the fade
        self._drain_events()

    def _loop_step(self, now: float) -> float | None:
        if self._stop.is_set():
            return None
        self.tick(now)
        return LOOP_TICK_S

    def tick(self, now: float) -> None:
        """The loop's round: events, readiness, supervisor and watchdog, conductor, state."""
        self._drain_events()
        self._check_ready(now)
        self.supervisor.tick(now, self.summary())
        if now >= self._next_thread_naming:  # threads come and go (restarts, LED blinks)
            self._next_thread_naming = now + THREAD_NAMING_S
            name_os_threads()
        self.conduct(now)
        self.save_state()

    def wait(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Let ``seconds`` of clock time pass (the parts running), or until ``until()``."""
        end = self.clock.monotonic() + seconds
        if self.scheduler is not None:
            self.scheduler.run_until(end, stop=until)
            return
        while not until() and self.clock.monotonic() < end:
            self.clock.sleep(0.01)  # not _stop.wait: while stopping it is set and would spin

    def _wait_for_sound(self, timeout: float) -> None:
        self.wait(timeout, lambda: self.audio.first_frame_at is not None or self._stop.is_set())
        self._check_ready(self.clock.monotonic())

    def _check_ready(self, now: float) -> None:
        """READY=1 once audio flows, or after READY_WITHOUT_SOUND_S without a sound card."""
        if self.ready_at is not None:
            return
        if self.audio.first_frame_at is not None:
            self.ready_at = now
            log.info("audio flowing %.2f s after start",
                     self.audio.first_frame_at - self.started_at)
            self.notifier.ready(self.summary())
        elif now - self.started_at > READY_WITHOUT_SOUND_S:
            self.ready_at = now
            log.error("no audio output after %.0f s; running without sound and retrying the "
                      "card (%s)", READY_WITHOUT_SOUND_S, self.audio.health().detail)
            self.notifier.ready("NO SOUND: " + self.audio.health().detail)
        if self.ready_at is not None and self.persist:
            # the device up (once): an earlier failure's note no longer holds. A render or a
            # simulation keeps no device state: the note of the device's own failure stays
            clear_fault(self.config.device.state_dir)

    def shutdown(self) -> None:
        self._drain_events()
        if self.exit_code == EXIT_POWEROFF:
            log.warning("shutdown requested: fading out; exit status %d asks the service manager "
                        "to power off", EXIT_POWEROFF)
        self.notifier.stopping("fading out")
        self.audio.fade_out()
        if self.sessions is not None:  # while the music fades: the last commit syncs the card
            ended = "shutdown" if self.exit_code == EXIT_POWEROFF else "stop"
            if self.choice is not None:
                self._end_session(self.record_time(), ended)
            self.sessions.close(self.record_time(), ended)
        self.wait(self.config.audio.fade_out_s + 0.3, lambda: self.audio.faded_out)
        # Let the faded tail already in the ring reach the output (a sound card takes it in
        # about audio.buffer_ms; a late output thread is given up to 0.5 s more).
        ring = self.audio.ring
        tail_end = ring.frames_in
        self.wait(min(0.3, self.config.audio.buffer_ms / 1000))
        if self.audio.first_frame_at is not None:
            self.wait(0.5, lambda: ring.frames_read >= tail_end)
        self.save_state()
        if self.control is not None:
            self.control.stop()
        self.supervisor.stop(timeout=1.0)
        self._drain_events()  # answer whoever still waits
        log.info("stopped")

    # -- reload ----------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the config file again and apply it part by part, all or nothing.

        Nothing that goes wrong here stops the daemon: a bad file (a ConfigError, one short
        message) or a fault while reading it is logged once and the running config kept; a part
        that cannot take the new config puts every part back on the old one. systemd hears
        RELOADING=1 before and READY=1 after, whatever the outcome (sd_notify(3))."""
        if self.config_path is None:
            log.info("reload: no config file to reload")
            self.last_reload = {"ok": False, "error": "running on defaults: no config file"}
            return
        self.notifier.reloading()
        outcome = "config reload refused: see the journal"
        try:
            outcome = self._reload()
        except Exception as exc:  # nothing in a reload may stop the daemon
            log.exception("config reload failed; carrying on")
            self.last_reload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.notifier.ready(outcome)

    def _reload(self) -> str:
        old = self.config
        try:
            new = config_mod.load(self.config_path, empty_ok=False)
            new = resolve(new.replace(**self.overlay) if self.overlay else new)
        except ConfigError as exc:
            log.error("config reload refused, keeping the running config:\n%s", exc)
            self.last_reload = {"ok": False, "error": str(exc)[:2000]}
            return "config reload refused: see the journal"
        except Exception as exc:  # a fault in the config code must not stop the music
            log.error("config reload failed, keeping the running config: %s: %.300s",
                      type(exc).__name__, exc)
            self.last_reload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
            return "config reload refused: see the journal"
        fixed = [f"{section}.{key}" for section, key in START_ONLY
                 if getattr(getattr(old, section), key) != getattr(getattr(new, section), key)]
        if fixed:
            error = (f"{', '.join(fixed)} take effect only at a start: restart the service "
                     f"(systemctl restart calmtunes); nothing was changed")
            log.error("config reload refused: %s", error)
            self.last_reload = {"ok": False, "error": error}
            return "config reload refused: see the journal"
        changed = [name for name in config_mod.SECTIONS
                   if getattr(old, name) != getattr(new, name)]
        parts: dict[str, str] = {}
        done: list[Any] = []
        try:
            for part in self.components:
                if set(part.config_sections) & set(changed):
                    parts[part.name] = part.reconfigure(new)
                    done.append(part)
                else:
                    part.config = new  # its sections are the same: nothing to do but read them
            if set(LOOP_SECTIONS) & set(changed):
                self.conductor.reconfigure(new)
                parts["conductor"] = "reconfigured"
        except Exception as exc:
            name = part.name if "part" in locals() else "conductor"
            log.error("config reload undone, keeping the running config: %s could not take the "
                      "new one (%s)", name, exc)
            for undo in done:
                try:
                    undo.reconfigure(old)
                except Exception:
                    log.exception("%s could not go back to the running config", undo.name)
            for part in self.components:
                part.config = old if part not in done else part.config
            self.last_reload = {"ok": False, "error": f"{name}: {exc}"[:500]}
            return "config reload refused: see the journal"
        # From here the new config runs: what follows is care's, which the music never waits
        # for, so a failure is logged and the reload still counts (and is reported) as done.
        for key, unit in (("target_lufs", "LUFS"), ("max_volume_db", "dB")):
            before, after = getattr(old.music, key), getattr(new.music, key)
            if after > before:  # asked for by the file, but never unremarked (once it runs)
                log.warning("config reload: music.%s %g → %g %s: the music may become up to "
                            "%.1f dB louder", key, before, after, unit, after - before)
        self.config = new
        if old.care != new.care:
            parts["care"] = self._reload_care()
        if self.choice is not None:  # the session goes on with its arm, on the new config
            try:
                from calmtunes.care.arms import apply_arm

                arm_config = apply_arm(new, self.choice.arm)
                for part in (self.conductor, self.composer, self.audio):
                    part.reconfigure(arm_config)
            except ValueError as exc:  # its preset left the config
                log.warning("care: %s; the session plays on without its arm", exc)
            except Exception:
                log.exception("care: the session's arm could not be applied to the new config; "
                              "the session plays on without it")
        self._obey_care_now()  # a forbidden preset may also come back as music.default_preset
        self.generation += 1
        self.loaded_at = self.clock.time()
        self.last_reload = {"ok": True, "changed": changed, "parts": parts}
        log.info("config reloaded from %s (generation %d): %s", self.config_path,
                 self.generation, ", ".join(f"{k} {v}" for k, v in parts.items()) or "no change")
        self.apply_controls()
        return "config reloaded"

    def _reload_care(self) -> str:
        """The care section changed: the personaliser takes it (started or stopped as
        ``care.enabled`` and ``care.pinned_arm`` now ask). What was done, for the reload's
        answer."""
        had = self.care is not None
        if had:
            try:
                self.care.reconfigure(self.config)
            except Exception:
                log.exception("care: the personaliser could not take the new config")
        wanted = self.persist and personaliser_runs(self.config)
        if wanted and not had:
            self.care = self._make_care()
            return "personaliser started" if self.care is not None else "personaliser failed"
        if had and not wanted:
            self.care = None
            if self.choice is not None:  # its arm's variation goes with it
                self.choice = None
                self._unplay_arm()
            return "personaliser stopped"
        return "reconfigured"

    def _obey_care_now(self) -> None:
        """After a reload: a session playing a preset or an arm the clinician has forbidden, or
        other than the arm just pinned, ends here and a new one starts under the new settings
        (the music changes preset smoothly, as for a press). A forbidden preset is left even
        while paused, and even where it came back as ``music.default_preset`` (a reload that
        removed the preset playing)."""
        from calmtunes.care.bandit import is_forbidden

        care = self.config.care
        arm = self.choice.arm if self.choice is not None else None
        playing = self.conductor.playing
        forbidden = preset_forbidden(self.config, self.conductor.preset) or (
            arm is not None and not self.manual and is_forbidden(arm, care.forbidden_arms))
        repinned = (playing and not self.manual and self.care is not None
                    and bool(care.pinned_arm) and (arm is None or arm.id != care.pinned_arm))
        if not (forbidden or repinned):
            return
        if forbidden and self.manual:
            log.warning("care: the preset chosen by hand (%s) is now forbidden "
                        "(care.forbidden_arms); the personaliser chooses", self.conductor.preset)
            self.manual, self.manual_listener = False, None
        log.info("care: the %s on %s ends: the clinician's settings %s it",
                 "session" if playing else "paused preset",
                 arm.id if arm is not None else self.conductor.preset,
                 "forbid" if forbidden else "pin another arm than")
        now = self.record_time()
        if playing:
            self._end_session(now, "reload")
        if preset_forbidden(self.config, self.conductor.preset):
            fallback = default_arm(self.config).preset
            if self.conductor.set_preset(fallback):
                self.composer.flush()
                self.audio.change_preset()
        if playing:
            self._start_session(now)
        self.save_state()

    # -- the closed loop ---------------------------------------------------------------------------
    def conduct(self, now: float) -> None:
        """Once a second: update the conductor, apply and publish its controls; the sleep timer;
        the session record."""
        if self.sleep_at is not None and now >= self.sleep_at:
            self.sleep_at = None
            log.info("sleep timer: fading out over %.0f s", SLEEP_FADE_S)
            if self.conductor.playing:
                self._set_playing(False, fade_s=SLEEP_FADE_S, why="sleep_timer")
        if now < self._next_conduct:
            return
        self._next_conduct = now + CONDUCT_EVERY_S
        if self.sessions is None:
            self._retry_records()
        before = self.conductor.tempo_bpm
        controls = self.conductor.update(now, self._pulse, self._scene)
        if abs(controls.tempo_bpm - before) > ISO_CROSSFADE_BPM:
            # The iso start met the listener's heart in one step: rather than a jump at the next
            # phrase boundary, the music at the new tempo crossfades in now (≥ 2 s).
            self.composer.flush()
            self.audio.change_preset()
        self.audio.set_controls(controls)
        self.hub.publish("controls", controls)
        listener = self.hardware.listener
        if self.trace is not None and listener is not None:
            self.trace.add(now - self.started_at, controls.tempo_bpm, controls.breath_rate,
                           listener.state, self.conductor.mode)
        if self.sessions is not None:
            wall = self.record_time()
            self.sessions.controls(wall, controls)
            self.sessions.scene(wall, getattr(self._scene, "label", None))
            self.sessions.tick(wall)

    # -- commands -------------------------------------------------------------------------------
    def apply_controls(self) -> None:
        controls = self.conductor.controls()
        self.audio.set_controls(controls)
        self.hub.publish("controls", controls)

    def save_state(self) -> None:
        if not self.persist:
            return
        until = (0.0 if self.sleep_at is None
                 else float(round(self.clock.time() + (self.sleep_at - self.clock.monotonic()))))
        self.state.save({"preset": self.conductor.preset, "volume_db": self.conductor.volume_db,
                         "playing": self.conductor.playing, "privacy": self.privacy,
                         "manual": self.manual, "manual_listener": self.manual_listener or "",
                         "sleep_until": until})

    def handle_command(self, command: Command) -> None:
        checked = check(command.name, command.arg, self.config)
        if not checked.ok:
            log.warning("command refused (%s): %s", command.source, checked.error)
            return
        self._do_command(checked.name, checked.arg, command.source)

    def _undo_panel_volume(self, steps: int, source: str) -> None:
        """Take back the panel's last ``steps`` volume steps (a chattering button's: the panel
        sees a storm only once it has sent some), counted, not timed: the volume goes back to
        what it was before the first of them, or stays where it is if that is quieter. An undo
        never makes the music louder: a storm on volume down stays quieter until a person
        presses volume up."""
        kept = self._panel_volume_steps
        taken = [kept.pop() for _ in range(min(steps, len(kept)))]
        if not taken:
            return
        before = taken[-1]
        now_db = self.conductor.volume_db
        if before < now_db:
            db = self.conductor.set_volume_db(before)
            log.warning("volume %+.1f dB again: the %d volume steps of a chattering button "
                        "taken back (%s)", db, len(taken), source)
        else:
            log.warning("a chattering button's %d volume steps left as they are: taking them "
                        "back would make the music louder (%+.1f dB now, %+.1f before them)",
                        len(taken), now_db, before)

    def _do_command(self, name: str, arg: Any, source: str) -> None:
        """A command :func:`check` accepted (``arg`` is clean)."""
        step = self.config.music.volume_step_db
        if name == "preset" and arg == AUTO:
            log.info("preset auto (%s): the personaliser chooses from the next session", source)
            self.manual, self.manual_listener = False, None
            now = self.record_time()
            if self.conductor.playing:
                self._end_session(now, "auto")
                self._start_session(now)
            else:
                self._set_playing(True)
        elif name == "preset":
            self._choose_by_hand(source, arg)
            if self.conductor.set_preset(arg):
                log.info("preset %s (%s)", arg, source)
                self.composer.flush()
                self.audio.change_preset()
                if self.sessions is not None:
                    self.sessions.preset(arg)
            if not self.conductor.playing:
                self._set_playing(True)
        elif name in ("volume_up", "volume_down"):
            change = step if name == "volume_up" else -step
            before = self.conductor.volume_db
            db = self.conductor.set_volume_db(before + change)
            if source == "panel":  # kept: a storm's are taken back
                self._panel_volume_steps.append(before)
            # at a limit a press changes nothing: said at debug (a held or stuck button)
            (log.info if db != before else log.debug)("volume %+.1f dB (%s)%s", db, source,
                                                      "" if db != before else ", at its limit")
        elif name == "volume":
            db = self.conductor.set_volume_db(arg)
            log.info("volume %+.1f dB (%s)", db, source)
        elif name == "undo_volume":
            self._undo_panel_volume(arg, source)
        elif name == "play_pause":
            self._set_playing(not self.conductor.playing)
        elif name == "stop":
            self.request_stop(0)
        elif name == "sleep_timer":
            if source == "panel" and self.sleep_at is not None:
                self._sleep_timer(0)  # the long press again: the timer is cancelled
                return
            if not self.conductor.playing:  # asked for while paused: it plays until then
                self._set_playing(True)
            self._sleep_timer(arg)
            return
        elif name == "shutdown":
            if self.config.panel.long_press_action != "shutdown":
                log.warning("shutdown refused (%s): panel.long_press_action is %r, not 'shutdown'",
                            source, self.config.panel.long_press_action)
                return
            self.request_stop(EXIT_POWEROFF)
            return
        elif name == "new_listener":
            self._new_listener(source)
        elif name == "privacy":  # the one privacy switch; the scene component obeys the topic
            self.privacy = (not self.privacy) if arg is None else bool(arg)
            log.info("camera %s (%s)", "off for privacy" if self.privacy else "allowed", source)
            self.hub.publish("privacy", self.privacy)
            return
        self.apply_controls()

    def _set_playing(self, playing: bool, fade_s: float = 1.5, why: str = "pause") -> None:
        self.conductor.playing = playing
        if playing:
            self.audio.fade_in(1.0)
        else:
            self.audio.fade_out(fade_s)
            self.sleep_at = None
        log.info("%s", "playing" if playing else "paused")
        if playing:
            self._start_session(self.record_time())
        else:
            self._end_session(self.record_time(), why)

    def _sleep_timer(self, minutes: float) -> None:
        """``minutes`` as :func:`check` passed it: 0–1440, 0 cancels."""
        if minutes == 0:
            self.sleep_at = None
            log.info("sleep timer cancelled")
            self.hub.publish("sleep_timer", None)  # the panel's LEDs answer
            return
        self.sleep_at = self.clock.monotonic() + minutes * 60.0
        log.info("sleep timer: music fades out in %.0f min", minutes)
        self.hub.publish("sleep_timer", minutes)

    def summary(self) -> str:
        c = self.conductor
        state = "playing" if c.playing else "paused"
        return f"{state} {c.preset}, volume {c.volume_db:+.0f} dB"

    def status(self, health: bool = True) -> dict[str, Any]:
        """What ``calmtunes status`` shows; without ``health``, no figure about the listener's
        body (heart rate, HRV, breathing, stress, SpO2), and ``health_hidden`` says so."""
        pulse = self.hub.latest("pulse")
        scene = self.hub.latest("scene")
        now = self.clock.monotonic()
        status = {
            "version": __version__,
            "uptime_s": round(now - self.started_at, 1),
            "clock": "virtual" if self.clock.virtual else "system",
            "preset": self.conductor.preset,
            "volume_db": self.conductor.volume_db,
            "playing": self.conductor.playing,
            "privacy": self.privacy,
            "controls": _public(self.hub.latest("controls") or self.conductor.controls()),
            "conductor": self.conductor.state(),
            "sleep_timer_s": (None if self.sleep_at is None else round(self.sleep_at - now)),
            "pulse": _public(pulse),
            "scene": _public(scene),
            "config": {"generation": self.generation, "path": self.config_path,
                       "loaded_at": round(self.loaded_at, 3),
                       "hardware": self.config.device.hardware,
                       "last_reload": self.last_reload},
            "care": self._care_status(),
            "restarts_unclean": (None if self.sessions is None
                                 else self.sessions.restarts_unclean(self.record_time())),
            # what went wrong with the session records (none: they are kept), and what waits
            # in memory to be written
            "records": list(self.records_problems) + (
                [self.sessions.unwritten] if self.sessions is not None
                and self.sessions.unwritten else []),
            "components": {
                c.name: {"state": c.health().state, "detail": c.health().detail, **c.status()}
                for c in self.components
            },
        }
        if not health:
            status["health_hidden"] = HEALTH_HIDDEN
            if isinstance(status["pulse"], dict):
                status["pulse"] = {k: v for k, v in status["pulse"].items()
                                   if k in HEALTH_PULSE_KEEP}
            # the texts keep what went wrong, not the figures in it ("99 bpm measured, 49
            # reported", "breath count (13 /min) ...", "belief +0.37 ± 3.30")
            for key, texts in HEALTH_TEXTS.items():
                part = status[key]
                if isinstance(part, dict):
                    for name in texts:
                        if isinstance(part.get(name), str):
                            part[name] = _without_figures(part[name])
            if isinstance(status["care"], dict):
                status["care"] = {k: v for k, v in status["care"].items() if k not in HEALTH_CARE}
            for key, hidden in (("conductor", HEALTH_CONDUCTOR), ("controls", HEALTH_CONTROLS)):
                if isinstance(status[key], dict):
                    status[key] = {k: v for k, v in status[key].items() if k not in hidden}
        return status

    def _care_status(self) -> dict[str, Any] | None:
        """The personaliser: the arm playing and why, what it has learnt; or why not."""
        care = self.config.care
        oversight = {"pinned_arm": care.pinned_arm or None,
                     "forbidden_arms": list(care.forbidden_arms)}
        if self.care is None:
            if not care.enabled:
                return {"enabled": False, **oversight}
            problem = ("not running: no state folder to keep its record in" if not self.persist
                       else "not running: it could not start (see the journal)")
            return {"enabled": True, "problem": problem, **oversight}
        status = self.care.status()
        status.update(oversight, manual=self.manual)
        if self.choice is not None:
            status.update(arm=self.choice.arm.id, why=self.choice.why)
        else:
            status.update(arm=None, why=None)
        if self.manual:  # what plays is the person's preset, whatever arm the session began
            status["arm"] = self.conductor.preset
            status["why"] = (f"a person chose the preset {self.conductor.preset}"
                             + (f", over the clinician's pin ({care.pinned_arm}), which a "
                                "person's choice overrides as a forbid does not"
                                if care.pinned_arm else "")
                             + "; `calmtunes preset auto` or the panel's new-listener chord "
                             "hands back to the personaliser")
        return status

    def may_see_health(self, peer: Peer | None) -> bool:
        """The daemon's own user and root see health figures; the group only if the config
        says so (``device.status_health: group``). An unknown peer sees none."""
        if peer is None:
            return False
        if self.config.device.status_health == "group":
            return True
        return peer.uid in (0, os.geteuid())

    def handle_request(self, request: dict[str, Any], peer: Peer | None = None) -> dict[str, Any]:
        """One control-socket request (``{"cmd": ..., "arg": ...}``) from ``peer``; the reply
        has ``ok`` and, when refused, ``error`` saying why.

        Called in the socket's threads: the request goes to the loop as an event and this waits
        for its answer (at most :data:`REQUEST_WAIT_S`)."""
        loop = self._loop_thread
        if loop is None or loop == threading.get_ident():
            return self._answer(request, peer)
        box = _Request(request, peer)
        self._events.put(("request", box))
        if not box.done.wait(REQUEST_WAIT_S):
            if box.withdraw():
                return {"ok": False, "error": LOOP_BUSY}
            box.done.wait(REQUEST_TAKEN_WAIT_S)  # taken just now: its answer is on its way
        if not box.done.is_set() or box.reply is None:
            return {"ok": False, "error": LOOP_LATE}
        return box.reply

    def _answer(self, request: dict[str, Any], peer: Peer | None) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            checked = no_argument(cmd, request.get("arg"))
            if not checked.ok:
                return {"ok": False, "error": checked.error}
            return {"ok": True, **self.status(health=self.may_see_health(peer))}
        if cmd in SOCKET_COMMANDS:
            checked = check(cmd, request.get("arg"), self.config)
            if not checked.ok:
                return {"ok": False, "error": checked.error}
            if not self.socket_rate.take():
                return {"ok": False, "error": SLOW_DOWN}
            self._do_command(checked.name, checked.arg, "socket")
            return {"ok": True}
        if cmd == "reload":
            checked = no_argument(cmd, request.get("arg"))
            if not checked.ok:
                return {"ok": False, "error": checked.error}
            if not self.socket_rate.take():
                return {"ok": False, "error": SLOW_DOWN}
            self.reload()
            reply = {"ok": bool(self.last_reload and self.last_reload.get("ok")),
                     "config": {"generation": self.generation, "last_reload": self.last_reload}}
            if not reply["ok"]:
                reply["error"] = str((self.last_reload or {}).get("error", "reload refused"))
            return reply
        if cmd == "hang":
            if not self.config.device.simulate:
                return {"ok": False, "error": "fault injection is only accepted in simulation mode"}
            names = [c.name for c in self.components]
            arg = request.get("arg")
            if arg not in names:
                error = f"no component {quote(arg)} (have: {', '.join(names)})"
                return {"ok": False, "error": error}
            self.supervisor.by_name(arg).inject_hang()
            return {"ok": True}
        known = ("status", *SOCKET_COMMANDS, "reload", "hang")
        hint = suggest(cmd, known) if isinstance(cmd, str) else ""
        return {"ok": False,
                "error": f"unknown command {quote(cmd)}{hint} (have: {', '.join(known)})"}


def prepare_runtime_dir(path: str | os.PathLike[str]) -> Path:
    """The control socket's folder: made 0750 if missing; one that another user owns, or that
    group or others may write to, is refused (:class:`ConfigError`, exit 78) with the fix.
    Anyone who can write there could put their own socket in the daemon's place."""
    p = Path(path)
    where = f"device.runtime_dir {p}"
    uid = os.geteuid()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.mkdir(mode=0o750)
        os.chmod(p, 0o750)  # mkdir's mode is masked by the umask
        return p
    except FileExistsError:
        pass
    except OSError as exc:
        problem = (f"cannot create it ({exc.strerror or exc}); create it for the daemon's user "
                   f"with mode 0750, or choose another folder")
        raise ConfigError(where, [problem]) from None
    try:
        link = os.lstat(p)
        st = os.stat(p)
    except OSError as exc:
        raise ConfigError(where, [f"cannot inspect it ({exc.strerror or exc})"]) from None
    fix = f"sudo chown {_user_name(uid)} {p} && sudo chmod 0750 {p}"
    problems = []
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (0, uid):
        problems.append(f"is a symbolic link owned by {_user(link.st_uid)}, not by the daemon's "
                        f"user {_user(uid)} or root; remove it (it is made afresh)")
    if not stat.S_ISDIR(st.st_mode):
        problems.append("is not a folder; remove it or choose another device.runtime_dir")
    elif st.st_uid != uid:
        problems.append(f"belongs to {_user(st.st_uid)}, not to the daemon's user {_user(uid)}; "
                        f"fix: {fix}")
    elif st.st_mode & 0o022:
        problems.append(f"is writable by {'group and others' if st.st_mode & 0o002 else 'group'} "
                        f"(mode {stat.S_IMODE(st.st_mode):04o}); fix: chmod 0750 {p}")
    if problems:
        raise ConfigError(where, problems)
    return p


def refuse_second_daemon(runtime_dir: str | os.PathLike[str]) -> None:
    """:class:`ConfigError` (exit 78) if a daemon already answers on this runtime folder's
    control socket: a second one would take its socket away (``calmtunes status`` could no
    longer reach the one playing) and write over its state and session records."""
    path = socket_path(runtime_dir)
    if in_use(path):
        raise ConfigError(f"device.runtime_dir {runtime_dir}", [
            f"another calmtunes daemon is running here (its control socket {path} answers); "
            "stop it first (systemctl stop calmtunes), or give this one its own "
            "device.runtime_dir and device.state_dir"])


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def _user(uid: int) -> str:
    return f"{_user_name(uid)} (uid {uid})"


def with_systemd_dirs(config: Config, environ: Any = None) -> Config:
    """systemd's ``$STATE_DIRECTORY`` and ``$RUNTIME_DIRECTORY`` (StateDirectory=,
    RuntimeDirectory=) over the config's folders; the first path where systemd lists several."""
    environ = os.environ if environ is None else environ
    dirs = {}
    for key, var in (("state_dir", "STATE_DIRECTORY"), ("runtime_dir", "RUNTIME_DIRECTORY")):
        value = (environ.get(var) or "").split(":")[0]
        if value and value != getattr(config.device, key):
            log.info("device.%s: %s from $%s (the config says %s)", key, value, var,
                     getattr(config.device, key))
            dirs[key] = value
    return config.replace(device=dirs) if dirs else config


def _without_figures(text: str) -> str:
    """``text`` with every number replaced by "…" (status for those who may not see them)."""
    return re.sub(r"[+\-−]?\d+(?:[.,]\d+)?", "…", text)


def _public(record: Any) -> Any:
    """A dataclass record as a JSON-friendly dict (floats rounded)."""
    import dataclasses

    if record is None or not dataclasses.is_dataclass(record):
        return record
    out = {}
    for k, v in dataclasses.asdict(record).items():
        out[k] = round(v, 2) if isinstance(v, float) else v
    return out


def dump_threads() -> None:
    """SIGUSR1: every thread's stack, to the log."""
    frames = sys._current_frames()
    names = {t.ident: t.name for t in threading.enumerate()}
    lines = []
    for ident, frame in frames.items():
        lines.append(f"--- thread {names.get(ident, ident)}")
        lines.extend(line.rstrip() for line in traceback.format_stack(frame))
    log.warning("thread dump (SIGUSR1):\n%s", "\n".join(lines))
