"""`render --midi`: the notes that were played, read back by an independent MIDI library."""

from __future__ import annotations

import pytest

from calmtunes.config import Config
from calmtunes.music.midi import TEMPO_TOLERANCE, PlayedNote, PlayLog, TempoMap, write_midi
from calmtunes.render import render_offline

mido = pytest.importorskip("mido")


def _notes_by_track(path):
    """{track name: [(on s, off s, pitch, velocity 1–127)]} through mido's tempo handling."""
    mid = mido.MidiFile(str(path))
    tempo_track = mid.tracks[0]
    tempi = []  # (tick, µs per beat)
    tick = 0
    for msg in tempo_track:
        tick += msg.time
        if msg.type == "set_tempo":
            tempi.append((tick, msg.tempo))

    def seconds(at: int) -> float:
        t, last_tick, last_tempo = 0.0, 0, tempi[0][1]
        for tk, tempo in tempi:
            if tk > at:
                break
            t += mido.tick2second(tk - last_tick, mid.ticks_per_beat, last_tempo)
            last_tick, last_tempo = tk, tempo
        return t + mido.tick2second(at - last_tick, mid.ticks_per_beat, last_tempo)

    out = {}
    for track in mid.tracks[1:]:
        tick, held, notes = 0, {}, []
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                held[(msg.channel, msg.note)] = (tick, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                on, vel = held.pop((msg.channel, msg.note))
                notes.append((seconds(on), seconds(tick), msg.note, vel))
        out[track.name] = sorted(notes)
    return mid, out


def _tempo_map(path):
    """[(second, tick, bpm)] of every set_tempo and [(tick, numerator, denominator)] of every
    time signature, as mido reads them."""
    mid = mido.MidiFile(str(path))
    tick, at_s, last_tick, tempo, tempi, signatures = 0, 0.0, 0, None, [], []
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "set_tempo":
            if tempo is not None:
                at_s += mido.tick2second(tick - last_tick, mid.ticks_per_beat, tempo)
            last_tick, tempo = tick, msg.tempo
            tempi.append((at_s, tick, mido.tempo2bpm(msg.tempo)))
        elif msg.type == "time_signature":
            signatures.append((tick, msg.numerator, msg.denominator))
    return tempi, signatures


def _bar_lines(signatures, end_tick, tpb=480):
    """The tick of every bar line up to ``end_tick``, as the time signatures lay them."""
    changes = {tick: (n, d) for tick, n, d in signatures}
    lines, tick, (n, d) = [], 0, changes.get(0, (4, 4))
    while tick <= end_tick:
        lines.append(tick)
        tick += round(n * 4 * tpb / d)
        n, d = changes.get(tick, (n, d))
    return lines


def test_render_writes_the_played_notes_on_four_tracks_with_the_tempo_map(tmp_path):
    cfg = Config().replace(music={"generator": "procedural", "seed": 4})
    wav, mid_path = tmp_path / "s.wav", tmp_path / "s.mid"
    summary = render_offline(cfg, 0.75, wav, preset="calm", scenario="stressed", midi=mid_path)
    mid, tracks = _notes_by_track(mid_path)
    assert mid.type == 1
    names = ["melody", "harmony pad", "harmony piano", "bass"]
    assert [t.name for t in mid.tracks[1:]] == names
    assert all(tracks[name] for name in names)
    # one channel a track: a reader that groups a track's notes by channel finds one group
    for track in mid.tracks[1:]:
        assert len({m.channel for m in track if hasattr(m, "channel")}) == 1
    assert sum(len(v) for v in tracks.values()) == summary["midi_notes"]
    # the tempo map follows the closed loop's phrases (iso start near the heart rate)
    # and every phrase begins on a bar line of the file, at its own tempo, at its own time,
    # the crossfaded ones included (the cut phrase's last bar is a short bar of its own)
    events, signatures = _tempo_map(mid_path)
    heard = [p for p in summary["phrases"] if p[0] < summary["seconds"]]
    lines = _bar_lines(signatures, events[-1][1])
    for (start_s, beats, bpm, _on, _ob), after in zip(heard, [*heard[1:], None]):
        near = [e for e in events if abs(e[0] - start_s) < 0.002]
        assert near, f"no tempo event at the phrase start {start_s:.3f} s"
        assert near[-1][1] in lines
        cut = after is not None and after[0] - start_s < beats * 60.0 / bpm - 0.01
        assert near[-1][2] == pytest.approx(bpm, rel=TEMPO_TOLERANCE if cut else 0, abs=0.05)
    # no tempo in the map but those played (the cut bar was once closed at 165 bpm here)
    assert len(events) == len(heard)
    low, high = min(p[2] for p in heard), max(p[2] for p in heard)
    for _, _, bpm in events:
        assert low * (1 - TEMPO_TOLERANCE) <= bpm <= high * (1 + TEMPO_TOLERANCE), events
    assert any((n, d) != (4, 4) for _, n, d in signatures), \
        "the iso start's crossfade should have made a short bar"
    # every melody onset the mixer scheduled is in the file, at its time (±2 ms)
    onsets = sorted(t for p in summary["phrases"] for t in p[3])
    file_onsets = sorted(on for track in tracks.values() for on, *_ in track)
    assert len(file_onsets) == len([t for t in onsets if t < summary["seconds"]])
    for a, b in zip(file_onsets, onsets):
        assert a == pytest.approx(b, abs=0.002)


def test_a_crossfade_keeps_only_what_was_heard(tmp_path):
    log = PlayLog()
    log.add_phrase(0.0, 60.0, 8.0)
    log.add_note(PlayedNote(0.0, 6.0, 60, 0.5, "melody"))  # held across the cut
    log.add_note(PlayedNote(5.0, 6.0, 64, 0.5, "melody"))  # never began
    log.add_phrase(4.0, 90.0, 8.0)
    log.cut(4.0)
    log.add_phrase(4.0, 72.0, 8.0)
    log.add_note(PlayedNote(4.0, 5.0, 67, 1.0, "bass"))
    path = tmp_path / "x.mid"
    assert write_midi(path, log) == 2
    _, tracks = _notes_by_track(path)
    assert [(round(a, 3), round(b, 3), p) for a, b, p, _ in tracks["melody"]] == [(0.0, 4.0, 60)]
    assert [(round(a, 3), round(b, 3), p, v) for a, b, p, v in tracks["bass"]] == \
        [(4.0, 5.0, 67, 127)]



def test_a_note_before_the_first_phrase_keeps_the_rest_of_its_track_in_time(tmp_path):
    # humanised timing may start a note a few ms before the first phrase: at a negative tick
    # it set the track's running tick below zero, and every later event of it came late
    log = PlayLog()
    log.add_phrase(0.0, 60.0, 8.0)
    log.add_note(PlayedNote(-0.02, 1.0, 60, 0.5, "melody"))
    log.add_note(PlayedNote(2.0, 3.0, 62, 0.5, "melody"))
    log.add_note(PlayedNote(2.0, 3.0, 43, 0.5, "bass"))
    path = tmp_path / "x.mid"
    write_midi(path, log)
    _, tracks = _notes_by_track(path)
    assert [(round(a, 3), round(b, 3)) for a, b, *_ in tracks["melody"]] == [(0.0, 1.0),
                                                                            (2.0, 3.0)]
    assert [(round(a, 3), round(b, 3)) for a, b, *_ in tracks["bass"]] == [(2.0, 3.0)]


def test_one_key_struck_twice_at_once_is_one_note(tmp_path):
    # two voices of a chord on one key at one tick: one note, the longer and louder
    log = PlayLog()
    log.add_phrase(0.0, 60.0, 8.0)
    log.add_note(PlayedNote(1.0, 2.0, 60, 0.3, "harmony"))
    log.add_note(PlayedNote(1.0, 3.0, 60, 0.6, "harmony"))
    path = tmp_path / "x.mid"
    write_midi(path, log)
    mid, tracks = _notes_by_track(path)
    assert [(round(a, 3), round(b, 3), p, v) for a, b, p, v in tracks["harmony piano"]] == \
        [(1.0, 3.0, 60, 76)]
    ons = [m for t in mid.tracks for m in t if m.type == "note_on" and m.velocity > 0]
    assert len(ons) == 1


def test_a_midi_file_that_cannot_be_written_whole_leaves_the_one_before(tmp_path,
                                                                        monkeypatch):
    import os

    log = PlayLog()
    log.add_phrase(0.0, 60.0, 8.0)
    log.add_note(PlayedNote(0.0, 1.0, 60, 0.5, "melody"))
    path = tmp_path / "x.mid"
    write_midi(path, log)
    before = path.read_bytes()
    log.add_note(PlayedNote(1.0, 2.0, 62, 0.5, "melody"))
    real = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:100])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real(fd, mode)))
    with pytest.raises(OSError):
        write_midi(path, log)
    assert path.read_bytes() == before  # as it was, not cut
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mid"]  # no part left beside it


