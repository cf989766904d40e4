"""The closed loop in simulation: an emulated finger whose body answers the music.

:func:`sim_scenario` turns ``sim.scenario`` into the physiology scenario the emulated MAX30102
watches. A name from :data:`calmtunes.sim.listener.SCENARIOS` gives a
:class:`~calmtunes.sim.listener.SimulatedListener` as the heart/breathing trajectory, hearing
the controls the conductor publishes on the hub (tempo, breath pacing; nothing while paused),
with its finger-off spans; the optics (perfusion, skin, SpO2) come from the physiology scenario
of the same name, or ``rest``. Any other name is a physiology scenario played open-loop.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from calmtunes.sim import physiology
from calmtunes.sim.listener import SCENARIOS as LISTENERS
from calmtunes.sim.listener import MusicInput, SimulatedListener


def finger_spans(off: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """The complement of the finger-off spans: when the finger is on the sensor."""
    spans, start = [], -math.inf
    for a, b in sorted(off):
        if a > start:
            spans.append((start, a))
        start = max(start, b)
    spans.append((start, math.inf))
    return tuple(spans)


def music_from_hub(hub: Any):
    """``t -> MusicInput | None`` from the hub's latest published controls."""

    def music(_t: float) -> MusicInput | None:
        controls = hub.latest("controls") if hub is not None else None
        if controls is None or not getattr(controls, "playing", True):
            return None
        return MusicInput(controls.tempo_bpm, controls.breath_rate)

    return music


def sim_scenario(name: str, seed: int, hub: Any = None) -> physiology.Scenario | str:
    """The physiology scenario for ``sim.scenario`` (closed-loop where the name allows)."""
    if name not in LISTENERS:
        return physiology.scenario(name)  # raises a clear error for an unknown name
    listener = SimulatedListener(name, seed=seed, music=music_from_hub(hub))
    base = physiology.SCENARIOS.get(name, physiology.SCENARIOS["rest"])
    return dataclasses.replace(
        base,
        name=name,
        description=f"closed loop: {name} listener answering the music",
        trajectory=listener,
        finger=finger_spans(listener.model.finger_off),
    )
