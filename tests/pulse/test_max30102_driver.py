"""The driver against the emulated chip: start-up, FIFO reading, timing, LEDs and faults."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from calmtunes.errors import HardwareError
from calmtunes.pulse.max30102 import MAX30102, SensorError, Settings
from calmtunes.pulse.samples import SampleBlock
from calmtunes.sim.clock import ManualClock
from calmtunes.sim.max30102 import Faults, InterruptWire, emulated_bus

A = 0x57


def make(scenario="rest", settings=None, clock=None, **bus_kwargs):
    clock = clock or ManualClock(1000.0)
    bus = emulated_bus(scenario, seed=4, clock=clock, **bus_kwargs)
    driver = MAX30102(bus, clock=clock, sleep=clock.sleep, settings=settings)
    return driver, bus, clock


def run(driver, clock, seconds):
    """Poll on the driver's own deadline for ``seconds``; return the concatenated samples."""
    blocks = []
    end = clock() + seconds
    while clock() < end:
        clock.sleep(driver.poll_delay())
        blocks.append(driver.read())
    return blocks, np.concatenate([b.t for b in blocks]), np.concatenate([b.ir for b in blocks])


def test_start_configures_the_chip_in_physical_units():
    s = Settings(sample_rate=200, pulse_width_us=215, adc_range_na=8192, averaging=2,
                 red_ma=10.0, ir_ma=12.4, almost_full=24, rollover=False)
    driver, bus, _ = make(settings=s)
    driver.start()
    assert driver.read_settings() == s
    chip = bus.devices[A]
    assert chip.regs[0x09] == 0x03  # SpO2 mode
    assert chip.regs[0x0C] == 50 and chip.regs[0x0D] == 62  # 0.2 mA per LSB
    assert driver.fs == 100.0


def test_wrong_part_says_what_to_check():
    driver, _, _ = make(part_id=0x11)
    with pytest.raises(SensorError, match=r"PART_ID 0x11.*i2c_arm=on.*i2c` group"):
        driver.start()


def test_absent_chip_is_a_hardware_error_with_advice():
    driver, _, _ = make(faults=Faults(vanished=True))
    with pytest.raises(HardwareError, match=r"did not answer.*wiring"):
        driver.start()


def test_reset_that_never_ends_times_out_on_the_monotonic_clock():
    class StuckInReset:
        def __init__(self, bus):
            self.bus = bus

        def read_byte_data(self, addr, reg, force=None):
            return 0x40 if reg == 0x09 else self.bus.read_byte_data(addr, reg)

        def __getattr__(self, name):
            return getattr(self.bus, name)

    clock = ManualClock()
    bus = StuckInReset(emulated_bus(clock=clock))
    with pytest.raises(SensorError, match="did not finish its reset"):
        MAX30102(bus, clock=clock, sleep=clock.sleep).start()
    assert 0.1 <= clock() < 0.2


@pytest.mark.parametrize("transfer", ["rdwr", "smbus"])
def test_clone_faithful_driver_reads_every_sample_in_order(transfer):
    driver, bus, clock = make()
    driver._transfer = transfer
    driver.start()
    t0 = clock()
    blocks, t, ir = run(driver, clock, 30.0)
    assert all(isinstance(b, SampleBlock) and b.lost == 0 for b in blocks)
    assert abs(len(t) - 3000) <= 17
    assert np.all(np.diff(t) > 0.009) and np.all(np.diff(t) < 0.011)
    assert abs(t[-1] - clock()) < 0.02 and t[0] >= t0
    # the samples are the listener's light, at the times the driver says
    lis = bus.devices[A].listener
    _, ir_true, _ = lis.optics(t - bus.devices[A]._t0)
    sel = slice(300, None)  # after the LED settle
    assert np.corrcoef(ir[sel], ir_true[sel])[0, 1] > 0.95


def test_interrupt_mode_reads_on_int_and_needs_few_transactions():
    factory = MockFactory()
    clock = ManualClock(50.0)
    bus = emulated_bus("rest", clock=clock)
    driver = MAX30102(bus, int_pin=4, pin_factory=factory, clock=clock, sleep=clock.sleep)
    driver.start()
    wire = InterruptWire(bus.devices[A], factory.pin(4))
    assert driver.uses_interrupt
    start, n = bus.transactions, 0
    t_start = clock()
    for _ in range(60):
        clock.set(bus.devices[A].next_almost_full_time())
        wire.sync()
        assert driver.wait(0.5)
        n += len(driver.read())
        assert not wire.sync()  # reading the status released INT
    per_s = (bus.transactions - start) / (clock() - t_start)
    assert per_s <= 15 and n == 60 * 17
    driver.close()
    driver.close()  # twice is fine