def test_phrases_a_sample_off_the_bar_line_stay_on_it_and_a_cut_one_has_a_short_bar():
    per = 16 * 60.0 / 66.0  # a 16-beat phrase at 66 bpm, in s
    late = [(0.0, 66.0, 16.0), (per + 1 / 48000, 66.0, 16.0), (2 * per - 1 / 48000, 66.0, 16.0)]
    tm = TempoMap(late)
    assert tm.beats == [0.0, 16.0, 32.0]  # sample rounding does not push a phrase a bar on
    assert tm.time_signatures() == [(0.0, 4, 4)]
    cut = [(0.0, 66.0, 16.0), (6.0, 88.0, 16.0)]  # the iso start cuts the first at 6.6 beats
    tm = TempoMap(cut)
    assert tm.beats == [0.0, 6.625] and tm.times == [0.0, 6.0]  # 6.6 to an eighth, 0.4 % off
    assert tm.time_signatures() == [(0.0, 4, 4), (4.0, 21, 32), (6.625, 4, 4)]
    assert tm.tempi()[0][1] == pytest.approx(66.0, rel=TEMPO_TOLERANCE)
    assert tm.beat_at(6.0 + 60.0 / 88.0) == pytest.approx(7.625)  # then 88 bpm from the bar line


@pytest.mark.parametrize("cut_s", [6 * 60 / 66 + 0.2, 6 * 60 / 66 + 0.01, 4 * 60 / 66 + 0.05],
                         ids=["0.2 s after a beat", "just after a beat", "just after a bar"])
