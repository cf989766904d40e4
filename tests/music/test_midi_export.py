"""`render --midi`: the notes that were played, read back by an independent MIDI library."""

from __future__ import annotations

import pytest

from calmtunes.config import Config
from calmtunes.music.midi import PlayedNote, PlayLog, write_midi
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


def test_render_writes_the_played_notes_on_three_tracks_with_the_tempo_map(tmp_path):
    cfg = Config().replace(music={"generator": "procedural", "seed": 4})
    wav, mid_path = tmp_path / "s.wav", tmp_path / "s.mid"
    summary = render_offline(cfg, 0.75, wav, preset="calm", scenario="stressed", midi=mid_path)
    mid, tracks = _notes_by_track(mid_path)
    assert mid.type == 1
    assert [t.name for t in mid.tracks[1:]] == ["melody", "harmony", "bass"]
    assert all(tracks[name] for name in ("melody", "harmony", "bass"))
    assert sum(len(v) for v in tracks.values()) == summary["midi_notes"]
    # the tempo map follows the closed loop's phrases (iso start near the heart rate)
    # and every phrase begins on a bar line of the file, at its own tempo, at its own time,
    # the crossfaded ones included (the cut phrase's last bar is stretched in the tempo map)
    tick, at_s, last_tick, tempo, events = 0, 0.0, 0, None, []
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "set_tempo":
            if tempo is not None:
                at_s += mido.tick2second(tick - last_tick, mid.ticks_per_beat, tempo)
            last_tick, tempo = tick, msg.tempo
            events.append((at_s, tick, mido.tempo2bpm(msg.tempo)))
    bar = 4 * mid.ticks_per_beat
    for start_s, _beats, bpm, _on, _ob in summary["phrases"]:
        if start_s >= summary["seconds"]:
            continue
        near = [e for e in events if abs(e[0] - start_s) < 0.002]
        assert near, f"no tempo event at the phrase start {start_s:.3f} s"
        assert near[-1][1] % bar == 0 and near[-1][2] == pytest.approx(bpm, abs=0.05)
    assert len(events) > len([p for p in summary["phrases"] if p[0] < summary["seconds"]]), \
        "the iso start's crossfade should have stretched a bar"
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


def test_phrases_a_sample_off_the_bar_line_stay_on_it_and_a_cut_one_is_stretched():
    from calmtunes.music.midi import TempoMap

    per = 16 * 60.0 / 66.0  # a 16-beat phrase at 66 bpm, in s
    late = [(0.0, 66.0, 16.0), (per + 1 / 48000, 66.0, 16.0), (2 * per - 1 / 48000, 66.0, 16.0)]
    tm = TempoMap(late)
    assert tm.beats == [0.0, 16.0, 32.0]  # sample rounding does not push a phrase a bar on
    cut = [(0.0, 66.0, 16.0), (6.0, 88.0, 16.0)]  # the iso start cuts the first at 6.6 beats
    tm = TempoMap(cut)
    assert tm.beats == [0.0, 6.0, 8.0] and tm.times[-1] == 6.0
    assert tm.beat_at(6.0 + 60.0 / 88.0) == pytest.approx(9.0)  # then 88 bpm from the bar line
