"""What the box shows when systemd gives up on the daemon, instead of silence and darkness.

``calmtunes.service`` names ``calmtunes-failed.service`` in ``OnFailure=``: when the unit fails for
good (the start limit hit after repeated watchdog kills or crashes, or exit 78 for a bad config;
on systemd 252, bookworm's, never while a restart is still to come, while 255 and later start it
between restarts too, until the next start stops it), systemd starts it with
``$MONITOR_SERVICE_RESULT``, ``$MONITOR_EXIT_CODE`` and ``$MONITOR_EXIT_STATUS`` saying why.
It runs ``calmtunes fault``, which

- writes :data:`FAULT_FILE` in the state folder (reason and time, mode 0640 so technicians in
  group calmtunes can read it): ``calmtunes status`` shows it when the daemon does not answer,
  and the daemon removes it once it is up again (READY=1);
- blinks every preset LED together in :data:`PATTERN`, two short blinks every four seconds, with
  the pulse and camera LEDs off, until it is stopped. A running daemon never lights more than
  one preset LED, so the pattern cannot be mistaken for music. Every start of calmtunes stops
  the fault service first (its ``ExecStartPre=``), which hands the pins back.

No sound: a chime from a box at the bedside in the night would wake the listener, which is worse
than silence, and the sound card may be what failed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calmtunes.state import read_small, write_atomic

log = logging.getLogger(__name__)

FAULT_FILE = "fault.json"
MAX_NOTE_BYTES = 64 * 1024  # a note is about 100 bytes; a larger file is not one
#: (preset LEDs lit, seconds): two short blinks, then dark; one cycle is 4 s.
PATTERN = ((True, 0.15), (False, 0.25), (True, 0.15), (False, 3.45))
#: systemd's service results ($MONITOR_SERVICE_RESULT) in words.
RESULTS = {
    "start-limit-hit": "restarted too often",
    "watchdog": "stopped responding (watchdog)",
    "oom-kill": "ran out of memory",
    "timeout": "did not start or stop in time",
    "core-dump": "crashed (core dump)",
    "signal": "was killed by a signal",
    "exit-code": "exited with an error",
    "resources": "could not be started (resources)",
}
RETRY = "`systemctl reset-failed calmtunes && systemctl start calmtunes` to try again"


def reason_for(result: str | None, exit_code: str | None, exit_status: str | None) -> str:
    """A technician's words for why systemd gave up, from the $MONITOR_* variables."""
    if exit_code == "exited" and exit_status == "78":
        return "configuration error (fix /etc/calmtunes/config.yaml; the journal lists each " \
               "problem)"
    if result in RESULTS:
        words = RESULTS[result]
        if result == "exit-code" and exit_status:
            words += f" (status {exit_status})"
        elif result in ("signal", "core-dump") and exit_status:
            words += f" ({exit_status})"
        return words
    return f"failed ({result or 'no reason given'})"


def fault_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / FAULT_FILE


def record_fault(state_dir: str | os.PathLike[str], reason: str, result: str | None,
                 now: float | None = None) -> dict:
    """Write the fault note; returns it."""
    # the reason comes from systemd's $MONITOR_* or the command line: kept to what a reader
    # takes (MAX_NOTE_BYTES) and to printable text, so `status` never shows escape sequences
    note = {"time": time.time() if now is None else now, "reason": printable(reason, MAX_REASON),
            "result": None if result is None else printable(result, 100)}
    write_atomic(fault_path(state_dir), (json.dumps(note) + "\n").encode(), mode=0o640)
    return note


MAX_REASON = 1000  # characters of a reason kept in the note


def printable(text: str, limit: int) -> str:
    """``text`` with control characters (escape sequences, newlines) shown as "?", at most
    ``limit`` characters ("…" marks a cut)."""
    clean = "".join(c if c.isprintable() else "?" for c in str(text))
    return clean if len(clean) <= limit else clean[:limit - 1] + "…"


def read_fault(state_dir: str | os.PathLike[str]) -> dict | None:
    """The fault note, or None when there is none (or it cannot be read: status goes on).

    Only a small regular file is read (a FIFO in its place never blocks ``calmtunes status``);
    a note whose time is no moment the clock can show, or whose reason is not text, is
    unreadable."""
    try:
        note = json.loads(read_small(fault_path(state_dir), MAX_NOTE_BYTES).decode("utf-8"))
        time.localtime(float(note["time"]))  # NaN, 1e400 or 1e20 would fail in format_fault
        if not isinstance(note["reason"], str):
            raise TypeError("the reason is not text")
        return note
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:
        log.debug("fault note in %s unreadable: %s", state_dir, exc)
        return None


def clear_fault(state_dir: str | os.PathLike[str]) -> None:
    """Remove the fault note (the daemon is up again)."""
    path = fault_path(state_dir)
    try:
        path.unlink()
        log.info("cleared the fault note of an earlier failure")
    except FileNotFoundError:
        pass
    except OSError as exc:
        if not os.path.lexists(path):  # a read-only disk says EROFS even for no file
            return
        log.warning("cannot remove the fault note %s (%s)", fault_path(state_dir), exc)


def format_fault(note: dict, now: float | None = None) -> str:
    t = float(note["time"])
    now = time.time() if now is None else now
    same_day = time.localtime(t)[:3] == time.localtime(now)[:3]
    when = time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", time.localtime(t))
    return (f"calmtunes failed at {when}: {printable(note['reason'], MAX_REASON)}; see "
            f"`journalctl -u calmtunes`; {RETRY}")


class FaultLights:
    """The preset LEDs blinking :data:`PATTERN` together; the other LEDs off."""

    def __init__(self, config: Any, pin_factory: Any = None) -> None:
        from calmtunes.hardware import import_gpiozero, mock_pin_factory, use_local_pins

        import_gpiozero()
        from gpiozero import LED  # late: only where there is a panel

        p = config.panel
        factory = pin_factory
        if factory is None and p.backend == "mock":
            factory = mock_pin_factory()  # the panel's own simulated pins
        elif factory is None:
            use_local_pins()
        presets = config.music.presets
        preset_leds = {str(v.get("led", k)) for k, v in presets.items()}
        self.blinking: dict[str, Any] = {}
        self.dark: dict[str, Any] = {}
        try:
            for role, pin in p.leds.items():
                led = LED(pin, pin_factory=factory)
                (self.blinking if role in preset_leds else self.dark)[role] = led
                led.off()
        except Exception:
            self.close()
            raise
        if not self.blinking:  # a panel without preset LEDs: use whatever LEDs there are
            self.blinking, self.dark = self.dark, {}

    def run(self, stop: threading.Event, cycles: int | None = None,
            wait: Callable[[float], bool] | None = None) -> None:
        """Blink until ``stop`` is set (or for ``cycles`` cycles)."""
        wait = wait or stop.wait
        n = 0
        while not stop.is_set() and (cycles is None or n < cycles):
            for lit, seconds in PATTERN:
                for led in self.blinking.values():
                    led.value = 1 if lit else 0
                if wait(seconds):
                    break
            n += 1
        for led in self.blinking.values():
            led.off()

    def close(self) -> None:
        for led in [*self.blinking.values(), *self.dark.values()]:
            try:
                led.close()
            except Exception as exc:
                log.debug("fault lights: closing %r: %s", led, exc)