def test_a_cut_phrase_leaves_only_tempos_that_were_played(tmp_path, cut_s):
    log = PlayLog()
    log.add_phrase(0.0, 66.0, 16.0)
    log.add_note(PlayedNote(0.0, 20.0, 60, 0.5, "melody"))
    log.cut(cut_s)
    log.add_phrase(cut_s, 88.0, 16.0)
    log.add_note(PlayedNote(cut_s, cut_s + 1.0, 67, 0.5, "melody"))
    log.add_phrase(cut_s + 16 * 60 / 88, 87.5, 16.0)
    path = tmp_path / "cut.mid"
    write_midi(path, log)
    tempi, signatures = _tempo_map(path)
    # the cut bar was closed in what was left of its beat: 600 bpm 0.2 s after one
    assert [round(bpm, 1) for _, _, bpm in tempi] == [pytest.approx(66.0, rel=TEMPO_TOLERANCE),
                                                      88.0, 87.5]
    # the new phrase begins at its time on a bar line of the file; the notes keep their times
    at_s, tick, _ = tempi[1]
    assert at_s == pytest.approx(cut_s, abs=0.002)
    assert tick in _bar_lines(signatures, tick)
    _, tracks = _notes_by_track(path)
    assert [(round(on, 3), round(off, 3)) for on, off, *_ in tracks["melody"]] == \
        [(0.0, round(cut_s, 3)), (round(cut_s, 3), round(cut_s + 1.0, 3))]


def test_a_phrase_cut_as_it_began_is_heard_as_part_of_its_neighbour(tmp_path):
    log = PlayLog()
    log.add_phrase(0.0, 70.0, 16.0)  # cut as it began (a second preset change at once)
    log.add_phrase(0.04, 60.0, 16.0)
    log.add_phrase(5.0, 88.0, 16.0)  # cut 0.03 s (0.04 beats) in
    log.add_phrase(5.03, 72.0, 16.0)
    log.add_note(PlayedNote(5.03, 6.0, 67, 0.5, "bass"))
    path = tmp_path / "sliver.mid"
    write_midi(path, log)
    tempi, signatures = _tempo_map(path)
    assert [round(bpm, 1) for _, _, bpm in tempi] == [pytest.approx(60.0, rel=TEMPO_TOLERANCE),
                                                      72.0]
    assert tempi[1][0] == pytest.approx(5.03, abs=0.002)
    assert tempi[1][1] in _bar_lines(signatures, tempi[1][1])
    _, tracks = _notes_by_track(path)
    assert [(round(on, 3), round(off, 3)) for on, off, *_ in tracks["bass"]] == [(5.03, 6.0)]


