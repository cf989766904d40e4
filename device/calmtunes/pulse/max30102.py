"""Driver for the MAX30102 pulse-oximetry sensor on I2C (one class, the bus injected).

``MAX30102(bus)`` takes any ``smbus2.SMBus``-compatible object: the real bus on the device, the
emulated one in :mod:`calmtunes.sim.max30102` elsewhere. :meth:`MAX30102.start` checks PART_ID,
resets the chip and configures it from :class:`Settings` (physical units); :meth:`MAX30102.read`
returns the samples that arrived since the last call as a
:class:`~calmtunes.pulse.samples.SampleBlock`, each with its own timestamp on the injected
monotonic clock.

How the FIFO is read (datasheet "FIFO Description"): one SMBus block read of registers
0x00–0x06 fetches both interrupt status registers (which clears them and releases the INT line)
and FIFO_WR_PTR, OVF_COUNTER and FIFO_RD_PTR in a single transaction, thanks to the register
address auto-increment. The number of waiting samples is ``(WR − RD) mod 32``, or 32 when the
pointers are equal and OVF_COUNTER is non-zero (the FIFO is full). The samples then come out of
FIFO_DATA, whose address does not auto-increment, in one combined write/read transfer
(``i2c_rdwr``) or, where the adapter lacks that, in SMBus block reads of at most 30 bytes (five
whole 6-byte samples, under the 32-byte SMBus block limit). At 100 sps and an almost-full mark of
17 samples that is 2 transactions per 170 ms, about 12 per second.

When the INT line is wired (``int_pin``), :meth:`MAX30102.wait` sleeps on it through gpiozero;
otherwise :meth:`MAX30102.poll_delay` says when the FIFO will hold the almost-full mark.

Faults: every transfer is retried with back-off (1, 2, 4 ms) on ``OSError`` (121 NACK, 5 EIO,
110 timeout) and on short reads; bytes that cannot be right (reserved bits set, pointers that
contradict each other) are refused as corrupt. After ``reinit_after`` failed reads in a row, the
next read re-initialises the chip. A chip reset behind the driver's back (PWR_RDY set again: its
supply dipped, a loose wire) or one that stopped sampling (no sample for ``stall_s``) is
configured again at once: in its power-on state it samples nothing while every transfer
succeeds. What escapes is a :class:`SensorError` (a :class:`~calmtunes.errors.HardwareError`)
saying what to check.

Faults that a re-initialisation does not cure are not re-initialised at the chip's pace: a reset
or a stall seen :attr:`MAX30102.give_up_after` times in a row with no sample between (a supply
that keeps dipping, a stuck data line), or corrupt data on as many reads in a row, raise a
:class:`SensorError` naming the fault, so that the caller backs off and says so once. An INT
line that stays asserted while the FIFO holds less than the almost-full mark (a shorted wire), or
that never asserts while the FIFO fills (an open one, or the wrong ``int_pin``), is let go after
as many wakes: the driver polls instead, says why once, and :attr:`MAX30102.int_fault` keeps it.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from calmtunes.errors import HardwareError
from calmtunes.pulse import max30102_registers as R
from calmtunes.pulse.finger import FingerDetector
from calmtunes.pulse.samples import SampleBlock
from calmtunes.pulse.stats import median

log = logging.getLogger(__name__)

WIRING_HINT = (
    "check the wiring (SDA to GPIO2, SCL to GPIO3, VIN and GND), that I2C is enabled "
    "(dtparam=i2c_arm=on in /boot/firmware/config.txt), the address (`i2cdetect -y 1` should "
    "show 57) and that this user is in the `i2c` group"
)


class SensorError(HardwareError):
    """The MAX30102 is absent, is something else, or keeps failing; the message says what to
    check."""


class SensorCorrupt(SensorError):
    """Bytes came back that the chip cannot have sent (bus noise or a failing chip)."""


class _Persistent(SensorError):
    """A fault that re-initialising did not cure, several times in a row: not retried at once."""


@dataclass(frozen=True)
class Settings:
    """Sensor configuration in physical units (SpO2 mode: red and IR)."""

    sample_rate: int = 100  # ADC conversions per second: 50, 100, 200, 400, 800, 1000, 1600, 3200
    pulse_width_us: int = 411  # 69, 118, 215, 411 µs ⇒ 15, 16, 17, 18-bit resolution
    adc_range_na: int = 4096  # ADC full scale: 2048, 4096, 8192, 16384 nA
    averaging: int = 1  # conversions averaged per FIFO sample: 1, 2, 4, 8, 16, 32
    red_ma: float = 7.0  # red LED current, 0–51 mA in 0.2 mA steps
    ir_ma: float = 7.0  # IR LED current, 0–51 mA in 0.2 mA steps
    almost_full: int = 17  # unread samples when A_FULL fires (17–32)
    rollover: bool = True  # when full, overwrite the oldest samples (else drop the new ones)
    auto_led: bool = True  # adjust the LED currents to keep the signal in the ADC's range

    @property
    def fs(self) -> float:
        """FIFO samples per second (after averaging)."""
        return self.sample_rate / self.averaging

    @property
    def resolution_bits(self) -> int:
        return R.RESOLUTION_BITS[self.pulse_width_us]

    def registers(self) -> dict[int, int]:
        """Register values for these settings; raises ValueError naming a bad value."""
        limit = R.MAX_SPO2_RATE.get(self.pulse_width_us)
        if limit is not None and self.sample_rate > limit:
            raise ValueError(
                f"{self.sample_rate} sps is too fast for a {self.pulse_width_us} µs pulse in SpO2 "
                f"mode (at most {limit} sps); lower the rate or shorten the pulse"
            )
        spo2 = R.ADC_RANGE.encode(0, self.adc_range_na)
        spo2 = R.SAMPLE_RATE.encode(spo2, self.sample_rate)
        spo2 = R.PULSE_WIDTH.encode(spo2, self.pulse_width_us)
        fifo = R.AVERAGING.encode(0, self.averaging)
        fifo = R.ROLLOVER_EN.encode(fifo, self.rollover)
        fifo = R.ALMOST_FULL.encode(fifo, self.almost_full)
        return {
            R.FIFO_CONFIG: fifo,
            R.SPO2_CONFIG: spo2,
            R.LED1_PA: R.RED_CURRENT.encode(0, self.red_ma),
            R.LED2_PA: R.IR_CURRENT.encode(0, self.ir_ma),
        }

    def snapped(self) -> Settings:
        """These settings as the chip will hold them (each value through its register)."""
        return Settings.from_registers(self.registers(), self.auto_led)

    @classmethod
    def from_registers(cls, regs: dict[int, int], auto_led: bool = True) -> Settings:
        """The settings a chip holds, decoded from its register values."""
        return cls(
            sample_rate=R.SAMPLE_RATE.decode(regs[R.SPO2_CONFIG]),
            pulse_width_us=R.PULSE_WIDTH.decode(regs[R.SPO2_CONFIG]),
            adc_range_na=R.ADC_RANGE.decode(regs[R.SPO2_CONFIG]),
            averaging=R.AVERAGING.decode(regs[R.FIFO_CONFIG]),
            red_ma=R.RED_CURRENT.decode(regs[R.LED1_PA]),
            ir_ma=R.IR_CURRENT.decode(regs[R.LED2_PA]),
            almost_full=R.ALMOST_FULL.decode(regs[R.FIFO_CONFIG]),
            rollover=R.ROLLOVER_EN.decode(regs[R.FIFO_CONFIG]),
            auto_led=auto_led,
        )


@dataclass
class Stats:
    """Counters since the driver was made (for status and benchmarks)."""

    samples: int = 0  # samples delivered
    lost: int = 0  # samples lost (FIFO overflow, failed or corrupt reads)
    reads: int = 0  # FIFO service rounds
    bus_errors: int = 0  # failed transfers (each retry counts)
    corrupt: int = 0  # transfers refused as corrupt
    reinits: int = 0  # chip re-initialisations after repeated failures
    resets_seen: int = 0  # times the chip was found reset or stalled, and configured again
    led_changes: int = 0  # automatic LED-current adjustments
    transfers: dict[str, int] = field(default_factory=dict)


# automatic LED current: keep each channel's DC between these fractions of full scale
LED_LOW, LED_TARGET, LED_HIGH = 0.25, 0.5, 0.8
LED_MIN_MA, LED_MAX_MA = 1.0, 51.0
LED_SETTLE_S = 1.0  # wait this long after a change before judging the level again
SATURATED = R.FULL_SCALE - 64  # within 64 counts of full scale counts as clipped


class MAX30102:
    """One MAX30102 on an injected I2C bus.

    ``int_pin`` is the BCM GPIO wired to INT (active low, open drain; the internal pull-up is
    used), read through gpiozero with ``pin_factory`` (gpiozero's default when None). ``clock``
    is the monotonic clock every timestamp and timeout uses; ``sleep`` waits on it.
    """

    retries = 3  # attempts after the first for one transfer
    backoff_s = 0.001  # first retry delay, doubled each time
    reinit_after = 3  # failed reads in a row before the chip is re-initialised
    reset_timeout_s = 0.1  # datasheet: the reset completes well within this
    #: no sample for this long (or ten sample periods, where averaging makes them longer) is a
    #: chip that stopped converting (its configuration lost without the bus failing): it is
    #: configured again, s
    stall_s = 1.0
    #: the same fault this many times in a row, with no sample between, is given up on (above)
    give_up_after = 3
    #: the sample period is measured as host time over samples counted since an anchor read;
    #: each end is known to one period (the newest sample is up to a period old at a read), so
    #: the error is at most a period over the span: ≤ 1 % after this long at 100 sps, s
    period_measure_min_s = 1.0
    #: the anchor moves on after this long (the oscillator drifts with temperature), s; the
    #: estimate in hand is kept until the new span reaches :attr:`period_remeasure_s`
    period_window_s = 60.0
    period_remeasure_s = 10.0
    #: the measured period is held within this fraction of the nominal one. The datasheet
    #: gives no tolerance for the sample clock (an on-chip oscillator; parts a few % off are
    #: normal); a measurement beyond ±10 % is a host clock that jumped, not the chip
    period_tolerance = 0.10

    def __init__(
        self,
        bus: Any,
        address: int = 0x57,
        int_pin: int | None = None,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        settings: Settings | None = None,
        transfer: str = "auto",
    ) -> None:
        if transfer not in ("auto", "rdwr", "smbus"):
            raise ValueError(f"transfer must be 'auto', 'rdwr' or 'smbus', got {transfer!r}")
        self.bus = bus
        self.address = address
        self.int_pin = int_pin
        self.pin_factory = pin_factory
        self.clock = clock
        self.sleep = sleep
        settings = settings or Settings()
        # refuse impossible settings now, with the reason, and hold the values the chip can
        # represent (LED currents snap to 0.2 mA steps)
        self.settings = settings.snapped()
        self._transfer = transfer
        self.stats = Stats()
        self.finger = False
        self._finger = FingerDetector()  # the one finger rule (calmtunes.pulse.finger)
        self.ambient_overflow = False  # ALC_OVF seen in the last read: ambient light leaks in
        self.temperature_c: float | None = None
        self._int_device: Any = None
        self.int_fault = ""  # why the INT line was let go for polling ("" while trusted)
        self._int_woken = False  # the last wait ended on INT (not on its timeout)
        self._int_odd = 0  # INT wakes in a row that the FIFO contradicts
        self._fruitless = 0  # resets or stalls in a row with no sample between
        self._corrupt_reads = 0  # reads in a row that met corrupt data and brought no sample
        self._started = False
        self._failures = 0
        self._t_last: float | None = None  # timestamp of the newest sample delivered
        self._resume_after: float | None = None  # newest timestamp before a re-initialisation
        self._period = 1.0 / self.settings.fs
        self._anchor: tuple[float, int] | None = None  # (read time, samples since) for _period
        self._period_measured = False  # _period is a measurement, not the nominal value
        #: samples may have gone missing since the last block: a failed or corrupt read (it
        #: may have popped some), or an overflow with rollover off (the drop shows after it)
        self._loss_possible = False
        self._last_read = clock()
        self._last_sample_at = self._last_read  # when a read last brought samples
        self._led_changed_at = -1e9
        self._temp_pending = False

    # -- life cycle -----------------------------------------------------------------------------
    def probe(self) -> int:
        """Check that a MAX30102 answers (PART_ID 0x15, datasheet register 0xFF) without
        touching its configuration; its revision (REV_ID, 0xFE). Raises :class:`SensorError`
        saying what to check. ``calmtunes selftest`` uses it; :meth:`start` checks the same."""
        self._check_part()
        return self._read_byte(R.REV_ID, "read REV_ID")

    def _check_part(self) -> None:
        part = self._read_byte(R.PART_ID, "read PART_ID")
        if part != R.PART_ID_VALUE:
            raise SensorError(
                f"device at 0x{self.address:02x} reports PART_ID 0x{part:02x}, not 0x15 "
                f"(MAX30102; a MAX30100 board looks the same); is another chip at this "
                f"address? {WIRING_HINT}"
            )

    def start(self) -> None:
        """Check the chip, reset it, configure it and start sampling."""
        self._check_part()
        self._reset()
        s = self.settings
        regs = s.registers()
        # The FIFO pointers and overflow counter are cleared on entering SpO2 mode so no old
        # data is read (datasheet: "FIFO_WR_PTR ... should be cleared upon entering SpO2 mode").
        self._write_block(R.FIFO_WR_PTR, [0, 0, 0], "clear FIFO pointers")
        self._write_byte(R.FIFO_CONFIG, regs[R.FIFO_CONFIG], "FIFO_CONFIG")
        self._write_byte(R.SPO2_CONFIG, regs[R.SPO2_CONFIG], "SPO2_CONFIG")
        self._write_block(R.LED1_PA, [regs[R.LED1_PA], regs[R.LED2_PA]], "LED currents")
        # only A_FULL raises INT: PPG_RDY would wake us per sample, ALC_OVF per sample in light
        self._write_block(R.INT_ENABLE_1, [R.A_FULL, 0], "interrupt enables")
        self._write_byte(R.MODE_CONFIG, R.MODE.encode(0, "spo2"), "MODE_CONFIG")
        readback = self.read_settings()
        if replace(readback, auto_led=s.auto_led) != s:
            raise SensorCorrupt(
                f"MAX30102 configuration did not stick (wrote {s}, read back {readback}); "
                f"{WIRING_HINT}"
            )
        # PWR_RDY is set by the power-on reset (and the soft reset above): read now, it clears,
        # so that seen again later it means the chip was reset behind our back
        self._read_block(R.INT_STATUS_1, 2, "clear interrupt status")
        if not self._period_measured:  # a re-initialisation keeps the oscillator's period
            self._period = 1.0 / s.fs
        self._anchor, self._loss_possible = None, False
        self._t_last = None
        self._last_read = self.clock()
        self._last_sample_at = self._last_read
        self._failures = 0
        self._started = True
        if self.int_pin is not None and self._int_device is None and not self.int_fault:
            self._open_int_pin()
        # said once; a re-initialisation that a lasting fault repeats says nothing new
        (log.debug if self._fruitless else log.info)(
            "MAX30102 at 0x%02x: %g sps (%d-bit), red %.1f mA, IR %.1f mA, %s",
            self.address, s.fs, s.resolution_bits, s.red_ma, s.ir_ma,
            f"INT on GPIO{self.int_pin}" if self.int_pin is not None else "polling")

    def _open_int_pin(self) -> None:
        from calmtunes.hardware import import_gpiozero

        import_gpiozero()
        from gpiozero import DigitalInputDevice  # only where an INT line is wired

        if self.pin_factory is None:
            from calmtunes.hardware import use_local_pins

            use_local_pins()  # never pigpio's, which reaches the pins over the network
        # INT is open drain, active low (datasheet pin description): pull up, active when low
        self._int_device = DigitalInputDevice(
            self.int_pin, pull_up=True, pin_factory=self.pin_factory
        )

    def _reset(self) -> None:
        """Soft reset; the RESET bit clears itself when done (datasheet MODE_CONFIG)."""
        self._write_byte(R.MODE_CONFIG, R.RESET, "reset")
        deadline = self.clock() + self.reset_timeout_s
        while self._read_byte(R.MODE_CONFIG, "read MODE_CONFIG") & R.RESET:
            if self.clock() >= deadline:
                raise SensorError(
                    f"MAX30102 did not finish its reset within {self.reset_timeout_s * 1000:.0f} "
                    f"ms; power-cycle the sensor and {WIRING_HINT}"
                )
            self.sleep(0.001)

    def close(self) -> None:
        """Put the chip in shutdown (LEDs off) and release the INT pin; safe to call twice."""
        if self._started:
            try:
                self._write_byte(R.MODE_CONFIG, R.SHDN, "shutdown")
            except SensorError as exc:
                log.debug("MAX30102: shutdown on close failed: %s", exc)
            self._started = False
        if self._int_device is not None:
            self._int_device.close()
            self._int_device = None

    def __enter__(self) -> MAX30102:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration ------------------------------------------------------------------------
    def read_settings(self) -> Settings:
        """The chip's present configuration, decoded from its registers into physical units."""
        fifo_spo2 = self._read_block(R.FIFO_CONFIG, 3, "read configuration")
        leds = self._read_block(R.LED1_PA, 2, "read LED currents")
        regs = {R.FIFO_CONFIG: fifo_spo2[0], R.SPO2_CONFIG: fifo_spo2[2],
                R.LED1_PA: leds[0], R.LED2_PA: leds[1]}
        return Settings.from_registers(regs, self.settings.auto_led)

    def set_led_current(self, red_ma: float | None = None, ir_ma: float | None = None) -> None:
        """Set the LED currents in mA (0–51, 0.2 mA steps)."""
        s = replace(self.settings,
                    red_ma=self.settings.red_ma if red_ma is None else red_ma,
                    ir_ma=self.settings.ir_ma if ir_ma is None else ir_ma).snapped()
        regs = s.registers()
        self._write_block(R.LED1_PA, [regs[R.LED1_PA], regs[R.LED2_PA]], "LED currents")
        self.settings = s

    @property
    def fs(self) -> float:
        return self.settings.fs

    @property
    def uses_interrupt(self) -> bool:
        return self._int_device is not None

    # -- waiting --------------------------------------------------------------------------------
    def poll_delay(self) -> float:
        """Seconds until the FIFO holds the almost-full mark again (0 when it already should)."""
        due = self._last_read + self.settings.almost_full * self._period
        return max(0.0, due - self.clock())

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for data: on the INT line when wired, else until the poll
        deadline. True when samples should be waiting."""
        if self._int_device is not None:
            self._int_woken = bool(self._int_device.wait_for_active(timeout=timeout))
            if self._int_woken:
                return True
            # INT missed (e.g. the chip was reset behind our back): read once long overdue
            return self.clock() - self._last_read > 2 * self.settings.almost_full * self._period
        delay = self.poll_delay()
        self.sleep(min(delay, timeout))
        return delay <= timeout

    # -- reading --------------------------------------------------------------------------------
    def read(self) -> SampleBlock:
        """The samples that arrived since the last call, with per-sample timestamps (s).

        Raises :class:`SensorError` only when the chip cannot be reached even after retries
        and a re-initialisation; the caller decides how long to wait before trying again.
        """
        if not self._started or self._failures >= self.reinit_after:
            self._reinit()
        last: SensorError | None = None
        corrupt = False  # a round met corrupt data
        for attempt in range(1 + self.retries):
            try:
                block = self._read_fifo()
            except _Persistent:
                # re-initialised already, to no avail: the caller backs off before the next try
                self._failures = 0
                raise
            except SensorError as exc:
                # Each round starts again from the pointers, so samples a failed transfer may
                # have popped show up as a gap in time and are counted as lost.
                last = exc
                self._loss_possible = True
                corrupt |= isinstance(exc, SensorCorrupt)
                if attempt < self.retries:
                    self.sleep(self.backoff_s * 2**attempt)
                continue
            if len(block):
                self._corrupt_reads = 0
            elif corrupt:
                # the retry found the FIFO emptied by the corrupt read: nothing came through
                self._corrupt_reads += 1
                if self._corrupt_reads >= self.give_up_after:
                    last = SensorCorrupt(
                        f"MAX30102 at 0x{self.address:02x}: every read brings corrupt data "
                        f"(bus noise or a failing sensor; the samples are dropped); "
                        f"{WIRING_HINT}")
                    break
            self._failures = 0
            return block
        assert last is not None
        self._failures += 1
        log.debug("MAX30102: %s (failure %d in a row)", last, self._failures)
        raise last

    def _reinit(self, why: str = "") -> None:
        if self._started and not why:
            self.stats.reinits += 1
            # said once while re-initialising brings no sample (a fault it does not cure)
            (log.debug if self._fruitless else log.warning)(
                "MAX30102: re-initialising after %d failed reads", self._failures)
            self._fruitless += 1
        elif why:
            self.stats.resets_seen += 1
            # once given up on (see read), the caller says it, once: not at every retry
            (log.debug if self._fruitless > self.give_up_after else log.warning)(
                "MAX30102: %s; configuring it again", why)
        if self._t_last is not None:
            self._resume_after = self._t_last
        self._started = False
        self.start()

    def _read_fifo(self) -> SampleBlock:
        t_read = self.clock()
        head = self._read_block(R.INT_STATUS_1, 7, "read status and FIFO pointers", retry=False)
        status1, status2, _, _, wr, ovf, rd = head
        if (wr | ovf | rd) & 0xE0:
            # bits 7:5 of the three pointer registers always read 0
            self.stats.corrupt += 1
            raise SensorCorrupt(f"impossible FIFO pointers WR={wr:#04x} OVF={ovf:#04x} "
                                f"RD={rd:#04x}; bus noise or a failing sensor")
        self.ambient_overflow = bool(status1 & R.ALC_OVF)
        if status2 & R.DIE_TEMP_RDY:
            self._temp_pending = True
        n = (wr - rd) % R.FIFO_DEPTH
        if n == 0 and ovf:
            n = R.FIFO_DEPTH  # equal pointers with an overflow: full, not empty
        self.stats.reads += 1
        self._last_read = t_read
        self._judge_int(n, ovf)
        stalled = t_read - self._last_sample_at > max(self.stall_s, 10.0 / self.settings.fs)
        if status1 & R.PWR_RDY or (n == 0 and stalled):
            # Reset behind our back (PWR_RDY: the supply dipped below its lockout and came
            # back, a loose wire or a brown-out), or sampling stopped: the registers are at
            # their power-on values, in which the chip samples nothing, and the bus never
            # fails to say so. What it did not sample meanwhile counts as lost.
            reset = bool(status1 & R.PWR_RDY)
            self._fruitless += 1
            self._reinit("the sensor was reset (a loose wire or a dip in its supply?)" if reset
                         else f"no sample for {t_read - self._last_sample_at:.1f} s")
            if self._fruitless >= self.give_up_after:
                raise _Persistent(
                    f"MAX30102 at 0x{self.address:02x}: "
                    + ("reports a reset at every read (its supply keeps dipping, or a data "
                       "line is stuck): check VIN and GND, and SDA" if reset else
                       "takes no samples, even configured again: power-cycle the sensor")
                    + f"; {WIRING_HINT}")
            return self._block(t_read, np.empty((0, 2)), 0)
        if n == 0:
            return self._block(t_read, np.empty((0, 2)), ovf)
        self._last_sample_at = t_read
        raw = np.frombuffer(self._read_samples(n), dtype=np.uint8)
        data = raw.reshape(n, 2, 3).astype(np.int64)
        if np.any(data[:, :, 0] & 0xFC):
            # bits 23:18 of every channel are unused and read 0
            # the samples are gone: the next block's timestamps leave their gap, counted lost
            self.stats.corrupt += 1
            raise SensorCorrupt(f"FIFO data with unused bits set in {n} samples; dropped them")
        self._fruitless = 0  # samples again: a fault that comes back is news
        values = ((data[:, :, 0] << 16) | (data[:, :, 1] << 8) | data[:, :, 2]).astype(np.float64)
        self._judge_levels(values[:, 0], values[:, 1])  # finger and LED levels first: the
        return self._block(t_read, values, ovf)  # block carries the finger mark

    def _judge_int(self, n: int, ovf: int) -> None:
        """Let go of an INT line the FIFO contradicts :attr:`give_up_after` wakes in a row:
        asserted with less than the almost-full mark waiting (A_FULL is the only source
        enabled, and reading the status releases it), or silent while the mark was reached."""
        if self._int_device is None:
            return
        woken, self._int_woken = self._int_woken, False
        full = n >= self.settings.almost_full or ovf > 0
        self._int_odd = self._int_odd + 1 if woken != full else 0
        if self._int_odd < self.give_up_after:
            return
        self.int_fault = (
            f"INT on GPIO{self.int_pin} stays asserted with no samples waiting (a shorted or "
            "stuck INT wire?)" if woken else
            f"INT on GPIO{self.int_pin} never asserts while the FIFO fills (INT not wired to "
            "that pin, or a broken wire?)")
        log.warning("MAX30102: %s; polling the FIFO instead. Check the INT wire, or set "
                    "pulse.int_pin: -1 where it is not wired", self.int_fault)
        self._int_device.close()
        self._int_device = None
        self._int_odd = 0

    def _read_samples(self, n: int) -> bytes:
        nbytes = n * 2 * R.BYTES_PER_CHANNEL  # SpO2 mode: red then IR, 3 bytes each
        if self._transfer in ("auto", "rdwr") and hasattr(self.bus, "i2c_rdwr"):
            try:
                return self._rdwr_fifo(nbytes)
            except SensorError as exc:
                cause = exc.__cause__
                if self._transfer == "rdwr" or not (
                    isinstance(cause, OSError) and cause.errno in (errno.EOPNOTSUPP, errno.ENOSYS)
                ):
                    raise
                log.info("MAX30102: adapter lacks combined transfers; using SMBus block reads")
                self._transfer = "smbus"
        out = bytearray()
        chunk = 5 * 2 * R.BYTES_PER_CHANNEL  # 30 bytes: whole samples under the 32-byte limit
        while len(out) < nbytes:
            size = min(chunk, nbytes - len(out))
            out += bytes(self._read_block(R.FIFO_DATA, size, "read FIFO", retry=False))
        return bytes(out)

    def _rdwr_fifo(self, nbytes: int) -> bytes:
        """FIFO_DATA in one combined transfer: write the address, repeated start, read."""
        from smbus2 import i2c_msg  # pure Python; only needed for combined transfers

        def transfer() -> bytes:
            write = i2c_msg.write(self.address, [R.FIFO_DATA])
            read = i2c_msg.read(self.address, nbytes)
            self.bus.i2c_rdwr(write, read)
            return bytes(read)  # the message's buffer in one copy, not byte by byte

        # not retried alone: a failed FIFO read may already have popped samples from the chip,
        # so :meth:`read` starts again from the pointers
        return self._io("read FIFO", transfer, nbytes, retry=False)

    def _block(self, t_read: float, values: np.ndarray, ovf: int) -> SampleBlock:
        """Timestamp ``values`` (n × [red, IR]) read at ``t_read``; marked with the finger
        judgement of the latest read.

        The newest sample was converted within one period before the read; the older ones
        follow at the sample period, measured against the host clock (:meth:`_measure`: the
        chip's oscillator and the host's clock differ by a few %), and a slow phase loop keeps
        the timestamps on the clock.

        Samples are counted lost only where they can have been lost: the FIFO's OVF_COUNTER
        (the datasheet's count of samples it could not keep), a failed or corrupt read since
        the last block (it may have popped samples), an overflow with rollover off (the newer
        samples were dropped) or a re-initialisation. Otherwise every sample the chip made is
        still in the FIFO, and a gap between the timestamps and the clock is an error of the
        timestamps (a period not yet measured), corrected, never a loss.
        """
        n = len(values)
        p = self._period
        lost = int(ovf)
        loss_possible = self._loss_possible or ovf > 0
        expected_newest = t_read - 0.5 * p
        if ovf and not self.settings.rollover and self._t_last is not None:
            # Rollover off: the FIFO kept its oldest samples and dropped the newer ones, so
            # this block follows on from the last; the drop shows as a gap before the next.
            t = self._t_last + (1 + np.arange(n)) * p
            self._t_last = float(t[-1]) if n else self._t_last
            self.stats.samples += n
            self._loss_possible = True
            self._anchor = None  # the count of samples since the anchor is broken
            return SampleBlock(t=t, red=values[:, 0].copy(), ir=values[:, 1].copy(), lost=0,
                               finger=self.finger)
        if n == 0:
            return SampleBlock(t=np.empty(0), red=np.empty(0), ir=np.empty(0), lost=0,
                               finger=self.finger)
        self._loss_possible = False
        if self._t_last is None:
            t = expected_newest - (n - 1 - np.arange(n)) * p
            if self._resume_after is not None:
                # the chip was re-initialised: what it would have sampled meanwhile is lost
                lost += max(0, round((t[0] - self._resume_after) / p) - 1)
                self._resume_after = None
        else:
            gap = expected_newest - (self._t_last + n * p)
            # a gap of more than half a period beyond the phase's own spread (±½ period)
            missing = round(gap / p) if loss_possible and gap > 1.5 * p else 0
            if gap < -3.0 * p:  # more samples than time allows: re-anchor
                t = expected_newest - (n - 1 - np.arange(n)) * p
                t = np.maximum(t, self._t_last + 1e-6 * (1 + np.arange(n)))
            else:
                lost = max(lost, missing)
                t = self._t_last + (missing + 1 + np.arange(n)) * p
                if not missing:
                    # phase tracking: a few % of the error per read within the phase's own
                    # spread of ±½ period; more where the timestamps have drifted beyond it
                    gain = 0.05 if abs(gap) <= p else 0.25
                    t = t + gain * gap * (np.arange(1, n + 1) / n)
        if lost or loss_possible:
            self._anchor = None  # samples went uncounted: measure afresh from here
        self._measure(t_read, n)
        self._t_last = float(t[-1])
        self.stats.samples += n
        self.stats.lost += lost
        return SampleBlock(t=np.asarray(t, dtype=np.float64), red=values[:, 0].copy(),
                           ir=values[:, 1].copy(), lost=lost, finger=self.finger)

    def _measure(self, t_read: float, n: int) -> None:
        """Measure the sample period: host time since an anchor read over the samples that
        arrived after it (each end known to one period, so the error falls as 1/span)."""
        if self._anchor is None:
            self._anchor = (t_read, 0)  # this block's samples were made before the anchor
            return
        t0, count = self._anchor[0], self._anchor[1] + n
        self._anchor = (t0, count)
        span = t_read - t0
        need = self.period_remeasure_s if self._period_measured else self.period_measure_min_s
        if span >= need and count > 0:
            nominal = 1.0 / self.settings.fs
            tol = self.period_tolerance
            self._period = min(max(span / count, (1 - tol) * nominal), (1 + tol) * nominal)
            self._period_measured = True
        if span >= self.period_window_s:
            self._anchor = (t_read, 0)

    # -- finger and LED current ---------------------------------------------------------------
    def _judge_levels(self, red: np.ndarray, ir: np.ndarray) -> None:
        """Finger presence and the automatic LED currents, from one read's samples (counts)."""
        s = self.settings
        was = self.finger
        ir_level = median(ir)
        self.finger = self._finger.update(ir_level, s.adc_range_na, s.ir_ma,
                                          self.ambient_overflow)
        if self.finger and not was:
            self._led_changed_at = self.clock()  # let a finger settle before judging levels
        if not s.auto_led:
            return
        now = self.clock()
        settled = now - self._led_changed_at >= LED_SETTLE_S
        new = {}
        for name, channel, ma, level in (("red_ma", red, s.red_ma, None),
                                         ("ir_ma", ir, s.ir_ma, ir_level)):
            if float(channel.max()) >= SATURATED:
                new[name] = max(LED_MIN_MA, ma * 0.5)  # clipped: back off at once
            elif self.finger and settled:
                frac = (median(channel) if level is None else level) / R.FULL_SCALE
                if frac < LED_LOW or frac > LED_HIGH:
                    # the photocurrent is proportional to the LED current (datasheet Fig. 4)
                    factor = min(max(LED_TARGET / max(frac, 1e-3), 0.5), 2.0)
                    new[name] = min(max(ma * factor, LED_MIN_MA), LED_MAX_MA)
        new = {k: v for k, v in new.items() if abs(v - getattr(s, k)) >= 0.2}
        if new:
            self.set_led_current(new.get("red_ma"), new.get("ir_ma"))
            self._led_changed_at = now
            self.stats.led_changes += 1
            log.debug("MAX30102: LED currents now red %.1f mA, IR %.1f mA",
                      self.settings.red_ma, self.settings.ir_ma)

    # -- die temperature ------------------------------------------------------------------------
    def start_temperature(self) -> None:
        """Start a die-temperature conversion (29 ms); :meth:`read_temperature` collects it."""
        self._write_byte(R.DIE_TEMP_CONFIG, R.TEMP_EN, "start temperature conversion")

    def read_temperature(self) -> float | None:
        """The die temperature in °C once the conversion is done (TEMP_EN has cleared), else
        None. One 3-byte read of TINT, TFRAC and DIE_TEMP_CONFIG."""
        tint, tfrac, config = self._read_block(R.DIE_TINT, 3, "read temperature")
        if config & R.TEMP_EN:
            return None
        self._temp_pending = False
        self.temperature_c = R.decode_temperature(tint, tfrac)
        return self.temperature_c

    def temperature(self, timeout: float = 0.1) -> float:
        """Measure the die temperature in °C, waiting up to ``timeout`` s."""
        self.start_temperature()
        deadline = self.clock() + timeout
        while True:
            self.sleep(0.03)  # datasheet: conversion time 29 ms
            value = self.read_temperature()
            if value is not None:
                return value
            if self.clock() >= deadline:
                raise SensorError(f"MAX30102 temperature conversion took over {timeout} s")

    # -- transfers ----------------------------------------------------------------------------
    def _io(self, what: str, fn: Callable[[], list[int] | bytes | None], expect: int | None,
            retry: bool = True) -> Any:
        attempts = 1 + (self.retries if retry else 0)
        last: Exception | None = None
        for attempt in range(attempts):
            self.stats.transfers[what] = self.stats.transfers.get(what, 0) + 1
            try:
                result = fn()
                if expect is not None and (result is None or len(result) != expect):
                    got = 0 if result is None else len(result)
                    raise OSError(errno.EIO, f"short read: {got} of {expect} bytes")
                return result
            except OSError as exc:
                self.stats.bus_errors += 1
                last = exc
                if attempt + 1 < attempts:
                    self.sleep(self.backoff_s * 2**attempt)
        code = getattr(last, "errno", None)
        hint = {errno.EREMOTEIO: "the chip did not answer (NACK)",
                errno.ETIMEDOUT: "the bus is stuck (SDA held low?)",
                errno.EIO: "the transfer failed"}.get(code, "I/O error")
        raise SensorError(
            f"MAX30102 at 0x{self.address:02x}: {what} failed after {attempts} "
            f"attempt{'s' if attempts > 1 else ''}: {hint} ({last}); {WIRING_HINT}"
        ) from last

    def _read_byte(self, reg: int, what: str) -> int:
        value = self._io(what, lambda: [self.bus.read_byte_data(self.address, reg)], 1)[0]
        if not 0 <= value <= 0xFF:
            raise SensorCorrupt(f"{what}: {value!r} is not a byte")
        return int(value)

    def _read_block(self, reg: int, n: int, what: str, retry: bool = True) -> list[int]:
        data = self._io(what, lambda: _as_list(self.bus.read_i2c_block_data(self.address, reg, n)),
                        n, retry)
        if any(not 0 <= b <= 0xFF for b in data):
            raise SensorCorrupt(f"{what}: values that are not bytes: {data!r}")
        return [int(b) for b in data]

    def _write_byte(self, reg: int, value: int, what: str) -> None:
        self._io(what, lambda: self.bus.write_byte_data(self.address, reg, value), None)

    def _write_block(self, reg: int, values: list[int], what: str) -> None:
        self._io(what, lambda: self.bus.write_i2c_block_data(self.address, reg, values), None)


def _as_list(data: Any) -> list[int] | None:
    """A block read's bytes as a list; None (nothing came back) stays None: a short read."""
    return None if data is None else list(data)
