"""The vetted arms: stable ids, what each variation changes, and never a louder sound."""

from __future__ import annotations

import pytest

from calmtunes.care.arms import (
    SLOWER_BPM,
    Arm,
    apply_arm,
    apply_to_controls,
    arms_for,
    default_arm,
    parse_arm,
)
from calmtunes.config import Config
from calmtunes.errors import ConfigError
from calmtunes.music.controls import Controls


def test_ids_are_stable_text_and_parse_back():
    cfg = Config().replace(care={"variations": ["standard", "slower", "no-bed", "no-pacing"]})
    arms = arms_for(cfg)
    assert [a.id for a in arms[:4]] == ["calm", "calm/slower", "calm/no-bed", "calm/no-pacing"]
    assert len(arms) == 12 and all(parse_arm(a.id) == a for a in arms)
    assert default_arm(cfg) == Arm("calm")
    assert [a.id for a in arms_for(Config())][:3] == ["calm", "calm/slower", "calm/no-bed"]


@pytest.mark.parametrize("bad", ["", "calm/louder", "a/b/c"])
def test_a_bad_id_is_refused_with_the_choices(bad):
    with pytest.raises(ValueError, match=r"standard|preset name|text"):
        parse_arm(bad)


def test_each_variation_changes_only_what_it_says():
    cfg = Config()
    slower = apply_arm(cfg, parse_arm("sleep/slower"))
    assert slower.music.presets["sleep"]["tempo_bpm"] == 60.0 - SLOWER_BPM
    assert slower.music.default_preset == "sleep"
    assert slower.music.presets["calm"] == cfg.music.presets["calm"]
    no_bed = apply_arm(cfg, parse_arm("calm/no-bed"))
    assert no_bed.music.presets["calm"]["bed_level"] == 0.0
    assert no_bed.sound.breath_pacing is True
    no_pacing = apply_arm(cfg, parse_arm("calm/no-pacing"))
    assert no_pacing.sound.breath_pacing is False
    assert no_pacing.music.presets["calm"] == cfg.music.presets["calm"]
    # the preset range holds: 50 bpm stays 50
    low = cfg.replace(music={"presets": {"calm": {"tempo_bpm": 51.0, "mode": "major"}}})
    assert apply_arm(low, parse_arm("calm/slower")).music.presets["calm"]["tempo_bpm"] == 50.0


def test_no_arm_ever_makes_it_louder():
    for volume, top in ((-6.0, 0.0), (-20.0, -10.0), (3.0, 6.0)):
        cfg = Config().replace(music={"volume_db": volume, "max_volume_db": top})
        cfg = cfg.replace(care={"variations": ["standard", "slower", "no-bed", "no-pacing"]})
        for arm in arms_for(cfg):
            m = apply_arm(cfg, arm).music
            assert (m.volume_db, m.max_volume_db, m.min_volume_db) == (
                volume, top, cfg.music.min_volume_db)
            c = Controls(volume_db=volume)
            assert apply_to_controls(c, arm).volume_db <= volume
    assert apply_to_controls(Controls(bed_level=0.4), Arm("calm", "no-bed")).bed_level == 0.0


def test_an_arm_of_a_preset_that_is_gone_says_so():
    with pytest.raises(ValueError, match="no preset 'focus'"):
        apply_arm(Config(), Arm("focus"))


@pytest.mark.parametrize("care, message", [
    ({"pinned_arm": "slep"}, "did you mean 'sleep'"),
    ({"pinned_arm": "sleep/louder"}, "no variation 'louder'"),
    ({"forbidden_arms": ["calm", 3]}, r"forbidden_arms\[1\]"),
    ({"forbidden_arms": "calm"}, "expected a list"),
    ({"pinned_arm": "sleep/slower", "forbidden_arms": ["sleep"]}, "also in care.forbidden"),
    ({"forbidden_arms": ["calm", "sleep", "uplift"]}, "forbids every arm"),
    ({"variations": []}, "at least one"),
    ({"variations": ["standard", "faster"]}, r"variations\[1\]"),
    ({"prior_strength": 0.0}, "below the minimum"),
])
def test_the_care_section_is_checked(care, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(care=care)
