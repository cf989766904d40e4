from pathlib import Path

import pytest

from calmtunes import config
from calmtunes.errors import ConfigError

EXAMPLE = Path(config.__file__).with_name("config.example.yaml")


def problems(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(data)
    return info.value.problems


def test_defaults_are_valid_and_complete():
    cfg = config.parse({})
    assert cfg == config.Config()
    assert cfg.audio.sample_rate == 48000
    assert set(cfg.music.presets) >= {"calm", "sleep", "uplift"}


def test_example_file_matches_the_schema():
    # The example is generated from the schema; regenerate with:
    #   python -c "from calmtunes import config; print(config.example_yaml())" > ...
    assert EXAMPLE.read_text() == config.example_yaml()
    assert config.load(EXAMPLE) == config.Config()


def test_unknown_keys_get_a_suggestion():
    found = problems({"audio": {"devise": "hifiberry"}, "musik": {}})
    assert "audio.devise: unknown option (did you mean 'device'?)" in found
    assert "musik: unknown section (did you mean 'music'?)" in found


def test_every_problem_is_reported_at_once():
    found = problems({
        "audio": {"sample_rate": 12345, "buffer_ms": 5, "realtime": "yes"},
        "pulse": {"i2c_bus": "one"},
        "music": {"volume_db": 20},
    })
    assert len(found) == 5, found
    assert any(p.startswith("audio.sample_rate: 12345 is not one of") for p in found)
    assert "audio.buffer_ms: 5.0 is below the minimum 60.0" in found
    assert "audio.realtime: expected true/false, got 'yes'" in found
    assert "pulse.i2c_bus: expected an integer, got 'one'" in found
    assert "music.volume_db: 20.0 is above the maximum 6.0" in found


def test_bool_is_not_a_number_and_ints_widen_to_float():
    found = problems({"pulse": {"i2c_bus": True}})
    assert found == ["pulse.i2c_bus: expected an integer, got True"]
    assert config.parse({"audio": {"block_ms": 10}}).audio.block_ms == 10.0


def test_nan_is_refused_with_the_range_a_number_may_take():
    found = problems({"music": {"volume_db": float("nan")}, "audio": {"block_ms": float("nan")}})
    assert "music.volume_db: expected a number from -40.0 to 6.0, got NaN" in found
    assert any(p.startswith("audio.block_ms: expected a number ") and p.endswith("got NaN")
               for p in found)


def test_presets_are_checked_inside():
    found = problems({"music": {"presets": {"night": {"tempo_bpm": 200, "mode": "dorian",
                                                      "tempo": 1}},
                                "default_preset": "nite"}})
    assert "music.presets.night.tempo_bpm: 200.0 is above the maximum 90.0" in found
    assert any("music.presets.night.mode: 'dorian' is not one of" in p for p in found)
    assert "music.presets.night.tempo: unknown option (did you mean 'tempo_bpm'?)" in found
    assert "music.default_preset: no preset named 'nite' (did you mean 'night'?)" in found


def test_pins_must_not_collide_or_take_bus_pins():
    found = problems({"panel": {"buttons": {"calm": 2, "sleep": 6}, "leds": {"calm": 6}}})
    assert "panel.buttons.calm: GPIO2 is taken by I2C SDA; choose another pin" in found
    assert "panel.leds.calm: GPIO6 is already used by panel.buttons.sleep" in found


def test_broken_yaml_names_the_line(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("audio:\n  device: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        config.load(bad)
    assert "line 3" in str(info.value) or "line 2" in str(info.value)
    assert "not valid YAML" in str(info.value)


def test_words_yaml_reads_as_null_or_false_say_to_quote_them(tmp_path):
    # a technician's natural spelling: YAML 1.1 turns these words into None and False
    bad = tmp_path / "c.yaml"
    bad.write_text("audio:\n  backend: null\nsound:\n  entrainment: off\n  bed: surf\n"
                   "device:\n  log_level: yes\n")
    with pytest.raises(ConfigError) as info:
        config.load(bad)
    got = sorted(info.value.problems)
    assert got[0].startswith("audio.backend: expected text, got None; ")
    assert got[0].endswith("write the text in quotes, e.g. 'null'")
    assert got[1].startswith("device.log_level: expected text, got True; ")
    assert got[1].endswith("(one of 'debug', 'info', 'warning', 'error')")
    assert got[2].endswith("write the text in quotes, e.g. 'off'")
    # written as the hint says, the same file loads
    bad.write_text("audio:\n  backend: 'null'\nsound:\n  entrainment: 'off'\n")
    cfg = config.load(bad)
    assert (cfg.audio.backend, cfg.sound.entrainment) == ("null", "off")
    # a number given nothing is not told to quote anything
    assert problems({"audio": {"sample_rate": None}}) == [
        "audio.sample_rate: expected an integer, got None"]


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=r"copy config\.example\.yaml"):
        config.load(tmp_path / "nope.yaml")


def test_top_level_must_be_a_mapping():
    assert problems([1, 2]) == ["the top level must be a mapping of sections, got [1, 2]"]


def test_replace_validates():
    cfg = config.Config().replace(audio={"backend": "wav"})
    assert cfg.audio.backend == "wav"
    with pytest.raises(ConfigError):
        config.Config().replace(audio={"backend": "cassette"})
