"""The panel on gpiozero's MockFactory: buttons become commands, storms do not, LEDs answer.

The component runs on a :class:`~calmtunes.clock.VirtualClock`: a test drives the mock pins (whose
callbacks run at once, in the test's thread), moves the clock and calls ``step``, so a debounce, a
guard or a long press is a clock reading, not a wait."""

from __future__ import annotations

import threading
import time

import pytest
from gpiozero import PWMLED
from gpiozero.pins.mock import MockFactory, MockPWMPin

from calmtunes.clock import VirtualClock
from calmtunes.component import DISABLED, OK
from calmtunes.config import Config
from calmtunes.hardware import MOCK_PIN_HISTORY, mock_pin_factory
from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.panel.component import (
    LED_FPS,
    NO_OUTPUT_FLASH_S,
    NO_OUTPUT_PERIOD_S,
    PRESET_GUARD_S,
    TOGGLE_GUARD_S,
    VOLUME_INTERVAL_S,
    PanelComponent,
    make_component,
)
from calmtunes.pulse.reading import PulseReading
from calmtunes.scheduler import Scheduler
from clocked import wait_until

PINS = Config().panel.buttons
LEDS = Config().panel.leds


@pytest.fixture
def panel_factory():
    """Yield a function building a panel on a fresh MockFactory and a virtual clock."""
    made = []

    def build(care=None, **panel):
        cfg = Config().replace(panel={"backend": "gpio", "debounce_ms": 10.0, **panel},
                               care=care or {})
        hub = Hub()
        sent = []
        hub.subscribe("command", lambda c: sent.append((c.name, c.arg)))
        factory = MockFactory(pin_class=MockPWMPin)
        comp = PanelComponent(cfg, hub, pin_factory=factory, clock=VirtualClock(start=100.0))
        comp.open()
        made.append(comp)
        return comp, hub, sent, factory

    yield build
    for comp in made:
        comp.close()
        comp.factory.reset()


def click(comp, role, hold=0.02):
    """Press ``role`` for ``hold`` s of the panel's clock, release, and let 15 ms pass."""
    pin = comp.factory.pin(PINS[role])
    pin.drive_low()
    comp.clock.advance(hold)
    pin.drive_high()
    comp.clock.advance(0.015)


def step(comp, after=0.0):
    """Move the panel's clock on by ``after`` s, then one step."""
    comp.clock.advance(after)
    return comp.step(comp.clock.monotonic())


def test_a_preset_button_sends_its_preset(panel_factory):
    comp, _, sent, factory = panel_factory()
    factory.pin(PINS["sleep"]).drive_low()
    step(comp)
    assert sent == [("preset", "sleep")]
    factory.pin(PINS["sleep"]).drive_high()


def test_contact_bounce_counts_once(panel_factory):
    comp, _, sent, factory = panel_factory()
    pin = factory.pin(PINS["volume_up"])  # a button whose every press counts
    for _ in range(5):  # chatter well inside the 10 ms debounce
        pin.drive_low()
        comp.clock.advance(0.001)
        pin.drive_high()
        comp.clock.advance(0.001)
    pin.drive_low()
    for _ in range(4):
        step(comp, VOLUME_INTERVAL_S)
    assert sent == [("volume_up", None)]


def test_a_storm_of_preset_presses_ends_on_the_last_one(panel_factory):
    comp, _, sent, _ = panel_factory()
    click(comp, "calm")
    step(comp)
    for role in ("uplift", "sleep", "uplift", "sleep"):
        click(comp, role)
        step(comp)
    assert sent == [("preset", "calm")]  # the rest coalesce while the guard runs
    step(comp, PRESET_GUARD_S + 0.05)
    assert sent == [("preset", "calm"), ("preset", "sleep")]


def test_a_storm_that_returns_to_the_same_preset_sends_nothing_more(panel_factory):
    comp, _, sent, _ = panel_factory()
    click(comp, "calm")
    step(comp)
    click(comp, "sleep")
    click(comp, "calm")
    step(comp, PRESET_GUARD_S + 0.05)
    assert sent == [("preset", "calm")]


