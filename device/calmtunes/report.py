"""The clinician's report: one self-contained HTML file from the device's session records.

``calmtunes report --out F.html`` reads ``sessions.db`` (read-only) and the care record, and
writes a page that needs nothing else: no scripts, no fonts, no images or styles from elsewhere;
the plots are inline SVG drawn by matplotlib's SVG backend with the browser's own sans-serif
font. It opens the same after ``scp`` to any computer.

matplotlib is imported here only, when the report is made (``pip install calmtunes[report]``);
the daemon never imports this module, so its memory does not grow.

Per session: heart rate against the music's tempo, breathing against the paced rate, RMSSD,
the signal quality (grey shading where fewer than half the readings were usable), the baseline
and response windows of the reward, a timeline of preset, volume and scene; then the summary
(baseline vs minutes 5–15, minutes to settle, arm and reward or why none). Across sessions: the
trend of heart rate, RMSSD and reward night by night, and what the personaliser believes of
each arm now.
"""

from __future__ import annotations

import contextlib
import html
import io
import math
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calmtunes.care import reward as reward_mod
from calmtunes.care.arms import parse_arm
from calmtunes.care.bandit import is_forbidden
from calmtunes.care.personaliser import bandit_for
from calmtunes.care.store import CareStore, ListenerRecord
from calmtunes.care.trace import TracePoint
from calmtunes.config import Config
from calmtunes.sessions import DB_NAME, SessionStore, read_error, session_seconds

ACROSS_MAX = 90  # sessions in the across-sessions table and trend (about three months of nights)
REPORT_HEAD = b"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"  # a report starts so

POOR_USABLE = 0.5  # a step with fewer usable readings than this is shaded as poor signal
COLOURS = {"hr": "#b2182b", "tempo": "#2166ac", "breath": "#1b7837", "pace": "#762a83",
           "rmssd": "#e08214", "poor": "#bdbdbd", "window": "#fdf6e3"}
PRESET_COLOURS = ("#9ecae1", "#c7e9c0", "#fdd0a2", "#dadaeb", "#fcbba1", "#d9d9d9")
# the reward bars' arms: ten light colours told apart in hue (ColorBrewer's Set3), each with a
# hatch of its own as well, so the arms are told apart without colour (printed in grey, or by
# a reader who does not see red from green)
ARM_COLOURS = ("#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69",
               "#fccde5", "#d9d9d9", "#bc80bd")
ARM_HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--", "++", "||", "**")


class ReportError(Exception):
    """Nothing to report, or the records cannot be read: the message says which and why;
    ``missing``, the sessions database that does not exist (when that is why)."""

    def __init__(self, message: str, missing: Path | None = None) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass
class SessionData:
    row: dict[str, Any]
    points: list[TracePoint]


def _matplotlib():
    try:
        import matplotlib
    except ImportError as exc:
        raise ReportError("the report needs matplotlib: pip install 'calmtunes[report]' on the "
                          "computer that makes it (the device does not need it)") from exc
    matplotlib.use("svg", force=True)
    from matplotlib.figure import Figure

    matplotlib.rcParams.update({
        "svg.fonttype": "none",  # text stays text: the browser's sans-serif, no font files
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })
    return matplotlib, Figure


