"""Sensor faults a re-initialisation does not cure: the driver gives up on them at its own pace,
the component says so once, backs off, and is well again when the fault goes."""

from __future__ import annotations

import logging

import pytest
from gpiozero.pins.mock import MockFactory

from calmtunes.component import DEGRADED, OK
from calmtunes.config import Config
from calmtunes.hub import Hub
from calmtunes.pulse.component import PulseComponent
from calmtunes.pulse.max30102 import MAX30102, SensorError
from calmtunes.sim.clock import ManualClock
from calmtunes.sim.max30102 import PWR_RDY, InterruptWire, emulated_bus

A = 0x57
FIFO_DATA = 0x07


class Mangled:
    """An emulated bus whose block reads pass through ``hook(reg, data)`` while ``on``."""

    def __init__(self, bus, hook):
        self.bus, self.hook, self.on = bus, hook, True

    def read_i2c_block_data(self, addr, reg, n, force=None):
        data = self.bus.read_i2c_block_data(addr, reg, n)
        return self.hook(reg, data) if self.on else data

    def __getattr__(self, name):
        if name == "i2c_rdwr":  # FIFO reads go through the block reads above
            raise AttributeError(name)
        return getattr(self.bus, name)


def reset_every_read(reg, data):
    """INT_STATUS_1 always shows PWR_RDY: a supply that keeps dipping, or a stuck data bit."""
    if reg == 0x00:
        data = list(data)
        data[0] |= PWR_RDY
    return data


def fifo_all_ones(reg, data):
    return [0xFF] * len(data) if reg == FIFO_DATA else data


def pointers_frozen(reg, data):
    """The chip stopped sampling: write and read pointers stay equal, no overflow."""
    if reg == 0x00 and len(data) == 7:
        data = list(data)
        data[4], data[5], data[6] = 3, 0, 3
    return data


def component(clock, bus, **pulse):
    pulse = {"backend": "max30102", **pulse}
    comp = PulseComponent(Config().replace(pulse=pulse), Hub(),
                          bus_factory=lambda cfg: bus, clock=clock, sleep=clock.sleep,
                          pin_factory=MockFactory() if pulse.get("int_pin", -1) >= 0 else None)
    health = []
    comp.hub.subscribe("health", health.append)
    return comp, health


def drive(comp, clock, seconds):
    end = clock() + seconds
    while clock() < end:
        clock.advance(comp.step(clock()))


@pytest.mark.parametrize("hook, words", [
    (reset_every_read, "reports a reset at every read"),
    (fifo_all_ones, "every read brings corrupt data"),
    (pointers_frozen, "takes no samples, even configured again"),
])
def test_lasting_fault_is_said_once_backed_off_and_recovered_from(hook, words, caplog):
    clock = ManualClock(10.0)
    bus = Mangled(emulated_bus("rest", seed=2, clock=clock), hook)
    comp, health = component(clock, bus)
    with caplog.at_level(logging.DEBUG, logger="calmtunes"):
        comp.open()
        comp.mark_ok()
        drive(comp, clock, 60.0)
        assert comp.health().state == DEGRADED and words in comp.health().detail
        # said once, not at every retry: one warning from the component, a few from the
        # driver before it gave up, and the INFO start line once
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len([r for r in warned if words in r.getMessage()]) == 1
        assert len(warned) <= 5
        starts = [r for r in caplog.records
                  if r.levelno == logging.INFO and "sps" in r.getMessage()]
        assert len(starts) == 1
        # backed off: the bus is not worked at the chip's pace while nothing comes of it
        before = bus.bus.transactions
        drive(comp, clock, 120.0)
        assert bus.bus.transactions - before < 150
        assert comp.health().state == DEGRADED  # no flapping to ok and back
        assert len({h for h in health}) <= 3
    bus.on = False  # the fault goes: the component is well within the back-off (≤ 30 s)
    samples = comp.driver.stats.samples
    drive(comp, clock, 40.0)
    assert comp.health().state == OK
    assert comp.driver.stats.samples - samples > 500


