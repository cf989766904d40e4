"""The pulse component: reads the sensor, feeds an analyser, publishes once a second, survives
bus faults. The analyser here is a recording test double passed in by constructor injection."""

from __future__ import annotations

import numpy as np

from calmtunes.component import DEGRADED, DISABLED, OK
from calmtunes.config import Config
from calmtunes.hub import Hub
from calmtunes.pulse.component import PulseComponent, make_component
from calmtunes.pulse.reading import PulseReading
from calmtunes.sim.clock import ManualClock
from calmtunes.sim.max30102 import Faults, emulated_bus
from clocked import wait_until


class RecordingAnalyser:
    """Keeps every block it is fed; its reading reports how many samples it has seen."""

    def __init__(self, fs: float) -> None:
        self.fs = fs
        self.blocks = []

    def feed(self, block) -> None:
        self.blocks.append(block)

    def reading(self, now: float) -> PulseReading:
        n = sum(len(b) for b in self.blocks)
        return PulseReading(t=now, finger=n > 0, quality=0.0, reason=f"{n} samples seen")


def sim_config(**pulse):
    return Config().replace(pulse={"backend": "sim", **pulse})


def make(clock, bus=None, **pulse):
    bus = bus or emulated_bus("rest", seed=2, clock=clock)
    hub = Hub()
    comp = PulseComponent(sim_config(**pulse), hub, analyser_factory=RecordingAnalyser,
                          bus_factory=lambda cfg: bus, clock=clock, sleep=clock.sleep)
    return comp, hub, bus


def drive(comp, clock, seconds):
    """Run steps on the simulated clock as the component's thread would."""
    end = clock() + seconds
    while clock() < end:
        clock.advance(comp.step(clock()))


def test_reads_feeds_and_publishes_once_a_second():
    clock = ManualClock(5.0)
    comp, hub, _ = make(clock)
    readings = []
    hub.subscribe("pulse", readings.append)
    comp.open()
    drive(comp, clock, 10.0)
    assert comp.analyser.fs == 100.0
    t = np.concatenate([b.t for b in comp.analyser.blocks])
    assert abs(len(t) - 1000) <= 20 and np.all(np.diff(t) > 0)
    assert 9 <= len(readings) <= 10
    gaps = np.diff([r.t for r in readings])
    assert np.all((gaps > 0.8) & (gaps < 1.2)) and abs(gaps.mean() - 1.0) < 0.03
    status = comp.status()
    assert status["mode"] == "polling" and status["lost"] == 0
    assert 95 <= status["samples_per_s"] <= 105
    assert status["die_temp_c"] is not None
    spent = status["emulator_cpu_s"]
    assert spent > 0  # the emulated chip counts its own CPU …
    comp.close()
    # … and the count outlives the bus, so a finished render can still tell it from the device's
    assert comp.status()["emulator_cpu_s"] >= spent


def test_led_current_off_the_chip_grid_is_snapped_not_refused():
    clock = ManualClock()
    comp, _, _ = make(clock, led_current_ma=7.3)
    comp.open()
    assert comp.status()["led_red_ma"] in (7.2, 7.4)


def test_bus_errors_degrade_then_recover():
    clock = ManualClock()
    comp, _hub, bus = make(clock)
    comp.open()
    comp.mark_ok()
    drive(comp, clock, 2.0)
    bus.faults = Faults(vanished=True)
    drive(comp, clock, 3.0)
    assert comp.health().state == DEGRADED and "did not answer" in comp.health().detail
    bus.faults = Faults()
    before = comp.driver.stats.samples
    drive(comp, clock, 3.0)
    assert comp.health().state == OK
    assert comp.driver.stats.samples - before > 200
    assert comp.status()["bus_errors"] > 0


def test_none_backend_disables_itself():
    comp = PulseComponent(Config().replace(pulse={"backend": "none"}), Hub(),
                          analyser_factory=RecordingAnalyser)
    comp.open()
    assert comp.health().state == DISABLED
    assert comp.step(0.0) == 60.0


def test_unknown_scenario_is_reported_not_crashed():
    cfg = Config().replace(pulse={"backend": "sim"}, sim={"scenario": "jogging"})
    comp = PulseComponent(cfg, Hub(), analyser_factory=RecordingAnalyser)
    comp.open()
    assert comp.health().state == DISABLED and "choose one of" in comp.health().detail


def test_runs_in_its_own_thread_on_the_real_clock():
    hub = Hub()
    cfg = sim_config()
    comp = PulseComponent(cfg, hub, analyser_factory=RecordingAnalyser)
    readings = []
    hub.subscribe("pulse", readings.append)
    comp.start()
    try:  # the device's path: its own thread, on the system clock
        wait_until(lambda: readings, timeout=5.0, what="a reading from the pulse thread")
    finally:
        comp.stop()
    assert readings and "samples seen" in readings[0].reason
    assert comp.health().state != DEGRADED


def test_make_component_builds_the_pulse_component():
    comp = make_component(Config(), Hub())
    assert isinstance(comp, PulseComponent) and comp.name == "pulse"