def _svg(fig: Any, salt: str) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no metadata with links)."""
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = salt  # element ids unique within the page
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight",
                metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):].replace("<svg ", '<svg role="img" ', 1)
    # matplotlib names groups figure_1, axes_1 … in every plot: make ids unique in the page
    text = re.sub(r'\bid="([^"]+)"', rf'id="{salt}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{salt}-\1)", text)
    return re.sub(r'href="#([^"]+)"', rf'href="#{salt}-\1"', text)


def _minutes(points: Sequence[TracePoint]) -> list[float]:
    return [p.t_s / 60.0 for p in points]


def _series(points: Sequence[TracePoint], attr: str) -> list[float]:
    return [math.nan if getattr(p, attr) is None else float(getattr(p, attr)) for p in points]


def _windows(end_min: float) -> list[tuple[float, float, str]]:
    """The baseline and response windows (minutes), cut at the session's end: a window the
    session never reached is not drawn (cream out to 15 minutes looked like signal lost)."""
    out = []
    for a, b, name in ((reward_mod.BASELINE_FROM_S, reward_mod.BASELINE_TO_S, "baseline"),
                       (reward_mod.RESPONSE_FROM_S, reward_mod.RESPONSE_TO_S, "response")):
        a, b = a / 60.0, min(b / 60.0, end_min)
        if b > a:
            out.append((a, b, name))
    return out


def _shade(ax: Any, points: Sequence[TracePoint], step_min: float, end_min: float) -> None:
    poor = [p.t_s / 60.0 for p in points if p.usable < POOR_USABLE]
    for m in poor:
        ax.axvspan(m, m + step_min, color=COLOURS["poor"], alpha=0.45, lw=0)
    for a, b, _ in _windows(end_min):
        ax.axvspan(a, b, color=COLOURS["window"], zorder=-2, lw=0)


def session_figure(Figure: Any, data: SessionData, salt: str) -> str:
    pts = data.points
    step = (pts[1].t_s - pts[0].t_s) / 60.0 if len(pts) > 1 else 1 / 6
    x = _minutes(pts)
    fig = Figure(figsize=(8.0, 7.2))
    axes = fig.subplots(5, 1, sharex=True,
                        gridspec_kw={"height_ratios": [3, 2.4, 2, 1.2, 1.0], "hspace": 0.25})
    hr, br, rm, q, tl = axes
    end = x[-1] + step if x else step  # the session's length: the axis ends there
    for ax in axes[:3]:
        _shade(ax, pts, step, end)
    tl.set_xlim(0.0, end)
    hr.plot(x, _series(pts, "hr_bpm"), color=COLOURS["hr"], lw=1.4, label="heart rate (pulse)")
    hr.plot(x, _series(pts, "tempo_bpm"), color=COLOURS["tempo"], lw=1.2, ls="--",
            label="music tempo")
    hr.set_ylabel("bpm")
    for a, b, name in _windows(end):
        hr.text((a + b) / 2.0, 1.02, name, ha="center", va="bottom", fontsize=7,
                color="#8c6d1f", transform=hr.get_xaxis_transform())
    hr.legend(loc="upper right", frameon=False, ncols=2)
    br.plot(x, _series(pts, "breathing_rate"), color=COLOURS["breath"], lw=1.4,
            label="breathing")
    br.plot(x, _series(pts, "pace_rate"), color=COLOURS["pace"], lw=1.2, ls="--",
            label="paced breathing")
    br.set_ylabel("breaths/min")
    br.legend(loc="upper right", frameon=False, ncols=2)
    rmssd = _series(pts, "rmssd_ms")
    rm.plot(x, rmssd, color=COLOURS["rmssd"], lw=1.4, label="RMSSD")
    rm.set_ylabel("RMSSD, ms")
    if all(math.isnan(v) for v in rmssd):
        rm.set_yticks([])
        rm.text(0.5, 0.5, "no RMSSD in this session (too little clean pulse)", ha="center",
                va="center", fontsize=8, color="#636363", transform=rm.transAxes)
    q.fill_between(x, [p.quality for p in pts], step="post", color="#636363", alpha=0.5,
                   label="signal quality")
    q.plot(x, [p.usable for p in pts], drawstyle="steps-post", color="black", lw=0.8,
           label="share usable")
    q.set_ylim(0, 1.05)
    q.set_ylabel("0–1")
    q.legend(loc="lower right", frameon=False, ncols=2, fontsize=7)
    _timeline(tl, pts, step)
    tl.set_xlabel("minutes since the session started")
    return _svg(fig, salt)


def _spans(points: Sequence[TracePoint], attr: str, step: float) -> list[tuple[float, float, Any]]:
    out: list[list[Any]] = []
    for p in points:
        v = getattr(p, attr)
        m = p.t_s / 60.0
        if out and out[-1][2] == v:
            out[-1][1] = m + step
        else:
            out.append([m, m + step, v])
    return [tuple(s) for s in out]  # type: ignore[misc]


def _timeline(ax: Any, points: Sequence[TracePoint], step: float) -> None:
    presets = sorted({p.preset for p in points if p.preset})
    colour = {name: PRESET_COLOURS[i % len(PRESET_COLOURS)] for i, name in enumerate(presets)}
    for a, b, v in _spans(points, "preset", step):
        if v:
            ax.axvspan(a, b, ymin=0.5, ymax=1.0, color=colour[v], lw=0)
            ax.text((a + b) / 2, 0.75, v, ha="center", va="center", fontsize=7,
                    transform=ax.get_xaxis_transform())
    for a, b, v in _spans(points, "scene", step):
        if v:
            ax.axvspan(a, b, ymin=0.0, ymax=0.45, color="#f0f0f0", lw=0)
            ax.text((a + b) / 2, 0.22, f"scene: {v}", ha="center", va="center", fontsize=7,
                    transform=ax.get_xaxis_transform())
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    vol = ax.twinx()
    vol.plot(_minutes(points), _series(points, "volume_db"), color="black", lw=0.9,
             drawstyle="steps-post")
    vol.set_ylabel("volume, dB", fontsize=7)
    vol.spines["top"].set_visible(False)


def trend_figure(Figure: Any, sessions: Sequence[dict[str, Any]], salt: str) -> str:
    fig = Figure(figsize=(8.0, 5.0))
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    n = list(range(1, len(sessions) + 1))

    def col(name: str) -> list[float]:
        return [math.nan if r.get(name) is None else float(r[name]) for r in sessions]

    # baseline and response told apart by line and marker, not only by their shade
    ax1.plot(n, col("hr_base"), "s--", color="#f4a582", ms=3, lw=1,
             label="baseline (min 0.5–3)")
    ax1.plot(n, col("hr_resp"), "o-", color=COLOURS["hr"], ms=3, lw=1, label="minutes 5–15")
    ax1.set_ylabel("heart rate, bpm")
    ax1.legend(frameon=False, ncols=2, fontsize=7)
    ax2.plot(n, col("rmssd_base"), "s--", color="#fdb863", ms=3, lw=1, label="baseline")
    ax2.plot(n, col("rmssd_resp"), "o-", color=COLOURS["rmssd"], ms=3, lw=1,
             label="minutes 5–15")
    ax2.set_ylabel("RMSSD, ms")
    ax2.legend(frameon=False, ncols=2, fontsize=7)
    rewards = col("reward")
    arms = sorted({r.get("arm") or "—" for r in sessions})
    # beyond ten arms colour and hatch repeat: the bars carry their arm's number then too
    look = {a: (ARM_COLOURS[i % len(ARM_COLOURS)], ARM_HATCHES[i % len(ARM_HATCHES)])
            for i, a in enumerate(arms)}
    bars = ax3.bar(n, [0 if math.isnan(v) else v for v in rewards],
                   color=[look[r.get("arm") or "—"][0] for r in sessions],
                   edgecolor="#636363", lw=0.5)
    for bar, r in zip(bars, sessions, strict=True):
        bar.set_hatch(look[r.get("arm") or "—"][1])
    if len(arms) > len(ARM_COLOURS):
        for i, r in zip(n, sessions, strict=True):
            ax3.text(i, 0, str(arms.index(r.get("arm") or "—") + 1), ha="center",
                     va="top", fontsize=6)
    for i, v in zip(n, rewards):
        if math.isnan(v):
            ax3.text(i, 0, "×", ha="center", va="bottom", fontsize=8, color="#b2182b")
    from matplotlib.ticker import MaxNLocator

    ax3.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax3.set_ylabel("reward")
    ax3.set_xlabel("session (oldest first); × = no reward (the table's note says why)")
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=look[a][0], hatch=look[a][1], edgecolor="#636363",
                     label=f"{k}: {a}" if len(arms) > len(ARM_COLOURS) else a)
               for k, a in enumerate(arms, 1)]
    ax3.legend(handles=handles, frameon=False, ncols=min(5, len(arms)), fontsize=7,
               loc="upper left", bbox_to_anchor=(0, -0.45))
    return _svg(fig, salt)


def belief_figure(Figure: Any, beliefs: Sequence[Any], salt: str,
                  played: dict[str, int] | None = None, forbidden: Sequence[str] = (),
                  pinned: str = "") -> str:
    """The belief of each arm; ``played``: nights each arm played (rewarded or not); the
    clinician's forbidden arms (a preset forbids its variations) and pin marked."""
    def mark(arm: str) -> str:
        if arm == pinned:
            return f"{arm} (pinned)"
        if is_forbidden(parse_arm(arm), forbidden):
            return f"{arm} (forbidden)"
        return arm

    fig = Figure(figsize=(8.0, 0.35 * len(beliefs) + 1.0))
    ax = fig.subplots()
    shown = beliefs[::-1]
    names = [mark(b.arm) for b in shown]
    means = [b.mean for b in shown]
    sds = [b.sd for b in shown]
    bars = ax.barh(names, means, xerr=[1.96 * s for s in sds], color="#9ecae1",
                   ecolor="#636363", capsize=2)
    for bar, b in zip(bars, shown, strict=True):
        if mark(b.arm).endswith("(forbidden)"):  # never chosen: drawn pale and hatched
            bar.set_color("#f0f0f0")
            bar.set_edgecolor("#969696")
            bar.set_hatch("xx")
    for i, b in enumerate(shown):
        of = (played or {}).get(b.arm)
        count = f" {b.nights} rewarded" + (f" of {of} played" if of is not None else "")
        ax.text(0.0, i, count, va="center", fontsize=7)
    ax.set_xlabel("expected reward (reward units), with a 95 % interval")
    return _svg(fig, salt)


