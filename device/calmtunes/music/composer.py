"""The composer interface: anything that writes the next phrase for given controls."""

from __future__ import annotations

from typing import Protocol

from calmtunes.music.controls import Controls
from calmtunes.music.events import Phrase


class Composer(Protocol):
    name: str

    def next_phrase(self, controls: Controls) -> Phrase:
        """Compose the phrase that follows the previous one, honouring ``controls``.

        Raises on failure; the music engine then falls back to the procedural composer."""
        ...
