"""What a command to the sound path may be: the one place where outside values are checked.

Every value that can reach the music — a request on the control socket, a button, the saved
``state.json`` — passes through here before the conductor sees it:

- :func:`check` turns a raw ``(name, arg)`` into a :class:`Checked` command with a clean
  argument, or a refusal whose ``error`` says what is wrong and what would be accepted.
- :func:`checked_state` turns what ``state.json`` held into values the daemon may start with,
  replacing (and logging) anything out of range: a volume that is not a finite number or is
  above ``music.max_volume_db`` gives the first-start volume ``music.volume_db`` (a corrupt file
  must not start the music at the cap), one below ``music.min_volume_db`` that minimum.

The rules: a volume is a finite real number of dB (not a bool) within
``music.min_volume_db``–``music.max_volume_db`` (a louder one is refused, never played); a preset
is one of the configured ones (with "did you mean"); the sleep timer is 0–1440 minutes (0
cancels); privacy is a bool or nothing (toggle); the other commands take no argument
(:func:`no_argument`, which the socket's ``status`` and ``reload`` take too). Values are
quoted back at most :data:`QUOTE_CHARS` characters long, so no request can make a giant log line.

:class:`TokenBucket` is the rate limit the control socket applies to commands that change the
device's state (and so may start sessions).
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from calmtunes.care.arms import (
    allowed_presets,
    default_arm,
    personaliser_runs,
    preset_forbidden,
)
from calmtunes.config import Config

log = logging.getLogger(__name__)

QUOTE_CHARS = 40  # longest quote of a value in an error or log line, in characters
MAX_SLEEP_MIN = 24 * 60  # the sleep timer's longest setting, in minutes
NO_ARG = ("volume_up", "volume_down", "play_pause", "stop", "shutdown", "new_listener")
COMMANDS = ("preset", "volume", "sleep_timer", "privacy", "undo_volume", *NO_ARG)
#: ``undo_volume N``: the panel's, when a button turns out to be chattering: its last N volume
#: steps are taken back (1 ≤ N ≤ this), never making the music louder than it is
UNDO_VOLUME_MAX_STEPS = 200
# What a client of the control socket may ask for (stop, shutdown, privacy and new_listener are
# the panel's; over SSH a technician has `calmtunes listener new`).
AUTO = "auto"  # ``preset auto``: the personaliser chooses the session's arm (calmtunes.care)
SOCKET_COMMANDS = ("preset", "volume", "volume_up", "volume_down", "play_pause", "sleep_timer")


def quote(value: Any, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters with an ellipsis."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails is still no reason to fail here
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Checked:
    """A command after :func:`check`: ``ok`` with a clean ``arg``, or ``error`` saying why not."""

    name: str
    arg: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _number(value: Any) -> float | None:
    """A finite real number from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        # a plain decimal number only: float() also takes "0_0", "infinity" and digits of
        # every script, which nobody typing a volume means
        text = value.strip()
        if len(value) > QUOTE_CHARS or not _DECIMAL.fullmatch(text):
            return None
        value = float(text)
    if isinstance(value, int):  # Python ints are unbounded: 10**400 is not a float
        try:
            value = float(value)
        except OverflowError:
            return None
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def suggest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """" (did you mean 'x'?)" or ""."""
    close = difflib.get_close_matches(name[:QUOTE_CHARS], list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check(name: Any, arg: Any, config: Config) -> Checked:
    """Check one command against the config; never raises."""
    if not isinstance(name, str) or name not in COMMANDS:
        known = ", ".join(COMMANDS)
        hint = suggest(name, COMMANDS) if isinstance(name, str) else ""
        return Checked(str(name)[:QUOTE_CHARS], error=f"unknown command {quote(name)}{hint} "
                                                      f"(have: {known})")
    m = config.music
    if name == "preset":
        presets = list(m.presets)
        if arg == AUTO:  # let the personaliser choose (care.enabled, or a clinician's pin)
            if not personaliser_runs(config):
                return Checked(name, error="preset 'auto' needs the personaliser: set care.enabled "
                                           "true in the config (have: " + ", ".join(presets) + ")")
            return Checked(name, AUTO)
        if not isinstance(arg, str):
            return Checked(name, error=f"preset needs a name, got {quote(arg)} "
                                       f"(have: {', '.join(presets)})")
        if arg not in m.presets:
            return Checked(name, error=f"no preset {quote(arg)}{suggest(arg, presets)} "
                                       f"(have: {', '.join(presets)})")
        if preset_forbidden(config, arg):
            return Checked(name, error=f"preset {arg!r} is forbidden at this bedside by the "
                                       f"clinician (care.forbidden_arms); choose another: "
                                       f"{', '.join(allowed_presets(config)) or 'none'}")
        return Checked(name, arg)
    if name == "volume":
        db = _number(arg)
        if db is None:
            return Checked(name, error=f"volume needs a finite number of dB, got {quote(arg)}")
        if not m.min_volume_db <= db <= m.max_volume_db:
            return Checked(name, error=f"volume {db:g} dB is outside {m.min_volume_db:g}–"
                                       f"{m.max_volume_db:g} dB (music.min_volume_db–"
                                       f"music.max_volume_db)")
        return Checked(name, db)
    if name == "undo_volume":
        if isinstance(arg, bool) or not isinstance(arg, int) \
                or not 1 <= arg <= UNDO_VOLUME_MAX_STEPS:
            return Checked(name, error=f"undo_volume needs a whole number of steps, 1 to "
                                       f"{UNDO_VOLUME_MAX_STEPS}, got {quote(arg)}")
        return Checked(name, arg)
    if name == "sleep_timer":
        if arg is None:
            return Checked(name, float(config.panel.sleep_timer_min))
        minutes = _number(arg)
        if minutes is None or not 0 <= minutes <= MAX_SLEEP_MIN:
            return Checked(name, error=f"sleep timer needs 0–{MAX_SLEEP_MIN} minutes (0 cancels), "
                                       f"got {quote(arg)}")
        return Checked(name, minutes)
    if name == "privacy":
        if arg is not None and not isinstance(arg, bool):
            return Checked(name, error=f"privacy takes true, false or nothing (toggle), "
                                       f"got {quote(arg)}")
        return Checked(name, arg)
    return no_argument(name, arg)  # NO_ARG


def no_argument(name: str, arg: Any) -> Checked:
    """A command that takes no argument (the NO_ARG ones, the socket's ``status`` and
    ``reload``): refused with one."""
    if arg is not None:
        return Checked(name, error=f"{name} takes no argument, got {quote(arg)}")
    return Checked(name)


def checked_state(saved: dict[str, Any], config: Config) -> dict[str, Any]:
    """What ``state.json`` held, made safe to start from: volume finite and clamped to
    ``music.min_volume_db``–``max_volume_db``, preset one of the configured ones, flags bools.
    Each value replaced is logged with what it was."""
    m = config.music
    state = dict(saved)
    first = max(m.min_volume_db, min(m.max_volume_db, m.volume_db))  # the first-start volume
    raw = state.get("volume_db")
    db = None if isinstance(raw, str) else _number(raw)
    if db is None:
        log.warning("saved volume %s is not a finite number of dB; starting at %+.1f dB "
                    "(music.volume_db)", quote(raw), first)
        db = first
    elif db > m.max_volume_db:  # never louder than allowed, and not at the cap by accident
        log.warning("saved volume %+g dB is above music.max_volume_db %+g dB; starting at "
                    "%+.1f dB (music.volume_db)", db, m.max_volume_db, first)
        db = first
    elif db < m.min_volume_db:
        log.warning("saved volume %+g dB is below music.min_volume_db %+g dB; starting there",
                    db, m.min_volume_db)
        db = m.min_volume_db
    state["volume_db"] = db
    preset = state.get("preset")
    fallback = default_arm(config).preset  # music.default_preset unless a clinician forbade it
    if not isinstance(preset, str) or preset not in m.presets:
        log.warning("saved preset %s is not in the config; starting with %r (music.default_preset)",
                    quote(preset), fallback)
        state["preset"] = fallback
    elif preset_forbidden(config, preset):
        log.warning("saved preset %r is forbidden by care.forbidden_arms; starting with %r",
                    preset, fallback)
        state["preset"] = fallback
        state["manual"] = False  # a person's choice the clinician has since forbidden
    until = state.get("sleep_until", 0.0)
    if isinstance(until, str) or _number(until) is None:
        log.warning("saved sleep timer end %s is not a time; no sleep timer", quote(until))
        state["sleep_until"] = 0.0
    for key, default in (("playing", True), ("privacy", False), ("manual", False)):
        if key not in state:  # a state file from before the key existed
            state[key] = default
        elif not isinstance(state.get(key), bool):
            log.warning("saved %s %s is not true or false; taking %s", key, quote(state.get(key)),
                        default)
            state[key] = default
    return state


class TokenBucket:
    """At most ``rate`` actions per second on average, ``burst`` at once. Thread-safe."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()
        self.refused = 0

    def take(self) -> bool:
        """Spend one token; False (and nothing spent) when there is none."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self.refused += 1
            return False
