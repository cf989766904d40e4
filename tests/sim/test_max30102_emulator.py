"""The emulated MAX30102 behaves as the datasheet says, seen through raw bus calls only."""

from __future__ import annotations

import errno

import pytest
from smbus2 import i2c_msg

from calmtunes.sim.clock import ManualClock
from calmtunes.sim.max30102 import Faults, emulated_bus

A = 0x57


@pytest.fixture
def clock():
    return ManualClock(100.0)


@pytest.fixture
def bus(clock):
    return emulated_bus("rest", seed=1, clock=clock)


def spo2_mode(bus, fifo_config=0x1F, spo2=0x27, led=0x24):
    """SpO2 mode, 100 sps, 411 µs, 4096 nA; FIFO_CONFIG as given (default rollover, A_FULL=15)."""
    bus.write_byte_data(A, 0x08, fifo_config)
    bus.write_byte_data(A, 0x0A, spo2)
    bus.write_i2c_block_data(A, 0x0C, [led, led])
    bus.write_byte_data(A, 0x09, 0x03)


def pointers(bus):
    wr, ovf, rd = bus.read_i2c_block_data(A, 0x04, 3)
    return wr, ovf, rd


def test_power_on_state(bus):
    assert bus.read_byte_data(A, 0xFF) == 0x15  # PART_ID
    assert bus.read_byte_data(A, 0x00) == 0x01  # PWR_RDY set at power-on
    assert bus.read_byte_data(A, 0x00) == 0x00  # and cleared by that read
    assert bus.read_i2c_block_data(A, 0x02, 20) == [0] * 20


def test_reset_restores_power_on_values_and_clears_itself(bus, clock):
    spo2_mode(bus)
    bus.write_byte_data(A, 0x09, 0x40)
    assert bus.read_byte_data(A, 0x09) & 0x40  # still resetting
    clock.advance(0.002)
    assert bus.read_byte_data(A, 0x09) == 0x00
    assert bus.read_byte_data(A, 0x08) == 0x00
    assert bus.read_byte_data(A, 0x0C) == 0x00


def test_samples_arrive_at_the_configured_rate(bus, clock):
    spo2_mode(bus)
    clock.advance(0.105)  # 100 sps: 10 samples
    wr, ovf, rd = pointers(bus)
    assert (wr - rd) % 32 == 10 and ovf == 0


def test_averaging_divides_the_fifo_rate(bus, clock):
    spo2_mode(bus, fifo_config=0x5F)  # SMP_AVE=2 → 4 conversions per sample
    clock.advance(0.405)
    wr, _, rd = pointers(bus)
    assert (wr - rd) % 32 == 10


def test_fifo_data_does_not_autoincrement_and_read_pointer_advances(bus, clock):
    spo2_mode(bus)
    clock.advance(0.055)
    data = bus.read_i2c_block_data(A, 0x07, 30)  # five samples of six bytes
    assert all(b & 0xFC == 0 for b in data[0::3])  # bits 23:18 unused
    ir = [((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]) for i in range(3, 30, 6)]
    assert all(60_000 < v < 200_000 for v in ir)  # a finger at 7.2 mA
    wr, _, rd = pointers(bus)
    assert rd == 5 and wr == 5


def test_burst_reads_autoincrement_over_registers(bus):
    bus.write_i2c_block_data(A, 0x0C, [0x11, 0x22])
    assert bus.read_i2c_block_data(A, 0x0C, 2) == [0x11, 0x22]


def test_status_flags_clear_on_read_and_almost_full(bus, clock):
    spo2_mode(bus, fifo_config=0x1F)  # A_FULL when 15 free slots: 17 samples
    bus.write_byte_data(A, 0x02, 0x80)
    clock.advance(0.165)  # 16 samples
    assert bus.read_byte_data(A, 0x00) & 0x80 == 0
    assert not bus.devices[A].int_asserted()
    clock.advance(0.01)  # the 17th
    assert bus.devices[A].int_asserted()
    assert bus.read_byte_data(A, 0x00) & 0x80
    assert bus.read_byte_data(A, 0x00) & 0x80 == 0  # cleared by the previous read
    assert not bus.devices[A].int_asserted()


def test_overflow_without_rollover_keeps_the_oldest_and_counts(bus, clock):
    spo2_mode(bus, fifo_config=0x0F)
    clock.advance(0.405)  # 40 samples made, 32 fit
    wr, ovf, rd = pointers(bus)
    assert wr == rd and ovf == 8
    first = bus.read_i2c_block_data(A, 0x07, 6)
    assert pointers(bus)[1] == 0  # popping a sample clears OVF_COUNTER
    assert first  # the oldest sample is still the first one made


