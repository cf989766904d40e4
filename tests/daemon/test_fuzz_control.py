"""Property tests: storms of random requests on the control socket, random state.json files.

Whatever arrives, the daemon logs no traceback, answers every request with JSON whose ``ok`` is a
bool, never plays louder than ``music.max_volume_db``, and loses nothing: a good command after
the storm still works and the state it saves still loads. ``CALMTUNES_FUZZ_EXAMPLES`` sets the
number of cases (default: a few seconds' worth for the suite); a long run also needs
``--timeout=0`` (the suite stops any test after 300 s), and ``-s`` shows how many cases ran.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calmtunes.commands import TokenBucket, checked_state
from calmtunes.control import socket_path
from calmtunes.daemon import STATE_FILE, Daemon
from calmtunes.music.conductor import Conductor
from calmtunes.state import StateStore
from clocked import wait_until

EXAMPLES = int(os.environ.get("CALMTUNES_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-10**400, 10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
           | st.sampled_from(["nan", "inf", "-inf", "1e999", "-12", "sleep", "slep", "calm ",
                              "x" * 5000]))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=8)
commands = st.sampled_from(["status", "preset", "volume", "volume_up", "volume_down",
                            "play_pause", "sleep_timer", "reload", "hang", "stop", "shutdown",
                            "privacy", "teleport", ""]) | json_values


def _request_bytes(cmd, arg, extra) -> bytes:
    body = {"cmd": cmd, "arg": arg, **extra}
    return json.dumps(body, allow_nan=True).encode() + b"\n"  # a sloppy client sends NaN


requests = st.one_of(
    st.builds(_request_bytes, commands, json_values,
              st.dictionaries(st.text(max_size=5), json_values, max_size=2)),
    st.builds(lambda arg: _request_bytes("volume", arg, {}), json_values),
    st.binary(max_size=300).map(lambda b: b + b"\n"),
    st.binary(max_size=300),  # no newline: the client closes instead
    st.integers(4000, 200_000).map(lambda n: b'{"cmd": "preset", "arg": "' + b"x" * n + b'"}\n'),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"\n"),
    st.sampled_from([b"NaN\n", b'{"cmd": "volume", "arg": 1e999}\n', b'{"cmd": null}\n',
                     b'{"cmd": "status"}{"cmd": "stop"}\n', "\u00e9".encode("latin-1") + b"\n"]),
)


class Watch(logging.Handler):
    """Every record with a traceback, or a line longer than 2000 characters, is a failure."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info or "Traceback" in text:
            self.bad.append(f"traceback: {text[:200]}")
        elif len(text) > 2000:
            self.bad.append(f"a {len(text)}-character log line: {text[:100]}")


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def _send(path: Path, data: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        try:
            s.sendall(data)
            if not data.endswith(b"\n"):
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it was all sent; the answer may still be there
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    return _strict(reply.decode())


def test_a_storm_of_random_requests_changes_nothing_it_should_not(tmp_config):
    cfg = tmp_config.replace(device={"simulate": False})  # no fault injection in this storm
    watch = Watch()
    logging.getLogger().addHandler(watch)
    daemon = Daemon(cfg)
    cap = cfg.music.max_volume_db
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    path = socket_path(cfg.device.runtime_dir)
    try:
        wait_until(path.exists, timeout=8.0, what=f"the control socket {path}")

        sent = [0]

        @FUZZ
        @given(requests)
        def storm(data):
            sent[0] += 1
            reply = _send(path, data)
            assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
            if not reply["ok"]:
                assert isinstance(reply.get("error"), str) and len(reply["error"]) < 500
            v = daemon.conductor.volume_db
            assert math.isfinite(v) and v <= cap
            assert daemon.conductor.controls().volume_db <= cap
            assert daemon.conductor.preset in cfg.music.presets

        storm()
        print(f"{sent[0]} random requests")  # shown with -s
        daemon.socket_rate = TokenBucket(5.0, 10)  # what the storm spent is not the point here
        assert _send(path, b'{"cmd": "preset", "arg": "sleep"}\n') == {"ok": True}
        assert _send(path, b'{"cmd": "volume", "arg": -12}\n') == {"ok": True}
        status = _send(path, b'{"cmd": "status"}\n')
        assert status["ok"] and status["preset"] == "sleep" and status["volume_db"] == -12.0
        assert status["components"]["audio"]["state"] == "ok"
    finally:
        daemon.request_stop()
        thread.join(10)
        logging.getLogger().removeHandler(watch)
    assert not thread.is_alive()
    assert watch.bad == []
    saved = _strict((Path(cfg.device.state_dir) / STATE_FILE).read_text())
    assert saved["preset"] == "sleep" and saved["volume_db"] == -12.0
    again = Daemon(cfg)
    assert (again.conductor.preset, again.conductor.volume_db) == ("sleep", -12.0)


state_values = st.fixed_dictionaries(
    {}, optional={"preset": json_values | st.sampled_from(["calm", "sleep", "disco"]),
                  "volume_db": json_values | st.floats(-100, 100),
                  "playing": json_values, "privacy": json_values,
                  "rogue": json_values})
state_files = st.one_of(
    state_values.map(lambda d: json.dumps(d, allow_nan=True).encode()),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=200),
    st.sampled_from([b'{"volume_db": 1e308}', b'{"volume_db": NaN}', b'{"volume_db": -Infinity}',
                     b'{"volume_db": 1' + b"0" * 5000 + b"}", b"[" * 5000, b"\xff\xfe"]),
)


def test_any_state_file_starts_safe_and_saves_back_clean(tmp_config, tmp_path):
    cfg = tmp_config
    m = cfg.music
    watch = Watch()
    logging.getLogger().addHandler(watch)
    folder = tmp_path / "fuzz-state"
    folder.mkdir()
    path = folder / STATE_FILE
    defaults = {"preset": m.default_preset, "volume_db": m.volume_db, "playing": True,
                "privacy": False, "manual": False}

    tried = [0]

    @FUZZ
    @given(state_files)
    def start_from(content):
        tried[0] += 1
        path.write_bytes(content)
        (folder / f".{STATE_FILE}.left1").write_bytes(content[:10])  # what a kill -9 leaves
        store = StateStore(path, defaults)
        state = checked_state(store.load(), cfg)
        # the kill's leftovers are gone; a file that holds no state was moved aside, whole
        names = sorted(os.listdir(folder))
        kept = [n for n in names if n.startswith(f"{STATE_FILE}.bad-")]
        assert [n for n in names if n not in kept] == ([] if kept else [STATE_FILE])
        for name in kept:
            assert (folder / name).read_bytes() == content
            (folder / name).unlink()
        v = state["volume_db"]
        assert isinstance(v, float) and math.isfinite(v)
        assert m.min_volume_db <= v <= m.max_volume_db
        assert state["preset"] in m.presets
        assert isinstance(state["playing"], bool) and isinstance(state["privacy"], bool)
        conductor = Conductor(cfg, state["preset"], state["volume_db"])
        assert conductor.controls().volume_db <= m.max_volume_db
        store.save({k: state[k] for k in defaults})
        after = path.read_bytes()
        if after != content:  # rewritten (something was replaced): strict JSON, our values
            assert _strict(after.decode()) == {k: state[k] for k in defaults}
        assert checked_state(StateStore(path, defaults).load(), cfg) == {
            k: state[k] for k in defaults}

    try:
        start_from()
        print(f"{tried[0]} random state files")  # shown with -s
    finally:
        logging.getLogger().removeHandler(watch)
    assert watch.bad == []
