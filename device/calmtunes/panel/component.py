"""The panel component (placeholder until its backends land): reports itself unavailable."""

from __future__ import annotations

from calmtunes.component import Component
from calmtunes.config import Config
from calmtunes.hub import Hub


class UnavailablePanelComponent(Component):
    name = "panel"

    def step(self, now: float) -> float:
        self.disable("not available in this build")
        return 60.0


def make_component(config: Config, hub: Hub) -> Component:
    return UnavailablePanelComponent(config, hub)
