"""scripts/bench_music judges what a loudness meter reads from the file, and the colour of every
render long enough to show it."""

from __future__ import annotations

import numpy as np

from script_module import load_script


def load_bench():
    return load_script('bench_music')


def _met(checks, name: str) -> bool:
    (row,) = [c for c in checks if c[0] == name]
    return row[-1]


def test_each_target_says_how_many_renders_meet_it():
    """Over many seeds a target met by most renders is not one met by none: the table says
    how many renders meet it, of those it applies to (the session-only targets count the
    sessions alone)."""
    bench = load_bench()
    rows = {(1, "calm"): {"lra": 5.0}, (2, "calm"): {"lra": 6.3}, (3, "calm"): {"lra": 4.4},
            (1, "session"): {"lra": 5.1, "lra_heard": 6.2}}
    checks = {c[0]: c for c in bench.targets(rows, quick=True)}
    _, _, got, fails, share, ok = checks["LRA (session: the room's volume out)"]
    assert (share, ok) == ("3/4", False) and fails == "s2 calm 6.3" and got == "4.4 … 6.3"
    assert checks["LRA as heard (session, the room's volume in)"][4:] == ("0/1", False)
    # nothing to judge: no figure, no share
    assert checks["timing deviation"][2:5] == ("–", "", "–")


def test_seeds_are_numbers_and_ranges():
    bench = load_bench()
    assert bench.parse_seeds("1,2,9-12") == [1, 2, 9, 10, 11, 12]
    assert bench.parse_seeds(" 3 , 1-3 ,") == [3, 1, 2]
    for bad in ("5-2", "a", "1-b", "1--2"):
        try:
            bench.parse_seeds(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken")


def test_a_session_too_quiet_and_too_wide_as_heard_is_not_met():
    """The room's volume moves (visitors, dusk, night) are taken out for the music's own
    figures, but a loudness meter hears them: the session as heard is judged too."""
    bench = load_bench()
    session = {"lra": 5.6, "lra_heard": 6.7, "lufs_err": -0.27, "heard_err": -1.19}
    checks = bench.targets({(1, "session"): session}, quick=True)
    assert _met(checks, "LRA (session: the room's volume out)")
    assert _met(checks, "loudness (session: vs target + the room's volume)")
    assert not _met(checks, "LRA as heard (session, the room's volume in)")
    assert not _met(checks, "loudness as heard (session, the room's volume in)")
    within = {**session, "lra_heard": 5.9, "heard_err": -0.6}
    checks = bench.targets({(1, "session"): within}, quick=True)
    assert _met(checks, "LRA as heard (session, the room's volume in)")
    assert _met(checks, "loudness as heard (session, the room's volume in)")


def test_preset_renders_are_judged_on_colour_when_long_enough():
    bench = load_bench()
    sr = bench.SR_ANALYSIS
    rng = np.random.default_rng(1)
    t = np.arange(int(4 * 60 * sr)) / sr
    # noise whose colour changes each minute: a low and a high band trade places
    low = np.sin(2 * np.pi * 200 * t) * (1 + (t // 60) % 2)
    body = (0.1 * rng.standard_normal(len(t)) + low).astype(np.float32)
    colour = bench.preset_colour(body)
    assert colour["colour"] > 0.5 and np.isfinite(colour["colour_all"])
    assert bench.preset_colour(body[: int(2.9 * 60 * sr)]) == {}
    # a preset's colour counts in the colour target
    checks = bench.targets({(1, "calm"): {"colour": 1.2}}, quick=True)
    assert not _met(checks, "colour move per minute")


def test_a_section_boundary_is_a_peak_of_the_novelty_not_where_the_kernel_begins():
    """The checkerboard kernel reaches ±60 s, so its curve begins a minute in; a change in that
    first minute leaves the curve falling from there, which is no boundary. One real change
    (a new chord and register at 5 minutes) is."""
    bench = load_bench()
    sr = bench.SR_ANALYSIS
    t = np.arange(int(10 * 60 * sr)) / sr

    def chord(freqs, span):
        on = (t >= span[0]) & (t < span[1])
        return on * sum(np.sin(2 * np.pi * f * t) for f in freqs)

    body = (chord((220.0, 277.2, 329.6), (0, 50))  # an opening of 50 s in its own colour
            + chord((261.6, 329.6, 392.0), (50, 300))
            + chord((174.6, 220.0, 523.3), (300, 600)))
    body = (0.1 * body + 0.01 * np.random.default_rng(2).standard_normal(len(t)))
    f = bench.form_figures(body.astype(np.float32))
    assert f["boundaries_s"] and all(abs(b - 300) <= 10 for b in f["boundaries_s"])
    assert f["sections"] == 2.0
