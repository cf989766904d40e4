"""scripts/bench_music judges what a loudness meter reads from the file, the colour of every
render long enough to show it, and shows every target it could not measure as not met."""

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
            (1, "session"): {"lra": 6.2, "lra_music": 5.1}}
    checks = {c[0]: c for c in bench.targets(rows, quick=True)}
    _, _, got, fails, share, ok = checks["LRA (as a meter reads the file)"]
    assert (share, ok) == ("2/4", False) and fails == "s2 calm 6.3, s1 session 6.2"
    assert got == "4.4 … 6.3"
    # the session with the room's volume taken out is shown, not judged
    assert checks["LRA, session with the room's volume taken out (secondary)"][4:] == (
        "1/1", None)


def test_a_figure_not_measured_is_shown_with_its_reason_and_is_not_met():
    """A target whose figure could not be measured is never dropped from the verdict: it reads
    "not measured" with the reason and counts as not met; so does a target that applies to no
    render at all."""
    bench = load_bench()
    rows = {(1, "calm"): {"timing": 12.0, "why": {"colour_in": "172 s after the fades"}},
            (2, "calm"): {"timing": 13.0, "colour_in": 75.0}}
    checks = {c[0]: c for c in bench.targets(rows, quick=True)}
    name = "colour move per minute: share of minute pairs in 2–4 dB"
    _, _, got, fails, share, ok = checks[name]
    assert "not measured in 1 (172 s after the fades)" in got and got.startswith("75 … 75")
    assert fails == "s1 calm not measured" and (share, ok) == ("1/2", False)
    assert checks["timing deviation"][4:] == ("2/2", True)
    # no figure and no reason: still not met
    assert checks["clicks"][3:] == ("s1 calm not measured, s2 calm not measured", "0/2", False)
    # a session-only target without a session
    got, _, share, ok = checks["returning 8-bar phrases (session)"][2:]
    assert got.startswith("not measured") and ok is False


def test_colour_is_judged_on_the_share_of_minute_pairs_in_range():
    bench = load_bench()
    ok = bench.targets({(1, "calm"): {"colour_in": 50.0, "colour": 1.9}}, quick=True)
    low = bench.targets({(1, "calm"): {"colour_in": 37.5, "colour": 3.0}}, quick=True)
    name = "colour move per minute: share of minute pairs in 2–4 dB"
    assert _met(ok, name) and not _met(low, name)


def test_harmony_is_read_over_pad_piano_and_bass_in_every_bar():
    """Bars where the pad rests count: there the piano and the bass carry the chord."""
    bench = load_bench()
    c_major = [(0.0, 16.0, 60, 50, 1), (0.0, 16.0, 64, 50, 1), (0.0, 16.0, 67, 50, 1),
               (0.0, 16.0, 48, 50, 3)]
    # the pad rests from bar 5; piano and bass change chord every bar (F, G, F, G)
    rest = []
    for i, root in enumerate((5, 7, 5, 7)):
        b = 16.0 + 4 * i
        rest += [(b, b + 4, 60 + root, 50, 2), (b, b + 4, 64 + root, 50, 2),
                 (b, b + 4, 67 + root, 50, 2), (b, b + 4, 36 + root, 50, 3)]
    midi = {"tracks": {"harmony pad": c_major[:3],
                       "harmony piano": [n for n in rest if n[4] == 2],
                       "bass": [c_major[3]] + [n for n in rest if n[4] == 3]},
            "tempi": [(0.0, 60.0)], "bars": [(0.0, 4.0)]}
    f = bench.midi_figures(midi)
    assert f["harm"] == 4 / 8 and f["harm_padrest"] == 1.0 and f["padrest"] == 50.0


def test_bars_follow_the_time_signatures():
    bench = load_bench()
    assert bench.bar_starts([(0.0, 4.0), (8.0, 2.5), (10.5, 4.0)], 18.0) == [
        0.0, 4.0, 8.0, 10.5, 14.5]


def test_heard_tempo_names_octave_errors():
    bench = load_bench()
    assert bench.tempo_kind(61.0, 60.0) == "ok"
    assert bench.tempo_kind(123.0, 60.0) == "×2"
    assert bench.tempo_kind(38.0, 76.0) == "×½"
    assert bench.tempo_kind(184.6, 60.0) == "×3"
    assert bench.tempo_kind(161.5, 60.0) == "other"


