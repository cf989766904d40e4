"""The mixer as the audio component and the offline renderer use it: pitch, loudness, peaks."""

import numpy as np
import pytest

from calmtunes.config import Config
from calmtunes.music.analysis import band_levels, find_clicks, measure_frequency
from calmtunes.music.controls import Controls
from calmtunes.music.events import NoteEvent, Phrase
from calmtunes.music.fallback import ProceduralComposer
from calmtunes.music.loudness import integrated_loudness, true_peak_dbtp
from calmtunes.music.mixer import VOLUME_FLOOR_DB, Mixer

SR = 48000
BLOCK = 960


def render_preset(config, preset, seconds, volume_db=0.0, seed=1):
    mixer = Mixer(SR, config)
    controls = Controls.from_preset(preset, config.music.presets[preset], volume_db=volume_db)
    mixer.set_controls(controls)
    mixer.fade_in(config.audio.fade_in_s)
    composer = ProceduralComposer(seed)
    out = []
    for _ in range(int(seconds * SR / BLOCK)):
        while mixer.scheduled_until <= mixer.position + BLOCK + SR:
            mixer.schedule(composer.next_phrase(controls))
        out.append(mixer.render(BLOCK))
    return mixer, np.concatenate(out)


def single_note(pitch=69, voice="melody", seconds=3.0, config=None):
    config = config or Config().replace(sound={"bed": "none"})
    mixer = Mixer(SR, config)
    mixer.set_controls(Controls(volume_db=0.0))
    mixer.fade_in(0.01)
    mixer.schedule(Phrase((NoteEvent(0.0, 4.0, pitch, 0.8, voice),), 4.0, 60.0, 9, "major",
                          Controls()))
    return np.concatenate([mixer.render(BLOCK) for _ in range(int(seconds * SR / BLOCK))])


