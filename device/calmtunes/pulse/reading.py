"""What pulse analysis publishes once a second on the hub's ``"pulse"`` topic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PulseReading:
    t: float  # monotonic time of the reading, in s
    finger: bool  # a finger is on the sensor
    quality: float  # signal quality index, 0 (useless) – 1 (clean)
    hr_bpm: float | None = None  # heart rate, beats per minute
    rmssd_ms: float | None = None  # HRV over the last 60 s, ms
    sdnn_ms: float | None = None  # HRV over the last 60 s, ms
    breathing_rate: float | None = None  # breaths per minute
    spo2: float | None = None  # %, from the ratio of ratios; NOT for clinical use
    # stress index relative to the listener's own baseline, 0 calm – 1 stressed
    stress: float | None = None
    stress_sd: float | None = None  # uncertainty of the stress index (one standard deviation)
    reason: str = ""  # why figures are None, for logs and status

    @property
    def reliable(self) -> bool:
        return self.finger and self.hr_bpm is not None
