"""A register-level MAX30102 on an emulated I2C bus, for tests and the simulation mode.

Written from the datasheet (Maxim 19-7740), independently of :mod:`calmtunes.pulse.max30102`, so
that any driver that follows the datasheet runs against it unchanged:

- power-on state: every register 0x00 except INT_STATUS_1.PWR_RDY = 1, REV_ID and PART_ID = 0x15;
- MODE_CONFIG (0x09) RESET (bit 6) restores the power-on state and reads back 1 until the reset
  is done (1 ms here); SHDN (bit 7) stops conversions; MODE 2 = HR (red), 3 = SpO2 (red + IR),
  7 = multi-LED with SLOT1–4 in 0x11/0x12;
- conversions at SPO2_SR (50–3200 sps) averaged by SMP_AVE (1–32) into a 32-sample FIFO, each
  channel 3 bytes, left-justified 18-bit (bits 23:18 zero, resolution 15–18 bits by LED_PW),
  photocurrent scaled by SPO2_ADC_RGE (2048–16384 nA full scale) and the LED currents
  (LEDx_PA: 0.2 mA per LSB);
- FIFO_WR_PTR/FIFO_RD_PTR (5 bits), OVF_COUNTER counting lost samples (saturating at 31, cleared
  when a sample is popped); FIFO_ROLLOVER_EN: when full, overwrite the oldest (1) or drop new
  samples (0); the read pointer advances on the first byte of each sample read from FIFO_DATA;
  burst reads auto-increment the register address except at FIFO_DATA (0x07);
- INT_STATUS_1 (A_FULL, PPG_RDY, ALC_OVF, PWR_RDY) and INT_STATUS_2 (DIE_TEMP_RDY) clear on read;
  PPG_RDY also clears on reading FIFO_DATA; A_FULL sets when the FIFO has FIFO_A_FULL free slots
  left; the INT line is low while an enabled flag (or PWR_RDY) is set;
- DIE_TEMP_CONFIG.TEMP_EN starts a 29 ms conversion into TINT (two's complement °C) and TFRAC
  (0.0625 °C steps), then self-clears and sets DIE_TEMP_RDY;
- with rollover on, an overflowing FIFO overwrites its oldest sample and moves FIFO_RD_PTR along
  with FIFO_WR_PTR, so a full FIFO always reads WR == RD with OVF_COUNTER > 0 (the datasheet
  leaves this detail open; the driver does not depend on it);
- ambient light beyond the cancellation limit sets ALC_OVF and leaks into the readings.

Time comes from an injectable clock; samples are produced lazily when the bus is touched, so a
:class:`~calmtunes.sim.clock.ManualClock` runs hours of sensor time in seconds.
"""

from __future__ import annotations

import ctypes
import errno
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from calmtunes.sim.physiology import EMPTY_COUPLING_NA_PER_MA, Listener, Scenario, Trajectory

ADDRESS = 0x57
PART_ID = 0x15
REV_ID = 0x03
FIFO_DEPTH = 32
FIFO_DATA = 0x07
RESET_TIME_S = 0.001  # the RESET bit reads 1 this long
TEMP_CONVERSION_S = 0.029  # datasheet: temperature conversion time 29 ms
ALC_LIMIT_NA = 200.0  # ambient photocurrent the cancellation can remove
SAMPLE_RATES = (50, 100, 200, 400, 800, 1000, 1600, 3200)  # SPO2_SR codes 0–7, sps
ADC_RANGES_NA = (2048, 4096, 8192, 16384)  # SPO2_ADC_RGE codes 0–3
RESOLUTION_BITS = (15, 16, 17, 18)  # LED_PW codes 0–3 (69, 118, 215, 411 µs)
AVERAGES = (1, 2, 4, 8, 16, 32, 32, 32)  # SMP_AVE codes 0–7
FULL_SCALE = (1 << 18) - 1

