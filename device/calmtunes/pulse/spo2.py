"""SpO2 from the red/IR ratio of ratios. NOT FOR CLINICAL USE.

R = (AC_red / DC_red) / (AC_ir / DC_ir), with AC the standard deviation of the pulse-band signal
and DC the mean raw level over the same window. Oxygenated haemoglobin absorbs less red light
(660 nm) and more infrared (880 nm) than reduced haemoglobin, so R falls as saturation rises.

Calibration: the quadratic from Maxim Integrated's MAXREFDES117 reference firmware
(``algorithm.cpp``): SpO2 = −45.060 R² + 30.354 R + 94.845 %. It was fitted for that reference
board, not for any particular enclosure, finger or LED current; absolute values can be several
percent off. It is meant to notice large trends, never to judge health. Outside 0.3 ≤ R ≤ 1.0
(≈ 100 % … 80 %) the fit is not trusted and None is returned.
"""

from __future__ import annotations

import numpy as np

from calmtunes.pulse import filters

CAL_A, CAL_B, CAL_C = -45.060, 30.354, 94.845
R_RANGE = (0.3, 1.0)


def ratio_of_ratios(red: np.ndarray, ir: np.ndarray, fs: float) -> float | None:
    """R for equally long raw red and IR windows (ADC counts), None when unmeasurable."""
    if len(red) != len(ir) or len(red) < 2 * fs:
        return None
    dc_r, dc_i = float(np.mean(red)), float(np.mean(ir))
    if dc_r <= 0 or dc_i <= 0:
        return None
    # both channels through the pulse band together (one filter call for the two rows)
    ac_r, ac_i = (float(a) for a in np.std(filters.pulse_band(np.stack((red - dc_r, ir - dc_i)),
                                                              fs), axis=1))
    if ac_r <= 0 or ac_i <= 0:
        return None
    return (ac_r / dc_r) / (ac_i / dc_i)


def spo2_percent(r: float | None) -> float | None:
    """SpO2 in % from R with the reference calibration above, None outside its range."""
    if r is None or not np.isfinite(r) or not R_RANGE[0] <= r <= R_RANGE[1]:
        return None
    return float(min(100.0, CAL_A * r * r + CAL_B * r + CAL_C))