def test_volume_presses_are_rate_limited_and_cancel_out(panel_factory):
    comp, _, sent, _ = panel_factory()
    for _ in range(10):
        click(comp, "volume_up", hold=0.012)
    for _ in range(12):
        step(comp, VOLUME_INTERVAL_S + 0.01)
    assert sent == [("volume_up", None)] * 3  # a backlog of three at most
    assert comp.presses_dropped == 7
    sent.clear()
    click(comp, "volume_up")
    click(comp, "volume_down")
    step(comp, 5.0)
    assert sent == []


def test_volume_steps_are_spaced_by_the_interval(panel_factory):
    comp, _, sent, _ = panel_factory()
    for _ in range(3):
        click(comp, "volume_down", hold=0.012)
    step(comp)
    assert sent == [("volume_down", None)]
    step(comp, VOLUME_INTERVAL_S - 0.01)
    assert len(sent) == 1  # not yet: one step per interval
    step(comp, 0.02)
    assert len(sent) == 2


def test_play_pause_acts_on_release_and_ignores_a_double_press(panel_factory):
    comp, _, sent, factory = panel_factory()
    pin = factory.pin(PINS["play_pause"])
    pin.drive_low()
    step(comp)
    assert sent == []
    comp.clock.advance(0.02)
    pin.drive_high()
    step(comp)
    assert sent == [("play_pause", None)]
    click(comp, "play_pause")
    step(comp)
    assert sent == [("play_pause", None)]
    comp.clock.advance(TOGGLE_GUARD_S)
    click(comp, "play_pause")
    step(comp)
    assert sent == [("play_pause", None)] * 2


@pytest.mark.parametrize("action, expected", [
    ("sleep_timer", [("sleep_timer", 45.0)]),
    ("shutdown", [("shutdown", None)]),
    ("none", []),
])
def test_a_long_press_sends_the_configured_action_and_no_toggle(panel_factory, action, expected):
    comp, _, sent, factory = panel_factory(long_press_action=action, long_press_s=1.0,
                                           sleep_timer_min=45.0)
    pin = factory.pin(PINS["play_pause"])
    pin.drive_low()
    step(comp)
    step(comp, 0.5)
    assert sent == []
    step(comp, 0.6)  # 1.1 s held
    step(comp, 0.2)
    assert sent == expected  # once, however long it is held
    comp.clock.advance(0.02)
    pin.drive_high()
    step(comp, 0.08)
    assert sent == expected


def test_holding_both_volume_buttons_starts_a_new_listener_once(panel_factory):
    comp, hub, sent, factory = panel_factory(new_listener_hold_s=3.0)
    hub.publish("controls", Controls(preset="sleep"))
    up, down = factory.pin(PINS["volume_up"]), factory.pin(PINS["volume_down"])
    up.drive_low()
    step(comp)
    step(comp, 0.3)
    down.drive_low()  # the chord is made 0.3 s after the first button
    for _ in range(27):
        step(comp, 0.1)
    assert ("new_listener", None) not in sent  # 2.7 s of chord: not yet
    for _ in range(10):
        step(comp, 0.1)
    assert sent.count(("new_listener", None)) == 1  # once, however long it is held
    volume = [name for name, _ in sent if name.startswith("volume")]
    assert volume.count("volume_up") == volume.count("volume_down") <= 1  # no net change
    lit = comp.leds["sleep"]
    assert lit._blink_thread is not None  # the preset LEDs answer with a blink
    up.drive_high()
    down.drive_high()
    step(comp, 0.1)
    # the blinks over, the preset's LED is lit again from the hub
    step(comp, 2 * 0.25 * 3)
    wait_until(lambda: comp.leds["sleep"].value == 1, what="the preset LED lit again")
    assert sent.count(("new_listener", None)) == 1


def test_one_volume_button_held_long_is_no_chord(panel_factory):
    comp, _, sent, factory = panel_factory(new_listener_hold_s=2.0)
    factory.pin(PINS["volume_down"]).drive_low()
    for _ in range(40):
        step(comp, 0.1)
    assert sent == [("volume_down", None)]


def test_privacy_button(panel_factory):
    comp, _, sent, _ = panel_factory()
    click(comp, "privacy")
    step(comp)
    assert sent == [("privacy", None)]