def test_stuck_int_line_is_let_go_for_polling(caplog):
    clock = ManualClock(50.0)
    bus = emulated_bus("rest", seed=3, clock=clock)
    factory = MockFactory()
    driver = MAX30102(bus, int_pin=4, pin_factory=factory, clock=clock, sleep=clock.sleep)
    driver.start()
    factory.pin(4).drive_low()  # shorted to ground: asserted for good
    with caplog.at_level(logging.WARNING, logger="calmtunes"):
        for _ in range(20):
            driver.wait(0.5)  # returns at once: the line is low
            driver.read()
            clock.advance(0.002)
    assert not driver.uses_interrupt
    assert "stays asserted" in driver.int_fault
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "INT on GPIO4" in warned[0] and "pulse.int_pin: -1" in warned[0]
    # polling from here on: every sample arrives
    got = 0
    for _ in range(50):
        clock.advance(driver.poll_delay())
        got += len(driver.read())
    assert got >= 50 * 17 - 17


def test_silent_int_line_is_let_go_before_the_fifo_overflows_for_long():
    clock = ManualClock(50.0)
    bus = emulated_bus("rest", seed=3, clock=clock)
    driver = MAX30102(bus, int_pin=4, pin_factory=MockFactory(), clock=clock, sleep=clock.sleep)
    driver.start()
    for _ in range(5):  # the pin never goes low: each wait ends on its timeout
        clock.advance(0.5)
        driver.wait(0.001)
        driver.read()
    assert not driver.uses_interrupt and "never asserts" in driver.int_fault


def test_a_wired_int_line_that_works_is_kept():
    clock = ManualClock(50.0)
    bus = emulated_bus("rest", seed=3, clock=clock)
    factory = MockFactory()
    driver = MAX30102(bus, int_pin=4, pin_factory=factory, clock=clock, sleep=clock.sleep)
    driver.start()
    wire = InterruptWire(bus.devices[A], factory.pin(4))
    for _ in range(100):
        clock.set(bus.devices[A].next_almost_full_time())
        wire.sync()
        assert driver.wait(0.5)
        assert len(driver.read()) == 17
    assert driver.uses_interrupt and not driver.int_fault


def test_component_with_a_stuck_int_line_does_not_spin_and_says_so():
    clock = ManualClock(10.0)
    bus = emulated_bus("rest", seed=2, clock=clock)
    comp, _ = component(clock, bus, int_pin=4)
    comp.open()
    comp.mark_ok()
    comp._pin_factory.pin(4).drive_low()
    steps = 0
    end = clock() + 5.0
    while clock() < end:
        clock.advance(comp.step(clock()))
        steps += 1
    assert steps < 200  # polled at the FIFO's pace once the line is let go
    assert comp.status()["mode"] == "polling" and "stays asserted" in comp.status()["int_fault"]
    assert comp.health().state == DEGRADED and "INT on GPIO4" in comp.health().detail
    assert comp.driver.stats.samples > 400


def test_a_block_read_that_returns_nothing_is_a_sensor_error():
    clock = ManualClock()

    class Nothing(Mangled):
        def read_i2c_block_data(self, addr, reg, n, force=None):
            return None if reg == 0x00 and self.on else self.bus.read_i2c_block_data(addr, reg, n)

    bus = Nothing(emulated_bus("rest", clock=clock), None)
    bus.on = False
    driver = MAX30102(bus, clock=clock, sleep=clock.sleep)
    driver.start()
    bus.on = True
    with pytest.raises(SensorError, match="short read"):
        driver.read()


def test_a_noisy_bus_does_not_fill_the_log(caplog):
    """Bus noise that fails a read now and then (each already retried three times) and clears
    at the next one: neither the failure nor the recovery is news in the journal."""
    from calmtunes.sim.max30102 import Faults

    clock = ManualClock(10.0)
    bus = emulated_bus("rest", seed=2, clock=clock)
    comp, _ = component(clock, bus)
    with caplog.at_level(logging.INFO, logger="calmtunes"):
        comp.open()
        bus.faults = Faults(io_error_rate=0.3, short_read_rate=0.1)
        drive(comp, clock, 600.0)
    said = [r for r in caplog.records if r.levelno >= logging.INFO and "sps" not in r.getMessage()]
    assert len(said) <= 20, [r.getMessage() for r in said][:10]  # ten minutes: was ~26-92/min
    assert comp.driver.stats.samples > 40_000  # and the pulse still came through
