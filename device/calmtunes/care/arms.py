"""The vetted arms: what the personaliser may choose for a session.

An arm is one of the configured presets, played as it is or with one safe variation:

=============  ===================================================================================
``standard``   the preset as configured
``slower``     the preset's target tempo :data:`SLOWER_BPM` lower (clamped to the preset range
               50–90 bpm); the iso start (the music starts at the heart rate) is unchanged
``no-bed``     the ambient bed silent (``bed_level`` 0): melody and harmony only
``no-pacing``  no breath-pacing swell of the bed and pad (``sound.breath_pacing: false``)
=============  ===================================================================================

No variation touches loudness: :func:`apply_arm` keeps every volume option and
:func:`apply_to_controls` never returns a louder ``volume_db`` than it was given. An arm's id is
stable text (``"sleep"``, ``"sleep/slower"``), so a listener's record survives a restart and a
config reload; arms whose preset has left the config simply stop being offered.
"""

from __future__ import annotations

from dataclasses import dataclass

from calmtunes.config import ARM_VARIATIONS, PRESET_KEYS, Config
from calmtunes.music.controls import Controls

SLOWER_BPM = 4.0  # bpm taken off the preset's target tempo by the ``slower`` variation
VARIATIONS = ARM_VARIATIONS


@dataclass(frozen=True)
class Arm:
    """One vetted option: a preset and a variation of it."""

    preset: str
    variation: str = "standard"

    def __post_init__(self) -> None:
        if self.variation not in VARIATIONS:
            raise ValueError(f"arm variation {self.variation!r} is not one of "
                             f"{', '.join(VARIATIONS)}")
        if not self.preset or "/" in self.preset:
            raise ValueError(f"arm preset {self.preset!r} must be a preset name without '/'")

    @property
    def id(self) -> str:
        return self.preset if self.variation == "standard" else f"{self.preset}/{self.variation}"

    @property
    def tempo_offset_bpm(self) -> float:
        return -SLOWER_BPM if self.variation == "slower" else 0.0

    @property
    def bed(self) -> bool:
        return self.variation != "no-bed"

    @property
    def breath_pacing(self) -> bool:
        return self.variation != "no-pacing"

    def describe(self) -> str:
        words = {"standard": "as configured", "slower": f"{SLOWER_BPM:g} bpm slower target",
                 "no-bed": "without the ambient bed", "no-pacing": "without breath pacing"}
        return f"{self.preset} ({words[self.variation]})"


def parse_arm(arm_id: str) -> Arm:
    """The arm an id names (``"calm"``, ``"sleep/no-bed"``); ValueError naming the fix."""
    if not isinstance(arm_id, str) or not arm_id:
        raise ValueError(f"arm id {arm_id!r} is not text like 'sleep' or 'sleep/slower'")
    preset, _, variation = arm_id.partition("/")
    return Arm(preset, variation or "standard")


def arms_for(config: Config) -> tuple[Arm, ...]:
    """The arms of the configured presets and ``care.variations``, the default preset's first,
    in a stable order."""
    names = list(config.music.presets)
    default = config.music.default_preset
    if default in names:
        names.remove(default)
        names.insert(0, default)
    variations = [v for v in VARIATIONS if v in config.care.variations]
    arms = [Arm(p, v) for p in names for v in variations]
    pinned = config.care.pinned_arm
    if pinned and pinned.partition("/")[0] in config.music.presets:
        arm = parse_arm(pinned)
        if arm not in arms:  # a pinned variation not offered is still learnt from
            arms.append(arm)
    return tuple(arms)


def personaliser_runs(config: Config) -> bool:
    """Whether the personaliser runs: it is enabled, or a clinician pinned an arm (a pin holds
    with ``care.enabled: false`` too)."""
    return config.care.enabled or bool(config.care.pinned_arm)


def preset_forbidden(config: Config, preset: str) -> bool:
    """Whether ``care.forbidden_arms`` forbids ``preset`` as configured (its bare name, or
    ``preset/standard``): what a person's choice of the preset would play."""
    forbidden = config.care.forbidden_arms
    return preset in forbidden or f"{preset}/standard" in forbidden


def allowed_presets(config: Config) -> list[str]:
    """The presets a person may choose (those not forbidden), the default preset first."""
    names = [p for p in config.music.presets if not preset_forbidden(config, p)]
    default = config.music.default_preset
    return sorted(names, key=lambda p: p != default)


def default_arm(config: Config) -> Arm:
    """What plays when nothing else is chosen: the default preset, or, where a clinician
    forbade it, the first preset that is not forbidden."""
    allowed = allowed_presets(config)
    return Arm(allowed[0] if allowed else config.music.default_preset)


def apply_arm(config: Config, arm: Arm) -> Config:
    """The config a session on ``arm`` plays with; volume options are never changed."""
    presets = config.music.presets
    if arm.preset not in presets:
        raise ValueError(f"arm {arm.id!r}: no preset {arm.preset!r} in music.presets "
                         f"(have: {', '.join(presets)})")
    preset = dict(presets[arm.preset])
    lo, hi = PRESET_KEYS["tempo_bpm"][1:]
    preset["tempo_bpm"] = min(hi, max(lo, float(preset["tempo_bpm"]) + arm.tempo_offset_bpm))
    if not arm.bed:
        preset["bed_level"] = 0.0
    sound = {} if arm.breath_pacing else {"breath_pacing": False}
    out = config.replace(music={"presets": {**presets, arm.preset: preset},
                                "default_preset": arm.preset}, sound=sound)
    m0, m1 = config.music, out.music
    assert (m1.volume_db, m1.max_volume_db, m1.min_volume_db) == \
        (m0.volume_db, m0.max_volume_db, m0.min_volume_db), "an arm changed the volume"
    return out


def apply_to_controls(controls: Controls, arm: Arm) -> Controls:
    """``controls`` with the arm's sound variation (bed off); the tempo offset lives in the
    preset (:func:`apply_arm`), breath pacing in the sound config. Never louder."""
    out = controls if arm.bed else controls.with_(bed_level=0.0)
    return out if out.volume_db <= controls.volume_db else out.with_(volume_db=controls.volume_db)
