"""The pulse component: reads the MAX30102 (real or emulated), feeds the analyser, publishes.

Backends (``pulse.backend``, given by the hardware profile, :mod:`calmtunes.hardware`):
``max30102`` opens ``/dev/i2c-N`` through smbus2; ``sim`` uses the emulated chip watching the
simulated listener of ``sim.scenario`` (the rest of the path is the real one); ``none`` disables
the component. Each step waits for data (on the INT line when
``pulse.int_pin`` is wired, else until the computed poll deadline), reads the new samples, feeds
them to :class:`calmtunes.pulse.analyser.PulseAnalyser` and publishes a
:class:`~calmtunes.pulse.reading.PulseReading` on the hub's ``"pulse"`` topic once a second.

A bus error never ends the component: it is degraded with the reason (logged once for each new
reason), retried with back-off (the driver re-initialises the chip after repeated failures) and
marked ok when samples come again. A wired INT line the driver had to let go (stuck, or
silent) leaves it polling, degraded with that reason: the wire wants a look, the pulse goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from calmtunes.clock import SYSTEM
from calmtunes.component import DEGRADED, Component
from calmtunes.config import Config
from calmtunes.errors import HardwareError
from calmtunes.hardware import Hardware
from calmtunes.hub import Hub
from calmtunes.pulse.max30102 import MAX30102, Settings

log = logging.getLogger(__name__)

AnalyserFactory = Callable[[float], Any]  # fs in Hz -> object with feed(block), reading(now)


def default_analyser_factory() -> AnalyserFactory:
    from calmtunes.pulse.analyser import PulseAnalyser  # the analysis may land separately

    return PulseAnalyser


class PulseComponent(Component):
    name = "pulse"
    config_sections = ("pulse", "sim")
    publish_interval_s = 1.0  # one reading a second
    temperature_interval_s = 60.0  # die temperature, for status only
    max_wait_s = 0.5  # longest block on the INT line, so stop requests are seen
    #: shortest time between steps, s: a stuck INT line cannot make the thread spin before the
    #: driver lets it go (a FIFO round is 170 ms at 100 sps)
    min_step_s = 0.002

    def __init__(
        self,
        config: Config,
        hub: Hub,
        analyser_factory: AnalyserFactory | None = None,
        bus_factory: Callable[[Config], Any] | None = None,
        pin_factory: Any = None,
        clock: Callable[[], float] = SYSTEM,
        sleep: Callable[[float], None] | None = None,
        hardware: Hardware | None = None,
    ) -> None:
        super().__init__(config, hub, clock)
        self.hardware = hardware or Hardware(clock, hub)
        self._analyser_factory = analyser_factory
        self._bus_factory = bus_factory or self.hardware.pulse_bus
        self._pin_factory = pin_factory
        self._clock = clock
        self._sensor_sleep = sleep or getattr(clock, "sleep", None) or SYSTEM.sleep
        self.driver: MAX30102 | None = None
        self.analyser: Any = None
        self._bus: Any = None
        self._emulator_cpu_s = 0.0  # simulation: CPU s of the emulated buses closed so far
        self._bus_failures = 0
        self._sensor_error = ""  # the last sensor fault logged (each new one is logged once)
        self._next_publish = 0.0
        self._next_temperature = 0.0
        self._temperature_started = False
        self._rate_mark: tuple[float, int] | None = None
        self._samples_per_s = 0.0
        self.published = 0

    # -- life cycle -----------------------------------------------------------------------------
    def open(self) -> None:
        p = self.config.pulse
        if p.backend == "none":
            self.disable("no pulse sensor configured (pulse.backend: none)")
            return
        factory = self._analyser_factory
        if factory is None:
            try:
                factory = default_analyser_factory()
            except ImportError as exc:
                self.disable(f"pulse analysis is not available in this build ({exc})")
                return
        try:
            bus = self._bus_factory(self.config)
        except ValueError as exc:  # e.g. an unknown sim.scenario: a config problem
            self.disable(str(exc))
            return
        int_pin = p.int_pin if p.int_pin >= 0 and p.backend != "sim" else None
        settings = Settings(
            sample_rate=p.sample_rate,
            pulse_width_us=p.pulse_width_us,
            adc_range_na=p.adc_range_na,
            red_ma=p.led_current_ma,  # the driver snaps it to the chip's 0.2 mA steps
            ir_ma=p.led_current_ma,
            almost_full=p.almost_full,
            auto_led=p.auto_led,
        )
        driver = MAX30102(bus, p.address, int_pin=int_pin, pin_factory=self._pin_factory,
                          clock=self._clock, sleep=self._sensor_sleep, settings=settings)
        try:
            driver.start()
        except Exception:
            _close_quietly(bus)
            raise
        self._bus, self.driver = bus, driver
        self.analyser = factory(driver.fs)
        now = self._clock()
        self._next_publish = now + self.publish_interval_s
        self._next_temperature = now
        self._rate_mark = (now, driver.stats.samples)

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.close()
            finally:
                self.driver = None
        if self._bus is not None:
            self._emulator_cpu_s += getattr(self._bus, "cpu_s", 0.0)
            _close_quietly(self._bus)
            self._bus = None

    # -- work -------------------------------------------------------------------------------------
    def step(self, now: float) -> float:
        driver = self.driver
        if driver is None:
            return 60.0  # disabled
        if driver.uses_interrupt:
            driver.wait(self.max_wait_s)
        try:
            block = driver.read()
        except HardwareError as exc:
            self._bus_failures += 1
            # a fault that lasts (three reads in a row, each already retried) is said once; a
            # glitch the next read gets past stays in the degraded detail and the debug log
            if self._bus_failures >= 3 and str(exc) != self._sensor_error:
                self._sensor_error = str(exc)
                log.warning("pulse: %s (retrying; the music goes on)", exc)
            self.degrade(f"sensor: {exc}")
            return min(self.max_backoff_s, 0.05 * 2 ** min(self._bus_failures, 10))
        if self._bus_failures and len(block):  # back only once samples come again
            # said where the fault was (a glitch never reported is not news either way)
            (log.info if self._sensor_error else log.debug)(
                "pulse: sensor reads again after %d failure(s)", self._bus_failures)
            self._bus_failures = 0
            self._sensor_error = ""
            self.mark_ok()
        if driver.int_fault and self._state != DEGRADED:
            self.degrade(f"polling: {driver.int_fault}")
        if len(block) or block.lost:
            self.analyser.feed(block)
        now = self._clock()
        if now >= self._next_publish:
            self._publish(now)
        self._service_temperature(now)
        if driver.uses_interrupt:
            return self.min_step_s  # the next step waits on the INT line
        return max(driver.poll_delay(), self.min_step_s)

    def _publish(self, now: float) -> None:
        reading = self.analyser.reading(now)
        self.hub.publish("pulse", reading)
        self.published += 1
        # on a fixed 1 s grid (each reading at most one FIFO round late); skip missed slots
        self._next_publish += self.publish_interval_s
        if self._next_publish <= now:
            self._next_publish = now + self.publish_interval_s
        if self._rate_mark is not None and self.driver is not None:
            t0, n0 = self._rate_mark
            if now > t0:
                self._samples_per_s = (self.driver.stats.samples - n0) / (now - t0)
            self._rate_mark = (now, self.driver.stats.samples)

    def _service_temperature(self, now: float) -> None:
        """Once a minute: start a conversion, collect it on a later step (29 ms later)."""
        driver = self.driver
        if driver is None:
            return
        try:
            if self._temperature_started and driver.read_temperature() is not None:
                self._temperature_started = False
            if now >= self._next_temperature:
                driver.start_temperature()
                self._temperature_started = True
                self._next_temperature = now + self.temperature_interval_s
        except HardwareError as exc:
            log.debug("pulse: temperature read failed: %s", exc)

    def status(self) -> dict:
        d = self.driver
        emulator = ({"emulator_cpu_s": round(self._emulator_cpu_s
                                              + getattr(self._bus, "cpu_s", 0.0), 3)}
                    if self._emulator_cpu_s or hasattr(self._bus, "cpu_s") else {})
        if d is None:
            return {"backend": self.config.pulse.backend, "running": False, **emulator}
        s = d.stats
        return {
            "backend": self.config.pulse.backend,
            "mode": "interrupt" if d.uses_interrupt else "polling",
            **({"int_fault": d.int_fault} if d.int_fault else {}),
            "samples_per_s": round(self._samples_per_s, 1),
            "lost": s.lost,
            "led_red_ma": d.settings.red_ma,
            "led_ir_ma": d.settings.ir_ma,
            "bus_errors": s.bus_errors,
            "corrupt": s.corrupt,
            "reinits": s.reinits,
            "resets_seen": s.resets_seen,
            "finger": d.finger,
            "die_temp_c": d.temperature_c,
            # simulation: the CPU time the emulated chip and listener took (not the device's)
            **emulator,
        }


def _close_quietly(bus: Any) -> None:
    try:
        bus.close()
    except Exception:
        log.debug("pulse: closing the bus failed", exc_info=True)


def make_component(config: Config, hub: Hub, hardware: Hardware | None = None) -> Component:
    hardware = hardware or Hardware(SYSTEM, hub)
    pins = hardware.pin_factory(config) if config.pulse.int_pin >= 0 else None
    return PulseComponent(config, hub, clock=hardware.clock, hardware=hardware, pin_factory=pins)