def test_preset_and_camera_leds_follow_the_hub(panel_factory):
    comp, hub, _, factory = panel_factory()
    hub.publish("controls", Controls(preset="sleep"))
    hub.publish("camera", {"active": True})
    step(comp)
    assert factory.pin(LEDS["sleep"]).state
    assert not factory.pin(LEDS["calm"]).state and not factory.pin(LEDS["uplift"]).state
    assert factory.pin(LEDS["camera"]).state
    hub.publish("controls", Controls(preset="uplift"))
    hub.publish("camera", {"active": False})
    step(comp)
    assert factory.pin(LEDS["uplift"]).state and not factory.pin(LEDS["sleep"]).state
    assert not factory.pin(LEDS["camera"]).state


def test_the_preset_led_flashes_while_no_audio_output_is_open(panel_factory):
    """A sound card missing or gone: the music keeps its time unheard. The lit preset LED
    flashes (briefly, every NO_OUTPUT_PERIOD_S) so the silence reads as a fault, not a pause,
    and is steady again once the output is back; the other presets' LEDs stay off."""
    comp, hub, _, factory = panel_factory()
    sleep_pin = factory.pin(LEDS["sleep"])
    hub.publish("controls", Controls(preset="sleep"))
    hub.publish("output", {"heard": True, "detail": "sounddevice:DAC"})
    step(comp)
    assert sleep_pin.state == 1
    before = len(sleep_pin.states)
    hub.publish("output", {"heard": False, "detail": "no audio output: no such card"})
    step(comp)

    def went_dark():  # lit, then dark while the preset is still the one playing
        states = [s.state for s in sleep_pin.states[before:]]
        return 1 in states and 0 in states[states.index(1):]

    wait_until(went_dark, timeout=NO_OUTPUT_PERIOD_S + 1.0, what="the preset LED flashed")
    assert NO_OUTPUT_FLASH_S < NO_OUTPUT_PERIOD_S / 2  # a flash, not a blink: dark for longer
    assert not factory.pin(LEDS["calm"]).state and not factory.pin(LEDS["uplift"]).state
    hub.publish("output", {"heard": True, "detail": "sounddevice:DAC"})
    step(comp)
    assert sleep_pin.state == 1
    steady = len(sleep_pin.states)
    time.sleep(NO_OUTPUT_PERIOD_S)  # gpiozero's blink thread runs in real time
    assert sleep_pin.state == 1 and len(sleep_pin.states) == steady  # no flash any more


def _blink_period(pin):
    """Seconds between the first two times ``pin`` reached full brightness (gpiozero's PinState
    timestamps are the seconds since the change before), or None before the second."""
    peaks, t = [], 0.0
    for k, s in enumerate(pin.states):
        t += s.timestamp if k else 0.0
        if s.state == 1 and (not peaks or pin.states[k - 1].state != 1):
            peaks.append(t)
    return peaks[1] - peaks[0] if len(peaks) >= 2 else None


def test_pulse_led_blinks_with_a_reliable_pulse_only(panel_factory):
    comp, hub, _, factory = panel_factory()
    led_pin = factory.pin(LEDS["pulse"])
    now = comp.clock.monotonic
    led_pin.clear_states()
    hub.publish("pulse", PulseReading(t=now(), finger=True, quality=0.9, hr_bpm=120.0))
    step(comp)
    assert comp._pulse_led_mode == ("beat", 120.0)
    # gpiozero fades the LED from a thread of its own, on the system clock: wait for two beats.
    period = wait_until(lambda: _blink_period(led_pin), timeout=5.0, what="two pulse LED beats")
    assert 0.35 < period < 0.75, period  # a beat every 0.5 s at 120 bpm (0.86 s at 70)
    hub.publish("pulse", PulseReading(t=now(), finger=True, quality=0.1, hr_bpm=70.0))
    step(comp)
    assert comp._pulse_led_mode[0] == "glow"  # a finger, but nothing to trust yet
    hub.publish("pulse", PulseReading(t=now(), finger=True, quality=0.9, hr_bpm=300.0))
    step(comp)
    assert comp._pulse_led_mode[0] == "glow"  # an impossible heart rate is not shown
    hub.publish("pulse", PulseReading(t=now(), finger=True, quality=0.9, hr_bpm=120.0))
    step(comp, 5.5)
    assert comp._pulse_led_mode[0] == "off"  # a reading older than 5 s drives nothing
    hub.publish("pulse", PulseReading(t=now(), finger=True, quality=0.9, hr_bpm=120.0))
    step(comp)
    assert comp._pulse_led_mode[0] == "beat"
    hub.publish("pulse", PulseReading(t=now(), finger=False, quality=0.0))
    step(comp)
    assert comp._pulse_led_mode[0] == "off"
    changes = len(led_pin.states)
    assert led_pin.state == 0  # off() joins gpiozero's fading thread: nothing changes after
    assert len(led_pin.states) == changes