# register addresses (datasheet Table 1)
_STATUS1, _STATUS2, _ENABLE1, _ENABLE2 = 0x00, 0x01, 0x02, 0x03
_WR_PTR, _OVF, _RD_PTR = 0x04, 0x05, 0x06
_FIFO_CONFIG, _MODE, _SPO2, _LED1, _LED2 = 0x08, 0x09, 0x0A, 0x0C, 0x0D
_SLOT12, _SLOT34 = 0x11, 0x12
_TINT, _TFRAC, _TEMP_CONFIG = 0x1F, 0x20, 0x21
_REV, _PART = 0xFE, 0xFF
_WRITABLE = {
    _ENABLE1: 0xE0, _ENABLE2: 0x02, _WR_PTR: 0x1F, _OVF: 0x1F, _RD_PTR: 0x1F,
    _FIFO_CONFIG: 0xFF, _MODE: 0xC7, _SPO2: 0x7F, _LED1: 0xFF, _LED2: 0xFF,
    _SLOT12: 0x77, _SLOT34: 0x77, _TEMP_CONFIG: 0x01,
}
A_FULL, PPG_RDY, ALC_OVF, PWR_RDY = 0x80, 0x40, 0x20, 0x01
DIE_TEMP_RDY = 0x02


@dataclass
class Faults:
    """Bus faults, each a probability per transaction (0–1), plus two lasting states."""

    nack_rate: float = 0.0  # the chip does not acknowledge (OSError 121, EREMOTEIO)
    io_error_rate: float = 0.0  # the transfer fails (OSError 5, EIO)
    short_read_rate: float = 0.0  # fewer bytes come back than were asked for
    garbage_rate: float = 0.0  # the bytes read are corrupted on the wire
    hung: bool = False  # SDA held low: every transfer times out (OSError 110, ETIMEDOUT)
    vanished: bool = False  # the chip is gone: every transfer is NACKed

    def __post_init__(self) -> None:
        for name in ("nack_rate", "io_error_rate", "short_read_rate", "garbage_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be a probability in 0–1, got {value!r}")