@pytest.mark.parametrize("voice", ["melody", "harmony", "pad", "bass"])
def test_a4_is_440_hz(voice):
    y = single_note(69, voice)
    f = measure_frequency(y[SR // 2:2 * SR], SR, fmin=300, fmax=600)
    assert f == pytest.approx(440.0, abs=1.0)


def test_render_shape_type_and_interface():
    mixer = Mixer(SR, Config())
    assert mixer.position == 0 and mixer.scheduled_until == 0 and mixer.current_phrase is None
    phrase = ProceduralComposer(1).next_phrase(Controls())
    mixer.schedule(phrase)
    assert mixer.current_phrase is phrase
    assert mixer.scheduled_until == round(phrase.seconds * SR)
    y = mixer.render(BLOCK)
    assert y.shape == (BLOCK, 2) and y.dtype == np.float32
    assert mixer.position == BLOCK
    assert mixer.render(0).shape == (0, 2)
    assert mixer.faded_out  # never faded in
    assert not np.any(y)


def test_one_minute_render_hits_the_target_loudness_under_the_peak_ceiling():
    config = Config()
    _, y = render_preset(config, "calm", 60.0)
    lufs = integrated_loudness(y, SR)
    assert abs(lufs - config.music.target_lufs) <= 1.0, lufs
    assert true_peak_dbtp(y) <= -1.0
    assert np.isfinite(y).all()
    assert len(find_clicks(y, SR)) == 0


def test_volume_is_relative_to_the_target_and_capped():
    config = Config().replace(music={"max_volume_db": 0.0})
    mixer, quiet = render_preset(config, "sleep", 30.0, volume_db=-12.0)
    target = config.music.target_lufs
    assert integrated_loudness(quiet[10 * SR:], SR) == pytest.approx(target - 12.0, abs=1.0)
    mixer.set_volume_db(+20.0)  # the buttons cannot go past max_volume_db
    assert mixer.volume_db == 0.0
    mixer.set_volume_db(-99.0)
    assert mixer.volume_db == VOLUME_FLOOR_DB  # the conductor keeps music.min_volume_db


def test_a_reload_raising_the_volume_floor_leaves_a_quieter_volume_where_it_is():
    """A person turned it down to −30 dB; a reload raises music.min_volume_db to −8. The
    conductor keeps −30 until a person presses; the mixer must not pull the sound up to the
    floor (it did: +22 dB within a second)."""
    config = Config().replace(music={"min_volume_db": -30.0})
    mixer, _ = render_preset(config, "calm", 5.0, volume_db=-30.0)
    mixer.reconfigure(config.replace(music={"min_volume_db": -8.0}))
    mixer.set_controls(mixer.controls.with_(volume_db=-30.0))  # the conductor's next update
    after = np.concatenate([mixer.render(BLOCK) for _ in range(int(3 * SR / BLOCK))])
    assert mixer.volume_db == -30.0 and mixer._volume_now == -30.0
    assert integrated_loudness(after, SR) < config.music.target_lufs - 25.0


def test_the_music_begins_at_the_volume_the_conductor_gives_not_the_configs():
    """At start the saved volume (−30 dB) comes with the first controls, after the mixer was
    made at music.volume_db (+6): with no fade-in the first second was 24 dB too loud."""
    config = Config().replace(music={"volume_db": 6.0, "max_volume_db": 6.0},
                              audio={"fade_in_s": 0.0})
    quiet, _ = render_preset(config, "calm", 1.0, volume_db=-30.0)
    _, y = render_preset(config, "calm", 8.0, volume_db=-30.0)
    first, later = y[: SR], y[4 * SR:]
    from calmtunes.music.loudness import LoudnessMeter

    def loudest_momentary(x):
        meter, worst = LoudnessMeter(SR, 2), -np.inf
        for i in range(0, len(x) - BLOCK + 1, BLOCK):
            meter.push(x[i:i + BLOCK])
            worst = max(worst, meter.momentary)
        return worst

    assert quiet._volume_now == -30.0
    assert loudest_momentary(first) <= loudest_momentary(later) + 3.0


def test_loud_configuration_still_stays_under_minus_1_dbtp():
    # the loudest the config allows: −14 LUFS target and +6 dB volume; the limiter must hold
    config = Config().replace(music={"target_lufs": -14.0, "max_volume_db": 6.0})
    mixer, y = render_preset(config, "uplift", 20.0, volume_db=6.0)
    # end the stream as a listener hears it end, with a fade: an array cut off mid-note would
    # show the meter's own ringing at the cut, not a peak of the output
    mixer.fade_out(0.5)
    y = np.concatenate([y, mixer.render(SR)])
    assert true_peak_dbtp(y) <= -1.0
    assert np.isfinite(y).all()


def test_no_harsh_highs_and_no_boom():
    _, y = render_preset(Config(), "calm", 20.0)
    bands = band_levels(y[5 * SR:], SR)
    assert bands["20-80 Hz"] < -10.0  # lows a small speaker would rattle on stay down
    assert bands["5000-10000 Hz"] < -40.0  # nothing sharp up top
    assert bands["250-2000 Hz"] > -6.0  # the body of the sound is in the mids


def test_fade_out_reaches_silence_and_reports_it():
    mixer, _ = render_preset(Config(), "calm", 5.0)
    mixer.fade_out(1.0)
    tail = np.concatenate([mixer.render(BLOCK) for _ in range(60)])
    assert mixer.faded_out
    assert np.abs(tail[-BLOCK:]).max() == 0.0
    assert len(find_clicks(tail, SR)) == 0


# -- skipping what nobody hears (no sound card) -----------------------------------------------

def playing_mixer(config=None, seconds=10.0, seed=3):
    config = config or Config()
    mixer, _ = render_preset(config, "calm", seconds, seed=seed)
    return mixer, ProceduralComposer(seed + 1)


def schedule_ahead(mixer, composer, frames):
    while mixer.scheduled_until <= mixer.position + frames + SR:
        mixer.schedule(composer.next_phrase(mixer.controls))


def test_skip_moves_the_music_on_without_synthesising(monkeypatch):
    mixer, composer = playing_mixer()
    calls = []
    real = mixer.ensemble.render
    monkeypatch.setattr(mixer.ensemble, "render", lambda t0, n: calls.append(t0) or real(t0, n))
    start, rows = mixer.position, None
    for _ in range(4 * 120):  # two minutes in 0.25 s steps, as a daemon without a card
        schedule_ahead(mixer, composer, SR // 4)
        mixer.skip(SR // 4)
        rows = len(mixer.ensemble.rows)
    assert calls == []
    assert mixer.position == start + 120 * SR  # the music's time, to the frame
    assert mixer.synthesised >= mixer.position  # the synthesis resumes ahead, on a chunk edge
    # the notes that have sounded are forgotten as they pass: the set stays one phrase's worth
    assert rows < 200
    assert not mixer.faded_out  # still playing, unheard


def test_after_a_skip_the_music_fades_in_from_silence_without_a_click():
    mixer, composer = playing_mixer()
    for _ in range(20):
        schedule_ahead(mixer, composer, SR // 4)
        mixer.skip(SR // 4)
    out = []
    for _ in range(int(6 * SR / BLOCK)):
        schedule_ahead(mixer, composer, BLOCK)
        out.append(mixer.render(BLOCK))
    y = np.concatenate(out)
    assert np.isfinite(y).all()
    assert true_peak_dbtp(y) <= -1.0
    assert len(find_clicks(y, SR)) == 0
    rms = lambda a: float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))  # noqa: E731
    first, later = rms(y[: SR // 10]), rms(y[4 * SR:6 * SR])
    assert later > 0 and first < 0.05 * later  # from silence, not mid-note at full level


def test_a_stop_while_skipping_is_silent_at_once():
    mixer, composer = playing_mixer()
    mixer.fade_out(1.0)
    schedule_ahead(mixer, composer, SR // 4)
    mixer.skip(SR // 4)
    assert mixer.faded_out


def test_skip_of_less_than_what_is_queued_and_of_nothing():
    mixer, _ = playing_mixer()
    queued = len(mixer._queue)
    at, synth = mixer.position, mixer.synthesised
    mixer.skip(0)
    assert (mixer.position, mixer.synthesised) == (at, synth)
    if queued > 1:
        mixer.skip(queued - 1)
        assert mixer.position == at + queued - 1 and mixer.synthesised == synth