def test_the_tempo_control_is_a_click_track_under_the_same_prior():
    """The control names what no music can pass with this tracker: a click track at 76 bpm is
    heard at half time under a prior of 40 (so a 76 bpm minute missed there is "beyond the
    tracker"), while at 60 bpm, and under 180 at either tempo, the click track is heard at
    the plan (so a miss there is the music's own)."""
    bench = load_bench()
    assert not bench.metronome_heard(76.0, 40.0)
    assert bench.metronome_heard(60.0, 40.0)
    assert bench.metronome_heard(60.0, 180.0)
    assert bench.metronome_heard(76.0, 180.0)
    # a click track that slows as a lead-down's plan does (71 → 69 bpm over the minute) is
    # heard at its middle tempo under 40, where a steady one at 70 is heard at half time: the
    # control follows the window's plan
    assert not bench.metronome_heard(70.0, 40.0)
    assert bench.metronome_heard(71.0, 40.0, 69.0)


def test_the_control_row_judges_only_what_a_click_track_passes():
    bench = load_bench()
    rows = {(1, "uplift"): {"tempo_worst": 0.0, "tempo_worst_ctl": 100.0},
            (1, "sleep"): {"tempo_worst": 40.0, "tempo_worst_ctl": 40.0}}
    checks = {c[0]: c for c in bench.targets(rows, quick=True)}
    ctl = [k for k in checks if k.startswith("heard tempo at the plan, every prior, where")]
    assert len(ctl) == 1
    assert checks[ctl[0]][3] == "s1 sleep 40" and checks[ctl[0]][4:] == ("1/2", False)


def test_a_pulse_at_76_bpm_misheard_under_a_prior_of_40_is_beyond_the_tracker():
    """Soft plucks every beat at 76 bpm: every prior but 40 hears the plan; under 40 every
    minute is at half time, as a click track's is, so the strict row reads 0 % and the control
    row 100 %."""
    bench = load_bench()
    sr, plan = 22050, 76.0
    y = np.zeros(int(sr * 190.0))
    n = np.arange(int(0.5 * sr))
    pluck = 0.2 * np.sin(2 * np.pi * 330.0 * n / sr) * np.exp(-n / (0.12 * sr))
    for t in np.arange(0.0, 189.0, 60.0 / plan):
        i = int(t * sr)
        y[i:i + len(n)] += pluck[:len(y) - i]
    f, _ = bench.audio_figures(np.stack([y, y], axis=1), sr, plan, clicks=False)
    assert set(f["tempo_kinds"][40.0]) == {"beyond the tracker"}
    assert all(set(f["tempo_kinds"][p]) == {"ok"} for p in bench.TEMPO_PRIORS if p != 40.0)
    assert f["tempo_worst"] == 0.0 and f["tempo_worst_ctl"] == 100.0


def test_melody_range_reports_the_narrowest_window():
    bench = load_bench()
    wide = [(float(b), b + 1.0, 60 + (b % 2) * 14, 50, 0) for b in range(64)]
    narrow = [(64.0 + b, 65.0 + b, 60 + (b % 2) * 5, 50, 0) for b in range(64)]
    tail = [(128.0 + b, 129.0 + b, 60 + (b % 2) * 14, 50, 0) for b in range(66)]
    f = bench.midi_figures({"tracks": {"melody": wide + narrow + tail}, "tempi": [(0.0, 60.0)]})
    assert f["range"] == 14 and f["range_min"] == 5 and f["range_all"] == 14


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


def test_a_session_too_quiet_and_too_wide_as_a_meter_reads_it_is_not_met():
    """The room's volume moves (visitors, dusk, night) are in the file, and a loudness meter
    hears them: the session is judged as the file reads; the figures with the room's volume
    taken out are secondary rows, never the verdict."""
    bench = load_bench()
    session = {"lra_music": 5.6, "lra": 6.7, "music_err": -0.27, "lufs_err": -1.19}
    checks = {c[0]: c for c in bench.targets({(1, "session"): session}, quick=True)}
    assert checks["LRA (as a meter reads the file)"][-1] is False
    assert checks["loudness (as a meter reads the file)"][-1] is False
    assert checks["LRA, session with the room's volume taken out (secondary)"][-1] is None
    within = {**session, "lra": 5.9, "lufs_err": -0.6}
    checks = bench.targets({(1, "session"): within}, quick=True)
    assert _met(checks, "LRA (as a meter reads the file)")
    assert _met(checks, "loudness (as a meter reads the file)")


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
    assert colour["colour_in"] >= 0 and colour["colour_min"] <= colour["colour_max"]
    checks = bench.targets({(1, "calm"): {"colour_in": 0.0, "colour": 1.2}}, quick=True)
    assert not _met(checks, "colour move per minute: share of minute pairs in 2–4 dB")


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