class MAX30102Chip:
    """The chip's registers, FIFO and converter. Talk to it through :class:`EmulatedBus`."""

    def __init__(
        self,
        listener: Listener | None = None,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
        part_id: int = PART_ID,
        rate_error: float = 0.0,
        die_temp_c: float = 31.3,
    ) -> None:
        self.listener = listener or Listener("rest", seed)
        self.clock = clock
        self.part_id = part_id
        self.rate_error = rate_error  # the chip's oscillator runs (1 + rate_error) fast
        self.die_temp_c = die_temp_c
        self._rng = np.random.default_rng(seed + 7919)
        self._t0 = clock()  # session time 0
        # fault states a test or the simulation may set at any time
        self.finger_override: bool | None = None  # False: finger lifted; True: forced on
        self.motion = 0.0  # extra motion artefact strength (1 = fidgeting)
        self.saturate = False  # drive both channels to full scale
        self.samples_made = 0
        self._power_on()

    # -- state ----------------------------------------------------------------------------------
    def _power_on(self) -> None:
        self.regs = bytearray(256)
        self.regs[_STATUS1] = PWR_RDY
        self.regs[_REV] = REV_ID
        self.regs[_PART] = self.part_id & 0xFF
        # each FIFO slot holds one sample as the bytes it reads out as (3 a channel, big-endian)
        self._fifo: list[bytes] = [b""] * FIFO_DEPTH
        self._count = 0  # unread samples in the FIFO (0–32)
        self._pointer = 0  # the register address pointer
        self._stream = b""  # bytes of the sample being read out of FIFO_DATA
        self._next_conv: float | None = None  # clock time of the next conversion
        # conversions awaiting averaging: one row of codes per conversion, a column per slot
        self._pending = np.empty((0, 0), dtype=np.int64)
        self._reset_until = 0.0
        self._temp_done: float | None = None

    @property
    def session_time(self) -> float:
        return self.clock() - self._t0

    def _mode(self) -> int:
        m = self.regs[_MODE]
        return 0 if m & 0x80 else m & 0x07

    def _slots(self) -> list[int]:
        """LEDs sampled per FIFO sample: 1 = LED1 (red), 2 = LED2 (IR)."""
        mode = self._mode()
        if mode == 2:
            return [1]
        if mode == 3:
            return [1, 2]
        if mode == 7:
            slots = []
            for reg in (_SLOT12, _SLOT34):
                for shift in (0, 4):
                    s = (self.regs[reg] >> shift) & 0x07
                    if s == 0:
                        return slots
                    slots.append(s)
            return slots
        return []

    def sample_rate(self) -> float:
        """Conversions per second as configured (before averaging)."""
        return SAMPLE_RATES[(self.regs[_SPO2] >> 2) & 0x07] * (1.0 + self.rate_error)

    def averaging(self) -> int:
        return AVERAGES[self.regs[_FIFO_CONFIG] >> 5]

    # -- time ---------------------------------------------------------------------------------
    def update(self) -> None:
        """Bring the chip up to the clock's present: finish resets and conversions."""
        now = self.clock()
        if self._reset_until and now >= self._reset_until:
            self._reset_until = 0.0
            self.regs[_MODE] &= ~0x40
        if self._temp_done is not None and now >= self._temp_done:
            self._finish_temperature()
        slots = self._slots()
        if not slots:
            self._next_conv = None
            self._pending = self._pending[:0]
            return
        if self._next_conv is None:
            self._next_conv = now + 1.0 / self.sample_rate()
            return
        if now < self._next_conv:
            return
        period = 1.0 / self.sample_rate()
        n = int((now - self._next_conv) / period + 1e-9) + 1  # a conversion due now is done
        times = self._next_conv + np.arange(n) * period
        self._next_conv = float(times[-1] + period)
        # after a long silence only the samples the FIFO can hold need converting; the rest
        # only count as lost (rollover off: the newest are dropped; on: the oldest overwritten)
        keep = (FIFO_DEPTH + 1) * self.averaging()
        if n > 2 * keep:
            lost = (n - keep) // self.averaging()
            if self.regs[_FIFO_CONFIG] & 0x10:
                self._overflow_uncounted(lost, before=True)
                self._convert(times[-keep:], slots)
            else:
                self._convert(times[:keep], slots)
                self._overflow_uncounted(lost, before=False)
            return
        self._convert(times, slots)

    def _overflow_uncounted(self, lost: int, before: bool) -> None:
        """Account for ``lost`` samples that were never converted (long gaps only)."""
        self.samples_made += lost
        self._pending = self._pending[:0]
        if before:
            # rollover: they filled and cycled the FIFO; the kept ones overwrite them again
            self._count = FIFO_DEPTH
            self.regs[_RD_PTR] = self.regs[_WR_PTR]
        if self._count == FIFO_DEPTH or not before:
            self.regs[_OVF] = min(self.regs[_OVF] + lost, 0x1F)

    def _convert(self, times: np.ndarray, slots: list[int]) -> None:
        spo2 = self.regs[_SPO2]
        full_na = ADC_RANGES_NA[(spo2 >> 5) & 0x03]
        bits = RESOLUTION_BITS[spo2 & 0x03]
        red_c, ir_c, ambient = self.listener.optics(times - self._t0)
        if self.finger_override is False:
            red_c = ir_c = np.full_like(times, EMPTY_COUPLING_NA_PER_MA)
            ambient = np.full_like(times, self.listener.scenario.ambient_na)
        elif self.finger_override is True:
            ambient = ambient * 0.03
        if self.motion:
            wobble = 1.0 + 0.05 * self.motion * np.sin(2 * np.pi * 1.3 * times) * (
                1 + 0.5 * self._rng.standard_normal(len(times))
            )
            red_c, ir_c = red_c * wobble, ir_c * wobble
        leak = np.maximum(ambient - ALC_LIMIT_NA, 0.0)
        if (leak > 0).any():
            self.regs[_STATUS1] |= ALC_OVF
        # one row per slot: the photocurrent of its LED (LEDx_PA: 0.2 mA per LSB); a slot of an
        # LED this board lacks sees only the leak
        rows = [red_c * self.regs[_LED1] * 0.2 if s == 1 else
                ir_c * self.regs[_LED2] * 0.2 if s == 2 else np.zeros_like(times)
                for s in slots]
        na = np.stack(rows) + leak  # (update converts only while some slot is enabled)
        # sensor noise, nA rms: one draw per conversion, slot by slot (row by row)
        na = na + self._rng.normal(0.0, 0.25 + 2e-4 * na)
        # quantised and clipped to the ADC's 18 bits (rint: halves to even, as np.round)
        codes = np.minimum(np.maximum(np.rint(na / full_na * (1 << 18)), 0), FULL_SCALE)
        codes = codes.astype(np.int64).T  # a row per conversion
        if self.saturate:
            codes[:] = FULL_SCALE
        # averaged in groups of SMP_AVE conversions, a partial group carried to the next call;
        # the means of whole groups at once (exact: the codes' sums are integers below 2^53)
        every = self.averaging()
        pending = codes if not len(self._pending) else np.concatenate((self._pending, codes))
        whole = len(pending) // every * every
        self._pending = pending[whole:]
        if not whole:
            return
        if every == 1:
            means = pending  # the mean of one code is that code
        else:
            # int() of a mean ≥ 0 truncates, as astype does
            means = pending[:whole].reshape(whole // every, every, len(slots)).mean(axis=1)
            means = means.astype(np.int64)
        # left-justified: the lowest (18 − resolution) bits read 0
        mask = FULL_SCALE & ~((1 << (18 - bits)) - 1)
        # each channel as FIFO_DATA hands it out: 3 bytes, most significant first
        raw = np.ascontiguousarray(means & mask, dtype=">u4").view(np.uint8)
        raw = raw.reshape(len(means), -1, 4)[:, :, 1:]
        width = 3 * len(slots)
        data = raw.tobytes()
        samples = [data[k:k + width] for k in range(0, len(data), width)]
        if len(samples) <= FIFO_DEPTH - self._count:
            self._push_fitting(samples)
        else:
            for sample in samples:
                self._push(sample)

    def _push_fitting(self, samples: list[bytes]) -> None:
        """:meth:`_push` of each of ``samples`` when all fit in the FIFO (none overflows): the
        same pointers, count and flags, set once."""
        n = len(samples)
        if not n:
            return
        wr, before = self.regs[_WR_PTR], self._count
        first = min(n, FIFO_DEPTH - wr)
        self._fifo[wr:wr + first] = samples[:first]
        self._fifo[:n - first] = samples[first:]
        self.regs[_WR_PTR] = (wr + n) % FIFO_DEPTH
        self._count += n
        self.samples_made += n
        self.regs[_STATUS1] |= PPG_RDY
        if before < FIFO_DEPTH - (self.regs[_FIFO_CONFIG] & 0x0F) <= self._count:
            self.regs[_STATUS1] |= A_FULL  # the write pointer reached FIFO_A_FULL free slots

    def _push(self, sample: bytes) -> None:
        self.samples_made += 1
        wr = self.regs[_WR_PTR]
        if self._count == FIFO_DEPTH:
            self.regs[_OVF] = min(self.regs[_OVF] + 1, 0x1F)  # saturates at 0x1F
            if not self.regs[_FIFO_CONFIG] & 0x10:
                return  # rollover off: the FIFO is not updated until it is read
            self.regs[_RD_PTR] = (self.regs[_RD_PTR] + 1) % FIFO_DEPTH  # oldest overwritten
            self._count -= 1
        self._fifo[wr] = sample
        self.regs[_WR_PTR] = (wr + 1) % FIFO_DEPTH
        self._count += 1
        self.regs[_STATUS1] |= PPG_RDY
        if FIFO_DEPTH - self._count == (self.regs[_FIFO_CONFIG] & 0x0F):
            self.regs[_STATUS1] |= A_FULL  # the write pointer reached FIFO_A_FULL free slots

    def _finish_temperature(self) -> None:
        self._temp_done = None
        t = self.die_temp_c + 0.5 * math.sin(self.session_time / 600.0)
        whole = math.floor(t)
        self.regs[_TINT] = whole & 0xFF  # two's complement
        self.regs[_TFRAC] = int((t - whole) / 0.0625) & 0x0F
        self.regs[_TEMP_CONFIG] &= ~0x01  # TEMP_EN self-clears
        self.regs[_STATUS2] |= DIE_TEMP_RDY

    # -- registers --------------------------------------------------------------------------
    def int_asserted(self) -> bool:
        """The open-drain INT line is low (asserted) while an enabled flag is set."""
        self.update()
        s1, s2 = self.regs[_STATUS1], self.regs[_STATUS2]
        return bool(s1 & (self.regs[_ENABLE1] | PWR_RDY) or s2 & self.regs[_ENABLE2])

    def next_sample_time(self, count: int = 1) -> float | None:
        """Clock time at which the FIFO gains ``count`` more samples (None: not sampling)."""
        self.update()
        if self._next_conv is None:
            return None
        conversions = count * self.averaging() - len(self._pending)
        return self._next_conv + (conversions - 1) / self.sample_rate()

    def next_almost_full_time(self) -> float | None:
        """Clock time at which A_FULL will set, from the FIFO's present fill."""
        self.update()
        need = FIFO_DEPTH - (self.regs[_FIFO_CONFIG] & 0x0F) - self._count
        return self.next_sample_time(max(need, 1))

    def read_register(self) -> int:
        """One byte from the register pointer (auto-incrementing except at FIFO_DATA)."""
        reg = self._pointer
        if reg == FIFO_DATA:
            return self._read_fifo_byte()
        value = self.regs[reg]
        if reg in (_STATUS1, _STATUS2):
            self.regs[reg] = 0  # interrupt flags clear on read
        self._pointer = (reg + 1) & 0xFF
        return value

    def read_registers(self, n: int) -> list[int]:
        """``n`` bytes from the register pointer, as ``n`` calls of :meth:`read_register`
        (a FIFO read hands out whole samples at a time: the same bytes, far fewer calls)."""
        if self._pointer != FIFO_DATA:
            return [self.read_register() for _ in range(n)]
        out = bytearray(self._stream[:n])
        self._stream = self._stream[n:]
        width = 0
        while len(out) < n:
            width = width or 3 * max(len(self._slots()), 1)
            sample = self._pop_sample(width)
            take = min(width, n - len(out))
            out += sample[:take]
            self._stream = sample[take:]
        return list(out)

    def _read_fifo_byte(self) -> int:
        if not self._stream:
            self._stream = self._pop_sample(3 * max(len(self._slots()), 1))
        value, self._stream = self._stream[0], self._stream[1:]
        return value

    def _pop_sample(self, width: int) -> bytes:
        """The next sample's ``width`` bytes; the read pointer advances (on its first byte)."""
        rd = self.regs[_RD_PTR]
        sample = self._fifo[rd] or bytes(3 * (width // 3))  # never written: zeros
        if self._count:
            self.regs[_RD_PTR] = (rd + 1) % FIFO_DEPTH
            self._count -= 1
            self.regs[_OVF] = 0  # cleared when a complete sample is popped
        self.regs[_STATUS1] &= ~PPG_RDY
        return sample[:width].ljust(width, b"\0")

    def write_register(self, value: int) -> None:
        reg = self._pointer
        self._pointer = (reg + 1) & 0xFF if reg != FIFO_DATA else reg
        if reg not in _WRITABLE:
            return  # read-only or reserved: ignored
        value &= _WRITABLE[reg]
        if reg == _MODE and value & 0x40:
            self._power_on()
            self.regs[_MODE] = 0x40
            self._reset_until = self.clock() + RESET_TIME_S
            return
        if reg in (_WR_PTR, _RD_PTR, _OVF):
            self.regs[reg] = value
            self._stream = b""
            wr, rd = self.regs[_WR_PTR], self.regs[_RD_PTR]
            self._count = (wr - rd) % FIFO_DEPTH
            return
        if reg == _TEMP_CONFIG and value & 0x01:
            self._temp_done = self.clock() + TEMP_CONVERSION_S
        self.regs[reg] = value
        if reg in (_MODE, _SPO2, _FIFO_CONFIG):
            self.update()  # conversions start (or stop) the moment the mode is written

    def set_pointer(self, reg: int) -> None:
        """The register address a write transaction starts with."""
        self._pointer = reg & 0xFF


def _emulation(method: Callable[..., Any]) -> Callable[..., Any]:
    """Count the CPU time of a bus transaction in ``bus.cpu_s`` (the emulator's own cost, so
    the daemon's figures in simulation can be told from the device's)."""

    def timed(self: EmulatedBus, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.cpu_s += time.thread_time() - started

    timed.__name__, timed.__doc__ = method.__name__, method.__doc__
    return timed


class EmulatedBus:
    """An ``smbus2.SMBus`` look-alike carrying emulated chips, with transaction counts and faults.

    Every method call is one bus transaction (``i2c_rdwr`` with several messages is one combined
    transaction with repeated starts). ``transactions`` and ``bytes_moved`` count them.
    """

    def __init__(
        self,
        devices: dict[int, MAX30102Chip],
        faults: Faults | None = None,
        seed: int = 0,
    ) -> None:
        self.devices = dict(devices)
        self.faults = faults or Faults()
        self._rng = np.random.default_rng(seed + 104729)
        self.transactions = 0
        self.bytes_moved = 0
        self.errors = 0
        self.closed = False
        self.fd = None  # like a closed SMBus: nothing to release
        self.cpu_s = 0.0  # CPU time spent emulating (chip, listener, bus), s

    # -- plumbing -------------------------------------------------------------------------------
    def _chip(self, addr: int) -> MAX30102Chip:
        if self.closed:
            raise OSError(errno.EBADF, "I2C bus is closed")
        self.transactions += 1
        f = self.faults
        if f.hung:
            self.errors += 1
            raise OSError(errno.ETIMEDOUT, "Connection timed out (I2C bus hung)")
        chip = self.devices.get(addr)
        if chip is None or f.vanished or (f.nack_rate and self._rng.uniform() < f.nack_rate):
            self.errors += 1
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        if f.io_error_rate and self._rng.uniform() < f.io_error_rate:
            self.errors += 1
            raise OSError(errno.EIO, "Input/output error")
        chip.update()
        return chip

    def _read(self, chip: MAX30102Chip, n: int) -> list[int]:
        data = chip.read_registers(n)
        self.bytes_moved += n
        f = self.faults
        if f.garbage_rate and self._rng.uniform() < f.garbage_rate:
            data = [int(b) for b in self._rng.integers(0, 256, n)]
        if f.short_read_rate and n > 1 and self._rng.uniform() < f.short_read_rate:
            data = data[: int(self._rng.integers(0, n))]
        return data

    def _write(self, chip: MAX30102Chip, reg: int, values: list[int]) -> None:
        chip.set_pointer(reg)
        for v in values:
            if not 0 <= int(v) <= 255:
                raise ValueError(f"byte value out of range: {v!r}")
            chip.write_register(int(v))
        self.bytes_moved += 1 + len(values)

    # -- smbus2 API ---------------------------------------------------------------------------
    @_emulation
    def read_byte_data(self, i2c_addr: int, register: int, force: Any = None) -> int:
        chip = self._chip(i2c_addr)
        chip.set_pointer(register)
        data = self._read(chip, 1)
        if not data:
            raise OSError(errno.EIO, "short read")
        return data[0]

    @_emulation
    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: Any = None) -> None:
        chip = self._chip(i2c_addr)
        self._write(chip, register, [value])

    @_emulation
    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: Any = None
    ) -> list[int]:
        if length > 32:
            raise ValueError("Desired block length over 32 bytes")  # SMBus block limit
        chip = self._chip(i2c_addr)
        chip.set_pointer(register)
        return self._read(chip, length)

    @_emulation
    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: list[int], force: Any = None
    ) -> None:
        if len(data) > 32:
            raise ValueError("Data length cannot exceed 32 bytes")
        chip = self._chip(i2c_addr)
        self._write(chip, register, list(data))

    @_emulation
    def i2c_rdwr(self, *i2c_msgs: Any) -> None:
        """Combined transfer of ``smbus2.i2c_msg`` messages (write sets the register pointer)."""
        if not i2c_msgs:
            return
        chip = self._chip(i2c_msgs[0].addr)
        for msg in i2c_msgs:
            if msg.addr != i2c_msgs[0].addr and msg.addr not in self.devices:
                self.errors += 1
                raise OSError(errno.EREMOTEIO, "Remote I/O error")
            if msg.flags & 0x0001:  # I2C_M_RD
                data = self._read(chip, msg.len)
                ctypes.memmove(msg.buf, bytes(data), len(data))
                msg.len = len(data)
            else:
                raw = bytes(msg)
                if raw:
                    self._write(chip, raw[0], list(raw[1:]))

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> EmulatedBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def emulated_bus(
    scenario: str | Scenario = "rest",
    seed: int = 0,
    clock: Callable[[], float] | None = None,
    trajectory: Trajectory | None = None,
    faults: Faults | None = None,
    part_id: int = PART_ID,
    rate_error: float = 0.0,
) -> EmulatedBus:
    """A bus with one emulated MAX30102 at 0x57 watching a simulated listener.

    ``scenario`` is a name from :data:`calmtunes.sim.physiology.SCENARIOS` or a Scenario.

    ``clock`` defaults to ``time.monotonic`` (real time); pass a ManualClock to run faster.
    ``trajectory`` overrides the scenario's heart/breathing trajectory (see
    :class:`calmtunes.sim.physiology.Trajectory`). The chip is ``bus.devices[0x57]``.
    """
    clock = clock or time.monotonic
    listener = Listener(scenario, seed, trajectory)
    chip = MAX30102Chip(listener, clock, seed, part_id=part_id, rate_error=rate_error)
    return EmulatedBus({ADDRESS: chip}, faults, seed)


class InterruptWire:
    """Carries the emulated chip's INT line to a gpiozero mock pin (low while asserted).

    Call :meth:`sync` whenever the emulated time moves (a ManualClock does not tick by itself):
    ``wire = InterruptWire(bus.devices[0x57], MockFactory().pin(4))``.
    """

    def __init__(self, chip: MAX30102Chip, pin: Any) -> None:
        self.chip = chip
        self.pin = pin
        self.sync()

    def sync(self) -> bool:
        asserted = self.chip.int_asserted()
        if asserted:
            self.pin.drive_low()  # open drain pulls the line low
        else:
            self.pin.drive_high()  # the pull-up wins
        return asserted