def test_overflow_counter_saturates_at_31(bus, clock):
    spo2_mode(bus, fifo_config=0x0F)
    clock.advance(5.0)
    assert pointers(bus)[1] == 31


def test_rollover_keeps_the_newest(bus, clock):
    spo2_mode(bus, fifo_config=0x1F)
    clock.advance(0.405)
    wr, ovf, rd = pointers(bus)
    assert wr == rd == 40 % 32 and ovf == 8


def test_pointer_wraps_around(bus, clock):
    spo2_mode(bus)
    clock.advance(0.005)  # half a period: no sample sits on a read's instant
    for _ in range(5):  # read 20 at a time for 100 samples
        clock.advance(0.2)
        wr, ovf, rd = pointers(bus)
        n = (wr - rd) % 32
        msgs = [i2c_msg.write(A, [0x07]), i2c_msg.read(A, 6 * n)]
        bus.i2c_rdwr(*msgs)
        assert len(list(msgs[1])) == 6 * n
    wr, ovf, rd = pointers(bus)
    assert wr == rd == 100 % 32 and ovf == 0


def test_resolution_follows_pulse_width(bus, clock):
    spo2_mode(bus, spo2=0x24)  # LED_PW=0: 69 µs, 15 bits: the low 3 bits read 0
    clock.advance(0.105)
    data = bus.read_i2c_block_data(A, 0x07, 30)
    assert all(b & 0x07 == 0 for b in data[2::3])


def test_temperature_is_signed_and_self_clearing(clock):
    bus = emulated_bus("rest", clock=clock)
    chip = bus.devices[A]
    chip.die_temp_c = -5.75
    bus.write_byte_data(A, 0x21, 0x01)
    clock.advance(0.03)
    tint, tfrac, cfg = bus.read_i2c_block_data(A, 0x1F, 3)
    assert cfg == 0 and bus.read_byte_data(A, 0x01) & 0x02
    whole = tint - 256 if tint & 0x80 else tint
    assert -7 < whole + tfrac * 0.0625 < -4.5


def test_smbus_block_limit_is_enforced(bus):
    with pytest.raises(ValueError, match="32"):
        bus.read_i2c_block_data(A, 0x07, 33)


def test_faults(clock):
    bus = emulated_bus("rest", clock=clock, faults=Faults(hung=True))
    with pytest.raises(OSError) as e:
        bus.read_byte_data(A, 0xFF)
    assert e.value.errno == errno.ETIMEDOUT
    bus.faults = Faults(vanished=True)
    with pytest.raises(OSError) as e:
        bus.read_byte_data(A, 0xFF)
    assert e.value.errno == errno.EREMOTEIO
    with pytest.raises(OSError):
        bus.read_byte_data(0x3C, 0x00)  # nothing at that address
    bus.faults = Faults(io_error_rate=0.5)
    outcomes = set()
    for _ in range(50):
        try:
            bus.read_byte_data(A, 0xFF)
            outcomes.add("ok")
        except OSError as exc:
            outcomes.add(exc.errno)
    assert outcomes == {"ok", errno.EIO}
    with pytest.raises(ValueError, match="probability"):
        Faults(nack_rate=2.0)


def test_wrong_part(clock):
    bus = emulated_bus("rest", clock=clock, part_id=0x11)
    assert bus.read_byte_data(A, 0xFF) == 0x11


def test_finger_lifted_and_saturation(bus, clock):
    spo2_mode(bus)
    chip = bus.devices[A]
    chip.finger_override = False
    clock.advance(0.05)
    bus.read_byte_data(A, 0x00)
    clock.advance(0.05)
    assert bus.read_byte_data(A, 0x00) & 0x20  # ALC_OVF: room light reaches the window
    chip.finger_override = None
    chip.saturate = True
    bus.read_i2c_block_data(A, 0x04, 3)
    bus.write_i2c_block_data(A, 0x04, [0, 0, 0])
    clock.advance(0.02)
    data = bus.read_i2c_block_data(A, 0x07, 6)
    assert data == [0x03, 0xFF, 0xFF, 0x03, 0xFF, 0xFF]


def test_the_bus_counts_its_own_cpu_time():
    # the daemon's figures in simulation tell the emulator's cost from the device's by this
    clock = ManualClock()
    bus = emulated_bus("rest", clock=clock)
    assert bus.cpu_s == 0.0
    bus.write_byte_data(0x57, 0x09, 0x03)  # SpO2 mode: conversions start
    for _ in range(50):
        clock.advance(0.2)
        bus.read_i2c_block_data(0x57, 0x00, 7)
    assert bus.cpu_s > 0.0