def test_wrap_around_and_overflow_are_counted():
    driver, _bus, clock = make(settings=Settings(rollover=True))
    driver.start()
    run(driver, clock, 1.0)
    clock.advance(1.0)  # 100 samples made, 32 kept
    block = driver.read()
    assert len(block) == 32 and block.lost >= 60
    assert np.all(np.diff(block.t) > 0)
    gap = block.t[0] - driver._t_last + 31 * 0.01
    assert gap >= 0
    _, t, _ = run(driver, clock, 1.0)
    assert np.all(np.diff(t) < 0.011)


def test_pointer_arithmetic_wraps():
    driver, bus, _clock = make()
    driver.start()
    chip = bus.devices[A]
    for wr, rd, ovf, expect in [(2, 30, 0, 4), (0, 0, 0, 0), (5, 5, 3, 32), (31, 0, 0, 31)]:
        chip.regs[0x09] = 0x80  # shut down: nothing new arrives while we look
        chip.regs[0x04], chip.regs[0x06], chip.regs[0x05] = wr, rd, ovf
        chip._count = expect
        assert len(driver.read()) == expect


def test_clock_drift_is_tracked():
    driver, _bus, clock = make(rate_error=0.02)  # the chip's oscillator is 2 % fast
    driver.start()
    _, t, _ = run(driver, clock, 120.0)
    assert abs(np.median(np.diff(t[-2000:])) - 0.01 / 1.02) < 0.0002
    assert abs(t[-1] - clock()) < 0.05


@pytest.mark.parametrize("rate_error", [-0.05, -0.03, 0.05])
def test_a_slow_or_fast_oscillator_loses_nothing_and_is_measured(rate_error):
    # Every sample the chip makes stays in the FIFO until read: with no overflow and no failed
    # read nothing can be lost, whatever the oscillator's error.
    driver, _bus, clock = make(rate_error=rate_error)
    driver.start()
    blocks, t, _ = run(driver, clock, 60.0)
    assert sum(b.lost for b in blocks) == 0
    assert abs(driver._period - 0.01 / (1 + rate_error)) < 0.00002  # measured to 0.2 %
    assert abs(t[-1] - clock()) < 0.02
    assert np.all(np.diff(t) > 0)


def test_real_loss_is_still_counted_on_a_slow_oscillator():
    driver, _bus, clock = make(settings=Settings(rollover=True), rate_error=-0.05)
    driver.start()
    run(driver, clock, 20.0)
    clock.advance(1.0)  # about 95 made, 32 kept: OVF_COUNTER says so
    block = driver.read()
    assert len(block) == 32 and block.lost >= 55
    blocks, _, _ = run(driver, clock, 5.0)
    assert sum(b.lost for b in blocks) == 0


def test_finger_lifted_and_replaced():
    driver, _bus, clock = make("finger")
    driver.start()
    seen = []
    for _ in range(60):
        run(driver, clock, 1.0)
        seen.append(driver.finger)
    assert not seen[0] and all(seen[6:38]) and not any(seen[42:48]) and all(seen[54:])


@pytest.mark.parametrize(("scenario", "check"), [
    ("dark_skin", lambda s: s.red_ma > 20),
    ("pressed", lambda s: s.ir_ma < 7.0),
])
def test_automatic_led_current_keeps_the_signal_in_range(scenario, check):
    driver, _, clock = make(scenario)
    driver.start()
    run(driver, clock, 15.0)
    _, _, ir = run(driver, clock, 5.0)
    assert check(driver.settings)
    assert 0.2 * 262143 < np.median(ir) < 0.85 * 262143
    assert ir.max() < 262143


def test_temperature():
    driver, bus, _ = make()
    driver.start()
    bus.devices[A].die_temp_c = 27.0
    assert 26.4 < driver.temperature() < 27.6


def test_transient_errors_are_retried():
    driver, bus, clock = make()
    driver.start()
    bus.faults = Faults(nack_rate=0.2, io_error_rate=0.1)
    ok = errors = 0
    for _ in range(400):
        clock.sleep(driver.poll_delay())
        try:
            driver.read()
            ok += 1
        except SensorError:
            errors += 1
    assert ok > 300 and driver.stats.bus_errors > 50


def test_chip_vanishes_and_comes_back_reinitialised():
    driver, bus, clock = make()
    driver.start()
    run(driver, clock, 1.0)
    bus.faults = Faults(vanished=True)
    for _ in range(4):
        clock.advance(0.2)
        with pytest.raises(SensorError):
            driver.read()
    bus.devices[A]._power_on()  # it was power-cycled while away
    bus.faults = Faults()
    clock.advance(0.2)
    assert len(driver.read()) == 0  # freshly reset: nothing sampled yet
    assert driver.stats.reinits == 1
    clock.advance(0.3)
    assert driver.read().lost >= 100  # the second away, counted with the first new block
    clock.advance(0.3)
    assert driver.read().lost == 0
    _, t, _ = run(driver, clock, 2.0)
    assert len(t) > 150


