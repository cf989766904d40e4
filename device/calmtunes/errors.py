"""The errors calmtunes raises on purpose, each saying what is wrong and how to fix it."""

from __future__ import annotations

EX_CONFIG = 78  # sysexits.h: configuration error; systemd's RestartPreventExitStatus names it
EX_UNAVAILABLE = 69  # sysexits.h: a service the command needs is not there (e.g. no daemon)


class CalmtunesError(Exception):
    """Base of every error calmtunes raises on purpose."""


class ConfigError(CalmtunesError, ValueError):
    """The configuration has problems; ``problems`` lists each with its key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''}:\n{lines}")


class HardwareError(CalmtunesError, OSError):
    """A hardware part is absent or misbehaves; the message says what to check."""


class ModelError(CalmtunesError, RuntimeError):
    """The generator model is missing, corrupt or fails; the procedural composer takes over."""
