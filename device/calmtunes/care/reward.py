"""A session's measured response, and the reward the personaliser learns from.

From the session's :class:`~calmtunes.care.trace.TracePoint` steps:

- **baseline**: the usable readings from :data:`BASELINE_FROM_S` to :data:`BASELINE_TO_S`
  (the first minutes; the first half-minute is the sensor locking on and the listener settling
  the finger);
- **response**: the usable readings from minute 5 to minute 15 (:data:`RESPONSE_FROM_S`,
  :data:`RESPONSE_TO_S`), or to the session's end if sooner.

Figures: heart-rate fall (bpm, baseline minus response), RMSSD rise (ms, response minus
baseline), and how far breathing moved toward the paced rate (breaths/min: the baseline's
distance from the response window's mean paced rate minus the response's distance). The reward
weighs them in *reward units*:

    reward = HR fall / 5 bpm + RMSSD rise / 10 ms + breathing toward pace / 3 breaths/min

each term clipped to ±:data:`TERM_LIMIT` so one bad stretch of signal cannot dominate. A
session gives **no reward** (``reward is None``, with the reason) when the baseline has fewer
than :data:`MIN_BASELINE_S` usable seconds or the response fewer than :data:`MIN_RESPONSE_S` —
a finger that slipped, a short session, a poor signal — and when the music went unheard (no
audio output open: a sound card missing or gone) for more than :data:`MAX_UNHEARD_S` between the
baseline's start and the response window's end: whatever the listener did then, the music did
not do it. Heart rate alone is needed; RMSSD and breathing terms count as 0 when their readings
are missing (the reason says so).

These are PPG-derived figures (pulse rate, pulse-rate variability) from a fingertip sensor: good
enough to compare one listener's nights, not an ECG and not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from calmtunes.care.trace import TracePoint

BASELINE_FROM_S = 30.0
BASELINE_TO_S = 180.0
RESPONSE_FROM_S = 300.0
RESPONSE_TO_S = 900.0
MIN_BASELINE_S = 60.0  # usable seconds needed in the baseline
MIN_RESPONSE_S = 150.0  # usable seconds needed in the response window
HR_UNIT_BPM = 5.0
RMSSD_UNIT_MS = 10.0
BREATH_UNIT = 3.0  # breaths/min
TERM_LIMIT = 3.0  # reward units, per term
SETTLE_BAND_BPM = 2.0  # settled: the 1-min heart rate within this of the last 3 min's mean
#: s of the rewarded minutes (baseline start to response end) the music may go unheard; a card
#: lost and found again within seconds does not make a night worthless, a minute of silence
#: is a sixth of the baseline and more than the response's change could hide
MAX_UNHEARD_S = 60.0


@dataclass(frozen=True)
class Response:
    """What a session showed; ``reward`` None means no reward, and ``reason`` says why."""

    reward: float | None
    reason: str
    hr_base: float | None = None  # bpm
    hr_resp: float | None = None
    hr_fall: float | None = None
    rmssd_base: float | None = None  # ms
    rmssd_resp: float | None = None
    rmssd_rise: float | None = None
    breath_base: float | None = None  # breaths/min
    breath_resp: float | None = None
    pace_rate: float | None = None  # mean paced rate in the response window
    breath_toward: float | None = None
    usable_base_s: float = 0.0
    usable_resp_s: float = 0.0
    settle_min: float | None = None  # minutes from the start until the heart rate settled

    def columns(self) -> dict[str, float | str | None]:
        """The figures under their ``sessions`` column names."""
        out = asdict(self)
        out["reward_reason"] = out.pop("reason")
        return out


RESPONSE_COLUMNS = tuple(Response(None, "").columns())


def _window(points: Sequence[TracePoint], t0: float, t1: float, attr: str
            ) -> tuple[float | None, float]:
    """Usable-weighted mean of ``attr`` over steps starting in [t0, t1), and its usable s."""
    total = weight = seconds = 0.0
    step = _step(points)
    for p in points:
        if t0 <= p.t_s < t1 and p.usable > 0:
            v = getattr(p, attr)
            if v is None:
                continue
            w = p.usable * step
            total += v * w
            weight += w
            seconds += w
    return (total / weight if weight else None), seconds


def _step(points: Sequence[TracePoint]) -> float:
    return points[1].t_s - points[0].t_s if len(points) > 1 else 10.0


def _clip(x: float) -> float:
    return max(-TERM_LIMIT, min(TERM_LIMIT, x))


def settle_minutes(points: Sequence[TracePoint]) -> float | None:
    """Minutes until the 1-min mean heart rate first came within :data:`SETTLE_BAND_BPM` of
    the mean of the session's last 3 minutes (None without enough usable heart rate)."""
    if not points:
        return None
    step = _step(points)
    end = points[-1].t_s + step
    if end < 180.0 + 60.0:  # the 3-min reference and a minute before it: else nothing to settle
        return None
    level, secs = _window(points, end - 180.0, end, "hr_bpm")
    if level is None or secs < 60.0:
        return None
    for p in points:
        m, s = _window(points, p.t_s, p.t_s + 60.0, "hr_bpm")
        if m is not None and s >= 30.0 and abs(m - level) <= SETTLE_BAND_BPM:
            return round(p.t_s / 60.0, 1)
    return None


