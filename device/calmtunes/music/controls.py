"""Musical controls: what the conductor asks of the composer and the renderer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

#: tempi the composers accept, bpm; the conductor keeps its plan inside them
TEMPO_RANGE = (40.0, 100.0)


@dataclass(frozen=True)
class Controls:
    preset: str = "calm"
    tempo_bpm: float = 66.0  # 50–90
    mode: str = "major"  # "major" | "minor"
    density: float = 0.45  # notes per beat, relative: 0 sparse – 1 busy
    register: float = 0.5  # 0 low – 1 high (melody centre)
    brightness: float = 0.5  # 0 dark/soft timbre – 1 bright
    bed_level: float = 0.35  # ambient bed level, 0–1
    breath_rate: float = 6.0  # paced breathing, breaths/min
    melodic: float = 1.0  # prominence of the foreground melody, 0–1 (visitors → lower)
    volume_db: float = -6.0  # relative to the loudness target; capped by config
    playing: bool = True

    def with_(self, **changes: Any) -> Controls:
        return replace(self, **changes)

    @classmethod
    def from_preset(cls, name: str, preset: dict[str, Any], **extra: Any) -> Controls:
        fields = {k: v for k, v in preset.items() if k in cls.__dataclass_fields__}
        return cls(preset=name, **fields, **extra)
