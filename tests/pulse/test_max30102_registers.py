"""Every register field converts physical units to codes and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calmtunes.pulse import max30102_registers as R
from calmtunes.pulse.max30102 import Settings

LISTED = [R.SAMPLE_RATE, R.PULSE_WIDTH, R.ADC_RANGE, R.AVERAGING, R.ROLLOVER_EN,
          R.ALMOST_FULL, R.MODE]


@pytest.mark.parametrize("f", LISTED, ids=lambda f: f.name)
def test_listed_fields_round_trip_every_code(f):
    for code in range(f.max_code + 1):
        value = f.decode(code << f.shift)
        assert f.decode(f.encode(0, value)) == value
        if value in f.values[:code] and code:
            continue  # an alias (SMP_AVE 5–7 all mean 32; unused MODE codes mean off)
        assert f.to_code(value) == code


def test_datasheet_codes():
    assert R.SAMPLE_RATE.encode(0, 100) == 0b000_001_00
    assert R.SAMPLE_RATE.encode(0, 3200) == 0b000_111_00
    assert R.PULSE_WIDTH.encode(0, 411) == 0b11
    assert R.ADC_RANGE.encode(0, 16384) == 0b0110_0000
    assert R.AVERAGING.encode(0, 4) == 0b010_00000
    assert R.ALMOST_FULL.encode(0, 17) == 0x0F  # 15 free slots left
    assert R.ALMOST_FULL.encode(0, 32) == 0x00
    assert R.MODE.encode(0, "spo2") == 0x03
    assert R.RED_CURRENT.encode(0, 7.2) == 0x24  # 0.2 mA per LSB
    assert R.IR_CURRENT.encode(0, 51.0) == 0xFF


def test_fields_leave_other_bits_alone():
    reg = 0b1000_0011
    assert R.SAMPLE_RATE.encode(reg, 400) == 0b1000_1111


@given(st.integers(0, 255))
def test_led_current_round_trip(code):
    ma = R.RED_CURRENT.from_code(code)
    assert R.RED_CURRENT.to_code(ma) == code
    assert ma == pytest.approx(code * 0.2)


def test_bad_values_name_the_field_and_the_choices():
    with pytest.raises(ValueError, match="sample_rate: 120 sps is not one of 50, 100"):
        R.SAMPLE_RATE.to_code(120)
    with pytest.raises(ValueError, match=r"red_current: 60.*0–51 mA"):
        R.RED_CURRENT.to_code(60.0)
    with pytest.raises(ValueError, match="too fast for a 411 µs pulse"):
        Settings(sample_rate=800).registers()


@pytest.mark.parametrize(("tint", "tfrac", "celsius"), [
    (0x00, 0x0, 0.0), (0x19, 0x4, 25.25), (0x7F, 0xF, 127.9375),
    (0xFF, 0x0, -1.0), (0x80, 0x0, -128.0), (0xF6, 0x8, -9.5),
])
def test_temperature_is_signed(tint, tfrac, celsius):
    assert R.decode_temperature(tint, tfrac) == celsius


def test_sample_decode_is_18_bits():
    assert R.decode_sample(0x03, 0xFF, 0xFF) == 262143
    assert R.decode_sample(0xFF, 0x00, 0x01) == (3 << 16) | 1  # bits 23:18 ignored
    assert R.decode_sample(0x01, 0x86, 0xA0) == 100_000


@given(
    st.sampled_from(R.SAMPLE_RATE.values[:4]),
    st.sampled_from(R.PULSE_WIDTH.values),
    st.sampled_from(R.ADC_RANGE.values),
    st.sampled_from((1, 2, 4, 8, 16, 32)),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(17, 32),
    st.booleans(),
)
def test_settings_round_trip_through_registers(sr, pw, rng, avg, red, ir, af, roll):
    s = Settings(sample_rate=sr, pulse_width_us=pw, adc_range_na=rng, averaging=avg,
                 red_ma=R.RED_CURRENT.from_code(red), ir_ma=R.IR_CURRENT.from_code(ir),
                 almost_full=af, rollover=roll)
    assert Settings.from_registers(s.registers()) == s
