"""The daemon's code paths run without scipy: it costs ~77 MB of memory and seconds of import.

Each command runs in a fresh interpreter, which reports at exit which scipy modules it loaded.
scipy stays installed here (the tests compare against it); the daemon must simply never touch it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = """
import atexit, json, sys
atexit.register(lambda: print("LOADED " + json.dumps(sorted(
    m for m, mod in sys.modules.items()
    if mod is not None and m.split(".")[0] in sys.argv[1].split(",")))))
from calmtunes.cli import main
sys.exit(main(sys.argv[2:]))
"""


def loaded_scipy(tmp_path: Path, *args: str) -> list[str]:
    return loaded(tmp_path, "scipy", *args)


def loaded(tmp_path: Path, packages: str, *args: str) -> list[str]:
    """The modules of ``packages`` (comma-separated top-level names) that ``calmtunes *args``
    loaded."""
    return run_reporting(tmp_path, packages, *args)[0]


def run_reporting(tmp_path: Path, packages: str,
                  *args: str) -> tuple[list[str], subprocess.CompletedProcess]:
    """:func:`loaded`, and the finished process (its log is on stderr)."""
    env = dict(os.environ)
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), XDG_RUNTIME_DIR=str(tmp_path / "run"),
               HOME=str(tmp_path), ORT_DISABLE_TELEMETRY="1")
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.run([sys.executable, "-c", REPORT, packages, *args], capture_output=True,
                          text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("LOADED ")][-1]
    return json.loads(line[len("LOADED "):]), proc


def test_render_loads_no_scipy_and_no_openssl(tmp_path):
    got, proc = run_reporting(tmp_path, "scipy,_hashlib,_ssl,ssl,numpy", "render", "--minutes",
                              "0.1", "--out", str(tmp_path / "r.wav"))
    assert "numpy.random" in got  # (which would have loaded OpenSSL through secrets)
    assert [m for m in got if m.split(".")[0] in ("scipy", "_hashlib", "_ssl", "ssl")] == []
    assert "generator loaded" in proc.stderr  # the model's digests matched without OpenSSL
    assert (tmp_path / "r.wav").stat().st_size > 0


@pytest.mark.slow
def test_simulated_daemon_loads_no_scipy(tmp_path):
    # pulse analysis, scene, panel and sound all run in a simulation of a few seconds
    assert loaded_scipy(tmp_path, "simulate", "--scenario", "stressed", "--duration", "8",
                        "--out", str(tmp_path / "s.wav")) == []
    assert (tmp_path / "s.wav").stat().st_size > 0


@pytest.mark.slow
def test_simulated_daemon_loads_no_package_metadata(tmp_path, monkeypatch):
    # gpiozero imports importlib.metadata (and with it email, zipfile, csv: ~3 MB) only to find
    # a pin factory named in GPIOZERO_PIN_FACTORY; the panel loads gpiozero through
    # calmtunes.hardware.import_gpiozero, which leaves that to the first use
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    got = loaded(tmp_path, "gpiozero,importlib,email,zipfile", "simulate", "--duration", "4",
                 "--out", str(tmp_path / "s.wav"))
    assert "gpiozero.pins.mock" in got  # the panel ran
    assert [m for m in got if m.startswith(("importlib.metadata", "email", "zipfile"))] == []


@pytest.mark.slow
def test_simulated_daemon_keeps_openssl_out(tmp_path):
    # numpy.random imports secrets, hmac and hashlib, which would load _hashlib and with it
    # OpenSSL's libcrypto (3.3 MB of the daemon's RSS) for code it never runs; the generator's
    # manifest and model are still checked against their SHA-256, by CPython's own _sha256
    got, proc = run_reporting(tmp_path, "_hashlib,_ssl,ssl,numpy,hashlib,secrets", "simulate",
                              "--duration", "4", "--out", str(tmp_path / "s.wav"))
    assert "numpy.random" in got and "secrets" in got  # what would have loaded it, did load
    assert "hashlib" in got
    assert [m for m in got if m in ("_hashlib", "_ssl", "ssl")] == []
    assert "generator loaded" in proc.stderr  # the manifest's and model's digests matched


def test_hashes_without_openssl_are_the_same():
    # what keep_openssl_out leaves the process: hashlib and hmac on CPython's own digests
    code = """
import sys
from calmtunes.cli import keep_openssl_out
keep_openssl_out()
import hashlib, hmac, secrets
import numpy.random
assert "_hashlib" not in sys.modules or sys.modules["_hashlib"] is None, "OpenSSL loaded"
print(hashlib.sha256(b"calmtunes").hexdigest(), hmac.new(b"k", b"m", "sha256").hexdigest(),
      numpy.random.default_rng(1).integers(100))
"""
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import hashlib
    import hmac

    import numpy as np

    assert proc.stdout.split() == [hashlib.sha256(b"calmtunes").hexdigest(),
                                   hmac.new(b"k", b"m", "sha256").hexdigest(),
                                   str(np.random.default_rng(1).integers(100))]
