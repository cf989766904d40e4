"""The audio component keeps the music going when the output misbehaves."""

from __future__ import annotations

import time

from calmtunes.audio.component import AudioComponent
from calmtunes.audio.sinks import NullSink, SoundDeviceSink
from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.music.engine import ComposerComponent


class DyingSink(NullSink):
    """A real null sink whose draining thread dies after ``life`` s, as a card unplugged."""

    def __init__(self, ring, sample_rate, life: float):
        super().__init__(ring, sample_rate, realtime=True)
        self.life = life
        self.opens = 0

    def open(self):
        self.opens += 1
        self._opened = time.monotonic()
        super().open()

    def _consume(self, block, real):
        if self.opens == 1 and time.monotonic() - self._opened > self.life:
            raise OSError("device unplugged")


def build(config, sink_factory):
    hub = Hub()
    composer = ComposerComponent(config, hub, lambda: Controls())
    audio = AudioComponent(config, hub, composer)
    audio.sink = sink_factory(audio.ring, audio.sample_rate)
    return composer, audio


def test_vanished_output_is_reopened_and_composer_keeps_going(tmp_config, caplog):
    composer, audio = build(tmp_config, lambda r, sr: DyingSink(r, sr, life=0.3))
    composer.start()
    audio.start()
    try:
        time.sleep(2.0)
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


def test_missing_sound_card_degrades_with_a_clear_reason(tmp_config):
    cfg = tmp_config.replace(audio={"backend": "sounddevice", "device": "no-such-card-xyz"})
    composer, audio = build(cfg, lambda r, sr: SoundDeviceSink(r, sr, "no-such-card-xyz"))
    composer.start()
    audio.start()
    try:
        time.sleep(0.8)
        health = audio.health()
        position = audio.mixer.position
    finally:
        audio.stop()
        composer.stop()
    assert health.state == "degraded"
    assert "no-such-card-xyz" in health.detail
    assert "aplay -l" in health.detail or "PortAudio" in health.detail
    # Music time went on without a card, so it resumes where it would have been.
    assert position > 0.3 * cfg.audio.sample_rate
