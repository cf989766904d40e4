"""The per-frame measurements: luminance, colour temperature, motion, frame checks."""

from __future__ import annotations

import numpy as np
import pytest

from calmtunes.scene.features import (
    FrameError,
    MotionMeter,
    check_frame,
    check_not_black,
    colour_temperature,
    grey,
    mean_luminance,
    planck_xy,
)
from calmtunes.sim.camera import illuminant_rgb, srgb_encode


def grey_card(cct: float, level: float = 0.3, size=(240, 320)) -> np.ndarray:
    """A neutral grey card lit by a black body at ``cct`` K, as an 8-bit BGR frame."""
    rgb = illuminant_rgb(cct) * level
    bgr = (srgb_encode(rgb[::-1]) * 255 + 0.5).astype(np.uint8)
    return np.broadcast_to(bgr, (*size, 3)).copy()


def test_luminance_of_uniform_frames():
    assert mean_luminance(grey(np.zeros((240, 320, 3), np.uint8))) == 0.0
    assert mean_luminance(grey(np.full((240, 320, 3), 255, np.uint8))) == pytest.approx(1.0)
    half = np.full((240, 320, 3), 128, np.uint8)
    assert mean_luminance(grey(half)) == pytest.approx(128 / 255)


def test_luminance_weights_green_most():
    green = np.zeros((240, 320, 3), np.uint8)
    green[..., 1] = 255
    blue = np.zeros((240, 320, 3), np.uint8)
    blue[..., 0] = 255
    assert mean_luminance(grey(green)) == pytest.approx(0.587, abs=0.01)
    assert mean_luminance(grey(blue)) == pytest.approx(0.114, abs=0.01)


@pytest.mark.parametrize("cct", [2700, 3000, 4000, 5000, 6500, 9000])
def test_colour_temperature_of_a_grey_card_under_black_body_light(cct):
    # Forward: Kim et al.'s Planckian fit → sRGB; inverse: McCamy's cubic. Two independent
    # formulas agree within 3 % only if both conversions are right.
    estimate = colour_temperature(grey_card(cct))
    assert estimate == pytest.approx(cct, rel=0.03)


def test_colour_temperature_orders_warm_and_cool_light():
    assert colour_temperature(grey_card(2700)) < colour_temperature(grey_card(6500))


def test_colour_temperature_unknown_in_the_dark_or_under_coloured_light():
    assert colour_temperature(grey_card(4000, level=0.002)) is None  # too dark to say
    red = np.zeros((240, 320, 3), np.uint8)
    red[..., 2] = 200
    assert colour_temperature(red) is None  # far from any white light


def test_planck_xy_refuses_temperatures_outside_its_fit():
    assert planck_xy(6500) == pytest.approx((0.3135, 0.3237), abs=0.001)  # CIE 15 tables
    with pytest.raises(ValueError, match="outside"):
        planck_xy(1000)


def noisy(base: np.ndarray, rng, sd: float = 3.0) -> np.ndarray:
    return np.clip(base + rng.normal(0, sd, base.shape), 0, 255).astype(np.uint8)


def test_motion_is_zero_for_a_still_noisy_room_and_high_for_a_moving_block():
    rng = np.random.default_rng(1)
    room = np.full((240, 320), 120.0)
    meter = MotionMeter()
    assert meter.update(noisy(room, rng)) == 0.0  # nothing to compare with yet
    still = [meter.update(noisy(room, rng)) for _ in range(5)]
    assert max(still) < 0.005
    moved = room.copy()
    moved[60:180, 40:120] = 30.0  # a person-sized dark block appears
    assert meter.update(noisy(moved, rng)) > 0.08


def test_motion_ignores_a_lamp_switched_off():
    rng = np.random.default_rng(2)
    room = np.tile(np.linspace(60, 200, 320), (240, 1))
    meter = MotionMeter()
    meter.update(noisy(room, rng))
    assert meter.update(noisy(room * 0.4, rng)) < 0.01


def test_motion_reset_forgets_the_previous_frame():
    meter = MotionMeter()
    meter.update(np.zeros((240, 320), np.uint8))
    meter.reset()
    assert meter.update(np.full((240, 320), 255, np.uint8)) == 0.0


def test_check_frame_resizes_and_expands_grey():
    frame = check_frame(np.full((480, 640, 3), 90, np.uint8), 320, 240)
    assert frame.shape == (240, 320, 3)
    assert check_frame(np.full((240, 320), 90, np.uint8), 320, 240).shape == (240, 320, 3)


@pytest.mark.parametrize("bad, what", [
    (None, "NoneType"),
    (np.zeros((240, 320, 3), np.float32), "dtype float32"),
    (np.zeros(240 * 320, np.uint8), "shape"),
    (np.zeros((240, 320, 4), np.uint8), "shape"),
    (np.zeros((4, 4, 3), np.uint8), "shape"),
])
def test_check_frame_names_what_is_corrupt(bad, what):
    with pytest.raises(FrameError, match=what) as info:
        check_frame(bad, 320, 240)
    assert info.value.kind == "corrupt"


def test_black_frames_are_told_from_dark_rooms():
    with pytest.raises(FrameError, match="black") as info:
        check_not_black(np.zeros((240, 320), np.uint8))
    assert info.value.kind == "black"
    dark_room = noisy(np.full((240, 320), 4.0), np.random.default_rng(3), sd=2.0)
    check_not_black(dark_room)  # noise of a real sensor at high gain: a picture, if dark
