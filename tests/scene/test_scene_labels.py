"""The scene label and its hysteresis."""

from __future__ import annotations

import pytest

from calmtunes.scene.labels import LabelTracker


def test_raw_labels_cover_light_and_activity():
    t = LabelTracker()
    assert t.raw(0.05, 0.0, 0) == "night"
    assert t.raw(0.20, 0.0, 0) == "dim"
    assert t.raw(0.50, 0.0, 0) == "quiet_day"
    assert t.raw(0.50, 0.20, 0) == "active"
    assert t.raw(0.50, 0.0, 2) == "active"  # a still visit is still a visit
    assert t.raw(0.50, 0.0, 1) == "quiet_day"
    assert t.raw(0.50, 0.0, None) == "quiet_day"


def test_first_frame_sets_the_label_at_once():
    t = LabelTracker(hold=3)
    assert t.update(0.05, 0.0, 0) == "night"


def test_a_new_label_needs_hold_frames_in_a_row():
    t = LabelTracker(hold=3)
    t.update(0.5, 0.0, 0)
    assert t.update(0.5, 0.3, 0) == "quiet_day"
    assert t.update(0.5, 0.3, 0) == "quiet_day"
    assert t.update(0.5, 0.3, 0) == "active"


def test_an_interrupted_candidate_starts_counting_again():
    t = LabelTracker(hold=3)
    t.update(0.5, 0.0, 0)
    for motion in (0.3, 0.3, 0.0, 0.3, 0.3):
        assert t.update(0.5, motion, 0) == "quiet_day"
    assert t.update(0.5, 0.3, 0) == "active"


def test_values_hovering_at_a_boundary_do_not_flicker():
    t = LabelTracker(hold=1)  # margins alone must hold it
    edge = t.thresholds.night_below
    t.update(edge - 0.01, 0.0, 0)
    assert t.label == "night"
    labels = {t.update(edge + d, 0.0, 0) for d in (0.01, -0.01, 0.02, -0.02, 0.01) * 4}
    assert labels == {"night"}
    assert t.update(edge + t.thresholds.light_margin + 0.01, 0.0, 0) == "dim"
    labels = {t.update(edge + d, 0.0, 0) for d in (0.01, -0.01, -0.02, 0.02) * 4}
    assert labels == {"dim"}


def test_active_leaves_only_when_motion_is_clearly_low():
    t = LabelTracker(hold=1)
    th = t.thresholds
    t.update(0.5, th.active_motion + 0.01, 0)
    assert t.label == "active"
    assert t.update(0.5, th.active_motion - 0.01, 0) == "active"  # inside the margin
    assert t.update(0.5, th.active_motion - th.motion_margin - 0.01, 0) == "quiet_day"


def test_reset_and_bad_hold():
    t = LabelTracker()
    t.update(0.5, 0.0, 0)
    t.reset()
    assert t.label is None
    with pytest.raises(ValueError, match="hold"):
        LabelTracker(hold=0)
