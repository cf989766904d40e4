"""The panel: preset, volume, play/pause and privacy buttons, and the LEDs that answer them.

Backends (``panel.backend``): ``gpio`` drives the pins from this process (lgpio on a Pi, else
RPi.GPIO or gpiozero's native pins; never pigpio, whose client goes over the network: see
:func:`calmtunes.hardware.use_local_pins`; ``GPIOZERO_PIN_FACTORY`` may name another, e.g.
``mock``); ``mock`` uses gpiozero's own
``MockFactory`` with PWM-capable mock pins (simulation); ``none`` runs without a panel.
Buttons are wired to ground with the internal pull-ups (pressed = low); LEDs through a resistor
to ground.

**Buttons → hub commands.** A preset button sends ``hub.command("preset", name)``; the others
``"volume_up"``, ``"volume_down"``, ``"play_pause"`` and ``"privacy"``. Holding play/pause for
``panel.long_press_s`` sends the ``panel.long_press_action`` instead: ``"sleep_timer"`` with
``panel.sleep_timer_min`` minutes, or ``"shutdown"``. Play/pause therefore acts on release (a
hold means something else); every other button acts on press.

**New listener.** Holding volume up and volume down together for ``panel.new_listener_hold_s``
(the chord a nurse uses at a new patient's bedside; no single press can make it) sends
``"new_listener"``: the personaliser starts afresh. The preset LEDs blink three times to say it
was taken. The two volume presses that began the chord cancel out (one step up, one down).

Debouncing is done here, identically for every backend: an edge within ``panel.debounce_ms`` of
the last accepted edge of the same button is contact bounce and ignored, so the first edge acts
at once (no added latency). A storm of presses does not queue up: the first preset press is sent
at once and, within :data:`PRESET_GUARD_S` after it, later ones are coalesced so the last one wins;
volume steps are sent at most one per :data:`VOLUME_INTERVAL_S`, up and down presses cancelling
out and at most :data:`MAX_VOLUME_BACKLOG` steps waiting; play/pause and privacy presses within
:data:`TOGGLE_GUARD_S` of the last one sent are dropped. A button pressed faster than a hand can
(:data:`CHATTER_PRESSES`, or :data:`CHATTER_TOGGLES` for play/pause and privacy, within
:data:`CHATTER_WINDOW_S`), or longer than a hand would (:data:`CHATTER_LONG_PRESSES` or
:data:`CHATTER_LONG_TOGGLES` within :data:`CHATTER_LONG_WINDOW_S`: noise a little slower than
the short test catches), is a failing switch or a loose wire: it is ignored until quiet for
:data:`CHATTER_QUIET_S`, said once, shown in ``status`` and the panel's health, and what the
storm did is undone: a play/pause or privacy toggle, and the volume steps it sent (``undo_volume
N``: the daemon takes back the panel's last N steps, never making the music louder than it is).

**LEDs.** The active preset's LED (the preset's ``led`` name, else its own name) is lit, from the
``"controls"`` topic; while no audio output is open (the ``"output"`` topic: a sound card
missing or gone, the music keeping its time unheard) it flashes instead, briefly every
:data:`NO_OUTPUT_PERIOD_S`, so whoever stands at the bedside sees that the silence is a fault,
not a pause: a paused device's LED stays lit. The ``pulse`` LED (PWM) blinks softly at the
heart rate while a usable pulse reading is there (the same test the conductor applies), glows
slowly like breathing while a finger is on but no usable reading yet, and is off without a
finger. The ``camera`` LED follows the
``"camera"`` topic (``{"active": bool}``, published by the scene component).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from calmtunes.care.arms import preset_forbidden
from calmtunes.clock import SYSTEM
from calmtunes.component import DEGRADED, Component
from calmtunes.config import PANEL_ACTIONS, PANEL_INDICATORS, Config, preset_led_roles
from calmtunes.hardware import Hardware, import_gpiozero, mock_pin_factory, use_local_pins
from calmtunes.hub import Hub
from calmtunes.music.conductor import check_reading

log = logging.getLogger(__name__)

ACTION_BUTTONS = PANEL_ACTIONS
PRESET_GUARD_S = 0.5  # s after a preset is sent during which presses coalesce (last wins)
VOLUME_INTERVAL_S = 0.15  # s between volume steps sent
MAX_VOLUME_BACKLOG = 3  # volume steps that may wait; more presses are dropped
TOGGLE_GUARD_S = 0.8  # s: play/pause or privacy again this soon is taken as a bounce or a slip
#: this many accepted presses of one button within CHATTER_WINDOW_S (s) is more than a hand
#: makes (a fast tapper manages ~7 a second for a moment on volume; nobody toggles play/pause
#: or privacy six times in two seconds): a failing switch or a loose wire picking up noise.
#: The button is ignored until it has been quiet for CHATTER_QUIET_S (s).
CHATTER_PRESSES = 16
CHATTER_TOGGLES = 6  # play_pause, privacy
CHATTER_WINDOW_S = 2.0
#: ... or this many within CHATTER_LONG_WINDOW_S (s): a volume button pressed every 0.2–0.4 s
#: for ten seconds, or play/pause every second, is noise too (a person raising the volume from
#: its least to its most presses about ten times; nobody toggles play eight times in 10 s)
CHATTER_LONG_PRESSES = 24  # at least; more where the volume range takes more steps
CHATTER_LONG_TOGGLES = 8
CHATTER_LONG_WINDOW_S = 10.0
CHATTER_QUIET_S = 5.0
CHORD = ("volume_up", "volume_down")  # held together: a new listener
CONFIRM_BLINKS = 3  # preset LEDs blink this many times when the chord is taken
CONFIRM_BLINK_S = 0.25  # s on, then s off, per blink
#: a forbidden preset's LED answers its press with quicker blinks than the chord's (s, count)
REFUSED_BLINK_S = 0.1
REFUSED_BLINKS = 4
#: the sleep timer's answer: two slow blinks when set, one long one when cancelled (s)
TIMER_BLINK_S = 0.5
#: with no audio output open the lit preset LED flashes this long (s) every NO_OUTPUT_PERIOD_S
#: (s): unlike the chord's quick blinks and the fault pattern (every LED, twice every 4 s)
NO_OUTPUT_FLASH_S = 0.2
NO_OUTPUT_PERIOD_S = 2.0
PULSE_STALE_S = 5.0  # s: a pulse reading older than this no longer drives the LED
HR_LED_CHANGE_BPM = 3.0  # the blink is re-timed only when the heart rate moves this much
IDLE_STEP_S = 1.0  # the pulse LED follows a reading published once a second; a preset or
# camera change wakes the step at once (see _on_controls, _on_camera), as does a button edge
BUSY_STEP_S = 0.02  # while a button is held or commands wait
# Frames per second of the pulse LED's fades (gpiozero's own fades write 25 a second, forever).
# A 2 s breathing fade in 10 % steps of duty every 0.1 s, or a heartbeat's fade-out in 3–4 steps,
# reads as a smooth swell on a diffused LED at a bedside; the thread wakes 2.5× less often.
LED_FPS = 10


@dataclass
class _ButtonState:
    down: bool = False
    last_edge: float = -1e9
    pressed_at: float = 0.0
    held: bool = False
    presses: list[float] = field(default_factory=list)  # presses, last CHATTER_LONG_WINDOW_S
    chattering: bool = False  # ignored until quiet (see CHATTER_PRESSES)


class PanelComponent(Component):
    name = "panel"
    config_sections = ("panel", "music", "conductor")

    def __init__(self, config: Config, hub: Hub, pin_factory: Any = None,
                 clock: Callable[[], float] = SYSTEM) -> None:
        super().__init__(config, hub, clock)
        self._factory_given = pin_factory
        self.factory: Any = None
        self.buttons: dict[str, Any] = {}
        self.leds: dict[str, Any] = {}
        self._btn: dict[str, _ButtonState] = {}
        self._lock = threading.Lock()
        self._events: list[tuple[str, bool, float]] = []  # (role, pressed, monotonic t)
        self._no_gpio = ""
        self._pending_preset: str | None = None
        self._pending_at = 0.0
        self._last_preset_sent = -1e9
        self._sent_preset: str | None = None
        self._volume_backlog = 0
        self._last_volume_sent = -1e9
        self._last_toggle_sent: dict[str, float] = {}
        self._toggles_sent: dict[str, list[float]] = {}  # within CHATTER_LONG_WINDOW_S, by role
        self._volume_sent: list[float] = []  # volume steps sent, within CHATTER_LONG_WINDOW_S
        self._pulse_led_mode: tuple[str, float] = ("", 0.0)
        self._lit_preset: str | None = "?"
        self._lit_unheard = False  # the lit preset LED flashes: no audio output
        self._camera_lit: bool | None = None
        self._chord_fired = False
        self._confirm_until = -1e9  # the preset LEDs blink the chord's answer until then
        self._timer_answer: str | None = None  # "set" or "cancelled": the LEDs say so
        self.commands_sent = 0
        self.presses_dropped = 0
        hub.subscribe("controls", self._on_controls)
        hub.subscribe("camera", self._on_camera)
        hub.subscribe("output", self._on_output)
        hub.subscribe("sleep_timer", self._on_sleep_timer)

    def reconfigure(self, config: Config) -> str:
        """New pins, buttons or presets: the buttons and LEDs are made again; anything else
        (the pulse LED's quality threshold, volume limits) is read afresh in place."""
        if config.panel != self.config.panel or \
                config.music.presets != self.config.music.presets:
            self.restart(config)
            return "restarted"
        self.config = config
        return "reconfigured"

    # -- component ----------------------------------------------------------------------------
    def open(self) -> None:
        p = self.config.panel
        if p.backend == "none":
            return
        # DigitalInputDevice, not Button: a Button runs a thread per button that polls 10×/s
        # for holds; the holds here are timed by this component's own step from the edges
        import_gpiozero()
        from gpiozero import LED, PWMLED, DigitalInputDevice  # late: only where there is a panel
        from gpiozero.exc import BadPinFactory

        factory = self._factory_given
        if factory is None and p.backend == "mock":
            factory = mock_pin_factory()
        self.factory = factory
        presets = self.config.music.presets
        led_roles = preset_led_roles(presets) | set(PANEL_INDICATORS)
        try:
            if factory is None:
                use_local_pins()
            for role, pin in p.buttons.items():
                if role not in presets and role not in ACTION_BUTTONS:
                    log.warning("panel.buttons.%s: no preset or action of that name (have: %s); "
                                "button on GPIO%d not used", role,
                                ", ".join([*presets, *ACTION_BUTTONS]), pin)
                    continue
                b = DigitalInputDevice(pin, pull_up=True, bounce_time=None, pin_factory=factory)
                b.when_activated = lambda _d=None, r=role: self._edge(r, True)
                b.when_deactivated = lambda _d=None, r=role: self._edge(r, False)
                self.buttons[role] = b
                self._btn[role] = _ButtonState()
            for role, pin in p.leds.items():
                if role not in led_roles:
                    log.warning("panel.leds.%s: nothing shows on an LED of that name (have: %s)",
                                role, ", ".join(sorted(led_roles)))
                    continue
                cls = PWMLED if role == "pulse" else LED
                self.leds[role] = cls(pin, pin_factory=factory)
        except BadPinFactory as exc:
            self.close()
            self._no_gpio = f"no GPIO access ({exc}); running without the panel"
            log.error("panel: %s", self._no_gpio)
            return
        except Exception:
            self.close()
            raise
        log.info("panel: %d buttons, %d LEDs (%s)", len(self.buttons), len(self.leds), p.backend)

    def close(self) -> None:
        for dev in [*self.buttons.values(), *self.leds.values()]:
            try:
                dev.close()
            except Exception as exc:
                log.debug("panel: closing %r: %s", dev, exc)
        self.buttons.clear()
        self.leds.clear()
        self._btn.clear()
        self._pulse_led_mode = ("", 0.0)
        self._lit_preset = "?"
        self._camera_lit = None

    def step(self, now: float) -> float:
        if self.config.panel.backend == "none":
            self.disable("panel.backend is none")
            return 60.0
        if self._no_gpio:
            self.disable(self._no_gpio)
            return 60.0
        self._take_events(now)
        busy = self._dispatch(now)
        if self._timer_answer is not None:
            self._answer_timer(now)
        self._update_leds(now)
        return BUSY_STEP_S if busy else IDLE_STEP_S

    def status(self) -> dict:
        chattering = sorted(r for r, st in self._btn.items() if st.chattering)
        return {"backend": self.config.panel.backend, "buttons": len(self.buttons),
                "commands": self.commands_sent, "dropped": self.presses_dropped,
                **({"chattering": chattering} if chattering else {})}

    # -- buttons (gpiozero's thread) ----------------------------------------------------------
    def _edge(self, role: str, pressed: bool) -> None:
        with self._lock:
            self._events.append((role, pressed, self.clock()))
        self.wake()

    # -- hub topics (the publisher's thread): wake the step only when an LED must change -----
    def _on_controls(self, controls: Any) -> None:
        if getattr(controls, "preset", None) != self._lit_preset:
            self.wake()

    def _on_camera(self, camera: Any) -> None:
        active = bool(camera.get("active")) if isinstance(camera, dict) else False
        if active != self._camera_lit:
            self.wake()

    def _on_sleep_timer(self, minutes: Any) -> None:
        # Runs in the loop's thread: noted here, answered on the LEDs by our own step.
        self._timer_answer = "set" if minutes else "cancelled"
        self.wake()

    def _on_output(self, output: Any) -> None:
        if _unheard(output) != self._lit_unheard:
            self.wake()

    # -- the component's thread ---------------------------------------------------------------
    def _take_events(self, now: float) -> None:
        with self._lock:
            events, self._events = self._events, []
        debounce = self.config.panel.debounce_ms / 1000.0
        for role, pressed, t in events:
            st = self._btn.get(role)
            if st is None or pressed == st.down or t - st.last_edge < debounce:
                continue  # bounce, or an edge we already have
            st.down, st.last_edge = pressed, t
            if pressed:
                st.pressed_at, st.held = t, False
                if self._chatters(role, st, t):
                    continue
                if role != "play_pause":
                    self._pressed(role, t)
            elif role == "play_pause" and not st.held and not st.chattering:
                self._pressed(role, t)
        self._release_quiet(now)
        # A bounce that ended in the other state: believe the pin once it has settled.
        for role, st in self._btn.items():
            b = self.buttons.get(role)
            if b is not None and st.down != bool(b.is_active) and now - st.last_edge > debounce:
                st.down, st.last_edge = bool(b.is_active), now
        hold = self._btn.get("play_pause")
        if hold is not None and hold.down and not hold.held and \
                now - hold.pressed_at >= self.config.panel.long_press_s:
            hold.held = True
            self._long_press()
        self._check_chord(now)

    def _chatters(self, role: str, st: _ButtonState, t: float) -> bool:
        """Count a press; True while the button chatters (its presses are then ignored)."""
        st.presses = [*_recent(st.presses, t, CHATTER_LONG_WINDOW_S), t]
        toggle = role in ("play_pause", "privacy")
        short = _recent(st.presses, t)
        storm = None  # (its presses, the window they came in)
        if len(short) >= (CHATTER_TOGGLES if toggle else CHATTER_PRESSES):
            storm = short, CHATTER_WINDOW_S
        elif len(st.presses) >= (CHATTER_LONG_TOGGLES if toggle else self._long_presses()):
            storm = st.presses, CHATTER_LONG_WINDOW_S
        if not st.chattering and storm is not None:
            presses, window = storm
            st.chattering = True
            log.warning("panel: the %s button is chattering (%d presses in %.0f s, more than a "
                        "hand makes): ignored until it is quiet for %.0f s. Check the switch "
                        "and its wiring", role, len(presses), window, CHATTER_QUIET_S)
            self.degrade(f"{role} button chattering: ignored (check the switch and its wiring)")
            # the storm began with the first press of the long window, whichever test saw it
            # (noise that sped up is one storm)
            began = st.presses[0]
            if role in ("volume_up", "volume_down"):
                self._volume_backlog = 0  # what the storm queued is not a person's asking
                steps = sum(1 for x in self._volume_sent if x >= began)
                if steps:  # ... nor what it sent: the daemon takes those steps back
                    log.warning("panel: the %d volume steps the chattering button made are "
                                "undone", steps)
                    self._send("undo_volume", steps)
                    self._volume_sent.clear()
            # the storm toggled play or privacy: back as it was before it
            if sum(x >= began for x in self._toggles_sent.get(role, [])) % 2:
                log.warning("panel: the %s toggle the chattering button made is undone", role)
                self._send(role)
        if st.chattering:
            self.presses_dropped += 1
        return st.chattering

    def _long_presses(self) -> int:
        """Presses of a volume button within CHATTER_LONG_WINDOW_S taken for noise: more than a
        person needs to go from the least volume to the most, with room to spare."""
        m = self.config.music
        return max(CHATTER_LONG_PRESSES,
                   math.ceil((m.max_volume_db - m.min_volume_db) / m.volume_step_db) + 10)

    def _release_quiet(self, now: float) -> None:
        for role, st in self._btn.items():
            if st.chattering and now - st.last_edge >= CHATTER_QUIET_S:
                st.chattering = False
                st.presses.clear()
                log.info("panel: the %s button is quiet again; its presses count again", role)
        if self._state == DEGRADED and "chattering" in self._detail and \
                not any(st.chattering for st in self._btn.values()):
            self.mark_ok()

    def _check_chord(self, now: float) -> None:
        a, b = (self._btn.get(r) for r in CHORD)
        if a is None or b is None or not (a.down and b.down):
            self._chord_fired = False
            return
        if not self._chord_fired and \
                now - max(a.pressed_at, b.pressed_at) >= self.config.panel.new_listener_hold_s:
            self._chord_fired = True
            self._volume_backlog = 0  # the chord's own presses change nothing more
            log.info("panel: volume up and down held %.0f s: new listener",
                     self.config.panel.new_listener_hold_s)
            self._send("new_listener")
            self._confirm(now)

    def _confirm(self, now: float) -> None:
        """Blink every preset LED: the chord was taken."""
        self._blink(now, self._preset_leds().values(), CONFIRM_BLINK_S, CONFIRM_BLINK_S,
                    CONFIRM_BLINKS)

    def _blink(self, now: float, leds: Any, on: float, off: float, n: int) -> None:
        """Blink ``leds`` ``n`` times (``on`` s lit, ``off`` s dark), then light the preset
        playing again (the LED step leaves them alone until then)."""
        for led in leds:
            led.blink(on_time=on, off_time=off, n=n)
        self._confirm_until = now + (on + off) * n
        self._lit_preset = "?"  # lit again from the hub once the blinks are over

    def _answer_timer(self, now: float) -> None:
        """The long press taken: every preset LED blinks slowly twice when the sleep timer is
        set, once, long, when it is cancelled (unlike the chord's three quick blinks), then
        the preset playing is lit again."""
        answer, self._timer_answer = self._timer_answer, None
        on, n = (TIMER_BLINK_S, 2) if answer == "set" else (2 * TIMER_BLINK_S, 1)
        self._blink(now, self._preset_leds().values(), on, TIMER_BLINK_S, n)

    def _refuse(self, now: float, preset: str) -> None:
        """A press of a preset the clinician forbade: its LED flickers
        (:data:`REFUSED_BLINKS` quick blinks), then the preset playing is lit again, so the
        nurse sees the press was taken and refused, not a dead button."""
        role = str(self.config.music.presets[preset].get("led", preset))
        led = self._preset_leds().get(role)
        if led is None:
            return
        self._blink(now, [led], REFUSED_BLINK_S, REFUSED_BLINK_S, REFUSED_BLINKS)

    def _pressed(self, role: str, t: float) -> None:
        if role in self.config.music.presets:
            self._pending_preset, self._pending_at = role, t  # the last one pressed wins
        elif role in ("volume_up", "volume_down"):
            step = 1 if role == "volume_up" else -1
            backlog = self._volume_backlog + step
            if abs(backlog) > MAX_VOLUME_BACKLOG:
                self.presses_dropped += 1
                return
            self._volume_backlog = backlog
        else:  # play_pause, privacy
            if t - self._last_toggle_sent.get(role, -1e9) < TOGGLE_GUARD_S:
                self.presses_dropped += 1
                log.debug("panel: %s pressed again within %.1f s; ignored", role,
                          TOGGLE_GUARD_S)
                return
            self._last_toggle_sent[role] = t
            self._toggles_sent[role] = [
                *_recent(self._toggles_sent.get(role, []), t, CHATTER_LONG_WINDOW_S), t]
            self._send(role)

    def _long_press(self) -> None:
        p = self.config.panel
        if p.long_press_action == "sleep_timer":
            log.info("panel: long press, sleep timer %.0f min", p.sleep_timer_min)
            self._send("sleep_timer", p.sleep_timer_min)
        elif p.long_press_action == "shutdown":
            log.warning("panel: long press, shutdown requested")
            self._send("shutdown")

    def _dispatch(self, now: float) -> bool:
        """Send what is due; True while something still waits or a button is held."""
        if self._pending_preset is not None and now - self._last_preset_sent >= PRESET_GUARD_S:
            name, self._pending_preset = self._pending_preset, None
            storm = self._pending_at - self._last_preset_sent < PRESET_GUARD_S
            if not (storm and name == self._sent_preset):  # a storm that came back: nothing new
                self._last_preset_sent = now
                self._sent_preset = name
                self._send("preset", name)  # a forbidden one too: the daemon says why
                if preset_forbidden(self.config, name):
                    self._refuse(now, name)
        if self._volume_backlog and now - self._last_volume_sent >= VOLUME_INTERVAL_S:
            up = self._volume_backlog > 0
            self._volume_backlog += -1 if up else 1
            self._last_volume_sent = now
            self._volume_sent = [*_recent(self._volume_sent, now, CHATTER_LONG_WINDOW_S), now]
            self._send("volume_up" if up else "volume_down")
        held = any(st.down for st in self._btn.values())
        return held or self._pending_preset is not None or self._volume_backlog != 0

    def _send(self, name: str, arg: Any = None) -> None:
        self.commands_sent += 1
        self.hub.command(name, arg, source="panel")

    # -- LEDs ------------------------------------------------------------------------------------
    def _preset_leds(self) -> dict[str, Any]:
        """The LEDs that show a preset, by role (the pulse and camera LEDs have their own)."""
        return {role: self.leds[role] for role in preset_led_roles(self.config.music.presets)
                if role in self.leds and role not in PANEL_INDICATORS}

    def _update_leds(self, now: float) -> None:
        controls = self.hub.latest("controls")
        preset = getattr(controls, "preset", None)
        unheard = _unheard(self.hub.latest("output"))
        if (preset != self._lit_preset or unheard != self._lit_unheard) \
                and now >= self._confirm_until:
            self._lit_preset, self._lit_unheard = preset, unheard
            presets = self.config.music.presets
            lit = str(presets[preset].get("led", preset)) if preset in presets else None
            for role, led in self._preset_leds().items():
                if role == lit and unheard:
                    led.blink(on_time=NO_OUTPUT_FLASH_S,
                              off_time=NO_OUTPUT_PERIOD_S - NO_OUTPUT_FLASH_S)
                else:
                    led.value = 1 if role == lit else 0
        camera = self.hub.latest("camera")
        active = bool(camera.get("active")) if isinstance(camera, dict) else False
        if active != self._camera_lit and "camera" in self.leds:
            self._camera_lit = active
            self.leds["camera"].value = 1 if active else 0
        self._update_pulse_led(now)

    def _update_pulse_led(self, now: float) -> None:
        led = self.leds.get("pulse")
        if led is None:
            return
        r = self.hub.latest("pulse")
        fresh = r is not None and isinstance(getattr(r, "t", None), (int, float)) and \
            abs(now - r.t) <= PULSE_STALE_S
        if fresh and check_reading(r, self.config.conductor.min_quality).ok:
            mode, hr = "beat", float(r.hr_bpm)
        elif fresh and getattr(r, "finger", False):
            mode, hr = "glow", 0.0
        else:
            mode, hr = "off", 0.0
        old_mode, old_hr = self._pulse_led_mode
        if mode == old_mode and (mode != "beat" or abs(hr - old_hr) < HR_LED_CHANGE_BPM):
            return
        self._pulse_led_mode = (mode, hr)
        if mode == "beat":
            period = 60.0 / hr  # one soft blink per heartbeat
            _fade(led, on_time=0.1 * period, off_time=0.35 * period,
                  fade_in_time=0.15 * period, fade_out_time=0.4 * period)
        elif mode == "glow":
            _fade(led, 0.0, 0.0, 2.0, 2.0)  # ~15 breaths/min of light
        else:
            led.off()


def _fade(led: Any, on_time: float, off_time: float, fade_in_time: float,
          fade_out_time: float) -> None:
    """``led.blink`` with fades, forever, at :data:`LED_FPS` frames a second. gpiozero's
    public ``blink`` fixes 25; its blink thread takes the rate as an argument (gpiozero is
    pinned in requirements/; the panel tests check the blink still runs)."""
    from gpiozero.threads import GPIOThread

    led._stop_blink()
    led._blink_thread = GPIOThread(
        led._blink_device, (on_time, off_time, fade_in_time, fade_out_time, None, LED_FPS))
    led._blink_thread.start()


def _unheard(output: Any) -> bool:
    """Whether the ``"output"`` topic says no audio output is open (nothing published yet, or
    anything not from the audio component: heard, the LED steady as before)."""
    return isinstance(output, dict) and output.get("heard") is False


def make_component(config: Config, hub: Hub, hardware: Hardware | None = None) -> Component:
    hardware = hardware or Hardware(SYSTEM, hub)
    return PanelComponent(config, hub, pin_factory=hardware.pin_factory(config),
                          clock=hardware.clock)


def _recent(times: list[float], t: float, window: float = CHATTER_WINDOW_S) -> list[float]:
    """The times within ``window`` s before ``t``."""
    return [x for x in times if t - x < window]