def test_the_files_expression_follows_the_mixs_dynamics(tmp_path):
    """The MIDI carried no dynamics: velocities 54–57 and no CC7/CC11, where the sound swells by
    phrase, rests and changes level by section. Every channel now carries CC11 following the
    mixer's envelope (GM2's curve): where it is low, the sound is quieter."""
    import wave

    import numpy as np

    wav, mid_path = tmp_path / "r.wav", tmp_path / "r.mid"
    render_offline(Config().replace(music={"seed": 5}), 2.0, wav, preset="calm", midi=mid_path)
    mid = mido.MidiFile(str(mid_path))
    tempi, _ = _tempo_map(mid_path)
    channels: dict[int, list[tuple[int, int]]] = {}
    for track in mid.tracks[1:]:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "control_change" and msg.control == 11:
                channels.setdefault(msg.channel, []).append((tick, msg.value))
    assert sorted(channels) == [0, 1, 2, 3]  # melody, pad, piano, bass
    curve = channels[0]
    assert curve[0] == (0, 90)  # from the first note: the envelope's 0 dB (a reader's default
    # without a CC11 is 127, +6 dB on the curve)
    assert all(curve == c for c in channels.values())  # one envelope, the mix's
    values = [v for _, v in curve]
    assert max(values) - min(values) >= 10  # it moves: ≥ 6 dB on GM2's curve

    def second(tick: int) -> float:
        i = max(k for k, (_, t, _) in enumerate(tempi) if t <= tick)
        at_s, t0, bpm = tempi[i]
        return at_s + (tick - t0) / mid.ticks_per_beat * 60.0 / bpm

    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(float)

    def level(t: float) -> float:  # RMS dB of the second of sound around t
        a = audio[max(0, int((t - 0.5) * rate) * 2):int((t + 0.5) * rate) * 2]
        return 10 * np.log10(np.mean(a * a) + 1e-9)

    steady = [(second(t), v) for t, v in curve if 5.0 < second(t) < 115.0]
    low = min(steady, key=lambda e: e[1])
    high = max(steady, key=lambda e: e[1])
    assert level(low[0]) < level(high[0])


def test_music21_reads_each_track_to_the_files_end(tmp_path):
    # music21 groups a track's notes by channel: with the pad and the piano on one track it
    # read the harmony 50 beats longer than the piece (170.5 against 120)
    music21 = pytest.importorskip("music21")
    cfg = Config().replace(music={"generator": "procedural", "seed": 3})
    wav, mid_path = tmp_path / "s.wav", tmp_path / "s.mid"
    render_offline(cfg, 1.0, wav, preset="sleep", midi=mid_path)
    mid = mido.MidiFile(str(mid_path))
    end_beats = max(sum(m.time for m in t) for t in mid.tracks) / mid.ticks_per_beat
    score = music21.converter.parse(str(mid_path), quantizePost=False)
    for part in score.parts:
        assert part.highestTime == pytest.approx(end_beats, abs=1.0), part.partName


def test_rewriting_a_midi_file_keeps_its_mode_and_works_in_a_folder_not_ours(tmp_path):
    import os
    import stat

    log = PlayLog()
    log.add_phrase(0.0, 60.0, 8.0)
    log.add_note(PlayedNote(0.0, 1.0, 60, 0.5, "melody"))
    path = tmp_path / "x.mid"
    write_midi(path, log)
    path.chmod(0o600)  # a therapist's private file stays private
    write_midi(path, log)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    folder = tmp_path / "ro"
    folder.mkdir()
    kept = folder / "y.mid"
    write_midi(kept, log)
    folder.chmod(0o500)  # the file writable, its folder not (no file can be made beside it)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user writes in any folder (root)")
        log.add_note(PlayedNote(1.0, 2.0, 62, 0.5, "melody"))
        assert write_midi(kept, log) == 2
    finally:
        folder.chmod(0o700)
