"""The errors calmtunes raises on purpose, each saying what is wrong and how to fix it."""

from __future__ import annotations

EX_CONFIG = 78  # sysexits.h: configuration error; systemd's RestartPreventExitStatus names it
EX_UNAVAILABLE = 69  # sysexits.h: a service the command needs is not there (e.g. no daemon)
EX_NOPERM = 77  # sysexits.h: not permitted (a socket this user may not open)


class CalmtunesError(Exception):
    """Base of every error calmtunes raises on purpose."""


# A ConfigError's message in UTF-8 bytes, whatever the file holds: with the command's own prefix
# ("calmtunes: configuration error in ") it stays under 2 KB, one screen and one journal entry.
CONFIG_MESSAGE_MAX_BYTES = 1900
_SOURCE_MAX_BYTES = 300
_PROBLEM_MAX_BYTES = 400


class ConfigError(CalmtunesError, ValueError):
    """The configuration has problems; ``problems`` lists each with its key path.

    The message is short whatever the file holds (at most :data:`CONFIG_MESSAGE_MAX_BYTES`): a
    long problem keeps its start and its end (where the fix is), and the problems beyond that
    are counted in a last line of ``problems``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        problems = list(problems)
        shown = _clip_middle(str(source), _SOURCE_MAX_BYTES)
        n = len(problems)
        header = f"{shown}: {n} problem{'s' if n != 1 else ''}:"
        budget = CONFIG_MESSAGE_MAX_BYTES - len(header.encode()) - 80  # 80: the "more" line
        self.problems: list[str] = []
        for i, problem in enumerate(problems):
            line = _clip_middle(str(problem), min(_PROBLEM_MAX_BYTES, max(budget - 5, 80)))
            budget -= len(line.encode()) + 5  # "\n  - "
            if budget < 0 and self.problems:
                self.problems.append(f"… and {n - i} more; fix these and run again")
                break
            self.problems.append(line)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{header}\n{lines}")


def _clip_middle(text: str, max_bytes: int) -> str:
    """``text`` in at most ``max_bytes`` of UTF-8, keeping its start and its end; characters
    that cannot be written (a file name's undecodable bytes) as escapes."""
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= max_bytes:
        return data.decode("utf-8")
    keep = max_bytes - len(" … ".encode())
    head = data[: keep * 2 // 3].decode("utf-8", "ignore")
    tail = data[len(data) - (keep - keep * 2 // 3):].decode("utf-8", "ignore")
    return f"{head} … {tail}"


class HardwareError(CalmtunesError, OSError):
    """A hardware part is absent or misbehaves; the message says what to check."""


class ModelError(CalmtunesError, RuntimeError):
    """The generator model is missing, corrupt or fails; the procedural composer takes over."""


class CameraError(HardwareError):
    """The camera is absent, unplugged or not delivering frames; the message says what to check."""
