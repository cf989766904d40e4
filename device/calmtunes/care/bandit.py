"""Thompson sampling over the arms, with a Gaussian belief that shares evidence between arms.

The reward of arm *a* on a night is modelled as ``x(a)·θ + noise``, noise ~ N(0, σ²) with σ =
``care.reward_sd``. ``x(a)`` has one entry for the listener's overall level (every arm), one for
the arm's preset, one for its variation (``slower``, ``no-bed``, ``no-pacing``; none for
``standard``) and one for the arm itself. So a night of ``sleep/slower`` also teaches something
about ``sleep`` and about ``slower`` in general, and twelve arms are learnt in a few nights.

The prior (Bayesian linear regression, conjugate with known σ): θ ~ N(μ₀, Σ₀), diagonal, with

- the overall level: mean 0, sd 5σ (we do not know how strongly this listener responds);
- each preset: mean 0, sd 2σ/√k, where k = ``care.prior_strength`` (a prior worth about k
  nights), except the configured default preset, whose mean is ``care.default_prior_reward``
  (presets are different music: they may differ most);
- each variation: mean −¼·``default_prior_reward``, sd σ/√k (a change from the preset as
  configured must earn its place); each arm's own term: mean 0, sd σ/(2√k).

So before any night the default arm (the default preset as configured) is expected to do best,
and the personaliser leaves it only for an arm the listener's nights show to be better.
The posterior after nights (X, y) is ``Σ = (Σ₀⁻¹ + XᵀX/σ²)⁻¹``, ``μ = Σ(Σ₀⁻¹μ₀ + Xᵀy/σ²)``.
Thompson sampling draws θ from it and plays the arm whose draw is highest: likelier-better arms are
played more often, uncertain ones now and then, and exploration fades as the evidence grows (Russo
et al., *A Tutorial on Thompson Sampling*, 2018, §6 for the linear-Gaussian case).

Human oversight: a pinned arm is always played (the belief still learns from its nights);
forbidden arms are never played. The random generator is injected (seeded in tests and studies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from calmtunes.care.arms import VARIATIONS, Arm, arms_for, parse_arm
from calmtunes.config import Config


@dataclass(frozen=True)
class Belief:
    """What the posterior says of one arm: reward mean and sd (reward units), nights played."""

    arm: str
    mean: float
    sd: float
    nights: int


def is_forbidden(arm: Arm, forbidden: Iterable[str]) -> bool:
    """A bare preset name forbids all its arms; ``preset/variation`` forbids that one."""
    forbidden = set(forbidden)
    return arm.preset in forbidden or arm.id in forbidden or (
        arm.variation == "standard" and f"{arm.preset}/standard" in forbidden)


#: share of ``default_prior_reward`` by which a variation starts behind its preset as configured
VARIATION_HEAD_START = 0.25


class Bandit:
    def __init__(self, arms: Sequence[Arm], default: Arm, *, prior_strength: float = 3.0,
                 default_prior_reward: float = 0.5, reward_sd: float = 1.0,
                 pinned: Arm | None = None, forbidden: Iterable[str] = (),
                 enabled: bool = True, rng: np.random.Generator | None = None) -> None:
        if not arms:
            raise ValueError("the bandit needs at least one arm")
        self.arms = tuple(arms)
        self.default = default
        self.enabled = enabled
        self.pinned = pinned
        self.forbidden = tuple(forbidden)
        self.chosen_by = "personaliser"  # who chose the last arm choose() gave (see there)
        self.reward_sd = float(reward_sd)
        self.rng = rng if rng is not None else np.random.default_rng()
        self._index = {a.id: i for i, a in enumerate(self.arms)}
        presets = list(dict.fromkeys(a.preset for a in self.arms))
        variations = [v for v in VARIATIONS if v != "standard"]
        self._presets = {p: 1 + i for i, p in enumerate(presets)}
        self._variations = {v: 1 + len(presets) + i for i, v in enumerate(variations)}
        self._arm0 = 1 + len(presets) + len(variations)
        n = self._arm0 + len(self.arms)
        s, k = self.reward_sd, float(prior_strength)
        sd = np.full(n, s / np.sqrt(k))
        sd[0] = 5.0 * s
        sd[1:1 + len(presets)] = 2.0 * s / np.sqrt(k)
        sd[self._arm0:] = s / (2.0 * np.sqrt(k))
        mu0 = np.zeros(n)
        if default.preset in self._presets:
            mu0[self._presets[default.preset]] = default_prior_reward
        for i in self._variations.values():
            mu0[i] = -VARIATION_HEAD_START * default_prior_reward
        self._precision = np.diag(1.0 / sd**2)  # Σ⁻¹, grows with each night
        self._b = self._precision @ mu0  # Σ⁻¹μ
        self._nights = np.zeros(len(self.arms), dtype=int)
        self._refresh()

    @classmethod
    def from_config(cls, config: Config, rng: np.random.Generator | None = None) -> Bandit:
        c = config.care
        pinned = parse_arm(c.pinned_arm) if c.pinned_arm else None
        return cls(arms_for(config), Arm(config.music.default_preset),
                   prior_strength=c.prior_strength, default_prior_reward=c.default_prior_reward,
                   reward_sd=c.reward_sd, pinned=pinned, forbidden=c.forbidden_arms,
                   enabled=c.enabled, rng=rng)

    def features(self, arm: Arm) -> np.ndarray:
        x = np.zeros(self._arm0 + len(self.arms))
        x[0] = 1.0
        x[self._presets[arm.preset]] = 1.0
        if arm.variation != "standard":
            x[self._variations[arm.variation]] = 1.0
        x[self._arm0 + self._index[arm.id]] = 1.0
        return x

    def _refresh(self) -> None:
        self._cov = np.linalg.inv(self._precision)
        self._cov = (self._cov + self._cov.T) / 2.0
        self._mean = self._cov @ self._b

    # -- learning -------------------------------------------------------------------------------
    def update(self, arm: Arm | str, reward: float) -> bool:
        """Learn from one night; False (nothing learnt) for an arm no longer offered."""
        arm = parse_arm(arm) if isinstance(arm, str) else arm
        if arm.id not in self._index:
            return False
        if not np.isfinite(reward):
            raise ValueError(f"reward {reward!r} is not a finite number")
        x = self.features(arm)
        self._precision += np.outer(x, x) / self.reward_sd**2
        self._b += x * float(reward) / self.reward_sd**2
        self._nights[self._index[arm.id]] += 1
        self._refresh()
        return True

    # -- choosing -------------------------------------------------------------------------------
    def allowed(self) -> list[Arm]:
        return [a for a in self.arms if not is_forbidden(a, self.forbidden)]

    def beliefs(self) -> list[Belief]:
        """The posterior reward of every arm, best mean first."""
        out = []
        for i, a in enumerate(self.arms):
            x = self.features(a)
            out.append(Belief(a.id, float(x @ self._mean), float(np.sqrt(x @ self._cov @ x)),
                              int(self._nights[i])))
        return sorted(out, key=lambda b: -b.mean)

    def choose(self) -> tuple[Arm, str]:
        """This session's arm and why it was chosen; :attr:`chosen_by` says who chose it: the
        clinician's pin, the config's default preset, or the personaliser."""
        if self.pinned is not None:
            self.chosen_by = "clinician pin"
            return self.pinned, f"pinned by the clinician (care.pinned_arm: {self.pinned.id})"
        self.chosen_by = "config"
        if not self.enabled:
            return self.default, "personaliser off (care.enabled: false): the default preset"
        allowed = self.allowed()
        if not allowed:
            return self.default, "every arm is forbidden: the default preset"
        self.chosen_by = "personaliser"
        theta = self.rng.multivariate_normal(self._mean, self._cov, method="cholesky")
        draws = [(float(self.features(a) @ theta), a) for a in allowed]
        draws.sort(key=lambda d: -d[0])
        draw, arm = draws[0]
        best = {b.arm: b for b in self.beliefs()}[arm.id]
        nights = int(self._nights.sum())
        return arm, (f"Thompson sample {draw:+.2f} (belief {best.mean:+.2f} ± {best.sd:.2f} "
                     f"reward units, {best.nights} of {nights} nights on this arm; "
                     f"{len(allowed)} arms allowed)")
