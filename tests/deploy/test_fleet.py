"""deploy/ansible end to end: scripts/prove_fleet runs site.yml over real SSH against Debian hosts
booted with systemd-nspawn (two bookworm, one bullseye) and checks the first install, a second
run with changed=0, serial, the Pi-only parts skipped, bullseye refused and a release that never
reaches READY rolled back by the device itself.

It needs root, debootstrap, systemd-nspawn, ssh and ansible-playbook, and about 10 minutes; it
skips, saying what is missing, elsewhere. One command, as root:

    pip install -e '.[fleet]'   # ansible-core
    python -m pytest tests/deploy/test_fleet.py -p no:cacheprovider
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVE = REPO / "scripts" / "prove_fleet"


def preflight() -> str | None:
    """None when everything the proof needs is here, else what is missing."""
    out = subprocess.run([sys.executable, str(PROVE), "--preflight"], capture_output=True,
                         text=True, timeout=60, check=False)
    return None if out.returncode == 0 else (out.stderr.strip() or out.stdout.strip())


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_playbook_over_ssh_on_booted_hosts():
    lacking = preflight()
    if lacking:
        pytest.skip(lacking)
    out = subprocess.run([sys.executable, str(PROVE)], capture_output=True, text=True,
                         timeout=3500, check=False)
    print(out.stdout[-6000:])
    assert out.returncode != 2, f"the proof could not be set up:\n{out.stderr[-3000:]}"
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    table = out.stdout.split("# prove_fleet:", 1)[-1]
    for check in ("first run installs on bed01", "first run installs on bed02",
                  "second run: changed=0", "serial: bed01 finished before bed02 began",
                  "Pi-only parts skipped", "not bookworm is refused",
                  "bed01 rolled back by itself", "bed02 untouched"):
        line = next((x for x in table.splitlines() if check in x), "")
        assert "PASS" in line, f"{check!r}: {line or 'missing from the table'}"


def test_preflight_names_what_is_missing(tmp_path):
    """Without ansible-playbook on PATH or beside Python, the proof says so and exits 2."""
    env = {"PATH": str(tmp_path)}  # nothing to find there
    empty_python = tmp_path / "python3"
    empty_python.symlink_to(sys.executable)
    out = subprocess.run([str(empty_python), str(PROVE), "--preflight"], capture_output=True,
                         text=True, timeout=60, check=False, env=env)
    assert out.returncode == 2
    assert "ansible-playbook" in out.stderr and "debootstrap" in out.stderr