def test_a_default_button_whose_preset_is_gone_is_skipped_with_a_log_line(caplog):
    # the presets replaced by the config's own two; the default panel keeps its uplift button
    presets = {k: v for k, v in Config().music.presets.items() if k != "uplift"}
    cfg = Config().replace(music={"presets": presets}, panel={"backend": "mock"})
    comp = PanelComponent(cfg, Hub(), clock=VirtualClock())
    comp.open()
    try:
        assert "panel.buttons.uplift: no preset or action of that name" in caplog.text
        assert "uplift" not in comp.buttons and {"calm", "sleep"} <= set(comp.buttons)
    finally:
        comp.close()


def test_a_misspelt_button_or_led_is_refused_with_the_config():
    from calmtunes.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        Config().replace(panel={"buttons": {"calm": 5, "volume_upp": 16}, "leds": {"pluse": 23}})
    text = str(err.value)
    assert "panel.buttons.volume_upp: no preset or action of that name (did you mean " \
           "'volume_up'?)" in text
    assert "panel.leds.pluse: nothing shows on an LED of that name (did you mean 'pulse'?)" in text
    with pytest.raises(ConfigError) as err:
        Config().replace(music={"presets": {**Config().music.presets,
                                            "focus": {"tempo_bpm": 70, "mode": "major",
                                                      "led": "focus"}}})
    assert "music.presets.focus.led: no LED named 'focus' in panel.leds" in str(err.value)


def test_backend_none_disables_the_panel():
    comp = make_component(Config().replace(panel={"backend": "none"}), Hub())
    comp.open()
    comp.step(0.0)
    assert comp.health().state == DISABLED


def test_a_press_wakes_the_panel_task_on_a_virtual_clock():
    clock = VirtualClock()
    scheduler = Scheduler(clock)
    hub = Hub()
    sent = []
    hub.subscribe("command", lambda c: sent.append((c.name, clock.monotonic())))
    comp = PanelComponent(Config().replace(panel={"backend": "mock"}), hub, clock=clock)
    comp.start(scheduler)
    try:
        scheduler.run_until(10.0)
        assert comp.health().state == OK and sent == []
        comp.factory.pin(PINS["volume_down"]).drive_low()
        scheduler.run_until(10.001)
        assert sent == [("volume_down", 10.0)]  # at once, not at the next idle step
    finally:
        comp.stop()


def test_mock_backend_runs_in_its_own_thread():
    hub = Hub()
    sent = []
    hub.subscribe("command", lambda c: sent.append(c.name))
    comp = make_component(Config().replace(panel={"backend": "mock"}), hub)
    comp.start()
    try:
        # The device's path: the component's own thread on the system clock.
        wait_until(lambda: comp.health().state == OK, timeout=3.0, what="the panel open")
        comp.factory.pin(PINS["volume_down"]).drive_low()
        wait_until(lambda: sent, timeout=3.0, what="a command from the panel's thread")
        assert sent == ["volume_down"]
    finally:
        comp.stop()


def test_buttons_run_no_threads_of_their_own(panel_factory):
    # gpiozero's Button polls for holds from a thread per button, 10 times a second; the holds
    # here are timed from the edges by the panel's own step (long press, the chord)
    before = threading.active_count()
    comp, _, _, _ = panel_factory()
    assert len(comp.buttons) == len(PINS)
    assert threading.active_count() == before


def test_the_breathing_glow_is_drawn_at_the_led_frame_rate(panel_factory):
    comp, hub, _, factory = panel_factory()
    led_pin = factory.pin(LEDS["pulse"])
    led_pin.clear_states()
    hub.publish("pulse", PulseReading(t=comp.clock.monotonic(), finger=True, quality=0.1))
    step(comp)
    assert comp._pulse_led_mode[0] == "glow"
    # gpiozero's fading thread runs on the system clock: a second of the 2 s fade in
    wait_until(lambda: len(led_pin.states) > LED_FPS, timeout=5.0, what="LED frames")
    gaps = [s.timestamp for s in led_pin.states[2:LED_FPS + 1]]
    assert min(gaps) > 0.8 / LED_FPS > 0.04  # frames 1/LED_FPS apart, not gpiozero's 1/25 s
    rising = [s.state for s in led_pin.states[1:LED_FPS + 1]]
    assert rising == sorted(rising) and rising[-1] > 0.3  # and still a smooth swell
    comp.leds["pulse"].off()


