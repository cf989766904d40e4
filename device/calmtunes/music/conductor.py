"""The conductor: turns the preset, the listener's state and the room into musical controls.

This is the open-loop conductor: the preset's controls with the volume applied. The closed
loop (iso principle, breath pacing, scene influence) builds on it.
"""

from __future__ import annotations

import logging
import threading

from calmtunes.config import Config
from calmtunes.music.controls import Controls

log = logging.getLogger(__name__)


class Conductor:
    def __init__(self, config: Config, preset: str, volume_db: float) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.preset = preset if preset in config.music.presets else config.music.default_preset
        self.volume_db = volume_db
        self.playing = True

    def reconfigure(self, config: Config) -> None:
        with self._lock:
            self.config = config
            if self.preset not in config.music.presets:
                log.warning("preset %r is gone from the new config; switching to %r",
                            self.preset, config.music.default_preset)
                self.preset = config.music.default_preset

    def set_preset(self, name: str) -> bool:
        with self._lock:
            if name not in self.config.music.presets:
                log.warning("no preset named %r in the config (have: %s); ignored",
                            name, ", ".join(self.config.music.presets))
                return False
            changed = name != self.preset
            self.preset = name
            return changed

    def set_volume_db(self, db: float) -> float:
        m = self.config.music
        with self._lock:
            self.volume_db = max(m.min_volume_db, min(m.max_volume_db, float(db)))
            return self.volume_db

    def controls(self, now: float | None = None) -> Controls:
        with self._lock:
            preset = self.config.music.presets[self.preset]
            return Controls.from_preset(self.preset, preset, volume_db=self.volume_db,
                                        playing=self.playing)
