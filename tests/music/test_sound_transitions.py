"""Nothing may startle: crossfades, volume steps, fades and setting changes without clicks."""

import numpy as np
import pytest

from calmtunes.config import Config
from calmtunes.music.analysis import find_clicks
from calmtunes.music.controls import Controls
from calmtunes.music.fallback import ProceduralComposer
from calmtunes.music.mixer import Mixer

SR = 48000
BLOCK = 960


class Session:
    """Drives a mixer the way the audio component does, with events at given seconds."""

    def __init__(self, config=None, preset="calm", seed=4):
        self.config = config or Config()
        self.mixer = Mixer(SR, self.config)
        self.composer = ProceduralComposer(seed)
        self.controls = self.preset_controls(preset)
        self.mixer.set_controls(self.controls)
        self.mixer.fade_in(self.config.audio.fade_in_s)

    def preset_controls(self, name, volume_db=0.0):
        return Controls.from_preset(name, self.config.music.presets[name], volume_db=volume_db)

    def change_preset(self, name):
        self.controls = self.preset_controls(name, self.controls.volume_db)
        self.mixer.set_controls(self.controls)
        phrase = self.composer.next_phrase(self.controls)
        self.mixer.schedule(phrase, self.mixer.position, crossfade_s=2.5)

    def run(self, seconds, events=None):
        events = dict(events or {})
        out = []
        for i in range(int(seconds * SR / BLOCK)):
            t = round(i * BLOCK / SR, 2)
            if t in events:
                events.pop(t)(self)
            while self.mixer.scheduled_until <= self.mixer.position + BLOCK + SR:
                self.mixer.schedule(self.composer.next_phrase(self.controls))
            out.append(self.mixer.render(BLOCK))
        assert not events, f"events never reached: {sorted(events)}"
        return np.concatenate(out)


def test_click_detector_finds_a_tiny_step_in_real_music():
    y = Session().run(8.0).astype(np.float64)
    assert len(find_clicks(y, SR)) == 0
    stepped = y.copy()
    stepped[5 * SR:] += 0.002  # a −54 dBFS step: quiet, but a click in a calm room
    hits = find_clicks(stepped, SR)
    assert len(hits) == 1 and abs(hits[0] - 5 * SR) < 10
    dropout = y.copy()
    dropout[6 * SR:6 * SR + 48] = 0.0  # a 1 ms dropout
    assert len(find_clicks(dropout, SR)) >= 1


def test_preset_crossfades_do_not_click():
    events = {6.0: lambda s: s.change_preset("sleep"), 9.3: lambda s: s.change_preset("uplift"),
              12.0: lambda s: s.change_preset("calm")}
    y = Session().run(16.0, events)
    assert len(find_clicks(y, SR)) == 0
    assert np.isfinite(y).all()


def test_crossfade_takes_at_least_two_seconds():
    # After a preset change the old phrase's notes fade over ≥ 2 s, so at 1 s after the change
    # the level is still a good part of what it was (no cut to silence).
    s = Session(Config().replace(sound={"bed": "none", "reverb": 0.0}))
    before = s.run(8.0)
    s.mixer.schedule(s.composer.next_phrase(s.controls), s.mixer.position, crossfade_s=2.5)
    # replace what follows with silence, so only the fading old notes are heard
    s.mixer.ensemble.replace([r for r in s.mixer.ensemble.rows if r.start < s.mixer._synth_pos])
    after = np.concatenate([s.mixer.render(BLOCK) for _ in range(int(3.5 * SR / BLOCK))])
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    level = rms(before[-SR // 2:])
    assert rms(after[int(0.9 * SR):int(1.1 * SR)]) > 0.1 * level  # still sounding at 1 s
    assert rms(after[-SR // 4:]) < 0.05 * level  # and gone by 3.5 s


def test_volume_steps_glide_without_clicks():
    step = Config().music.volume_step_db
    events = {}
    for k, t in enumerate(np.arange(5.0, 13.0, 0.6)):
        delta = step if k % 3 != 2 else -2 * step
        events[round(float(t), 2)] = (lambda d: lambda s: s.mixer.set_volume_db(
            s.mixer.volume_db + d))(delta)
    y = Session().run(14.0, events)
    assert len(find_clicks(y, SR)) == 0


def test_fade_in_starts_silent_and_fade_out_ends_silent():
    s = Session()
    start = s.run(0.5)
    assert np.abs(start[:BLOCK]).max() < 1e-4
    s.mixer.fade_out(1.5)
    tail = s.run(2.0)
    assert s.mixer.faded_out
    assert len(find_clicks(np.concatenate([start, tail]), SR)) == 0


@pytest.mark.parametrize("change", [
    {"sound": {"bed": "wind"}},
    {"sound": {"bed": "none"}},
    {"sound": {"reverb": 1.0, "breath_depth_db": 9.0}},
    {"sound": {"entrainment": "isochronic"}},
    {"music": {"target_lufs": -24.0}},
])
def test_setting_changes_glide(change):
    s = Session()
    events = {4.0: lambda s: s.mixer.reconfigure(s.config.replace(**change))}
    y = s.run(8.0, events)
    assert len(find_clicks(y, SR)) == 0


def test_control_changes_glide():
    def dark_and_loud_bed(s):
        s.controls = s.controls.with_(bed_level=1.0, brightness=0.0, breath_rate=12.0, melodic=0.0)
        s.mixer.set_controls(s.controls)
    y = Session().run(9.0, {4.0: dark_and_loud_bed})
    assert len(find_clicks(y, SR)) == 0


def test_entrainment_switched_on_by_a_reload_fades_in():
    """Off → isochronic on a reload: the tone fades in (it used to wait forever for a fade-out
    of a tone that was never sounding)."""
    s = Session()
    s.run(2.0)
    s.mixer.reconfigure(s.config.replace(sound={"entrainment": "isochronic"}))
    y = s.run(4.0)
    assert s.mixer.entrainment.mode == "isochronic" and s.mixer.entrainment._gain == 1.0
    assert len(find_clicks(y, SR)) == 0


@pytest.mark.parametrize("change", [
    {"sound": {"entrainment_level_db": -12.0}},
    {"music": {"target_lufs": -14.0}},
])
def test_the_entrainment_tone_glides_up_with_the_music_not_in_one_block(change):
    """A reload raising the tone's level or the target: the tone rises at the music's slow rate
    (it stepped up 28–36 dB in one block, 20 dB over the music while the music glided)."""
    from calmtunes.music.normaliser import SLEW_DB_PER_S

    config = Config().replace(sound={"entrainment": "binaural", "entrainment_level_db": -40.0},
                              music={"target_lufs": -50.0})
    s = Session(config)
    s.run(3.0)
    before = s.mixer._entrain_lufs
    s.mixer.reconfigure(config.replace(**change))
    levels = []
    for _ in range(10):
        s.run(1.0)
        levels.append(s.mixer._entrain_lufs)
    steps = np.diff([before, *levels])
    assert steps.max() <= SLEW_DB_PER_S * 1.0 + 0.05
    assert levels[-1] > before + 4.0  # and it does rise
