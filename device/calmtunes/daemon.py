"""The daemon: builds the parts from the config, runs them under the supervisor, and obeys.

Start order is chosen so sound comes first: the composer (procedural at once, the generator
loading behind it), then audio, then the senses (pulse, scene) and the panel. Signals:
SIGTERM/SIGINT fade the music out (≤ 2 s) and exit 0; SIGHUP reloads the config (a bad one is
refused and the old one kept); SIGUSR1 logs every thread's stack.

The closed loop: the latest "pulse" and "scene" records feed :meth:`Conductor.update` once a
second; the controls go to the audio component and are published on "controls".

Commands beyond preset/volume/play_pause: ``sleep_timer`` (arg: minutes; none for
``panel.sleep_timer_min``, 0 to cancel) fades out over :data:`SLEEP_FADE_S` when the time is up
and pauses. ``shutdown`` (accepted only when ``panel.long_press_action`` is "shutdown") fades out
and exits with :data:`EXIT_POWEROFF`. The daemon runs sandboxed without the right to power the
machine off, so it only asks: ``systemd/calmtunes.service`` takes exit status 10 as success,
does not restart on it, and powers off in a privileged ``ExecStopPost=``. Without that unit (a
workstation), the daemon just stops, saying so. "privacy" is remembered here (it survives power
cuts) and acted on by the scene component.

Every command passes :func:`calmtunes.commands.check` first, wherever it comes from (socket,
panel, saved state); a refused one changes nothing and, over the socket, is answered ``ok: false``
with the reason. Commands that change the device's state are rate-limited on the socket
(:data:`SOCKET_RATE_PER_S`, bursts of :data:`SOCKET_BURST`). ``status`` carries health figures
(pulse, heart-rate-led conductor figures) only for the daemon's own user and root, unless
``device.status_health`` is "group".

Folders: the runtime folder (the control socket's) must belong to the daemon's user and not be
writable by group or others; it is made 0750 when missing, and anything else stops the start with
exit status 78 and how to fix it (:func:`prepare_runtime_dir`). ``calmtunes run`` takes systemd's
``$STATE_DIRECTORY`` and ``$RUNTIME_DIRECTORY`` over the config's (:func:`with_systemd_dirs`).

systemd: READY=1 goes out once audio flows, or after :data:`READY_WITHOUT_SOUND_S` without a
sound card (the daemon is up and keeps trying the card; its status line says what is missing), so
a missing DAC is retried in place instead of the service being killed and restarted.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from calmtunes import __version__
from calmtunes import config as config_mod
from calmtunes.audio.component import AudioComponent
from calmtunes.audio.sinks import Sink
from calmtunes.commands import (
    SOCKET_COMMANDS,
    TokenBucket,
    check,
    checked_state,
    quote,
    suggest,
)
from calmtunes.component import Component
from calmtunes.config import Config
from calmtunes.control import ControlServer, Peer, socket_path
from calmtunes.errors import ConfigError
from calmtunes.fault import clear_fault
from calmtunes.hub import Command, Hub
from calmtunes.music.conductor import Conductor
from calmtunes.music.engine import ComposerComponent
from calmtunes.notify import Notifier
from calmtunes.state import StateStore
from calmtunes.supervisor import Supervisor

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
EXIT_POWEROFF = 10  # "fade out and power off, please": see the module docstring
SLEEP_FADE_S = 30.0  # the sleep timer's fade, in s
READY_WITHOUT_SOUND_S = 10.0  # READY=1 after this long even without a sound card (see above)
SOUND_FIRST_S = 1.0  # the senses start once audio flows, or after this long without a card
CONDUCT_EVERY_S = 1.0  # s between conductor updates (the analyser publishes once a second)
ISO_CROSSFADE_BPM = 3.0  # a tempo step larger than this (the iso start) crossfades in at once
SOCKET_RATE_PER_S = 5.0  # state-changing socket commands per second, on average
SOCKET_BURST = 10  # ... and at once (the socket's commands that change the music, and reload)
SLOW_DOWN = "too many requests; slow down"
HEALTH_HIDDEN = "health figures hidden (ask as the calmtunes user or root)"
# Figures about the listener's body: withheld from status unless the client may see them.
# The pulse record keeps only whether a finger is on and how clean the signal is. The conductor's
# tempo and breath pacing follow the listener (the iso start sets the tempo to the heart rate, the
# pacing starts at the measured breathing rate) and its mode follows the stress index, so they go.
HEALTH_PULSE_KEEP = ("t", "finger", "quality", "reason")
HEALTH_CONDUCTOR = ("hr_bpm", "stress_rise", "breath_rate", "tempo_bpm", "mode")
HEALTH_CONTROLS = ("breath_rate", "tempo_bpm")


class Daemon:
    def __init__(self, config: Config, config_path: str | None = None,
                 notifier: Notifier | None = None, sink: Sink | None = None,
                 composer_loader: Any = None) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.hub = Hub()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.exit_code = 0
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        prepare_runtime_dir(config.device.runtime_dir)

        m = config.music
        self.state = StateStore(
            Path(config.device.state_dir) / STATE_FILE,
            {"preset": m.default_preset, "volume_db": m.volume_db, "playing": True,
             "privacy": False},
        )
        saved = checked_state(self.state.load(), config)  # clamped: never saved back as it was
        self.privacy = bool(saved["privacy"])  # camera off by the privacy button
        self.conductor = self._make_conductor(saved)
        kwargs = {"generator_loader": composer_loader} if composer_loader else {}
        self.composer = ComposerComponent(config, self.hub, self.conductor.controls, **kwargs)
        self.audio = AudioComponent(config, self.hub, self.composer, sink=sink)
        self.audio.set_controls(self.conductor.controls())
        # The senses (pulse, scene, panel) are built once sound flows: their libraries (scipy,
        # OpenCV, gpiozero) take a second or more to import on a Pi, and a nurse waits for sound.
        self.components: list[Component] = [self.composer, self.audio]
        self.supervisor = Supervisor(self.components, self.notifier)
        self.control = ControlServer(socket_path(config.device.runtime_dir), self.handle_request)
        self.socket_rate = TokenBucket(SOCKET_RATE_PER_S, SOCKET_BURST)
        self._command_lock = threading.RLock()  # commands come from the panel and socket threads
        self._pulse = self._scene = None
        self._next_conduct = 0.0
        self.sleep_at: float | None = None  # monotonic time the sleep timer ends
        self.sessions = self._make_sessions()
        self.hub.subscribe("pulse", self._on_pulse)
        self.hub.subscribe("scene", self._on_scene)
        self.hub.subscribe("command", self.handle_command)

    # -- construction (kept apart so the closed loop can extend it) ---------------------------
    def _make_conductor(self, saved: dict) -> Conductor:
        conductor = Conductor(self.config, saved["preset"], saved["volume_db"])
        conductor.playing = bool(saved.get("playing", True))
        return conductor

    def _make_sessions(self):
        from calmtunes.sessions import SessionRecorder

        recorder = SessionRecorder.open(self.config)
        if recorder is not None and self.conductor.playing:
            recorder.start(time.time(), self.conductor.preset)
        return recorder

    def _make_senses(self) -> list[Component]:
        from calmtunes.panel.component import make_component as make_panel
        from calmtunes.pulse.component import make_component as make_pulse
        from calmtunes.scene.component import make_component as make_scene

        parts = []
        for make in (make_pulse, make_scene, make_panel):
            try:
                parts.append(make(self.config, self.hub))
            except Exception:
                log.exception("cannot build a component; carrying on without it")
        return parts

    # -- running -------------------------------------------------------------------------------
    def request_stop(self, code: int = 0) -> None:
        self.exit_code = code
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop(0))
        signal.signal(signal.SIGINT, lambda *_: self.request_stop(0))
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        signal.signal(signal.SIGUSR1, lambda *_: dump_threads())

    def run(self, duration: float | None = None) -> int:
        """Run until asked to stop (or for ``duration`` s of wall time); return the exit code."""
        log.info("calmtunes %s starting", __version__)
        self.supervisor.start()
        self._wait_for_sound(SOUND_FIRST_S)
        for part in self._make_senses():
            self.components.append(part)
            self.supervisor.add(part)
        if self.privacy:  # the privacy button's state survives restarts and power cuts
            self.hub.command("privacy", True, source="state")
        try:
            self.control.start()
        except OSError as exc:
            log.error("control socket unavailable (%s); `calmtunes status` will not answer", exc)
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                self._check_ready(now)
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                self.supervisor.tick(now, self.summary())
                self.conduct(now)
                self.save_state()
                if deadline is not None and now >= deadline:
                    break
                self._stop.wait(0.25)
        finally:
            self.shutdown()
        return self.exit_code

    def _wait_for_sound(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.audio.first_frame_at is None and time.monotonic() < deadline:
            if self._stop.wait(0.01):
                return
        self._check_ready(time.monotonic())

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
        if self.ready_at is not None:  # up (once): an earlier failure's note no longer holds
            clear_fault(self.config.device.state_dir)

    def shutdown(self) -> None:
        if self.exit_code == EXIT_POWEROFF:
            log.warning("shutdown requested: fading out; exit status %d asks the service manager "
                        "to power off", EXIT_POWEROFF)
        self.notifier.stopping("fading out")
        self.audio.fade_out()
        if self.sessions is not None:  # while the music fades: the last commit syncs the card
            self.sessions.close(time.time(), "shutdown" if self.exit_code == EXIT_POWEROFF
                                else "stop")
        limit = time.monotonic() + self.config.audio.fade_out_s + 0.3
        while not self.audio.faded_out and time.monotonic() < limit:
            time.sleep(0.02)
        # Let the faded tail already in the ring reach the output.
        time.sleep(min(0.3, self.config.audio.buffer_ms / 1000))
        self.save_state()
        self.control.stop()
        self.supervisor.stop(timeout=1.0)
        log.info("stopped")

    def reload(self) -> None:
        """SIGHUP: read the config file again and apply it, all or nothing.

        Nothing that goes wrong here stops the daemon: a bad file (a ConfigError, one short
        message) or a fault while reading it is logged once and the running config kept; a part
        that cannot take the new config puts every part back on the old one. systemd hears
        RELOADING=1 before and READY=1 after, whatever the outcome (sd_notify(3))."""
        if self.config_path is None:
            log.info("SIGHUP: no config file to reload")
            return
        self.notifier.reloading()
        old = self.config
        outcome = "config reload refused: see the journal"
        try:
            try:
                new = config_mod.load(self.config_path)
                if new.device.simulate != old.device.simulate:
                    new = new.replace(device={"simulate": old.device.simulate})
            except ConfigError as exc:
                log.error("config reload refused, keeping the running config:\n%s", exc)
                return
            except Exception as exc:  # a fault in the config code must not stop the music
                log.error("config reload failed, keeping the running config: %s: %.300s",
                          type(exc).__name__, exc)
                return

            def apply(config: Config) -> list[str]:
                """Give every part ``config``; the names of those that could not take it."""
                self.config = config
                failed = []
                for name, part in [("conductor", self.conductor),
                                   *((c.name, c) for c in self.components),
                                   ("mixer", self.audio.mixer)]:
                    try:
                        part.reconfigure(config)
                    except Exception:
                        log.exception("%s could not take the %s config", name,
                                      "new" if config is new else "old")
                        failed.append(name)
                return failed

            failed = apply(new)
            if failed:
                apply(old)
                log.error("config reload undone, keeping the running config: %s could not take "
                          "the new one", ", ".join(failed))
            else:
                outcome = "config reloaded"
                log.info("config reloaded from %s", self.config_path)
            self.apply_controls()
        except Exception:  # nothing in a reload may stop the daemon
            log.exception("config reload failed; carrying on")
        finally:
            self.notifier.ready(outcome)

    # -- the closed loop ---------------------------------------------------------------------------
    def _on_pulse(self, reading: Any) -> None:
        self._pulse = reading
        if self.sessions is not None:
            self.sessions.reading(time.time(), reading)

    def _on_scene(self, features: Any) -> None:
        self._scene = features

    def conduct(self, now: float) -> None:
        """Once a second: update the conductor, apply and publish its controls; the sleep timer;
        the session record."""
        if self.sleep_at is not None and now >= self.sleep_at:
            self.sleep_at = None
            log.info("sleep timer: fading out over %.0f s", SLEEP_FADE_S)
            if self.conductor.playing:
                self._set_playing(False, fade_s=SLEEP_FADE_S, why="sleep timer")
        if now < self._next_conduct:
            return
        self._next_conduct = now + CONDUCT_EVERY_S
        before = self.conductor.tempo_bpm
        controls = self.conductor.update(now, self._pulse, self._scene)
        if abs(controls.tempo_bpm - before) > ISO_CROSSFADE_BPM:
            # The iso start met the listener's heart in one step: rather than a jump at the next
            # phrase boundary, the music at the new tempo crossfades in now (≥ 2 s).
            self.composer.flush()
            self.audio.change_preset()
        self.audio.set_controls(controls)
        self.hub.publish("controls", controls)
        if self.sessions is not None:
            self.sessions.tick(time.time())

    # -- commands -------------------------------------------------------------------------------
    def apply_controls(self) -> None:
        controls = self.conductor.controls()
        self.audio.set_controls(controls)
        self.hub.publish("controls", controls)

    def save_state(self) -> None:
        self.state.save({"preset": self.conductor.preset, "volume_db": self.conductor.volume_db,
                         "playing": self.conductor.playing, "privacy": self.privacy})

    def handle_command(self, command: Command) -> None:
        checked = check(command.name, command.arg, self.config)
        if not checked.ok:
            log.warning("command refused (%s): %s", command.source, checked.error)
            return
        with self._command_lock:
            self._do_command(checked.name, checked.arg, command.source)

    def _do_command(self, name: str, arg: Any, source: str) -> None:
        """A command :func:`check` accepted (``arg`` is clean)."""
        step = self.config.music.volume_step_db
        if name == "preset":
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
            db = self.conductor.set_volume_db(self.conductor.volume_db + change)
            log.info("volume %+.1f dB (%s)", db, source)
        elif name == "volume":
            db = self.conductor.set_volume_db(arg)
            log.info("volume %+.1f dB (%s)", db, source)
        elif name == "play_pause":
            self._set_playing(not self.conductor.playing)
        elif name == "stop":
            self.request_stop(0)
        elif name == "sleep_timer":
            self._sleep_timer(arg)
            return
        elif name == "shutdown":
            if self.config.panel.long_press_action != "shutdown":
                log.warning("shutdown refused (%s): panel.long_press_action is %r, not 'shutdown'",
                            source, self.config.panel.long_press_action)
                return
            self.request_stop(EXIT_POWEROFF)
            return
        elif name == "privacy":  # the scene component opens or closes the camera itself
            self.privacy = (not self.privacy) if arg is None else bool(arg)
            log.info("camera %s (%s)", "off for privacy" if self.privacy else "allowed", source)
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
        if self.sessions is not None:
            if playing:
                self.sessions.start(time.time(), self.conductor.preset)
            else:
                self.sessions.end(time.time(), why)

    def _sleep_timer(self, minutes: float) -> None:
        """``minutes`` as :func:`check` passed it: 0–1440, 0 cancels."""
        if minutes == 0:
            self.sleep_at = None
            log.info("sleep timer cancelled")
            return
        self.sleep_at = time.monotonic() + minutes * 60.0
        log.info("sleep timer: music fades out in %.0f min", minutes)

    def summary(self) -> str:
        c = self.conductor
        state = "playing" if c.playing else "paused"
        return f"{state} {c.preset}, volume {c.volume_db:+.0f} dB"

    def status(self, health: bool = True) -> dict[str, Any]:
        """What ``calmtunes status`` shows; without ``health``, no figure about the listener's
        body (heart rate, HRV, breathing, stress, SpO2), and ``health_hidden`` says so."""
        pulse = self.hub.latest("pulse")
        scene = self.hub.latest("scene")
        status = {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "preset": self.conductor.preset,
            "volume_db": self.conductor.volume_db,
            "playing": self.conductor.playing,
            "controls": _public(self.hub.latest("controls") or self.conductor.controls()),
            "conductor": self.conductor.state(),
            "sleep_timer_s": (None if self.sleep_at is None
                              else round(self.sleep_at - time.monotonic())),
            "pulse": _public(pulse),
            "scene": _public(scene),
            "restarts_unclean": (None if self.sessions is None
                                 else self.sessions.restarts_unclean(time.time())),
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
            for key, hidden in (("conductor", HEALTH_CONDUCTOR), ("controls", HEALTH_CONTROLS)):
                if isinstance(status[key], dict):
                    status[key] = {k: v for k, v in status[key].items() if k not in hidden}
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
        has ``ok`` and, when refused, ``error`` saying why."""
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, **self.status(health=self.may_see_health(peer))}
        if cmd in SOCKET_COMMANDS:
            checked = check(cmd, request.get("arg"), self.config)
            if not checked.ok:
                return {"ok": False, "error": checked.error}
            if not self.socket_rate.take():
                return {"ok": False, "error": SLOW_DOWN}
            self.hub.command(checked.name, checked.arg, source="socket")
            return {"ok": True}
        if cmd == "reload":
            if not self.socket_rate.take():
                return {"ok": False, "error": SLOW_DOWN}
            self.request_reload()
            return {"ok": True}
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
