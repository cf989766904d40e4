"""Whether a fingertip is on the sensor: one rule, in the sensor's physical units.

A fingertip over the MAX30102's window sends back a large share of the IR LED's light; an open
window (or one facing a dark room) sends back almost none. So the test is the IR photocurrent
returned per mA of LED current, in nA/mA, which does not move when the automatic LED control
changes the current: above :data:`ON_NA_PER_MA` a finger lands, below :data:`OFF_NA_PER_MA` it has
left (hysteresis between them). Ambient light reaching the photodiode (the chip's ALC overflow)
means nothing covers the window.

The driver judges every block it reads with the LED current it set and marks the block
(:attr:`SampleBlock.finger`); the analyser takes that mark. Blocks made without a driver (a
recording, a test's synthetic signal) carry no mark, and the analyser then applies this same rule
with the sensor's nominal settings (:data:`NOMINAL_RANGE_NA`, :data:`NOMINAL_LED_MA`).
"""

from __future__ import annotations

from calmtunes.pulse import max30102_registers as R

ON_NA_PER_MA = 40.0  # nA of IR photocurrent per mA of LED current: a finger has landed
OFF_NA_PER_MA = 25.0  # ... and below this it has left
NOMINAL_RANGE_NA = 4096  # pulse.adc_range_na's default (full scale of the 18-bit ADC)
NOMINAL_LED_MA = 7.0  # pulse.led_current_ma's default


def returned_na_per_ma(ir_counts: float, adc_range_na: float, led_ma: float) -> float:
    """IR photocurrent per mA of LED current, from a DC level in ADC counts."""
    return ir_counts * (adc_range_na / R.FULL_SCALE) / max(led_ma, 0.2)


class FingerDetector:
    def __init__(self) -> None:
        self.present = False

    def update(self, ir_counts: float, adc_range_na: float = NOMINAL_RANGE_NA,
               led_ma: float = NOMINAL_LED_MA, ambient_overflow: bool = False) -> bool:
        """Judge one block's IR DC level (median, ADC counts); whether a finger is on."""
        per_ma = returned_na_per_ma(ir_counts, adc_range_na, led_ma)
        if ambient_overflow:
            self.present = False  # ambient light reaches the window: nothing covers it
        elif per_ma > ON_NA_PER_MA:
            self.present = True
        elif per_ma < OFF_NA_PER_MA:
            self.present = False
        return self.present
