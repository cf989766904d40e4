"""Simulated listeners with hidden preferences, for studying the personaliser.

A :class:`Profile` says how much a listener likes each preset (its *affinity*, 0 – 1) and how
each variation of a preset changes that (``slower``, ``no-bed``; ``no-pacing`` takes the
pacing away, so breathing is barely led). Each night, :func:`night_model` turns the profile and
the arm played into a :class:`~calmtunes.sim.listener.ListenerModel` for the session:

- the listener starts stressed, differently each night: heart rate ~ N(86, 5) bpm, breathing
  ~ N(16, 1.5) breaths/min, stress uniform in 0.65 – 0.95;
- the affinity of the night is the profile's plus N(0, ``night_sd``) (some nights nothing works
  as well), clipped to 0 – 1;
- music the listener likes lowers the stress it settles to (``stress_floor`` 0.45 − 0.4·a),
  lets it fall sooner (``tau_stress_s`` 600 − 300·a s) and is followed more closely by heart and
  breathing (``k_hr`` 0.15 + 0.25·a; ``k_br`` 0.15 + 0.45·a with pacing, 0.03 without);
- now and then the finger slips (probability 0.3 per night, 20–120 s), and one night in
  twenty the sensor is off for most of the session (the reward gate must notice).

The preferences are *hidden*: the personaliser sees only the readings. The measurement noise is
that of :meth:`SimulatedListener.reading` (heart rate ± 1 bpm, breathing ± 0.6/min, RMSSD ± 3 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calmtunes.care.arms import Arm
from calmtunes.sim.listener import ListenerModel


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    affinity: dict[str, float]  # preset -> 0–1 (a preset not named: 0.3)
    variation: dict[str, float] = field(default_factory=dict)  # variation -> affinity change
    night_sd: float = 0.12  # night-to-night spread of the affinity
    hr_rest: float = 60.0  # bpm


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("prefers-sleep", "answers best to the sleep preset as it is: misses the bed and "
                "the pacing, finds it slower still too slow",
                {"sleep": 0.9, "calm": 0.45, "uplift": 0.15},
                {"slower": -0.25, "no-bed": -0.3, "no-pacing": -0.1}),
        Profile("prefers-calm", "answers best to the calm preset led a little slower",
                {"calm": 0.7, "sleep": 0.35, "uplift": 0.3},
                {"slower": 0.25, "no-bed": -0.1}),
        Profile("prefers-uplift", "a listener soothed by the brighter uplift preset without the "
                "bed", {"uplift": 0.7, "calm": 0.4, "sleep": 0.2},
                {"slower": -0.2, "no-bed": 0.25}),
    )
}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"no listener profile {name!r}; choose one of "
                         f"{', '.join(PROFILES)}") from None


def affinity(p: Profile, arm: Arm) -> float:
    """The profile's mean affinity for an arm (before the night's spread), 0–1."""
    return float(np.clip(p.affinity.get(arm.preset, 0.3) + p.variation.get(arm.variation, 0.0),
                         0.0, 1.0))


def night_model(p: Profile, arm: Arm, rng: np.random.Generator,
                duration_s: float = 900.0) -> ListenerModel:
    """The listener of one night hearing ``arm`` (see the module docstring)."""
    a = float(np.clip(affinity(p, arm) + rng.normal(0.0, p.night_sd), 0.0, 1.0))
    finger_off: tuple[tuple[float, float], ...] = ()
    if rng.uniform() < 0.05:
        finger_off = ((120.0, max(130.0, duration_s - 60.0)),)
    elif rng.uniform() < 0.3:
        start = float(rng.uniform(60.0, max(61.0, duration_s - 120.0)))
        finger_off = ((start, start + float(rng.uniform(20.0, 120.0))),)
    return ListenerModel(
        hr0=float(rng.normal(86.0, 5.0)),
        br0=float(rng.normal(16.0, 1.5)),
        stress0=float(rng.uniform(0.65, 0.95)),
        hr_rest=p.hr_rest,
        stress_floor=0.45 - 0.4 * a,
        k_hr=0.15 + 0.25 * a,
        k_br=(0.15 + 0.45 * a) if arm.breath_pacing else 0.03,
        tau_stress_s=600.0 - 300.0 * a,
        finger_off=finger_off,
    )