def test_short_reads_and_garbage_never_escape_as_anything_but_sensor_errors():
    driver, bus, clock = make()
    driver.start()
    bus.faults = Faults(short_read_rate=0.2, garbage_rate=0.2)
    for _ in range(300):
        clock.sleep(max(driver.poll_delay(), 0.01))
        try:
            block = driver.read()
        except SensorError:
            continue
        assert np.all((block.ir >= 0) & (block.ir <= 262143))
    assert driver.stats.corrupt > 0


def test_hung_bus_reports_a_stuck_bus():
    driver, bus, _ = make()
    driver.start()
    bus.faults = Faults(hung=True)
    with pytest.raises(SensorError, match="stuck"):
        driver.read()
    assert driver.stats.bus_errors == 1 + driver.retries


def test_adapter_without_combined_transfers_falls_back_to_block_reads():
    class NoRdwr:
        def __init__(self, bus):
            self.bus = bus

        def i2c_rdwr(self, *msgs):
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

        def __getattr__(self, name):
            return getattr(self.bus, name)

    clock = ManualClock()
    bus = emulated_bus(clock=clock)
    driver = MAX30102(NoRdwr(bus), clock=clock, sleep=clock.sleep)
    driver.start()
    clock.advance(0.175)
    first = driver.read()  # the failed combined transfer popped nothing on this adapter
    clock.advance(0.2)
    assert driver._transfer == "smbus"
    assert len(first) + len(driver.read()) >= 36


def test_overflow_without_rollover_keeps_the_block_in_place_and_counts_the_gap_after():
    driver, _bus, clock = make(settings=Settings(rollover=False))
    driver.start()
    _, t0, _ = run(driver, clock, 1.0)
    clock.advance(1.0)  # 100 made, the oldest 32 kept, the rest dropped
    block = driver.read()
    assert len(block) == 32 and block.lost == 0
    assert abs(block.t[0] - t0[-1] - 0.01) < 0.002  # continues from the previous block
    clock.advance(0.1)
    later = driver.read()
    assert later.lost >= 60 and later.t[0] > block.t[-1] + 0.5


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 51.0), st.floats(0.0, 51.0))
def test_any_led_current_in_range_starts_and_reads_back(red, ir):
    driver, bus, _ = make(settings=Settings(red_ma=red, ir_ma=ir, auto_led=False))
    driver.start()
    assert abs(driver.settings.red_ma - red) <= 0.1 + 1e-9
    assert abs(driver.settings.ir_ma - ir) <= 0.1 + 1e-9
    assert driver.read_settings() == driver.settings
    driver.set_led_current(red_ma=ir)
    assert bus.devices[A].regs[0x0C] == round(ir / 0.2)


def test_a_chip_reset_behind_the_drivers_back_is_configured_again():
    # A loose wire or a dip in the sensor's supply resets the chip (PWR_RDY) while every bus
    # transfer still succeeds: in its power-on state it samples nothing, so nothing would
    # ever fail, and the pulse would be gone until a restart.
    driver, bus, clock = make()
    driver.start()
    _, t, _ = run(driver, clock, 1.0)
    assert len(t) >= 90
    bus.devices[A]._power_on()  # a brown-out: registers back to their power-on values
    blocks, t, _ = run(driver, clock, 2.0)
    assert driver.stats.resets_seen == 1 and driver.stats.reinits == 0
    assert len(t) >= 180  # sampling again at once
    # what it did not sample until the next read found it is counted lost: one poll's worth
    assert 0 < sum(b.lost for b in blocks) <= driver.settings.fs * 2 * driver.poll_delay() + 2


def test_a_chip_that_stops_sampling_is_configured_again():
    # Its mode register lost (bus noise on a write, a glitch) without a reset: no PWR_RDY,
    # no failing transfer, no samples.
    driver, bus, clock = make()
    driver.start()
    run(driver, clock, 1.0)
    chip = bus.devices[A]
    chip.regs[0x09] = 0x00  # MODE_CONFIG: not sampling
    blocks, t, _ = run(driver, clock, 3.0)
    assert driver.stats.resets_seen == 1
    assert len(t) >= 150  # back within about the stall time
    assert sum(b.lost for b in blocks) >= 90  # the second without samples, counted lost


def test_a_clean_start_sees_no_reset():
    driver, _, clock = make()
    driver.start()
    run(driver, clock, 3.0)
    assert driver.stats.resets_seen == 0 and driver.stats.reinits == 0


def test_slow_averaged_sampling_is_not_taken_for_a_stall():
    # 50 sps averaged 32 times: a FIFO sample every 0.64 s, nearly the stall time apart
    driver, _, clock = make(settings=Settings(sample_rate=50, averaging=32))
    driver.start()
    _, t, _ = run(driver, clock, 10.0)
    assert driver.stats.resets_seen == 0 and len(t) >= 14