def test_a_preset_change_wakes_the_idle_panel_for_its_led():
    clock = VirtualClock()
    scheduler = Scheduler(clock)
    hub = Hub()
    comp = PanelComponent(Config().replace(panel={"backend": "mock"}), hub, clock=clock)
    comp.start(scheduler)
    try:
        scheduler.run_until(10.0)
        hub.publish("controls", Controls(preset="uplift"))
        scheduler.run_until(10.001)  # well before the next idle step (IDLE_STEP_S)
        assert comp.factory.pin(LEDS["uplift"]).state == 1
    finally:
        comp.stop()


def test_simulated_pins_remember_a_bounded_history():
    # the simulated pulse LED changes ~10 times a second all night: gpiozero's mock pins would
    # keep every change
    factory = mock_pin_factory()
    try:
        led = PWMLED(LEDS["pulse"], pin_factory=factory)
        for k in range(3 * MOCK_PIN_HISTORY):
            led.value = (k % 10) / 10
        assert len(factory.pin(LEDS["pulse"]).states) == MOCK_PIN_HISTORY
        led.close()
    finally:
        factory.reset()


@pytest.mark.parametrize("role", ["play_pause", "privacy", "volume_up"])
def test_a_chattering_button_is_ignored_until_quiet_and_said_once(panel_factory, role, caplog):
    """A failing switch bouncing at 100 Hz for 30 s: not a session started and ended every
    0.8 s, not a log line per press; the panel says which button, once, and takes it back once
    it has been quiet."""
    from calmtunes.panel.component import CHATTER_QUIET_S

    comp, _, sent, factory = panel_factory()
    comp.mark_ok()
    pin = factory.pin(PINS[role])
    with caplog.at_level("DEBUG", logger="calmtunes"):
        for _ in range(3000):
            pin.drive_low()
            comp.clock.advance(0.005)
            step(comp)
            pin.drive_high()
            comp.clock.advance(0.005)
            step(comp)
        chattering = comp.health(), comp.status()
        step(comp, CHATTER_QUIET_S + 0.5)
    if role == "volume_up":  # what got through before the chatter was seen, then undone
        assert 0 < len(sent) - 1 <= 3 and sent[-1] == ("undo_volume", len(sent) - 1)
    else:  # the toggle the storm made is undone: play (or privacy) as it was before it
        assert sent == [(role, None), (role, None)]
    assert chattering[0].detail.startswith(f"{role} button chattering")
    assert chattering[1]["chattering"] == [role]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"the {role} button is chattering" in warned[0]
    assert len(warned) == 2  # and the undoing
    assert len([r for r in caplog.records if r.levelname == "INFO"]) <= 2
    assert comp.health().state == OK and "chattering" not in comp.status()
    before = len(sent)
    comp.clock.advance(TOGGLE_GUARD_S)
    click(comp, role)
    for _ in range(5):
        step(comp, VOLUME_INTERVAL_S)
    assert len(sent) == before + 1  # a person's press counts again


def test_a_forbidden_preset_press_flickers_its_led_and_the_playing_one_comes_back(panel_factory):
    """A forbidden preset is refused by the daemon; at the bedside the press looked dead. Its
    LED now flickers, then the preset playing is lit again."""
    comp, hub, sent, _ = panel_factory(care={"forbidden_arms": ["uplift"]})
    hub.publish("controls", Controls(preset="sleep"))
    step(comp)
    assert comp.leds["sleep"].value == 1
    click(comp, "uplift")
    step(comp, 0.05)
    assert ("preset", "uplift") in sent  # the daemon refuses it and says why
    assert comp.leds["uplift"]._blink_thread is not None
    step(comp, 1.0)
    wait_until(lambda: comp.leds["sleep"].value == 1 and comp.leds["uplift"].value == 0,
               what="the playing preset lit again, the refused one dark")


def _storm(comp, role, every, seconds):
    """Noise on ``role``'s line: a press every ``every`` s for ``seconds`` s."""
    pin = comp.factory.pin(PINS[role])
    for _ in range(int(seconds / every)):
        pin.drive_low()
        step(comp, 0.03)
        pin.drive_high()
        step(comp, every - 0.03)


