"""calmtunes.commands: every value that may reach the sound path is checked here."""

from __future__ import annotations

import logging
import math

import pytest

from calmtunes.commands import TokenBucket, check, checked_state, quote
from calmtunes.config import Config

CFG = Config()
M = CFG.music


@pytest.mark.parametrize("arg", ["nan", "inf", "-inf", "1e999", float("nan"), float("inf"),
                                 True, False, [1], {"db": 1}, "loud", None, "", 10**400,
                                 "0_0", "-1_2", "infinity", "\u0661\u0662", " ", "0x10"])
def test_a_volume_that_is_not_a_finite_real_number_is_refused(arg):
    c = check("volume", arg, CFG)
    assert not c.ok
    assert c.error.startswith("volume needs a finite number of dB, got ")


def test_a_volume_above_the_cap_is_refused_not_played_at_the_cap():
    c = check("volume", M.max_volume_db + 0.5, CFG)
    assert not c.ok and "music.max_volume_db" in c.error
    assert not check("volume", M.min_volume_db - 1, CFG).ok


@pytest.mark.parametrize("arg, db", [(-12, -12.0), (-12.5, -12.5), ("-3", -3.0), (0, 0.0),
                                     (" -6 ", -6.0), ("-1.5e1", -15.0), ("-.5", -0.5)])
def test_a_good_volume_comes_out_as_a_float(arg, db):
    c = check("volume", arg, CFG)
    assert c.ok and c.arg == db and isinstance(c.arg, float)


def test_an_unknown_preset_is_refused_with_a_suggestion():
    c = check("preset", "slep", CFG)
    assert not c.ok
    assert c.error == "no preset 'slep' (did you mean 'sleep'?) (have: calm, sleep, uplift)"
    assert check("preset", "sleep", CFG).ok
    assert not check("preset", 3, CFG).ok
    assert not check("preset", None, CFG).ok


def test_values_are_quoted_back_short():
    c = check("preset", "x" * 60000, CFG)
    assert not c.ok and len(c.error) < 120
    assert quote("y" * 100) == repr("y" * 100)[:39] + "…"
    assert len(check("x" * 5000, None, CFG).error) < 200


@pytest.mark.parametrize("arg", [-5, 1441, "soon", float("nan"), "1e999", True])
def test_sleep_timer_needs_0_to_1440_minutes(arg):
    assert not check("sleep_timer", arg, CFG).ok


def test_sleep_timer_default_and_cancel():
    assert check("sleep_timer", None, CFG).arg == CFG.panel.sleep_timer_min
    assert check("sleep_timer", 0, CFG).arg == 0.0
    assert check("sleep_timer", 1440, CFG).ok


def test_commands_without_arguments_refuse_one_and_unknown_ones_are_refused():
    assert check("play_pause", None, CFG).ok
    assert not check("play_pause", 1, CFG).ok
    assert check("privacy", True, CFG).ok and check("privacy", None, CFG).ok
    assert not check("privacy", "yes", CFG).ok
    c = check("volum", None, CFG)
    assert not c.ok and "(did you mean 'volume'?)" in c.error
    assert not check(None, None, CFG).ok and not check(["preset"], None, CFG).ok


@pytest.mark.parametrize("saved_db", [1e308, float("nan"), float("inf"), -math.inf, "loud",
                                      None, True, [1]])
def test_a_saved_volume_out_of_range_starts_at_the_first_start_volume_or_the_minimum(saved_db,
                                                                                      caplog):
    with caplog.at_level(logging.WARNING):
        state = checked_state({"volume_db": saved_db, "preset": "sleep", "playing": False,
                               "privacy": True}, CFG)
    assert state == {"volume_db": M.volume_db, "preset": "sleep", "playing": False,
                     "privacy": True, "manual": False}
    assert "saved volume" in caplog.text


def test_a_saved_volume_below_the_minimum_starts_at_the_minimum():
    assert checked_state({"volume_db": -100.0, "preset": "calm", "playing": True,
                          "privacy": False}, CFG)["volume_db"] == M.min_volume_db


def test_saved_preset_and_flags_of_the_wrong_kind_are_replaced(caplog):
    with caplog.at_level(logging.WARNING):
        state = checked_state({"volume_db": -9, "preset": "disco", "playing": "yes",
                               "privacy": 1}, CFG)
    assert state == {"volume_db": -9.0, "preset": "calm", "playing": True, "privacy": False,
                     "manual": False}
    assert "saved preset 'disco'" in caplog.text and "saved playing 'yes'" in caplog.text


def test_a_good_saved_state_is_kept_as_it_is():
    saved = {"volume_db": -12.0, "preset": "uplift", "playing": False, "privacy": False,
             "manual": True}
    assert checked_state(saved, CFG) == saved


def test_token_bucket_allows_a_burst_then_the_rate():
    now = [0.0]
    bucket = TokenBucket(rate=5.0, burst=10, clock=lambda: now[0])
    assert sum(bucket.take() for _ in range(50)) == 10
    now[0] += 1.0
    assert sum(bucket.take() for _ in range(50)) == 5
    now[0] += 100.0
    assert sum(bucket.take() for _ in range(50)) == 10
    assert bucket.refused == 40 + 45 + 40
