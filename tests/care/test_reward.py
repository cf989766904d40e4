"""The reward: heart-rate fall, RMSSD rise and breathing toward the pace; gated on signal."""

from __future__ import annotations

import pytest

from calmtunes.care.reward import session_response, settle_minutes
from calmtunes.care.trace import SessionTrace, TracePoint
from calmtunes.music.controls import Controls
from calmtunes.pulse.reading import PulseReading


def course(minutes=15.0, hr=(85.0, 70.0), rmssd=(30.0, 50.0), br=(16.0, 10.0), pace=6.0,
           usable=lambda t: 1.0, fall_min=5.0):
    """Steps of 10 s: the figures glide from their first to their second value over
    ``fall_min`` minutes (starting after minute 3), then stay."""
    pts = []
    for k in range(int(minutes * 6)):
        t = k * 10.0
        f = min(1.0, max(0.0, (t - 180.0) / (fall_min * 60.0)))
        u = usable(t)
        pts.append(TracePoint(
            t_s=t, hr_bpm=hr[0] + f * (hr[1] - hr[0]) if u else None,
            rmssd_ms=None if rmssd is None or not u else rmssd[0] + f * (rmssd[1] - rmssd[0]),
            breathing_rate=br[0] + f * (br[1] - br[0]) if u else None,
            quality=0.9 if u else 0.0, usable=u, tempo_bpm=70.0, pace_rate=pace))
    return pts


def test_a_calming_session_is_rewarded_by_its_figures():
    r = session_response(course())
    assert r.hr_base == pytest.approx(85.0) and r.hr_resp < 72.0
    assert r.hr_fall == pytest.approx(r.hr_base - r.hr_resp)
    assert r.rmssd_rise > 15.0
    # breathing moved from 10 to under 4 breaths/min away from the 6/min pace
    assert r.breath_toward == pytest.approx(abs(16 - 6) - abs(r.breath_resp - 6))
    expected = min(3, r.hr_fall / 5) + min(3, r.rmssd_rise / 10) + min(3, r.breath_toward / 3)
    assert r.reward == pytest.approx(expected, abs=1e-3)
    assert r.reason == "ok"


def test_no_change_is_no_reward_and_worse_is_negative():
    flat = session_response(course(hr=(75, 75), rmssd=(40, 40), br=(12, 12)))
    assert flat.reward == pytest.approx(0.0, abs=1e-6)
    worse = session_response(course(hr=(70, 85), rmssd=(50, 30), br=(10, 16)))
    assert worse.reward < -3.0


def test_one_term_cannot_dominate():
    r = session_response(course(hr=(140, 60), rmssd=(40, 40), br=(12, 12)))
    assert r.reward == pytest.approx(3.0)


def test_too_short_or_too_little_signal_gives_no_reward_and_says_why():
    short = session_response(course(minutes=6))
    assert short.reward is None and "too short" in short.reason
    no_base = session_response(course(usable=lambda t: 0.0 if t < 200 else 1.0))
    assert no_base.reward is None and "first minutes" in no_base.reason
    off = session_response(course(usable=lambda t: 0.0 if 330 <= t < 900 else 1.0))
    assert off.reward is None and "minutes 5–15" in off.reason
    assert session_response([]).reward is None
    # no pulse at all (pulse.backend: none, or no finger all session) is not "poor signal"
    none = session_response(course(usable=lambda t: 0.0))
    assert none.reward is None and none.reason.startswith("no pulse reading at all: no sensor")


def test_music_nobody_heard_earns_no_reward():
    """No audio output for more than a minute of the rewarded minutes (a card missing or
    gone): the listener's response is not the music's. A short loss, or silence after the
    response window, leaves the reward as it was."""
    whole = session_response(course(minutes=20))
    for spans in ([(400.0, 430.0)], [(20.0, 40.0), (600.0, 650.0)], [(960.0, 1200.0)]):
        r = session_response(course(minutes=20), spans)
        assert r.reward == pytest.approx(whole.reward), spans  # ≤ 60 s inside minutes ½–15
    lost = session_response(course(minutes=20), [(100.0, 140.0), (500.0, 530.0)])
    assert lost.reward is None
    assert "unheard for 70 s" in lost.reason and "no audio output" in lost.reason
    assert lost.hr_base == pytest.approx(whole.hr_base)  # the figures are still shown
    # a session that began without a card and never had one
    assert session_response(course(minutes=20), [(0.0, 1200.0)]).reward is None


def test_missing_rmssd_counts_as_zero_and_is_said():
    r = session_response(course(rmssd=None))
    assert r.reward is not None and "no RMSSD" in r.reason and r.rmssd_rise is None


def test_settling_time_is_when_the_heart_rate_reaches_its_end_level():
    fast = settle_minutes(course(fall_min=2.0))
    slow = settle_minutes(course(fall_min=8.0))
    assert fast is not None and slow is not None and fast < slow
    assert 3.0 < fast < 6.0 and 8.0 < slow < 12.0


def test_the_trace_averages_usable_readings_per_step():
    tr = SessionTrace(1000.0)
    for k in range(25):
        ok = k % 5 != 0
        tr.reading(1000.0 + k, PulseReading(t=k, finger=True, quality=0.8,
                                            hr_bpm=70.0 if ok else 300.0), ok)
        tr.controls(1000.0 + k, Controls(tempo_bpm=60.0 + k, breath_rate=6.0))
    pts = tr.finish(1025.0)
    assert [p.t_s for p in pts] == [0.0, 10.0, 20.0]
    assert all(p.hr_bpm == 70.0 for p in pts)  # the unusable 300 never counts
    assert pts[0].usable == pytest.approx(0.8) and pts[0].quality == pytest.approx(0.8)
    assert pts[0].tempo_bpm == 69.0 and pts[0].preset == "calm"
