"""The panel on gpiozero's MockFactory: buttons become commands, storms do not, LEDs answer."""

from __future__ import annotations

import time

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from calmtunes.component import DISABLED, OK
from calmtunes.config import Config
from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.panel.component import (
    PRESET_GUARD_S,
    TOGGLE_GUARD_S,
    VOLUME_INTERVAL_S,
    PanelComponent,
    make_component,
)
from calmtunes.pulse.reading import PulseReading

PINS = Config().panel.buttons
LEDS = Config().panel.leds


@pytest.fixture
def panel_factory():
    """Yield a function building a panel on a fresh MockFactory; restore the factory after."""
    old = Device.pin_factory
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    made = []

    def build(**panel):
        cfg = Config().replace(panel={"backend": "gpio", "debounce_ms": 10.0, **panel})
        hub = Hub()
        sent = []
        hub.subscribe("command", lambda c: sent.append((c.name, c.arg)))
        comp = PanelComponent(cfg, hub)
        comp.open()
        made.append(comp)
        return comp, hub, sent, Device.pin_factory

    try:
        yield build
    finally:
        for comp in made:
            comp.close()
        Device.pin_factory.reset()
        Device.pin_factory = old


def click(factory, role, hold=0.02):
    pin = factory.pin(PINS[role])
    pin.drive_low()
    time.sleep(hold)
    pin.drive_high()
    time.sleep(0.015)


def step(comp, later=0.0):
    return comp.step(time.monotonic() + later)


def test_a_preset_button_sends_its_preset(panel_factory):
    comp, _, sent, factory = panel_factory()
    factory.pin(PINS["sleep"]).drive_low()
    step(comp)
    assert sent == [("preset", "sleep")]
    factory.pin(PINS["sleep"]).drive_high()


def test_contact_bounce_counts_once(panel_factory):
    comp, _, sent, factory = panel_factory()
    pin = factory.pin(PINS["calm"])
    for _ in range(5):  # chatter well inside the 10 ms debounce
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    step(comp)
    assert sent == [("preset", "calm")]


def test_a_storm_of_preset_presses_ends_on_the_last_one(panel_factory):
    comp, _, sent, factory = panel_factory()
    click(factory, "calm")
    step(comp)
    for role in ("uplift", "sleep", "uplift", "sleep"):
        click(factory, role)
        step(comp)
    assert sent == [("preset", "calm")]  # the rest coalesce while the guard runs
    step(comp, PRESET_GUARD_S + 0.05)
    assert sent == [("preset", "calm"), ("preset", "sleep")]


def test_a_storm_that_returns_to_the_same_preset_sends_nothing_more(panel_factory):
    comp, _, sent, factory = panel_factory()
    click(factory, "calm")
    step(comp)
    click(factory, "sleep")
    click(factory, "calm")
    step(comp, PRESET_GUARD_S + 0.05)
    assert sent == [("preset", "calm")]


def test_volume_presses_are_rate_limited_and_cancel_out(panel_factory):
    comp, _, sent, factory = panel_factory()
    for _ in range(10):
        click(factory, "volume_up", hold=0.012)
    t = time.monotonic()
    for k in range(12):
        comp.step(t + k * (VOLUME_INTERVAL_S + 0.01))
    assert sent == [("volume_up", None)] * 3  # a backlog of three at most
    assert comp.presses_dropped == 7
    sent.clear()
    click(factory, "volume_up")
    click(factory, "volume_down")
    step(comp, 5.0)
    assert sent == []


def test_play_pause_acts_on_release_and_ignores_a_double_press(panel_factory):
    comp, _, sent, factory = panel_factory()
    pin = factory.pin(PINS["play_pause"])
    pin.drive_low()
    step(comp)
    assert sent == []
    time.sleep(0.02)
    pin.drive_high()
    step(comp)
    assert sent == [("play_pause", None)]
    click(factory, "play_pause")
    step(comp)
    assert sent == [("play_pause", None)]
    time.sleep(TOGGLE_GUARD_S)
    click(factory, "play_pause")
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
    step(comp, 1.1)
    step(comp, 1.3)
    assert sent == expected
    time.sleep(0.02)
    pin.drive_high()
    step(comp, 1.4)
    assert sent == expected


def test_privacy_button(panel_factory):
    comp, _, sent, factory = panel_factory()
    click(factory, "privacy")
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


def _pin_changes(pin, seconds):
    pin.clear_states()
    time.sleep(seconds)
    return len(pin.states) - 1


def test_pulse_led_blinks_with_a_reliable_pulse_only(panel_factory):
    comp, hub, _, factory = panel_factory()
    led_pin = factory.pin(LEDS["pulse"])
    hub.publish("pulse", PulseReading(t=time.monotonic(), finger=True, quality=0.9, hr_bpm=120.0))
    step(comp)
    assert comp._pulse_led_mode == ("beat", 120.0)
    assert _pin_changes(led_pin, 0.6) > 4  # fading in and out, a beat every 0.5 s
    hub.publish("pulse", PulseReading(t=time.monotonic(), finger=True, quality=0.1,
                                      hr_bpm=70.0))
    step(comp)
    assert comp._pulse_led_mode[0] == "glow"  # a finger, but nothing to trust yet
    hub.publish("pulse", PulseReading(t=time.monotonic(), finger=True, quality=0.9, hr_bpm=300.0))
    step(comp)
    assert comp._pulse_led_mode[0] == "glow"  # an impossible heart rate is not shown
    hub.publish("pulse", PulseReading(t=time.monotonic(), finger=False, quality=0.0))
    step(comp)
    assert comp._pulse_led_mode[0] == "off"
    time.sleep(0.05)
    assert led_pin.state == 0


def test_unknown_button_roles_are_skipped_with_a_log_line(panel_factory, caplog):
    comp, _, _, _ = panel_factory(buttons={"calm": 5, "disco": 6})
    assert "disco" in caplog.text
    assert set(comp.buttons) == {"calm"}


def test_backend_none_disables_the_panel():
    comp = make_component(Config().replace(panel={"backend": "none"}), Hub())
    comp.open()
    comp.step(0.0)
    assert comp.health().state == DISABLED


def test_mock_backend_runs_in_its_own_thread():
    hub = Hub()
    sent = []
    hub.subscribe("command", lambda c: sent.append(c.name))
    comp = make_component(Config().replace(panel={"backend": "mock"}), hub)
    comp.start()
    try:
        deadline = time.monotonic() + 3.0
        while comp.health().state != OK:
            assert time.monotonic() < deadline, "panel did not open"
            time.sleep(0.01)
        comp.factory.pin(PINS["volume_down"]).drive_low()
        while not sent:
            assert time.monotonic() < deadline, "no command from the panel's thread"
            time.sleep(0.005)
        assert sent == ["volume_down"]
    finally:
        comp.stop()
