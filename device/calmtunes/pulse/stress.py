"""A stress/relaxation index relative to the listener's own baseline.

During the first :attr:`StressIndex.baseline_s` seconds of reliable readings the index only
learns: the mean and standard deviation of heart rate (bpm), ln RMSSD (ln ms) and breathing rate
(breaths/min). Afterwards each reading is turned into standard scores against that baseline and
combined:

    z = ( 1.0 · (HR − HR₀)/s_HR  −  1.0 · (lnRMSSD − lnRMSSD₀)/s_lnRMSSD
          + 0.5 · (BR − BR₀)/s_BR ) / Σ weights of the figures present

Faster heart, lower vagal HRV and faster breathing all mean arousal; breathing weighs half
because it is also changed on purpose. The spreads are floored (2 bpm, 0.15 ln ms, 1 /min) so a
very steady baseline does not turn noise into alarm. The index is ``1 / (1 + e^(−z))``: 0.5 is
the listener's own baseline, towards 0 calmer, towards 1 more stressed, smoothed by an
exponential average with a 20 s time constant.

Uncertainty: each standard score has variance 1 within the baseline by construction, plus the
uncertainty of the baseline mean (1/n). The exponential average of independent readings would
divide that variance by (2 − a)/a (a = 1 − e^(−Δt/τ)), but consecutive readings share most of
their 10 s heart-rate window, so only every :data:`CORRELATION_S`-th reading is counted as new.
The result is carried through the logistic's slope s(1 − s). Missing figures leave their weight
out, which widens the uncertainty.
"""

from __future__ import annotations

import math

import numpy as np

WEIGHTS = {"hr": 1.0, "lnrmssd": -1.0, "br": 0.5}
FLOORS = {"hr": 2.0, "lnrmssd": 0.15, "br": 1.0}
#: readings closer than this share their data and are not independent, s
CORRELATION_S = 10.0


class StressIndex:
    def __init__(self, baseline_s: float = 180.0, tau_s: float = 20.0, min_baseline: int = 30):
        self.baseline_s = baseline_s
        self.tau_s = tau_s
        self.min_baseline = min_baseline
        self._t0: float | None = None
        self._base: dict[str, list[float]] = {k: [] for k in WEIGHTS}
        self._stats: dict[str, tuple[float, float, int]] | None = None
        self._z: float | None = None
        self._var: float | None = None  # variance of one reading's z
        self._a = 0.0  # last smoothing step
        self._last_t: float | None = None

    @property
    def learning(self) -> bool:
        return self._stats is None

    def reset(self) -> None:
        self.__init__(self.baseline_s, self.tau_s, self.min_baseline)  # type: ignore[misc]

    def update(
        self, t: float, hr: float | None, rmssd_ms: float | None, br: float | None
    ) -> tuple[float | None, float | None]:
        """Feed one reading (time in s); returns (index 0–1, its standard deviation) or Nones."""
        vals = {
            "hr": hr,
            "lnrmssd": math.log(rmssd_ms) if rmssd_ms and rmssd_ms > 0 else None,
            "br": br,
        }
        if self._stats is None:
            if hr is None:
                return None, None
            if self._t0 is None:
                self._t0 = t
            for k, v in vals.items():
                if v is not None:
                    self._base[k].append(v)
            if t - self._t0 < self.baseline_s or len(self._base["hr"]) < self.min_baseline:
                return None, None
            self._stats = {
                k: (float(np.mean(v)), max(float(np.std(v)), FLOORS[k]), len(v))
                for k, v in self._base.items()
                if len(v) >= self.min_baseline // 3
            }
            return None, None
        num = wsum = var = 0.0
        for k, v in vals.items():
            if v is None or k not in self._stats:
                continue
            mean, sd, n = self._stats[k]
            w = WEIGHTS[k]
            num += w * (v - mean) / sd
            wsum += abs(w)
            var += w * w * (1.0 + 1.0 / n)
        if wsum == 0:
            return self._current()
        z, zvar = num / wsum, var / (wsum * wsum)
        if self._z is None or self._last_t is None:
            self._z, self._a = z, 1.0
        else:
            self._a = 1.0 - math.exp(-max(0.0, t - self._last_t) / self.tau_s)
            self._z += self._a * (z - self._z)
        self._var = zvar
        self._last_t = t
        return self._current()

    def _current(self) -> tuple[float | None, float | None]:
        if self._z is None or self._var is None:
            return None, None
        s = 1.0 / (1.0 + math.exp(-self._z))
        a = self._a
        shrink = min(1.0, CORRELATION_S * a / (2.0 - a)) if a < 1.0 else 1.0
        return s, s * (1.0 - s) * math.sqrt(self._var * shrink)