@pytest.mark.parametrize("every", [0.2, 0.3, 0.4])
def test_a_slower_volume_storm_is_caught_and_its_steps_undone(panel_factory, every, caplog):
    """Noise a little slower than the 2 s test catches: a press every 0.2–0.4 s went on for
    ever, each a volume step, up to the configured maximum."""
    from calmtunes.panel.component import CHATTER_LONG_WINDOW_S

    comp, _, sent, _ = panel_factory()
    with caplog.at_level("WARNING", logger="calmtunes"):
        _storm(comp, "volume_up", every, 30.0)
    steps = [s for s in sent if s[0] == "volume_up"]
    undo = [s for s in sent if s[0] == "undo_volume"]
    assert comp.status()["chattering"] == ["volume_up"]
    assert 0 < len(steps) <= CHATTER_LONG_WINDOW_S / every  # caught within the long window
    assert undo == [("undo_volume", len(steps))]  # every step it sent taken back, by count
    assert sent[-1] == undo[0]  # nothing after it
    assert "volume steps the chattering button made are undone" in caplog.text


def test_noise_that_speeds_up_is_one_storm(panel_factory):
    # slow presses, then fast ones: the 2 s test fires, but the steps before it were the
    # same noise and are taken back too
    comp, _, sent, _ = panel_factory()
    _storm(comp, "volume_up", 0.5, 3.0)
    _storm(comp, "volume_up", 0.1, 2.0)
    steps = [s for s in sent if s[0] == "volume_up"]
    assert sent[-1] == ("undo_volume", len(steps))


def test_a_person_with_fine_volume_steps_is_not_a_storm(panel_factory):
    # 1 dB steps from -30 to 0 dB: thirty presses, at 2.5 a second
    comp, _, sent, _ = panel_factory()
    comp.config = comp.config.replace(music={"volume_step_db": 1.0})
    _storm(comp, "volume_up", 0.4, 12.0)
    for _ in range(10):
        step(comp, VOLUME_INTERVAL_S)
    assert "chattering" not in comp.status()
    assert all(name == "volume_up" for name, _ in sent) and len(sent) == 30


def test_play_pause_every_second_is_caught_and_left_as_it_was(panel_factory):
    comp, _, sent, _ = panel_factory()
    _storm(comp, "play_pause", 0.9, 30.0)
    toggles = [s for s in sent if s[0] == "play_pause"]
    assert comp.status()["chattering"] == ["play_pause"]
    assert 0 < len(toggles) <= 9 and len(toggles) % 2 == 0  # played and paused as often


def test_a_person_raising_the_volume_is_not_a_storm(panel_factory):
    # least to most in three bursts of presses, quick for a hand (4 a second)
    comp, _, sent, _ = panel_factory()
    for _ in range(3):
        _storm(comp, "volume_up", 0.25, 1.0)
        step(comp, 1.0)
    for _ in range(10):
        step(comp, VOLUME_INTERVAL_S)
    assert "chattering" not in comp.status()
    assert [s[0] for s in sent] == ["volume_up"] * 12


@pytest.mark.parametrize(("minutes", "blinks"), [(30.0, 2), (None, 1)])
def test_the_sleep_timer_is_answered_on_the_preset_leds(panel_factory, minutes, blinks):
    # a long press showed nothing: two slow blinks say the timer is set, one long one that it
    # is cancelled, then the preset playing is lit again
    from calmtunes.panel.component import TIMER_BLINK_S

    comp, hub, _, factory = panel_factory()
    hub.publish("controls", Controls(preset="sleep"))
    step(comp)
    assert comp.leds["sleep"].value == 1
    hub.publish("sleep_timer", minutes)
    step(comp)
    assert comp.leds["sleep"]._blink_thread is not None
    pin = factory.pin(LEDS["calm"])
    wait_until(lambda: sum(1 for t, v in pin.states[1:] if v) >= blinks, timeout=5.0,
               what=f"{blinks} blinks")
    step(comp, 4 * TIMER_BLINK_S + 0.1)
    wait_until(lambda: comp.leds["sleep"].value == 1 and comp.leds["calm"].value == 0,
               timeout=5.0, what="the playing preset lit again")
