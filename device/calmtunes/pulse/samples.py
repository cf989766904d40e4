"""What the sensor driver hands the analyser: a block of timestamped samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampleBlock:
    t: np.ndarray  # float64, seconds on the monotonic clock, one per sample, increasing
    red: np.ndarray  # float64, raw ADC counts (18-bit, 0–262143)
    ir: np.ndarray  # float64, raw ADC counts (18-bit, 0–262143)
    lost: int = 0  # samples lost to FIFO overflow just before this block
    #: the driver's judgement whether a finger is on (:mod:`calmtunes.pulse.finger`); None for
    #: blocks made without a driver (recordings, synthetic tests)
    finger: bool | None = None

    def __len__(self) -> int:
        return len(self.t)
