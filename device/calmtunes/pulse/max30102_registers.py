"""The MAX30102 register map as data: addresses, bit fields and their physical units.

Facts from the Maxim datasheet (19-7740), Table 1 "Register Maps and Descriptions". Each
:class:`Field` turns a value in physical units (sps, µs, nA, mA, samples) into its register code
and back; :func:`encode` and :func:`decode` are tested both ways for every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# -- register addresses --------------------------------------------------------------------------
INT_STATUS_1 = 0x00  # A_FULL[7] PPG_RDY[6] ALC_OVF[5] PWR_RDY[0]; cleared on read
INT_STATUS_2 = 0x01  # DIE_TEMP_RDY[1]; cleared on read
INT_ENABLE_1 = 0x02  # A_FULL_EN[7] PPG_RDY_EN[6] ALC_OVF_EN[5]
INT_ENABLE_2 = 0x03  # DIE_TEMP_RDY_EN[1]
FIFO_WR_PTR = 0x04  # [4:0] where the next sample will be written
OVF_COUNTER = 0x05  # [4:0] samples lost while the FIFO was full; saturates at 0x1F
FIFO_RD_PTR = 0x06  # [4:0] the next sample to be read
FIFO_DATA = 0x07  # reading it does not advance the register address; RD_PTR advances instead
FIFO_CONFIG = 0x08  # SMP_AVE[7:5] FIFO_ROLLOVER_EN[4] FIFO_A_FULL[3:0]
MODE_CONFIG = 0x09  # SHDN[7] RESET[6] MODE[2:0]
SPO2_CONFIG = 0x0A  # SPO2_ADC_RGE[6:5] SPO2_SR[4:2] LED_PW[1:0]
LED1_PA = 0x0C  # red LED current, 0.2 mA per LSB
LED2_PA = 0x0D  # IR LED current, 0.2 mA per LSB
MULTI_LED_1 = 0x11  # SLOT2[6:4] SLOT1[2:0]
MULTI_LED_2 = 0x12  # SLOT4[6:4] SLOT3[2:0]
DIE_TINT = 0x1F  # die temperature, integer °C, two's complement
DIE_TFRAC = 0x20  # [3:0] fraction in 0.0625 °C steps
DIE_TEMP_CONFIG = 0x21  # TEMP_EN[0], self-clearing when the conversion is done
REV_ID = 0xFE
PART_ID = 0xFF

PART_ID_VALUE = 0x15  # the MAX30102 (and MAX30101/30105) read 0x15 here
FIFO_DEPTH = 32  # samples
BYTES_PER_CHANNEL = 3  # 18-bit data, left-justified, bits 23:18 unused
FULL_SCALE = (1 << 18) - 1  # 262143 counts

# INT_STATUS_1 / INT_ENABLE_1 bits
A_FULL = 0x80
PPG_RDY = 0x40
ALC_OVF = 0x20
PWR_RDY = 0x01
DIE_TEMP_RDY = 0x02  # INT_STATUS_2 / INT_ENABLE_2
RESET = 0x40  # MODE_CONFIG
SHDN = 0x80  # MODE_CONFIG
TEMP_EN = 0x01  # DIE_TEMP_CONFIG
ROLLOVER = 0x10  # FIFO_CONFIG


@dataclass(frozen=True)
class Field:
    """A bit field: ``register`` and ``mask``; ``values`` lists the physical value of each code
    (code = index), or ``step`` gives a linear scale (value = code × step)."""

    name: str
    register: int
    mask: int
    unit: str
    values: tuple[Any, ...] | None = None
    step: float | None = None

    @property
    def shift(self) -> int:
        return (self.mask & -self.mask).bit_length() - 1

    @property
    def max_code(self) -> int:
        return self.mask >> self.shift

    def to_code(self, value: Any) -> int:
        if self.values is not None:
            if value not in self.values:
                shown = ", ".join(str(v) for v in dict.fromkeys(self.values))
                raise ValueError(f"{self.name}: {value!r} {self.unit} is not one of {shown}")
            return self.values.index(value)
        assert self.step is not None
        top = self.max_code * self.step
        if not 0.0 <= float(value) <= top + 1e-9:
            raise ValueError(f"{self.name}: {value!r} {self.unit} is outside 0–{top:g} {self.unit}")
        return round(float(value) / self.step)

    def from_code(self, code: int) -> Any:
        if not 0 <= code <= self.max_code:
            raise ValueError(f"{self.name}: code {code} does not fit in mask 0x{self.mask:02x}")
        if self.values is not None:
            return self.values[min(code, len(self.values) - 1)]
        assert self.step is not None
        return round(code * self.step, 6)

    def encode(self, register_value: int, value: Any) -> int:
        """``register_value`` with this field set to ``value`` (physical units)."""
        return (register_value & ~self.mask & 0xFF) | (self.to_code(value) << self.shift)

    def decode(self, register_value: int) -> Any:
        return self.from_code((register_value & self.mask) >> self.shift)


# SPO2_CONFIG: SPO2_SR codes 0–7 → 50…3200 samples per second
SAMPLE_RATE = Field("sample_rate", SPO2_CONFIG, 0x1C, "sps",
                    values=(50, 100, 200, 400, 800, 1000, 1600, 3200))
# LED_PW codes 0–3 → pulse width in µs; the ADC resolution follows (15–18 bits)
PULSE_WIDTH = Field("pulse_width", SPO2_CONFIG, 0x03, "µs", values=(69, 118, 215, 411))
RESOLUTION_BITS = {69: 15, 118: 16, 215: 17, 411: 18}
# SPO2_ADC_RGE codes 0–3 → ADC full scale in nA
ADC_RANGE = Field("adc_range", SPO2_CONFIG, 0x60, "nA", values=(2048, 4096, 8192, 16384))
# SMP_AVE codes 0–7 → samples averaged per FIFO sample (codes 5–7 all mean 32)
AVERAGING = Field("averaging", FIFO_CONFIG, 0xE0, "samples",
                  values=(1, 2, 4, 8, 16, 32, 32, 32))
ROLLOVER_EN = Field("rollover", FIFO_CONFIG, 0x10, "", values=(False, True))
# FIFO_A_FULL = free slots left when A_FULL fires: code 0 → 32 unread samples, 15 → 17
ALMOST_FULL = Field("almost_full", FIFO_CONFIG, 0x0F, "samples",
                    values=tuple(FIFO_DEPTH - c for c in range(16)))
MODE = Field("mode", MODE_CONFIG, 0x07, "",
             values=("off", "off", "hr", "spo2", "off", "off", "off", "multi"))
RED_CURRENT = Field("red_current", LED1_PA, 0xFF, "mA", step=0.2)  # 0x00 0 mA … 0xFF 51 mA
IR_CURRENT = Field("ir_current", LED2_PA, 0xFF, "mA", step=0.2)
TEMP_FRACTION_C = 0.0625  # DIE_TFRAC LSB, °C

# Sample rates the ADC can reach in SpO2 mode for each pulse width (datasheet Table 11).
MAX_SPO2_RATE = {69: 1600, 118: 1000, 215: 800, 411: 400}


def decode_temperature(tint: int, tfrac: int) -> float:
    """Die temperature in °C: TINT is a signed (two's complement) byte, TFRAC 0.0625 °C steps."""
    whole = tint - 256 if tint & 0x80 else tint
    return whole + (tfrac & 0x0F) * TEMP_FRACTION_C


def decode_sample(b0: int, b1: int, b2: int) -> int:
    """One channel's 18-bit value from its three FIFO bytes (MSB first, bits 23:18 unused)."""
    return ((b0 << 16) | (b1 << 8) | b2) & FULL_SCALE
