"""Hostile config files: each is one short ConfigError naming the file, the line and the fix.

Every case runs on both YAML parsers (libyaml's, and the pure-Python one a Pi without libyaml
falls back to); the command-line cases check exit status 78, no traceback and a small process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from calmtunes import cli, config, config_file
from calmtunes.errors import CONFIG_MESSAGE_MAX_BYTES, ConfigError

EXAMPLE = Path(config.__file__).with_name("config.example.yaml")
CLI_PREFIX = "calmtunes: configuration error in "
MESSAGE_LIMIT = 2048  # bytes the command may print for one bad config


def bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level an anchored list of ``width`` aliases to the last."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"audio:\n  device: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def presets_named(name: str) -> bytes:
    """A config with a preset of this (YAML) name beside calm."""
    return (f"music:\n  presets:\n    {name}: {{tempo_bpm: 60, mode: major}}\n"
            "    calm: {tempo_bpm: 66, mode: major}\n").encode()


# name: (file contents as bytes, or a function making the path; words the message must hold)
HOSTILE = {
    "latin1_byte": (b"# calm music, caf\xe9 style\naudio:\n  backend: null\n",
                    ["line 1, column 18", "byte offset 17", "0xe9", "save the file as UTF-8"]),
    "utf16_file": ("audio:\n  backend: null\n".encode("utf-16"),
                   ["UTF-16", "save the file as UTF-8"]),
    "nul_byte": (b"audio:\n  device: hifi\x00berry\n",
                 ["line 2, column 15", "U+0000", "delete it"]),
    "deep_flow_nesting": (b"audio: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
                          ["line 1", "nested more than 32 levels", "brackets"]),
    "deep_block_nesting": (b"music:\n  presets:\n    calm:\n      " + b"- " * 10_000 + b"x\n",
                           ["line 4", "nested more than 32 levels"]),
    "alias_bomb": (bomb().encode(), ["line 5", "more than 10000 values", "aliases"]),
    "wide_alias_bomb": (bomb(levels=3, width=4000).encode(), ["line 2", "aliases"]),
    "recursive_alias": (b"music:\n  presets: &p\n    calm: *p\n",
                        ["line 3", "inside the anchor it names", "remove it"]),
    "duplicate_key": (b"audio:\n  backend: null\n  buffer_ms: 200\n  backend: wav\n",
                      ["line 4", "'backend' appears twice", "first on line 2", "keep one"]),
    "duplicate_section": (b"audio:\n  backend: null\nmusic: {}\naudio:\n  backend: wav\n",
                          ["line 4", "'audio' appears twice", "first on line 1"]),
    "long_string": (b"audio:\n  device: " + b"x" * 500_000 + b"\n",
                    ["line 2", "a value of 500000 characters", "4096", "shorten it"]),
    "long_number": (b"music:\n  seed: " + b"9" * 5_000 + b"\n",
                    ["line 2", "a number of 5000 characters", "shorten it"]),
    "impossible_date": (b"audio:\n  device: 2024-13-45\n",
                        ["line 2", "month must be in 1..12", "quote it"]),
    "python_tag": (b"audio: !!python/object/apply:os.system [reboot]\n",
                   ["line 1", "explicit tag", "delete it"]),
    "list_as_key": (b"audio:\n  ? [backend]\n  : null\n", ["line 2", "a key must be a plain name"]),
    "two_documents": (b"audio: {}\n---\nmusic: {}\n", ["line 2", "not valid YAML", "another"]),
    "unclosed_quote": (b"audio:\n  device: 'hifi\n", ["line 3", "not valid YAML", "quotes"]),
    "many_problems": ("".join(f"section{i}: {{}}\n" for i in range(2_000)).encode(),
                      ["2000 problems", "more; fix these and run again"]),
    "huge_file": (lambda tmp: big_file(tmp / "huge.yaml", 100_000_000),
                  ["100.0 MB", "at most 1 MiB", "--config"]),
    "fifo": (lambda tmp: (os.mkfifo(tmp / "fifo.yaml"), tmp / "fifo.yaml")[1],
             ["FIFO", "not a regular file", "--config"]),
    "dev_zero": (lambda tmp: Path("/dev/zero"), ["character device", "--config"]),
    "directory": (lambda tmp: tmp, ["a directory", "--config"]),
    "missing": (lambda tmp: tmp / "nope.yaml", ["file not found", "config.example.yaml"]),
    "exponent_without_a_dot": (b"audio:\n  block_ms: 2e1\nmusic:\n  seed: 1e3\n",
                               ["audio.block_ms", "YAML reads 2e1 as text: write 20.0",
                                "music.seed", "write 1000"]),
    # preset names: each is typed in commands, sent over the socket and joined into arm ids
    "preset_named_by_a_number": (presets_named("1"),
                                 ["music.presets", "preset name 1", "read by YAML as int",
                                  'quote it ("1":)']),
    "preset_named_true": (presets_named("yes"),
                          ["music.presets", "read by YAML as bool", "quote it"]),
    "preset_named_null": (presets_named("~"),
                          ["music.presets", "preset name null", "read by YAML as null"]),
    "preset_name_with_a_slash": (presets_named("calm/2"),
                                 ["music.presets", "'calm/2'", "letters, digits, '-' or '_'"]),
    "preset_name_empty": (presets_named("''"),
                          ["music.presets", "preset name ''", "1\u201332 letters"]),
    "preset_named_auto": (presets_named("auto"),
                          ["music.presets", "'auto' is reserved", "personaliser"]),
}
CLI_CASES = ["latin1_byte", "deep_flow_nesting", "alias_bomb", "fifo", "dev_zero",
             "duplicate_key", "huge_file", "long_string"]


def big_file(path: Path, size: int) -> Path:
    """A config whose one value is a ``size``-byte string, written in 1 MB pieces."""
    with open(path, "wb") as f:
        f.write(b"audio:\n  device: ")
        piece = b"x" * 1_000_000
        for _ in range(size // len(piece)):
            f.write(piece)
        f.write(b"\n")
    return path


@pytest.fixture
def make(tmp_path):
    """Makes the hostile file of a name in HOSTILE; removes the big ones afterwards."""
    made = []

    def make(name: str) -> Path:
        contents = HOSTILE[name][0]
        if callable(contents):
            path = contents(tmp_path)
        else:
            path = tmp_path / f"{name}.yaml"
            path.write_bytes(contents)
        made.append(path)
        return path

    yield make
    for path in made:
        if path.is_file() and path.stat().st_size > 10_000_000:
            path.unlink()


@pytest.fixture(params=sorted(config_file.LOADERS))
def parser(request, monkeypatch):
    """Each test once per YAML parser this machine has."""
    monkeypatch.setattr(config_file, "LOADER", config_file.LOADERS[request.param])
    return request.param


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config.load(path)
    return CLI_PREFIX + str(info.value)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_one_short_config_error(name, make, parser):
    path = make(name)
    message = refusal(path)
    assert len(message.encode()) < MESSAGE_LIMIT, message[:300]
    assert str(path) in message
    for words in HOSTILE[name][1]:
        assert words in message, message


def test_unreadable_file_says_how_to_fix_it(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "c.yaml"
    path.write_text("audio: {}\n")
    path.chmod(0)
    assert "make it readable by the user that runs calmtunes" in refusal(path)


def test_the_example_and_plain_yaml_still_load(parser):
    assert config.load(EXAMPLE) == config.Config()


def test_a_utf8_byte_order_mark_and_non_ascii_text_are_fine(tmp_path, parser):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbf# Schlafzimmer, caf\xc3\xa9\naudio:\n  device: 'hifi\xc3\xa9'\n")
    assert config.load(path).audio.device == "hifié"


def test_anchors_within_the_limits_work_and_share_nothing(tmp_path, parser):
    path = tmp_path / "c.yaml"
    path.write_text(
        "music:\n"
        "  presets:\n"
        "    calm: &calm {tempo_bpm: 66, mode: major, density: 0.4, led: calm}\n"
        "    night:\n"
        "      <<: *calm\n"
        "      tempo_bpm: 58\n"
        "    copy: *calm\n"
    )
    presets = config.load(path).music.presets
    assert presets["night"] == {"tempo_bpm": 58.0, "mode": "major", "density": 0.4, "led": "calm"}
    presets["copy"]["mode"] = "minor"
    assert presets["calm"]["mode"] == "major", "an alias must not tie two presets together"


def test_a_file_at_the_size_limit_is_read_one_byte_more_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    filler = b"#" * (config_file.MAX_BYTES - len(b"audio: {}\n") - 1) + b"\n"
    path.write_bytes(filler + b"audio: {}\n")
    assert config.load(path) == config.Config()
    path.write_bytes(filler + b"audio: {}\n\n")
    assert "at most 1 MiB" in refusal(path)


def test_config_error_message_stays_short_whatever_it_holds():
    source = "/etc/" + "ü" * 5_000 + "/config.yaml"
    problems = [f"key{i}: " + "ß" * 3_000 + f" — fix number {i}" for i in range(200)]
    exc = ConfigError(source, problems)
    assert len(str(exc).encode()) <= CONFIG_MESSAGE_MAX_BYTES + 1
    assert str(exc).startswith("/etc/ü") and "200 problems" in str(exc)
    assert exc.problems[0].endswith("— fix number 0"), "a long problem keeps its end (the fix)"
    assert exc.problems[-1].endswith("more; fix these and run again")
    assert ConfigError("c.yaml", ["a", "b"]).problems == ["a", "b"]


# -- the command: exit status 78, one short message, no traceback, a small process ----------------
CALMTUNES = [sys.executable, "-m", "calmtunes"]
# Runs the command as its own child and writes that child's peak RSS (KiB) to $RSS_FILE. The
# command cannot be measured from here directly: a child forked from this (large) test process
# counts the pages it shares with it until exec, and Linux keeps that peak across exec.
MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
with open(os.environ["RSS_FILE"], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def run_cli(args: list[str], tmp_path: Path, timeout: float = 60.0):
    """Run the command; its exit status, stderr and peak RSS in bytes."""
    err, rss = tmp_path / "stderr.txt", tmp_path / "rss.txt"
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_RUNTIME_DIR=str(tmp_path / "run"), HOME=str(tmp_path), RSS_FILE=str(rss))
    env.pop("NOTIFY_SOCKET", None)
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", MEASURE, *CALMTUNES, *args],
                                stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                                start_new_session=True)
    try:
        code = proc.wait(timeout)  # a hang guard, not a measurement
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return code, err.read_bytes(), int(rss.read_text()) * 1024


@pytest.mark.parametrize("name", CLI_CASES)
def test_the_command_exits_78_with_one_short_message(name, make, tmp_path):
    path = make(name)
    code, stderr, peak = run_cli(["run", "--config", str(path)], tmp_path)
    text = stderr.decode()
    assert code == 78, text[-2000:]
    assert len(stderr) < MESSAGE_LIMIT, text[:500]
    assert "Traceback" not in text
    assert text.startswith(CLI_PREFIX + str(path))
    assert peak < 300 * 2**20, f"peak RSS {peak / 2**20:.0f} MB"


def test_other_commands_exit_78_too(make, tmp_path):
    path = make("alias_bomb")
    for args in (["render", "--minutes", "0.1", "--out", str(tmp_path / "r.wav")],
                 ["simulate", "--duration", "1"], ["sessions"]):
        code, stderr, _ = run_cli([*args, "--config", str(path)], tmp_path)
        assert code == 78 and b"Traceback" not in stderr, (args, stderr[-500:])


def test_a_fault_in_the_config_code_is_exit_78_not_a_traceback(tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("audio: {}\n")

    def broken(_path):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(config, "load", broken)
    assert cli.main(["render", "--minutes", "0.1", "--out", str(tmp_path / "r.wav"),
                     "--config", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.startswith(f"{CLI_PREFIX}{path}: 1 problem")
    assert "RecursionError: maximum recursion depth exceeded" in err
    assert "config.example.yaml" in err and "Traceback" not in err


def test_a_fault_elsewhere_is_not_hidden_as_a_config_error(monkeypatch):
    def broken(args):
        raise ZeroDivisionError("a bug in a command")

    monkeypatch.setattr(cli, "cmd_sessions", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(["sessions"])


def test_the_yaml_text_that_loads_is_plain_data(parser):
    data = config_file.parse_yaml("a: &x [1, {b: 2}]\nc: *x\n", "t")
    assert data == {"a": [1, {"b": 2}], "c": [1, {"b": 2}]}
    assert data["a"] is not data["c"] and data["a"][1] is not data["c"][1]


@pytest.mark.parametrize("name", ["deep-sleep", "Ruhe_2", "sérénité", "calm2", "x" * 32])
def test_preset_names_of_letters_digits_dash_and_underscore_load(tmp_path, name):
    path = tmp_path / "c.yaml"
    path.write_bytes(presets_named(name))
    assert name in config.load(path).music.presets


@pytest.mark.parametrize("text, named", [
    ("music:\n  v\u043elume_db: -12\n", "U+043E CYRILLIC SMALL LETTER O"),
    ("music:\n  volume\u200b_db: -12\n", "U+200B ZERO WIDTH SPACE"),
    ("music:\n\u00a0 volume_db: -12\n", "U+00A0 NO-BREAK SPACE"),
])
def test_a_key_with_lookalike_or_invisible_characters_names_them(tmp_path, text, named):
    """'music.vоlume_db: unknown option (did you mean 'volume_db'?)' contradicted itself: the
    names look the same. The character that differs is named."""
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert named in str(err.value) and "retype it" in str(err.value)


@pytest.mark.parametrize("text, said", [
    ("panel:\n  sleep_timer_min: 1:30\n", "'1:30' is read by YAML as the base 60 number 90"),
    ("panel:\n  sleep_timer_min: 010\n", "'010' is read by YAML as the octal number 8"),
    ("panel:\n  sleep_timer_min: 0x10\n", "'0x10' is read by YAML as the hexadecimal number 16"),
    ('audio:\n  wav_path: "a\\0b.wav"\n', "audio.wav_path: holds a NUL character"),
])
def test_values_yaml_reads_as_something_else_are_refused_with_what_it_made(tmp_path, text,
                                                                            said):
    """`sleep_timer_min: 1:30` was taken as 90 minutes (YAML 1.1's base 60), `010` as 8; a
    NUL in a path passed and the daemon then ran silent."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert said in str(err.value)
    path.write_text("panel:\n  sleep_timer_min: 15\n")
    assert config.load(path).panel.sleep_timer_min == 15


@pytest.mark.parametrize("text", ["music:\n", "music:\naudio:\n", "music: {}\n"])
def test_a_file_of_section_headers_only_has_no_settings(tmp_path, text):
    """A file cut down to `music:` passed the empty-file check and a reload took it as all
    defaults (10 LU louder where the running file set target_lufs -40)."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="no settings"):
        config.load(path, empty_ok=False)


def test_base_60_floats_are_refused_too(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("audio:\n  fade_in_s: 0:30.0\n")
    with pytest.raises(ConfigError, match="base 60 number 30"):
        config.load(path)


@pytest.mark.parametrize("key", ["state_dir", "runtime_dir"])
@pytest.mark.parametrize("folder", ["", ".", "state", "./run", "~/calmtunes"])
def test_a_relative_state_or_runtime_folder_is_refused(key, folder):
    # relative, the daemon would make the working directory its own (0750, records, socket):
    # "/" for a service, wherever a technician stood for a hand-started one
    with pytest.raises(ConfigError) as err:
        config.parse({"device": {key: folder}})
    text = str(err.value)
    assert f"device.{key}" in text and "not an absolute path" in text


@pytest.mark.parametrize(("pin", "said"), [(19, "taken by I2S LRCK"), (2, "taken by I2C SDA"),
                                           (16, "already used by panel.buttons.volume_up"),
                                           (23, "already used by panel.leds.pulse")])
def test_the_pulse_sensors_int_pin_needs_a_gpio_of_its_own(pin, said):
    with pytest.raises(ConfigError) as err:
        config.parse({"pulse": {"int_pin": pin}})
    assert f"pulse.int_pin: GPIO{pin} is {said}" in str(err.value)
    assert config.parse({"pulse": {"int_pin": 4}}).pulse.int_pin == 4