def unheard_seconds(spans: Sequence[tuple[float, float]], t0: float, t1: float) -> float:
    """Seconds of [t0, t1) inside the ``spans`` (session seconds, start to end) the music went
    unheard."""
    return sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in spans)


def session_response(points: Sequence[TracePoint],
                     unheard: Sequence[tuple[float, float]] = ()) -> Response:
    """The response and reward of one session (see the module docstring); ``unheard``: the
    spans (session seconds, start to end) with no audio output open."""
    if not points:
        return Response(None, "no readings recorded")
    end = points[-1].t_s + _step(points)
    hr_b, base_s = _window(points, BASELINE_FROM_S, BASELINE_TO_S, "hr_bpm")
    hr_r, resp_s = _window(points, RESPONSE_FROM_S, RESPONSE_TO_S, "hr_bpm")
    settle = settle_minutes(points)
    figures = dict(hr_base=hr_b, hr_resp=hr_r, usable_base_s=round(base_s, 1),
                   usable_resp_s=round(resp_s, 1), settle_min=settle)
    if end < RESPONSE_FROM_S + MIN_RESPONSE_S:
        return Response(None, f"session too short for a reward ({end / 60:.1f} min; needs "
                              f"{(RESPONSE_FROM_S + MIN_RESPONSE_S) / 60:.1f})", **figures)
    silent = unheard_seconds(unheard, BASELINE_FROM_S, min(end, RESPONSE_TO_S))
    if silent > MAX_UNHEARD_S:
        return Response(None, f"the music went unheard for {silent:.0f} s of the rewarded "
                              f"minutes (no audio output): the response is not the music's",
                        **figures)
    if not any(p.hr_bpm is not None for p in points):
        return Response(None, "no pulse reading at all: no sensor fitted, or no finger on it",
                        **figures)
    if base_s < MIN_BASELINE_S:
        return Response(None, f"too little usable pulse in the first minutes ({base_s:.0f} s of "
                              f"{MIN_BASELINE_S:.0f} s needed): finger off or poor signal",
                        **figures)
    if resp_s < MIN_RESPONSE_S:
        return Response(None, f"too little usable pulse in minutes 5–15 ({resp_s:.0f} s of "
                              f"{MIN_RESPONSE_S:.0f} s needed): finger off or poor signal",
                        **figures)
    notes = []
    hr_fall = hr_b - hr_r
    reward = _clip(hr_fall / HR_UNIT_BPM)
    rm_b, _ = _window(points, BASELINE_FROM_S, BASELINE_TO_S, "rmssd_ms")
    rm_r, _ = _window(points, RESPONSE_FROM_S, RESPONSE_TO_S, "rmssd_ms")
    rise = None
    if rm_b is not None and rm_r is not None:
        rise = rm_r - rm_b
        reward += _clip(rise / RMSSD_UNIT_MS)
    else:
        notes.append("no RMSSD")
    br_b, _ = _window(points, BASELINE_FROM_S, BASELINE_TO_S, "breathing_rate")
    br_r, _ = _window(points, RESPONSE_FROM_S, RESPONSE_TO_S, "breathing_rate")
    paces = [p.pace_rate for p in points
             if RESPONSE_FROM_S <= p.t_s < RESPONSE_TO_S and p.pace_rate is not None]
    pace = sum(paces) / len(paces) if paces else None
    toward = None
    if None not in (br_b, br_r, pace):
        toward = abs(br_b - pace) - abs(br_r - pace)
        reward += _clip(toward / BREATH_UNIT)
    else:
        notes.append("no breathing or pacing")
    reason = "ok" if not notes else "ok (" + ", ".join(notes) + " counted as 0)"
    return Response(
        round(reward, 4), reason, hr_base=hr_b, hr_resp=hr_r, hr_fall=hr_fall,
        rmssd_base=rm_b, rmssd_resp=rm_r, rmssd_rise=rise, breath_base=br_b, breath_resp=br_r,
        pace_rate=pace, breath_toward=toward, usable_base_s=round(base_s, 1),
        usable_resp_s=round(resp_s, 1), settle_min=settle)
