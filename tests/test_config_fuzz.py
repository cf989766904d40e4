"""Property: whatever bytes the config file holds, ``config.load`` returns a Config or raises one
short ConfigError; never another exception, in bounded time and memory.

Inputs: random bytes, random YAML punctuation, and the example config mutated the way files go
wrong (flipped bytes, anchors and aliases, alias bombs, duplicated lines, deeper nesting,
foreign text, truncation). ``CALMTUNES_CONFIG_FUZZ_EXAMPLES`` sets the number of cases (200 in
the suite; the closing figures come from a run of 5 000).
"""

from __future__ import annotations

import os
import resource
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from calmtunes import config, config_file
from calmtunes.errors import ConfigError

EXAMPLE = Path(config.__file__).with_name("config.example.yaml").read_bytes()
EXAMPLES = int(os.environ.get("CALMTUNES_CONFIG_FUZZ_EXAMPLES", "200"))
MESSAGE_LIMIT = 2048 - len("calmtunes: configuration error in ")
RSS_GROWTH_LIMIT = 100 * 2**20  # bytes; the alias bomb alone took 2 GB before the limits

YAML_BITS = [b"&a ", b"*a", b"&b ", b"*b", b"<<: *a", b"[", b"]", b"{", b"}", b"- ", b": ",
             b"? ", b"!!str ", b"!!python/name:os.system ", b"---\n", b"...\n", b"'", b'"',
             b"#", b"|\n", b">\n", b"\t", b"\x00", b"\xe9", b"\xff\xfe", b"\xef\xbb\xbf",
             b"0x_", b"._", b"2024-13-45", b"1e400", b".nan", b"-.inf", b"~", b"yes",
             b"%YAML 1.1\n"]


@st.composite
def mutated_example(draw) -> bytes:
    lines = EXAMPLE.split(b"\n")
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "bit", "dup", "delete", "deepen", "dash", "anchor",
                                   "bomb", "text", "truncate"]))
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if op == "flip" and line:
            at = draw(st.integers(0, len(line) - 1))
            lines[i] = line[:at] + bytes([draw(st.integers(0, 255))]) + line[at + 1:]
        elif op == "bit":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.sampled_from(YAML_BITS)) + line[at:]
        elif op == "dup":
            lines.insert(draw(st.integers(0, len(lines))), line)
        elif op == "delete":
            del lines[i: i + draw(st.integers(1, 20))]
            lines = lines or [b""]
        elif op == "deepen":
            depth = draw(st.sampled_from([2, 33, 100, 5_000]))
            lines[i] = b"  " * draw(st.integers(0, 4)) + b"k: " + b"[" * depth + b"]" * depth
        elif op == "dash":
            lines[i] = b" " * draw(st.integers(0, 6)) + b"- " * draw(st.integers(1, 200)) + line
        elif op == "anchor":
            name = draw(st.sampled_from([b"a", b"b", b"c"]))
            mark = b"&" if draw(st.booleans()) else b"*"
            lines[i] = line.replace(b": ", b": " + mark + name + b" ", 1)
        elif op == "bomb":
            levels, width = draw(st.integers(2, 9)), draw(st.integers(2, 12))
            bomb = [b"z0: &z0 [x, x, x]"] + [
                f"z{k}: &z{k} [".encode() + b", ".join([f"*z{k - 1}".encode()] * width) + b"]"
                for k in range(1, levels)]
            lines[i:i] = bomb
            lines.insert(draw(st.integers(0, len(lines))), f"  x: *z{levels - 1}".encode())
        elif op == "text":
            lines[i] = draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
        elif op == "truncate":
            lines = lines[: i + 1]
            lines[-1] = line[: draw(st.integers(0, len(line)))]
    return b"\n".join(lines)


config_bytes = st.one_of(
    st.binary(max_size=2_000),
    st.lists(st.sampled_from([*YAML_BITS, b"a", b"1", b"\n", b"  ", b"audio", b"music"]),
             max_size=200).map(b"".join),
    mutated_example(),
)


@pytest.fixture(scope="module")
def case_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "config.yaml"


@pytest.fixture(scope="module")
def rss_growth():
    """Peak RSS growth over every case of the module, in bytes (ru_maxrss is in KiB on Linux):
    the process's high-water mark moves only if some case needed more than all that ran before."""
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) * 1024
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth / 2**20:.0f} MB while fuzzing"


def load_once(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        result = config.load(path)
        assert isinstance(result, config.Config)
        event("loaded")
    except ConfigError as exc:
        event("refused")
        message = str(exc)
        assert len(message.encode()) < MESSAGE_LIMIT, message[:300]
        assert message.startswith(str(path))


# A deadline, not a timed assertion: each case must finish within it (a hang or a runaway parse
# fails), with room for a slow, shared machine.
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(data=config_bytes)
def test_any_bytes_give_a_config_or_one_short_config_error(data, case_file, rss_growth):
    load_once(case_file, data)


@settings(FUZZ, max_examples=max(EXAMPLES // 4, 20))
@given(data=config_bytes)
def test_the_same_with_the_pure_python_parser(data, case_file, rss_growth):
    loader = config_file.LOADER
    config_file.LOADER = config_file.PyLoader  # a Pi whose PyYAML was built without libyaml
    try:
        load_once(case_file, data)
    finally:
        config_file.LOADER = loader