def _fmt(v: Any, nd: int = 1, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, (int, float)):
        return f"{v:.{nd}f}{unit}"
    return html.escape(str(v))


def _when(t: float | None) -> str:
    # with the time zone: a report is read on other computers, and across DST changes
    return "—" if t is None else time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t))


STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.caveat { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; }
figure { margin: 0.5em 0; } svg { max-width: 100%; height: auto; }
dt { font-weight: bold; } dd { margin: 0 0 0.4em 1.5em; }
@media print { h2 { page-break-before: always; } }
"""

CAVEATS = """
<div class="caveat"><p><b>Read with care.</b> These figures come from a fingertip optical pulse
sensor (photoplethysmography, PPG), not an ECG. "Heart rate" is the pulse rate; RMSSD is computed
from pulse-to-pulse intervals (pulse-rate variability), which motion, cold fingers and a loose
finger disturb more than ECG-derived HRV; breathing rate is estimated from the pulse wave's
modulation. The device is a comfort aid: these figures are not a diagnosis, and it is not a
vital-signs monitor or an alarm. Compare a listener with themselves over nights, not with
population norms.</p></div>
"""

GLOSSARY = f"""
<dl>
<dt>Heart rate (bpm)</dt><dd>beats per minute from the pulse wave, averaged over 10 s.</dd>
<dt>Music tempo (bpm)</dt><dd>the beat the music plays at. It starts near the heart rate and
is led slowly toward the preset's tempo (the iso principle).</dd>
<dt>Breathing (breaths/min) and paced breathing</dt><dd>the estimated breathing rate, and the
rate at which the music's ambient bed swells to invite slower breathing.</dd>
<dt>RMSSD (ms)</dt><dd>root mean square of successive differences between pulse intervals;
higher values usually go with a calmer, more parasympathetic state.</dd>
<dt>Signal quality (0–1) and grey shading</dt><dd>grey marks 10-second steps in which fewer than
{POOR_USABLE:.0%} of the readings were usable (finger off, motion, poor contact); a line is
drawn only where the step has some usable reading, and broken where it has none.</dd>
<dt>Volume (dB)</dt><dd>the level the music played at, relative to the loudness target: the
volume set at the bedside, lowered by the room (at night, when people are about) and by fades;
so it can sit a few dB under what the buttons set, never above it.</dd>
<dt>Baseline and response windows (cream)</dt><dd>baseline: minutes
{reward_mod.BASELINE_FROM_S / 60:g}–{reward_mod.BASELINE_TO_S / 60:g}; response: minutes
{reward_mod.RESPONSE_FROM_S / 60:g}–{reward_mod.RESPONSE_TO_S / 60:g}.</dd>
<dt>Minutes to settle</dt><dd>when the 1-minute heart rate first came within
{reward_mod.SETTLE_BAND_BPM:g} bpm of its level over the session's last 3 minutes.</dd>
<dt>Arm, chosen by, and reward</dt><dd>the arm is what the session played (a preset, or a safe
variation: "slower" = target tempo 4 bpm lower, "no-bed" = no ambient bed, "no-pacing" = no
breathing swell); "chosen by" says who chose it: the personaliser, the clinician's pin, a person
(a preset pressed or asked for, at the start or during the session: measured, not rewarded) or
the config's default preset (the personaliser off, or its record unusable).
Reward = heart-rate fall / {reward_mod.HR_UNIT_BPM:g} bpm + RMSSD rise /
{reward_mod.RMSSD_UNIT_MS:g} ms + breathing change toward the paced rate /
{reward_mod.BREATH_UNIT:g} breaths/min, each term limited to ±{reward_mod.TERM_LIMIT:g}.
A session with too little usable signal gets no reward and teaches nothing.</dd>
</dl>
"""


def _summary_table(rows: Sequence[dict[str, Any]]) -> str:
    head = ("<tr><th class=l>started</th><th>min</th><th class=l>arm</th><th class=l>chosen "
            "by</th><th class=l>preset</th><th>HR bpm<br>baseline → 5–15</th>"
            "<th>RMSSD ms<br>baseline → 5–15</th>"
            "<th>breaths/min<br>baseline → 5–15 (paced)</th><th>settle<br>min</th>"
            "<th>reward</th><th class=l>note</th></tr>")
    out = [head]
    for r in rows:
        reason = r.get("reward_reason") or ""
        out.append(
            f"<tr><td class=l>{_when(r['started_at'])}</td>"
            f"<td>{_fmt(session_seconds(r) / 60.0)}</td>"
            f"<td class=l>{_fmt(r.get('arm'))}</td><td class=l>{_fmt(r.get('chosen_by'))}</td>"
            f"<td class=l>{_fmt(r.get('preset'))}</td>"
            f"<td>{_fmt(r.get('hr_base'))} → {_fmt(r.get('hr_resp'))}</td>"
            f"<td>{_fmt(r.get('rmssd_base'), 0)} → {_fmt(r.get('rmssd_resp'), 0)}</td>"
            f"<td>{_fmt(r.get('breath_base'))} → {_fmt(r.get('breath_resp'))} "
            f"({_fmt(r.get('pace_rate'))})</td><td>{_fmt(r.get('settle_min'))}</td>"
            f"<td>{_fmt(r.get('reward'), 2)}</td>"
            f"<td class=l>{html.escape(reason if reason != 'ok' else '')}</td></tr>")
    return "<table>" + "".join(out) + "</table>"


NOT_ENDED = "not ended: running, or stopped by a crash that the next start closes as unclean"


def _session_summary(r: dict[str, Any]) -> str:
    def pair(a: str, b: str, unit: str, nd: int = 1) -> str:
        va, vb = r.get(a), r.get(b)
        change = None if None in (va, vb) else round(vb - va, nd) + 0.0  # never "-0"
        delta = f" (change {change:+.{nd}f} {unit})" if change is not None else ""
        return f"{_fmt(va, nd)} → {_fmt(vb, nd)} {unit}{delta}"

    ended = _fmt(r.get("ended_by")) if r.get("ended_by") else NOT_ENDED
    reward = r.get("reward")
    if reward is not None:
        reward_text = f"{reward:+.2f} reward units"
    elif r.get("ended_by") is None:
        reward_text = "none yet — given when the session ends"
    elif r.get("ended_by") == "unclean":
        reward_text = "none — the device stopped uncleanly before the session could be measured"
    else:
        reward_text = f"none — {html.escape(r.get('reward_reason') or 'not computed')}"
    return (
        "<table>"
        f"<tr><th class=l>arm (preset played)</th><td class=l>{_fmt(r.get('arm'))} "
        f"({_fmt(r.get('preset'))}); presets in order: {_fmt(r.get('presets'))}</td></tr>"
        f"<tr><th class=l>chosen by</th><td class=l>{_fmt(r.get('chosen_by'))}</td></tr>"
        f"<tr><th class=l>heart rate, baseline → minutes 5–15</th><td class=l>"
        f"{pair('hr_base', 'hr_resp', 'bpm')}</td></tr>"
        f"<tr><th class=l>RMSSD, baseline → minutes 5–15</th><td class=l>"
        f"{pair('rmssd_base', 'rmssd_resp', 'ms', 0)}</td></tr>"
        f"<tr><th class=l>breathing, baseline → minutes 5–15</th><td class=l>"
        f"{pair('breath_base', 'breath_resp', 'breaths/min')}; paced at "
        f"{_fmt(r.get('pace_rate'))} breaths/min</td></tr>"
        f"<tr><th class=l>first minute → last minute: heart rate; RMSSD; breathing</th>"
        f"<td class=l>{pair('hr_start', 'hr_end', 'bpm')}; "
        f"{pair('rmssd_start', 'rmssd_end', 'ms', 0)}; "
        f"{pair('breathing_start', 'breathing_end', 'breaths/min')}</td></tr>"
        f"<tr><th class=l>minutes to settle</th><td class=l>{_fmt(r.get('settle_min'))}</td></tr>"
        f"<tr><th class=l>usable signal</th><td class=l>{_fmt(r.get('usable_base_s'), 0)} s "
        f"in the baseline, {_fmt(r.get('usable_resp_s'), 0)} s in minutes 5–15</td></tr>"
        f"<tr><th class=l>reward</th><td class=l>{reward_text}</td></tr>"
        f"<tr><th class=l>ended by</th><td class=l>{ended}</td></tr>"
        "</table>")


def load_sessions(state_dir: Path) -> tuple[SessionStore, list[dict[str, Any]]]:
    path = state_dir / DB_NAME
    try:
        if state_dir.exists() and not state_dir.is_dir():
            raise ReportError(f"the state folder {state_dir} is not a folder; check --state-dir "
                              "or device.state_dir")
        if not path.exists():
            raise ReportError(f"no sessions recorded ({path} does not exist); check --state-dir",
                              missing=path)
    except PermissionError as exc:  # not the records' group: say so, not "cannot write"
        raise ReportError(read_error(path, exc)) from exc
    import sqlite3

    try:
        store = SessionStore(path, readonly=True)
        return store, store.rows()
    except (OSError, sqlite3.Error) as exc:
        raise ReportError(read_error(path, exc)) from exc


def build_report(config: Config, state_dir: str | Path, *, last: int | None = 5,
                 session_id: int | None = None, now: float | None = None) -> str:
    """The report as HTML text (see the module docstring)."""
    _, Figure = _matplotlib()
    state_dir = Path(state_dir)
    store, rows = load_sessions(state_dir)
    try:
        # One listener's report: the one whose session is asked for (a session of none: the
        # sessions of none), else the current one. Another patient's nights are never mixed
        # in (a device whose personaliser never ran has no listener: all its sessions show).
        try:
            listener = CareStore(state_dir).peek_current()
        except PermissionError as exc:
            raise ReportError(f"cannot read the care record in {state_dir}: {exc.strerror} "
                              "(are you in the calmtunes group?)") from exc
        chosen = None
        if session_id is not None:
            chosen = [r for r in rows if r["id"] == session_id]
            if not chosen:
                raise ReportError(f"no session {session_id} in {state_dir / DB_NAME} (have "
                                  f"{', '.join(str(r['id']) for r in rows[-10:]) or 'none'})")
            listener = chosen[0].get("listener")
        others = 0
        if listener is not None or session_id is not None:
            mine = [r for r in rows if r.get("listener") == listener]
            others, rows = len(rows) - len(mine), mine
        if chosen is None:
            chosen = rows[-last:] if last else rows
        detail = [SessionData(r, store.points(r["id"])) for r in chosen]
    finally:
        store.close()
    now = time.time() if now is None else now
    parts = [
        REPORT_HEAD.decode(),
        "<meta name=viewport content='width=device-width, initial-scale=1'>",
        "<title>calmtunes: sessions report</title>", f"<style>{STYLE}</style></head><body>",
        "<h1>calmtunes — listening sessions report</h1>",
        f"<p>Made {_when(now)} from {html.escape(str(state_dir))}: "
        + (f"listener {html.escape(listener)}, " if listener is not None else "")
        + f"{len(rows)} session(s) recorded, {len(detail)} shown in detail."
        + (f" {others} session(s) of other listeners, or of none, are not shown." if others
           else "")
        + (f" {store.unreadable} more have no usable start time and are left out (the file was "
           "changed outside calmtunes)." if store.unreadable else "") + "</p>",
        CAVEATS,
    ]
    parts.append("<h2>Across sessions</h2>")
    if rows:
        shown = rows[-ACROSS_MAX:]  # a page a clinician can read, however long the stay
        earlier = len(rows) - len(shown)
        parts.append("<p>Each night's heart rate and RMSSD in the baseline and in minutes 5–15, "
                     "and the reward the personaliser learnt from (each arm its colour and "
                     "hatching)"
                     + (f"; the last {len(shown)} sessions ({earlier} earlier ones are not "
                        "shown: `calmtunes sessions --export csv` has every one)" if earlier
                        else "") + ".</p>")
        parts.append(f"<figure>{trend_figure(Figure, shown, 'trend')}</figure>")
        parts.append(_summary_table(shown))
    else:
        parts.append("<p>No sessions yet.</p>")
    parts.append(_learned(config, state_dir, Figure, listener))
    parts.append("<h2>Sessions in detail</h2>")
    if not detail:
        parts.append("<p>No sessions yet.</p>")
    for i, d in enumerate(detail):
        r = d.row
        parts.append(f"<h3>Session {r['id']}: {_when(r['started_at'])}, "
                     f"{_fmt(session_seconds(r) / 60.0)} min</h3>")
        if d.points:
            parts.append(f"<figure>{session_figure(Figure, d, f's{i}')}</figure>")
        elif r.get("ended_by") is None:
            parts.append("<p>No course written yet: the session is running, or the device "
                         "stopped without a clean stop and has not started since (its course "
                         "is written every 30 minutes, its summary every 5).</p>")
        elif r.get("ended_by") == "unclean":
            parts.append("<p>No course recorded for this session: the device stopped without "
                         "a clean stop (a crash, a watchdog restart or a power cut) before its "
                         "course was written (every 30 minutes); its length is the last time "
                         "known, so it ran at least that long.</p>")
        else:
            parts.append("<p>No course recorded for this session (recorded before traces were "
                         "kept, or with sessions.trace off); summary only.</p>")
        parts.append(_session_summary(r))
    parts.append("<h2>What the figures mean</h2>")
    parts.append(GLOSSARY)
    parts.append("</body></html>")
    return "\n".join(parts)


def _learned(config: Config, state_dir: Path, Figure: Any, listener: str | None) -> str:
    store = CareStore(state_dir)
    if listener is None:
        return ("<h2>What the personaliser learned</h2><p>No listener record for these sessions: "
                "the personaliser did not play them.</p>")
    head = f"<h2>What the personaliser learned</h2><p>Listener {html.escape(str(listener))}"
    try:
        record: ListenerRecord = store.load(listener, set_aside=False)
    except ValueError as exc:  # an id no listener has (the records file changed by hand)
        return head + f": the record cannot be read ({html.escape(str(exc))}).</p>"
    if record.problem:
        return head + f": the record cannot be read ({html.escape(record.problem)}).</p>"
    rewarded = sum(1 for n in record.nights if n.reward is not None)
    beliefs = bandit_for(config, record).beliefs()
    c = config.care
    oversight = []
    if not c.enabled:
        oversight.append("the personaliser is switched off (care.enabled: false)")
    if c.pinned_arm:
        oversight.append(f"pinned to {html.escape(c.pinned_arm)}")
    if c.forbidden_arms:
        oversight.append("forbidden: " + html.escape(", ".join(c.forbidden_arms)))
    text = (f": {len(record.nights)} night(s), {rewarded} with a reward. Expected reward of each "
            f"arm after these nights (the belief it chooses from; it starts favouring the "
            f"default preset {html.escape(config.music.default_preset)}). "
            + ("Oversight, as the config says now (earlier sessions may have run under other "
               "settings): " + "; ".join(oversight) + "." if oversight else "") + "</p>")
    played: dict[str, int] = {}
    for n in record.nights:
        played[n.arm] = played.get(n.arm, 0) + 1
    figure = belief_figure(Figure, beliefs, "belief", played, c.forbidden_arms, c.pinned_arm)
    return head + text + f"<figure>{figure}</figure>"


@contextlib.contextmanager
def _matplotlib_folder(out: Path) -> Iterator[None]:
    """A private folder for matplotlib beside ``out`` while the report is made, removed after.

    On import matplotlib makes its settings folder and writes a font list (the computer's
    fonts, by name and path) in ``$MPLCONFIGDIR``, else ``~/.config`` and ``~/.cache``, else a
    folder of its own in /tmp. The report leaves only the file it was asked for, so matplotlib
    gets ``.<out>.mpl-*`` in the folder that file goes to (the font list is made again each time:
    a fraction of a second). A ``$MPLCONFIGDIR`` the user set, or a matplotlib already imported
    in this process, is left as it is."""
    if "matplotlib" in sys.modules or os.environ.get("MPLCONFIGDIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.mpl-", dir=out.parent) as folder:
        os.environ["MPLCONFIGDIR"] = folder
        try:
            yield
        finally:
            del os.environ["MPLCONFIGDIR"]


def _check_output(out: Path) -> None:
    """The report replaces a regular file or makes a new one, nothing else: written by rename,
    it would put a file in the place of a device (/dev/full, as root), a FIFO or a symbolic
    link. ReportError naming what is there."""
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ReportError(f"cannot write {out}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ReportError(f"cannot write {out}: it is a symbolic link; name the file itself or "
                          "a new file")
    if stat.S_ISDIR(st.st_mode):
        raise ReportError(f"cannot write {out}: it is a folder; name a file in it, e.g. "
                          f"{out / 'report.html'}")
    if not stat.S_ISREG(st.st_mode):
        raise ReportError(f"cannot write {out}: it is not a regular file (a device or a FIFO); "
                          "name a new file")
    if st.st_size and not _is_report(out):  # a slip of the tab key must not cost the records
        raise ReportError(f"cannot write {out}: a file that is not a calmtunes report is "
                          "there (the report replaces only an earlier report); name a new "
                          "file, e.g. report.html")


def _is_report(path: Path) -> bool:
    """Whether ``path`` starts as :func:`build_report`'s pages do."""
    try:
        with open(path, "rb") as f:
            return f.read(len(REPORT_HEAD)) == REPORT_HEAD
    except OSError:
        return False


def write_report(config: Config, state_dir: str | Path, out: str | Path, **kw: Any) -> int:
    """Write the report to ``out`` (0600: the group of whoever runs it is not the group that may
    read the records, so it is the writer's alone to pass on); its size in bytes. Nothing else
    is left anywhere (:func:`_matplotlib_folder`)."""
    from calmtunes.state import write_atomic

    out = Path(out)
    _check_output(out)
    with _matplotlib_folder(out):
        text = build_report(config, state_dir, **kw).encode("utf-8")
    write_atomic(out, text, 0o600)
    os.chmod(out, 0o600)
    return len(text)
