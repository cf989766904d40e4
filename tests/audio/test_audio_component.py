"""The audio component keeps the music going when the output misbehaves."""

from __future__ import annotations

import time

import pytest

from calmtunes.audio.component import AudioComponent
from calmtunes.audio.sinks import NullSink, SoundDeviceSink
from calmtunes.clock import VirtualClock
from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.music.engine import ComposerComponent
from calmtunes.scheduler import Scheduler
from clocked import wait_until


class DyingSink(NullSink):
    """A real null sink whose draining dies after ``life`` s of its clock, as a card unplugged."""

    def __init__(self, ring, sample_rate, life: float, clock=time.monotonic):
        super().__init__(ring, sample_rate, realtime=True, clock=clock)
        self.life = life
        self.opens = 0

    def open(self):
        self.opens += 1
        self._opened = self.clock()
        super().open()

    def _consume(self, block, real):
        if self.opens == 1 and self.clock() - self._opened > self.life:
            raise OSError("device unplugged")


def build(config, sink_factory, clock=None):
    hub = Hub()
    kw = {} if clock is None else {"clock": clock}
    composer = ComposerComponent(config, hub, lambda: Controls(), **kw)
    audio = AudioComponent(config, hub, composer, **kw)
    audio.sink = sink_factory(audio.ring, audio.sample_rate)
    return composer, audio


def test_vanished_output_is_reopened_and_composer_keeps_going(tmp_config, caplog):
    # The device's path: the sink drains from its own thread on the system clock, and its
    # death is seen by the audio component's thread, so this one waits in real time.
    composer, audio = build(tmp_config, lambda r, sr: DyingSink(r, sr, life=0.3))
    composer.start()
    audio.start()
    try:
        wait_until(lambda: audio.sink.opens >= 2 and audio.health().state == "ok",
                   timeout=10.0, what="the output reopened")
        status = audio.status()
        health = audio.health()
    finally:
        audio.stop()
        composer.stop()
    assert audio.sink.opens >= 2
    assert status["sink_failures"] == 1
    assert "audio output stopped" in caplog.text
    assert health.state == "ok"
    assert composer.phrases_composed >= 1


def test_vanished_output_is_reopened_the_same_way_on_a_virtual_clock(tmp_config, caplog):
    clock = VirtualClock()
    scheduler = Scheduler(clock)
    composer, audio = build(tmp_config, lambda r, sr: DyingSink(r, sr, 0.3, clock), clock)
    composer.start(scheduler)
    audio.start(scheduler)
    try:
        scheduler.run_until(2.0)
        status, health = audio.status(), audio.health()
    finally:
        audio.stop()
        composer.stop()
    assert audio.sink.opens >= 2 and health.state == "ok"
    assert status["sink_failures"] == 1
    assert "audio output stopped" in caplog.text


def test_missing_sound_card_degrades_with_a_clear_reason(tmp_config):
    # The card's absence is found when the sink opens, before any PortAudio stream runs: the
    # components run as tasks on a virtual clock, so 0.8 s of music time take no wall time.
    cfg = tmp_config  # null output in the config (allowed on a virtual clock); the card below
    clock = VirtualClock()
    scheduler = Scheduler(clock)
    composer, audio = build(cfg, lambda r, sr: SoundDeviceSink(r, sr, "no-such-card-xyz"), clock)
    composer.start(scheduler)
    audio.start(scheduler)
    try:
        scheduler.run_until(0.8)
        health = audio.health()
        position = audio.mixer.position
    finally:
        audio.stop()
        composer.stop()
    assert health.state == "degraded"
    assert "no-such-card-xyz" in health.detail
    assert "aplay -l" in health.detail or "PortAudio" in health.detail
    # Music time went on without a card, so it resumes where it would have been.
    assert position == pytest.approx(0.8 * cfg.audio.sample_rate, abs=audio.block)
