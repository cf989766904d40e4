"""The audio component keeps the music going when the output misbehaves."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from calmtunes.audio.component import (
    NO_CARD_CATCH_UP_S,
    NO_CARD_STEP_S,
    NODE_SETTLE_S,
    AudioComponent,
)
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
    assert status["sink_failures"] == 1 and status["heard"] is True
    assert audio.hub.latest("output")["heard"] is True
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
        health, status = audio.health(), audio.status()
        position = audio.mixer.position
    finally:
        audio.stop()
        composer.stop()
    assert health.state == "degraded"
    assert "no-such-card-xyz" in health.detail
    assert "aplay -l" in health.detail or "PortAudio" in health.detail
    assert status["heard"] is False  # `calmtunes status`: playing, not heard
    output = audio.hub.latest("output")  # the panel flashes the preset LED
    assert output["heard"] is False and "no-such-card-xyz" in output["detail"]
    # Music time went on without a card, so it resumes where it would have been (to within
    # one of the steps it keeps time in meanwhile).
    assert position == pytest.approx(0.8 * cfg.audio.sample_rate,
                                     abs=NO_CARD_STEP_S * cfg.audio.sample_rate)


def test_without_a_card_the_music_keeps_time_in_few_wakes_and_skips_a_stall(tmp_config):
    _, audio = build(tmp_config, lambda r, sr: SoundDeviceSink(r, sr, "no-such-card-xyz"))
    sr = audio.sample_rate
    now, wakes = 100.0, 0
    while now < 110.0:  # ten seconds without a card, the thread's own steps
        now += audio.step(now)
        wakes += 1
    assert audio.health().state == "degraded"
    assert wakes <= 10.0 / NO_CARD_STEP_S + 1  # not one wake per 20 ms block
    assert audio.mixer.position == pytest.approx(10.0 * sr, abs=NO_CARD_STEP_S * sr)
    # the thread stalled for a minute: the music goes on from where it was, not a minute on
    before = audio.mixer.position
    audio.step(now + 60.0)
    assert 0 < audio.mixer.position - before <= NO_CARD_CATCH_UP_S * sr


# -- a preset change while the composer is slow (a neural generator under load) --------------

class Counting:
    """Counts the phrases the audio component composes itself (``compose_now``)."""

    def __init__(self, engine):
        self.engine, self.calls = engine, 0
        self._compose_now = engine.compose_now
        engine.compose_now = self

    def __call__(self):
        self.calls += 1
        return self._compose_now()


def play(audio, frames: int) -> None:
    """The output takes ``frames`` from the ring in 1024-frame periods, the producer topping
    it up after each (the audio thread's work, here in the test's own thread)."""
    buf = np.zeros((1024, 2), dtype=np.float32)
    for _ in range(frames // 1024):
        audio.ring.read_into(buf)
        audio._fill()


def preset_change_setup(tmp_config):
    composer, audio = build(tmp_config, lambda r, sr: NullSink(r, sr, realtime=True))
    audio.played = []
    own = Counting(composer)
    play(audio, 48000)  # a second of music: the first phrases composed here, nothing queued
    own.calls = 0
    composer.flush()
    audio.change_preset()
    return composer, audio, own


def test_a_preset_change_plays_on_until_the_composer_thread_delivers(tmp_config):
    composer, audio, own = preset_change_setup(tmp_config)
    phrases = len(audio.played)
    play(audio, 24000)  # half a second: the composer's thread is still writing
    assert own.calls == 0 and len(audio.played) == phrases
    assert audio.ring.underruns == 0
    woken = []
    audio.wake = lambda: woken.append(True)  # (its thread would take the phrase now)
    composer.on_phrase = audio.wake
    composer.step(0.0)  # the new preset's first phrase, written in the composer's thread
    assert woken
    written = composer._queue[0][0]
    at = audio.mixer.position
    play(audio, 2048)
    assert own.calls == 0  # the audio thread never composed
    assert len(audio.played) == phrases + 1
    start, phrase, _ = audio.played[-1]
    assert phrase is written
    assert start == at  # the crossfade began as soon as the phrase came
    assert audio.ring.underruns == 0


def test_a_composer_that_never_delivers_is_waited_for_a_bounded_time(tmp_config):
    from calmtunes.audio.component import PRESET_WAIT_S

    _, audio, own = preset_change_setup(tmp_config)
    began = audio.mixer.position
    while own.calls == 0:
        play(audio, 1024)
        assert audio.mixer.position - began <= (PRESET_WAIT_S + 0.2) * audio.sample_rate
    assert audio.mixer.position - began >= PRESET_WAIT_S * audio.sample_rate
    assert audio._pending_crossfade is False  # the fallback's phrase crossfades in
    assert audio.ring.underruns == 0


def test_on_a_virtual_clock_the_phrase_is_written_at_once(tmp_config):
    clock = VirtualClock()
    composer, audio = build(tmp_config, lambda r, sr: NullSink(r, sr, True, clock), clock)
    own = Counting(composer)
    audio._fill()
    own.calls = 0
    composer.flush()
    audio.change_preset()
    play(audio, 1024)
    assert own.calls == 1  # replayable: nothing depends on when another thread delivers


def test_a_slow_generator_is_never_waited_on_by_the_audio_thread(tmp_config):
    # Real threads, real time: the composer takes 0.4 s a phrase; a preset change must not
    # make the audio thread write a phrase itself (it would stall the ring for 0.4 s).
    composer, audio = build(tmp_config, lambda r, sr: NullSink(r, sr, realtime=True))
    audio.played = []
    writers = []
    fallback = composer.fallback

    class Slow:
        name = "slow"

        def next_phrase(self, controls):
            writers.append(threading.current_thread().name)
            time.sleep(0.4)
            return fallback.next_phrase(controls)

    composer.start()
    wait_until(lambda: composer.queued_seconds > 0, timeout=10.0, what="a phrase queued")
    composer.composer = Slow()
    audio.start()
    try:
        wait_until(lambda: audio.sink.frames_played > 24000, timeout=10.0, what="music")
        writers.clear()
        phrases = len(audio.played)
        composer.flush()
        audio.change_preset()
        wait_until(lambda: len(audio.played) > phrases, timeout=10.0, what="the crossfade")
    finally:
        audio.stop()
        composer.stop()
    assert writers and all(name != audio.name for name in writers), writers


def test_between_presets_the_audio_thread_composes_only_when_the_music_runs_short(tmp_config):
    composer, audio = build(tmp_config, lambda r, sr: NullSink(r, sr, realtime=True))
    own = Counting(composer)
    play(audio, 4096)  # the start: nothing scheduled, so the first phrase is written here
    assert own.calls == 1
    sr = audio.sample_rate
    while own.calls == 1:  # the composer's thread is not running: nothing ever queued
        left = audio.mixer.scheduled_until - audio.mixer.position
        play(audio, 1024)
        assert audio.mixer.scheduled_until > audio.mixer.position  # never ran dry
    # it waited for the composer's thread until half a second (plus what one top-up renders)
    # was left, then wrote the phrase itself (before: with a second left)
    assert 0 < left <= sr // 2 + 3 * 1024
    assert audio.ring.underruns == 0


def test_a_wav_file_at_the_format_limit_is_kept_and_the_music_goes_on(tmp_path, caplog):
    from calmtunes.audio.ring import AudioRing
    from calmtunes.audio.sinks import WavSink

    most = (2**32 - 1 - 36) // 4  # 16-bit stereo frames: the RIFF header counts in 32 bits
    clock = VirtualClock()
    ring = AudioRing(48000)
    sink = WavSink(ring, 48000, tmp_path / "night.wav", realtime=True, clock=clock)
    sink.open()
    # Six hours and more already written, as far as the WAV header is concerned (writing
    # them for real would take 4 GiB): half a second of room left.
    wav = sink._wav
    wav._nframeswritten = most - 24000
    wav._datawritten = wav._nframeswritten * 4
    for _ in range(40):  # 4 s of output, written once a second
        ring.write(np.full((4800, 2), 0.1, dtype=np.float32))
        clock.advance(0.1)
        sink.catch_up(clock.monotonic())
    assert sink.is_alive()  # no failed write: the output is not reopened, the file not cut
    assert wav._nframeswritten == most
    sink.close()
    assert caplog.text.count("holds all a WAV file can") == 1


class LateCard(NullSink):
    """A sound card that is missing until ``present`` is set; then a sink whose ring the test
    reads itself (no thread drains it)."""

    present = False

    def open(self):
        if not self.present:
            raise OSError("no such card")
        self._alive = True

    def close(self):
        self._alive = False

    def is_alive(self):
        return getattr(self, "_alive", False)


def test_without_a_card_nothing_is_synthesised_and_the_card_fades_in(tmp_config, monkeypatch):
    _, audio = build(tmp_config, lambda r, sr: LateCard(r, sr, realtime=True))
    sr = audio.sample_rate
    synthesised = []
    real = audio.mixer.ensemble.render
    monkeypatch.setattr(audio.mixer.ensemble, "render",
                        lambda t0, n: synthesised.append(n) or real(t0, n))
    now = 100.0
    while now < 130.0:  # half a minute without a card
        now += audio.step(now)
    assert audio.health().state == "degraded"
    assert synthesised == []  # nothing nobody hears is rendered
    assert audio.mixer.position == pytest.approx(30.0 * sr, abs=NO_CARD_STEP_S * sr)
    assert audio.mixer.scheduled_until > audio.mixer.position  # the music was still composed
    audio.sink.present = True
    audio._next_reopen = now  # (the back-off's next try, brought forward)
    out = np.zeros((3 * sr, 2), dtype=np.float32)
    got = 0
    while got < len(out):  # the test plays the card's part: it takes what is rendered
        audio.step(now)
        got += audio.ring.read_into(out[got:got + min(audio.ring.available, len(out) - got)])
        now += 0.05
    assert audio.health().state == "ok" and synthesised
    level = np.sqrt(np.mean(np.square(out, dtype=np.float64).reshape(30, -1), axis=1))
    assert level[-1] > 0 and level[0] < 0.1 * level[-1]  # from silence, not mid-music at once


def test_a_card_back_after_a_gap_plays_no_stale_audio_first(tmp_config):
    # The card plays, vanishes mid-music with the ring full, and comes back a while later:
    # what the ring held from before the gap is not played then (a blip of old music at full
    # level); the music fades in where it now is.
    _, audio = build(tmp_config, lambda r, sr: LateCard(r, sr, realtime=True))
    sr = audio.sample_rate
    audio.sink.present = True
    now, scratch = 100.0, np.zeros((sr // 20, 2), dtype=np.float32)
    while now < 110.0:  # ten seconds of music, the test taking what the card would
        audio.step(now)
        audio.ring.read_into(scratch[:min(len(scratch), audio.ring.available)])
        now += 0.05
    audio.step(now)
    assert audio.ring.available > sr // 20  # the ring is full of music when the card goes
    audio.sink.present = False
    audio.sink.close()  # unplugged
    while now < 130.0:
        now += audio.step(now)
    assert audio.health().state == "degraded"
    audio.sink.present = True
    audio._next_reopen = now
    out = np.zeros((sr, 2), dtype=np.float32)
    got = 0
    while got < len(out):
        audio.step(now)
        got += audio.ring.read_into(out[got:got + min(audio.ring.available, len(out) - got)])
        now += 0.05
    assert audio.health().state == "ok"
    # no old music first: silence, then the fade-in (this config's is 0.2 s)
    level = np.sqrt(np.mean(np.square(out, dtype=np.float64).reshape(50, -1), axis=1))
    start = int(np.argmax(level > 0))
    assert np.max(np.abs(out[: sr // 50])) < 1e-4
    assert level[start] < 0.2 * level[start + 10:].mean()


class FakePortAudio:
    """sounddevice's start count and its _terminate()/_initialize(), the latter failing once
    when asked to (a PortAudio that cannot start)."""

    def __init__(self, fail_once: bool = False):
        self._initialized, self.calls, self.fail_once = 1, [], fail_once

    def _terminate(self):
        self.calls.append("terminate")
        self._initialized -= 1

    def _initialize(self):
        self.calls.append("initialize")
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("Error initializing PortAudio")
        self._initialized += 1


def test_portaudio_starts_anew_to_find_a_card_and_a_failed_start_is_retried():
    from calmtunes.errors import HardwareError

    sd = FakePortAudio()
    SoundDeviceSink._restart_portaudio(sd)
    assert sd.calls == ["terminate", "initialize"] and sd._initialized == 1
    sd = FakePortAudio(fail_once=True)
    with pytest.raises(HardwareError, match=r"restart PortAudio.*aplay -l"):
        SoundDeviceSink._restart_portaudio(sd)
    assert sd._initialized == 0
    SoundDeviceSink._restart_portaudio(sd)  # stopped: only started, not stopped again
    assert sd.calls == ["terminate", "initialize", "initialize"] and sd._initialized == 1


class StandInSoundDevice:
    """sounddevice as far as SoundDeviceSink.open() uses it: one card, which an OutputStream
    holds from its making until close(); starting fails while ``fail_start`` is set."""

    def __init__(self):
        self._initialized, self.held, self.fail_start = 1, False, True

    def _terminate(self):
        self._initialized -= 1

    def _initialize(self):
        self._initialized += 1

    def query_devices(self, index=None):
        info = {"name": "snd_rpi_hifiberry_dac", "max_output_channels": 2}
        return info if index is not None else [info]

    def OutputStream(self, **kw):  # sounddevice's name
        sd = self
        if sd.held:
            raise RuntimeError("Error opening OutputStream: Device unavailable [PaErrorCode -9985]")
        sd.held = True

        class Stream:
            device, latency, blocksize, active, closed = 0, 0.085, kw["blocksize"], True, False

            def start(self):
                if sd.fail_start:
                    raise RuntimeError("Error starting stream: Unanticipated host error")

            def abort(self):
                pass

            def close(self):
                sd.held = False

        return Stream()


def test_a_stream_that_fails_to_start_lets_go_of_the_card(monkeypatch):
    import sys

    from calmtunes.audio.ring import AudioRing
    from calmtunes.errors import HardwareError

    sd = StandInSoundDevice()
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    sink = SoundDeviceSink(AudioRing(4800), 48000, "hifiberry")
    with pytest.raises(HardwareError, match=r"Unanticipated host error.*aplay -l"):
        sink.open()
    assert not sd.held  # a stream made but not started still held the card: closed
    sd.fail_start = False
    sink.open()  # the next try gets the card (it would be "unavailable" otherwise)
    assert sink.is_alive() and sink.description == "sounddevice:snd_rpi_hifiberry_dac"
    sink.close()
    assert not sd.held


class UnsteadySink(DyingSink):
    """Dies ``life`` s after every open while ``unsteady`` (a loose DAC), then holds."""

    unsteady = True

    def _consume(self, block, real):
        if self.unsteady and self.clock() - self._opened > self.life:
            raise OSError("ALSA write failed: Input/output error")


def test_an_output_that_keeps_dying_is_reopened_with_back_off_and_said_once(tmp_config,
                                                                            caplog):
    caplog.set_level(logging.INFO, logger="calmtunes")
    clock = VirtualClock()
    scheduler = Scheduler(clock)
    composer, audio = build(tmp_config, lambda r, sr: UnsteadySink(r, sr, 0.2, clock), clock)
    outputs = []
    audio.hub.subscribe("output", outputs.append)
    composer.start(scheduler)
    audio.start(scheduler)
    try:
        scheduler.run_until(120.0)
        unsteady = audio.health()
        opens = audio.sink.opens
        said = [r.getMessage() for r in caplog.records
                if r.name == "calmtunes.audio.component" and r.levelname == "ERROR"]
        audio.sink.unsteady = False  # the connector is pushed home
        scheduler.run_until(200.0)
        steady, heard = audio.health(), audio.status()["heard"]
    finally:
        audio.stop()
        composer.stop()
    # not reopened at the sink's pace (it died 0.2 s after each open: ~600 opens in 2 min),
    # but with back-off doubling to audio.reopen_max_s
    assert 5 <= opens <= 12
    assert len(said) == 2 and "unsteady" in said[1]
    assert unsteady.state == "degraded" and "unsteady" in unsteady.detail
    # the panel and the session record are told the music went unheard
    assert {"heard": False} in [{"heard": o["heard"]} for o in outputs]
    assert steady.state == "ok" and heard is True
    assert "audio output steady again" in caplog.text


class UnpluggableSink(NullSink):
    """A null sink on a virtual clock whose card can be pulled out and put back; keeps the peak
    of every block it plays, with the time."""

    def __init__(self, ring, sample_rate, clock):
        super().__init__(ring, sample_rate, realtime=True, clock=clock)
        self.present = True
        self.heard: list[tuple[float, float]] = []

    def open(self):
        if not self.present:
            raise OSError("no card")
        super().open()

    def _consume(self, block, real):
        if not self.present:
            raise OSError("card gone")
        self.heard.append((self.clock(), float(np.abs(block).max())))


def test_every_return_of_the_card_starts_from_silence_not_old_music(tmp_config):
    """On a virtual clock (render, simulate) the ring was cleared at the first loss only: at
    the second return ~190 ms of the music from before the loss played at its old level."""
    clock = VirtualClock()
    scheduler = Scheduler(clock)
    composer, audio = build(tmp_config, lambda r, sr: UnpluggableSink(r, sr, clock), clock)
    sink = audio.sink
    composer.start(scheduler)
    audio.start(scheduler)
    try:
        for lost, back in ((20.0, 25.0), (40.0, 45.0)):
            scheduler.run_until(lost)
            sink.present = False
            scheduler.run_until(back)
            sink.present = True
        scheduler.run_until(60.0)
    finally:
        audio.stop()
        composer.stop()
    for back in (25.0, 45.0):
        reopened = min(t for t, _ in sink.heard if t >= back)  # after the reopen's back-off
        first = [p for t, p in sink.heard if reopened <= t < reopened + 0.25]
        assert max(first[:3]) < 1e-4, (back, first)  # silence, then the fade-in (no old music)


def test_a_card_that_stays_missing_is_said_at_once_then_every_ten_minutes(tmp_config, caplog):
    # Retried every audio.reopen_max_s (30 s) for as long as it is missing: a night without a
    # card is a few lines in the journal, not one every retry; a new error is said at once, and
    # so is the card's return
    caplog.set_level(logging.DEBUG, logger="calmtunes")
    _, audio = build(tmp_config, lambda r, sr: LateCard(r, sr, realtime=True))

    def errors():
        return [r.getMessage() for r in caplog.records
                if r.name == "calmtunes.audio.component" and r.levelname == "ERROR"]

    now = 0.0
    while now < 1500.0:  # 25 minutes without a card
        now += audio.step(now)
    said = errors()
    assert audio.sink_failures == 0 and audio.health().state == "degraded"
    assert len(said) == 3, said  # at once, after 10 minutes, after 20
    assert said[0].startswith("audio output unavailable: no such card")
    assert "still unavailable after 10 min" in said[1] and "no such card" in said[1]
    assert "after 20 min" in said[2]
    retries = [r for r in caplog.records if r.levelname == "DEBUG"
               and r.getMessage().startswith("audio output unavailable")]
    assert len(retries) >= 40  # retried all along (every 30 s), quietly

    def other(self):
        raise OSError("PortAudio: device busy")

    audio.sink.open = other.__get__(audio.sink)  # a different failure: said at once
    audio._next_reopen = now
    audio.step(now)
    assert errors()[-1].startswith("audio output unavailable: PortAudio: device busy")

    del audio.sink.open
    audio.sink.present = True
    audio._next_reopen = now + 1.0
    audio.step(now + 1.0)
    assert audio.health().state == "ok"
    back = [r.getMessage() for r in caplog.records if r.levelname == "INFO"
            and "audio output open" in r.getMessage()]
    assert len(back) == 1 and "attempts" in back[0]


def test_a_card_plugged_back_is_tried_at_once_not_at_the_next_back_off(tmp_config, tmp_path,
                                                                       caplog):
    # Retried with back-off up to audio.reopen_max_s (30 s): a DAC reseated or a USB card
    # plugged in was heard up to half a minute later. A new node in /dev/snd (here a folder of
    # the test's) is tried within a step.
    caplog.set_level(logging.DEBUG, logger="calmtunes")
    nodes = tmp_path / "snd"
    nodes.mkdir()
    (nodes / "timer").touch()
    (nodes / "controlC0").touch()  # another card, present all along

    def run(plug_node: bool) -> float:
        _, audio = build(tmp_config, lambda r, sr: LateCard(r, sr, realtime=True))
        audio.sound_devices = nodes
        now = 0.0
        while now < 100.0:  # tried at 0, 1, 3, 7, 15, 31, 61, 91 s: the next try is at 121
            now += audio.step(now)
        (nodes / "controlC0").unlink()  # a node going away is no reason to try
        now += audio.step(now)
        audio.sink.present = True  # the card is back ...
        if plug_node:
            (nodes / "controlC1").touch()  # ... and the kernel made its nodes
        back = now
        while audio.health().state != "ok" and now < back + 60.0:
            now += audio.step(now)
        (nodes / "controlC1").unlink(missing_ok=True)
        (nodes / "controlC0").touch()
        return now - back

    # tried once udev has had time to set the nodes' permissions, then within a step or two
    took = run(plug_node=True)
    assert NODE_SETTLE_S >= 0.3 and NODE_SETTLE_S <= took <= 1.0
    assert "a new sound device (controlC1)" in caplog.text
    assert run(plug_node=False) > 15.0  # as before: the back-off's next try finds it


class LooseUSBCard(NullSink):
    """A USB card on a loose cable: there for ``up`` s, gone for ``down`` s, over and over; its
    node in ``nodes`` comes and goes with it (the test's clock is ``now[0]``)."""

    def __init__(self, ring, sample_rate, nodes, now, up=7.0, down=2.0):
        super().__init__(ring, sample_rate, realtime=True)
        self.nodes, self.now, self.up, self.down = nodes, now, up, down
        self.opens = 0

    def present(self):
        return self.now[0] % (self.up + self.down) < self.up

    def open(self):
        if not self.present():
            raise OSError("no such card")
        self.opens += 1
        self._alive = True

    def close(self):
        self._alive = False

    def is_alive(self):
        return getattr(self, "_alive", False) and self.present()

    def kernel(self):
        """What the kernel does with the card's node as it comes and goes."""
        node = self.nodes / "controlC1"
        node.touch() if self.present() else node.unlink(missing_ok=True)


def test_a_card_that_comes_and_goes_is_not_reopened_at_its_pace_by_its_nodes(tmp_config,
                                                                              tmp_path, caplog):
    # An unsteady output is reopened with back-off and said once. A USB card on a loose cable
    # takes its /dev/snd nodes with it, and their return must not bypass that back-off: it was
    # reopened every 9 s for as long as the cable was loose, with an error, "a new sound
    # device" and "audio output open" in the journal each time (1,200 lines an hour)
    caplog.set_level(logging.DEBUG, logger="calmtunes")
    nodes = tmp_path / "snd"
    nodes.mkdir()
    (nodes / "timer").touch()
    now = [0.0]
    _, audio = build(tmp_config, lambda r, sr: LooseUSBCard(r, sr, nodes, now))
    audio.sound_devices = nodes
    while now[0] < 1800.0:  # half an hour
        audio.sink.kernel()
        now[0] += min(audio.step(now[0]), NO_CARD_STEP_S)
        audio.ring.clear()  # the card's part: it takes what is rendered
    said = [r for r in caplog.records
            if r.name == "calmtunes.audio.component" and r.levelno >= logging.INFO]
    assert audio.sink.opens <= 80  # 54 at the back-off's 30 s; 200 at the cable's 9 s pace
    assert len(said) <= 12, [r.getMessage() for r in said]
    assert audio.health().state == "degraded"


def test_a_device_that_keeps_coming_back_while_the_card_is_missing_is_not_logged_each_time(
        tmp_config, tmp_path, caplog):
    # The card stays missing while some USB device's node comes and goes every 4 s (one that
    # keeps resetting): each return has the output tried, quietly; the journal still gets only
    # the first failure and the 10-minute reminders, not a line per return
    caplog.set_level(logging.DEBUG, logger="calmtunes")
    nodes = tmp_path / "snd"
    nodes.mkdir()
    _, audio = build(tmp_config, lambda r, sr: LateCard(r, sr, realtime=True))
    audio.sound_devices = nodes
    now = 0.0
    while now < 1500.0:
        node = nodes / "controlC1"
        node.touch() if now % 4.0 < 2.0 else node.unlink(missing_ok=True)
        now += audio.step(now)
    said = [r.getMessage() for r in caplog.records
            if r.name == "calmtunes.audio.component" and r.levelno >= logging.INFO]
    assert len(said) == 3, said[:5]  # at once, after 10 minutes, after 20
    assert "a new sound device (controlC1)" in caplog.text  # (at debug level)


def test_a_new_output_that_fails_is_said_at_once_with_its_own_figures(tmp_config, caplog):
    # While the card is missing, a reload gives the output new settings: the new output's first
    # failure is said at once even when its error reads the same, and its figures (how long,
    # how many tries) start from the reload, not from when the old output went missing
    caplog.set_level(logging.DEBUG, logger="calmtunes")
    _, audio = build(tmp_config, lambda r, sr: LateCard(r, sr, realtime=True))
    audio._sink_factory = lambda cfg, ring: LateCard(ring, audio.sample_rate, realtime=True)
    now = 0.0
    while now < 300.0:  # five minutes without the card
        now += audio.step(now)

    def errors():
        return [r.getMessage() for r in caplog.records
                if r.name == "calmtunes.audio.component" and r.levelname == "ERROR"]

    assert len(errors()) == 1
    assert audio.reconfigure(tmp_config.replace(audio={"device": "USB"})) == "reopened its output"
    audio.step(now)
    assert len(errors()) == 2, errors()  # the new output's failure, said at once
    audio.sink.present = True
    now += 1.0
    while audio.health().state != "ok":
        now += audio.step(now)
    back = [r.getMessage() for r in caplog.records if "audio output open" in r.getMessage()]
    assert back == ["audio output open (null) after 1 s without it (1 attempts)"], back


def test_a_replay_does_not_depend_on_the_hosts_sound_devices(tmp_config, tmp_path):
    # On a virtual clock (render, simulate --virtual-clock, these tests) a failing output is
    # retried on the back-off's schedule only: a node appearing in the host's /dev/snd during
    # the replay (here a folder of the test's) does not move the retry, so the same inputs
    # give the same samples on any machine
    nodes = tmp_path / "snd"
    nodes.mkdir()
    _, audio = build(tmp_config, lambda r, sr: LateCard(r, sr, realtime=True),
                     clock=VirtualClock())
    audio.sound_devices = nodes
    now = 0.0
    while now < 100.0:  # tried at 0, 1, 3, 7, 15, 31, 61, 91 s: the next try is at 121
        now += audio.step(now)
    audio.sink.present = True
    (nodes / "controlC1").touch()
    back = now
    while audio.health().state != "ok":
        now += audio.step(now)
    assert now - back > 15.0


def test_the_output_read_that_drains_the_ring_wakes_the_audio_thread(tmp_config):
    # The thread sleeps until the output has taken a third of the buffer, woken by the read
    # that takes it there (on the device, the card's callback), not by a timer of its own
    from calmtunes.audio.sinks import CARD_PERIOD_FRAMES

    _, audio = build(tmp_config, lambda r, sr: NullSink(r, sr, realtime=True))
    audio._fill()
    assert audio.ring.available >= audio.target_fill
    audio._wake.clear()
    period = np.zeros((CARD_PERIOD_FRAMES, 2), dtype=np.float32)
    reads = 0
    while audio.ring.available - CARD_PERIOD_FRAMES >= audio.low_water:
        audio.ring.read_into(period)
        reads += 1
        assert not audio._wake.is_set()
    audio.ring.read_into(period)
    assert audio._wake.is_set() and reads >= 1
    # its own timer is a card period later than that read was due: a fallback for an output
    # that stops reading
    audio._fill()
    delay = audio.step(time.monotonic())
    due = (audio.ring.available - audio.low_water) / audio.sample_rate
    assert delay >= due + CARD_PERIOD_FRAMES / audio.sample_rate - 0.03


def test_on_a_virtual_clock_the_reads_wake_nothing(tmp_config):
    clock = VirtualClock()
    _, audio = build(tmp_config, lambda r, sr: NullSink(r, sr, True, clock), clock)
    assert audio.ring._low is None  # the scheduler runs the sink inside the audio task


def test_a_step_that_fails_after_the_output_read_is_retried_with_back_off(tmp_config):
    # The output's reads wake the audio thread (AudioRing.notify_below). A read during a step
    # that then fails (a card's callback runs as soon as its stream starts) must not cut the
    # back-off short: the step would be retried at once, again and again, reopening the output
    # each time, instead of after 0.5 s, 1 s, 2 s ... up to max_backoff_s.
    from calmtunes.audio.sinks import CARD_PERIOD_FRAMES, Sink

    class Card(Sink):  # opens and closes at once; its reads are done by the render below
        def open(self): pass
        def close(self): pass
        def is_alive(self): return True

    _, audio = build(tmp_config, lambda r, sr: Card(r, sr))
    audio._fill()
    period = np.zeros((CARD_PERIOD_FRAMES, 2), dtype=np.float32)
    audio.ring.read_into(period)  # a period played: the next step tops the ring up

    def render_after_the_card_read(frames):
        while audio.ring.available >= audio.low_water:
            audio.ring.read_into(period)  # the card's callback, in its own thread on the device
        raise RuntimeError("the mixer failed")

    audio.mixer.render = render_after_the_card_read
    audio._wake.clear()
    backoff = audio.run_once()
    assert backoff >= 0.5 and audio.health().state == "degraded"
    started = time.monotonic()
    assert audio._sleep(0.3)
    assert time.monotonic() - started >= 0.25  # slept, not woken by the failed step's read
