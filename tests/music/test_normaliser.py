"""The loudness normaliser at power-on: the music may start a little under its target, never over.

The normaliser is fed a steady programme of known loudness in 100 ms steps, as the mixer feeds
it; what the listener hears is that programme plus the normaliser's gain (volume at 0 dB).
"""

import numpy as np
import pytest

from calmtunes.music.loudness import integrated_loudness
from calmtunes.music.normaliser import SLEW_DB_PER_S, Normaliser

RATE = 48000
TARGET = -30.0
STEP_S = 0.1


def programme(lufs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo noise, band-limited by a gentle slope, scaled to ``lufs`` (BS.1770)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(seconds * RATE), 2))
    x = np.cumsum(x, axis=0) * 0.05 + x  # some low end, as music has
    x -= x.mean(axis=0)
    x /= np.abs(x).max()
    return x * 10 ** ((lufs - integrated_loudness(x, RATE)) / 20)


def heard(lufs: float, seconds: float) -> np.ndarray:
    """Programme loudness + gain, every 100 ms, for a steady programme at ``lufs``."""
    norm = Normaliser(RATE, TARGET)
    x = programme(lufs, seconds)
    step = int(STEP_S * RATE)
    out = []
    for i in range(0, len(x) - step + 1, step):
        norm.measure(x[i:i + step])
        start, end = norm.advance(STEP_S)
        out.append(lufs + start)
        assert abs(end - start) <= SLEW_DB_PER_S * STEP_S + 1e-9  # never a jump
    return np.array(out)


@pytest.mark.parametrize("lufs", [-14.7, -15.6, -16.2, -18.7])
def test_the_music_never_starts_louder_than_its_target(lufs):
    """A programme as loud as the loudest preset's (−14.7 LUFS) or as soft as sleep's: the first
    seconds, when the normaliser has heard little, are never over the target. (With a prior at
    the presets' middle, −18 LUFS, a −14.7 programme started 3.3 LU over it.)"""
    assert heard(lufs, 30.0).max() <= TARGET + 0.25


def test_a_quiet_programme_comes_up_to_its_target_gently():
    """Sleep's softest programme starts under the target and reaches it within 25 s at the slow
    rate, without overshooting."""
    y = heard(-18.7, 40.0)
    assert y[0] < TARGET - 2.0
    reached = int(np.argmax(np.abs(y - TARGET) <= 0.5))
    assert 0 < reached * STEP_S <= 25.0
    assert y.max() <= TARGET + 0.25



def test_loud_music_after_a_long_quiet_passage_is_brought_down_fast():
    """40 s of programme 25 dB under the usual (a near-silent bed, a card that played nothing)
    lets the gain climb to its bound; when the music comes back, the gain in force is what the
    listener hears: it must come down at the fast rate, not 20 s at the slow one."""
    from calmtunes.music.normaliser import PRIOR_LUFS, SURGE_LU

    norm = Normaliser(RATE, TARGET)
    step = int(STEP_S * RATE)
    out = []
    for lufs, seconds in ((PRIOR_LUFS, 20.0), (PRIOR_LUFS - 25.0, 40.0), (PRIOR_LUFS, 30.0)):
        x = programme(lufs, seconds, seed=int(-lufs))
        for i in range(0, len(x) - step + 1, step):
            norm.measure(x[i:i + step])
            start, _ = norm.advance(STEP_S)
            out.append(lufs + start)
    loud_again = np.array(out[600:])
    assert out[599] < TARGET - 10  # the quiet passage was quiet (the gain climbed its bound)
    assert loud_again.max() <= TARGET + SURGE_LU + 8.0  # the first blocks, before it is heard
    over = np.flatnonzero(loud_again > TARGET + SURGE_LU)
    assert over.size * STEP_S <= 3.0  # (with the goal judged: ~20 s over)
    assert loud_again[-50:].max() <= TARGET + 0.5
