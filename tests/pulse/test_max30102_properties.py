"""Property tests: whatever the bus says or does, the driver answers with good samples or a
SensorError, never anything else, and recovers once the bus is healthy again."""

from __future__ import annotations

import errno

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calmtunes.pulse.max30102 import MAX30102, SensorError
from calmtunes.sim.clock import ManualClock
from calmtunes.sim.max30102 import Faults, emulated_bus

ERRNOS = (errno.EREMOTEIO, errno.EIO, errno.ETIMEDOUT, errno.EAGAIN)


class RandomBus:
    """A bus whose every answer is drawn by hypothesis: bytes, short reads or errors."""

    def __init__(self, data, clock):
        self.data = data
        self.clock = clock

    def _maybe_fail(self):
        self.clock.advance(self.data.draw(st.floats(0, 0.5)))
        if self.data.draw(st.integers(0, 9)) == 0:
            raise OSError(self.data.draw(st.sampled_from(ERRNOS)), "drawn failure")

    def _bytes(self, n):
        self._maybe_fail()
        size = n if self.data.draw(st.integers(0, 9)) else self.data.draw(st.integers(0, n))
        return self.data.draw(st.lists(st.integers(0, 255), min_size=size, max_size=size))

    def read_byte_data(self, addr, reg, force=None):
        if reg == 0xFF and self.data.draw(st.booleans()):
            self._maybe_fail()
            return 0x15  # often the right part, so reads get exercised
        if reg == 0x09 and self.data.draw(st.booleans()):
            self._maybe_fail()
            return 0x00  # reset done
        got = self._bytes(1)
        if not got:
            raise OSError(errno.EIO, "drawn short read")  # SMBus byte reads are all or nothing
        return got[0]

    def read_i2c_block_data(self, addr, reg, length, force=None):
        return self._bytes(length)

    def write_byte_data(self, addr, reg, value, force=None):
        self._maybe_fail()

    def write_i2c_block_data(self, addr, reg, values, force=None):
        self._maybe_fail()

    def i2c_rdwr(self, *msgs):
        self._maybe_fail()
        for m in msgs:
            if m.flags & 1:
                got = self._bytes(m.len)
                for i, b in enumerate(got):
                    m.buf[i] = bytes([b])
                m.len = len(got)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_register_contents_and_errors_only_ever_give_sensor_errors(data):
    clock = ManualClock()
    driver = MAX30102(RandomBus(data, clock), clock=clock, sleep=clock.sleep)
    last_t = -np.inf
    for _ in range(6):
        try:
            block = driver.read()  # starts the chip first
        except SensorError:
            continue
        assert block.lost >= 0
        assert len(block.t) == len(block.red) == len(block.ir)
        assert np.all((block.ir >= 0) & (block.ir <= 262143))
        assert np.all((block.red >= 0) & (block.red <= 262143))
        if len(block):
            assert np.all(np.diff(block.t) > 0) and block.t[0] > last_t
            last_t = block.t[-1]


fault_sets = st.builds(
    Faults,
    nack_rate=st.floats(0, 0.6),
    io_error_rate=st.floats(0, 0.6),
    short_read_rate=st.floats(0, 0.5),
    garbage_rate=st.floats(0, 0.5),
    hung=st.booleans(),
    vanished=st.booleans(),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(fault_sets, st.floats(0.05, 1.5)), min_size=1, max_size=4),
       st.integers(0, 1000))
def test_fault_sequences_are_survived_and_recovered_from(schedule, seed):
    clock = ManualClock(10.0)
    bus = emulated_bus("rest", seed=seed, clock=clock)
    driver = MAX30102(bus, clock=clock, sleep=clock.sleep)
    driver.start()
    last_t = -np.inf

    def read_for(seconds):
        nonlocal last_t
        got = 0
        end = clock() + seconds
        while clock() < end:
            clock.sleep(max(driver.poll_delay(), 0.02))
            try:
                block = driver.read()
            except SensorError:
                continue
            assert np.all((block.ir >= 0) & (block.ir <= 262143))
            if len(block):
                assert np.all(np.diff(block.t) > 0) and block.t[0] > last_t
                last_t = block.t[-1]
            got += len(block)
        return got

    for faults, seconds in schedule:
        bus.faults = faults
        read_for(seconds)
    bus.faults = Faults()
    read_for(1.0)  # recovery (re-initialising if needed)
    assert read_for(2.0) > 180  # then every sample again
