"""scripts/release: signed bundles built for this machine, installed side by side under a test
root, health-checked, switched, rolled back; tampered, foreign and broken bundles refused with
the tree unchanged; the READY-or-roll-back confirmation on a root tree.

The bundle tests download the pinned wheels (pip's cache makes reruns quick) and build three
venvs, so they are marked slow; without a reachable package index they skip."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "release"
MODEL = REPO / "models" / "calmtunes-generator.onnx"

pytestmark = [
    pytest.mark.skipif(shutil.which("ssh-keygen") is None,
                       reason="ssh-keygen (package openssh-client) is not installed"),
    # Setting up the device builds four bundles and two venvs: minutes on a busy small machine.
    pytest.mark.timeout(1800),
]


def release(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                         timeout=timeout, check=False)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its kind, mode and content hash (or link target). Files in
    the venvs (hundreds of MB) by size, inode and modification time instead of content."""
    seen = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            seen[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            seen[rel] = ("dir", st.st_mode & 0o7777, st.st_mtime_ns)
        elif "/venv/" in rel:
            seen[rel] = ("file", st.st_mode & 0o7777, st.st_size, st.st_ino, st.st_mtime_ns)
        else:
            seen[rel] = ("file", st.st_mode & 0o7777,
                         hashlib.sha256(path.read_bytes()).hexdigest())
    return seen


def link(root: Path, name: str) -> str | None:
    p = root / "opt/calmtunes" / name
    return os.readlink(p) if p.is_symlink() else None


# -- keys and build refusals (no network) --------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    release("keygen", str(d / "ours"))
    release("keygen", str(d / "theirs"))
    return {"ours": d / "ours", "theirs": d / "theirs"}


def test_keygen_makes_an_ed25519_pair_and_never_overwrites(keys):
    assert keys["ours"].read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert keys["ours"].stat().st_mode & 0o077 == 0  # private: readable by its owner alone
    assert Path(f"{keys['ours']}.pub").read_text().startswith("ssh-ed25519 ")
    before = keys["ours"].read_bytes()
    out = release("keygen", str(keys["ours"]), check=False)
    assert out.returncode == 1 and "exists already" in out.stderr
    assert keys["ours"].read_bytes() == before


def test_build_refuses_a_lock_without_hashes(keys, tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("numpy==2.4.6\n")
    out = release("build", "--key", str(keys["ours"]), "--version", "1", "--platform", "host",
                  "--lock", str(lock), "--out", str(tmp_path / "b.tar"), check=False)
    assert out.returncode == 1 and "pins no hashes" in out.stderr
    assert not (tmp_path / "b.tar").exists()


def test_build_refuses_a_model_that_does_not_match_its_manifest(keys, tmp_path):
    model = tmp_path / MODEL.name
    model.write_bytes(MODEL.read_bytes()[:-1] + b"\0")
    shutil.copy(MODEL.with_suffix(".json"), model.with_suffix(".json"))
    out = release("build", "--key", str(keys["ours"]), "--version", "1", "--platform", "host",
                  "--model", str(model), "--out", str(tmp_path / "b.tar"), check=False)
    assert out.returncode == 1 and "does not match the SHA-256" in out.stderr


def test_build_refuses_a_public_key_as_signing_key(keys, tmp_path):
    out = release("build", "--key", f"{keys['ours']}.pub", "--version", "1", "--platform",
                  "host", "--out", str(tmp_path / "b.tar"), check=False)
    assert out.returncode == 1 and "not an ed25519 private key" in out.stderr


# -- confirm and rollback on a root tree (no network) ---------------------------------------------
def fake_tree(root: Path, current: str, previous: str | None, pending: bool) -> Path:
    """Releases as install leaves them (complete marks, relative links, a pending mark); the
    venvs themselves are not needed for switching."""
    base = root / "opt/calmtunes"
    for v in filter(None, (current, previous)):
        (base / "releases" / v).mkdir(parents=True)
        (base / "releases" / v / ".complete").write_text("done\n")
    (base / "current").symlink_to(f"releases/{current}")
    if previous:
        (base / "previous").symlink_to(f"releases/{previous}")
    if pending:
        (base / "pending.json").write_text(json.dumps({"version": current,
                                                       "previous": previous}))
    return base


def test_confirm_rolls_back_a_release_that_never_becomes_ready(tmp_path):
    base = fake_tree(tmp_path, "2.0", "1.0", pending=True)
    out = release("confirm", "--root", str(tmp_path), "--deadline", "1", "--poll", "0.2",
                  "--ready-command", "false", check=False)
    assert out.returncode == 1
    assert "release 2.0 did not reach READY within 1 s" in out.stdout
    assert "rolled back from release 2.0 to 1.0" in out.stdout
    assert link(tmp_path, "current") == "releases/1.0"
    assert link(tmp_path, "previous") == "releases/2.0"
    assert not (base / "pending.json").exists()
    status = release("status", "--root", str(tmp_path)).stdout
    assert "current   1.0" in status and "2.0 → 1.0: release 2.0 did not reach READY" in status


def test_confirm_keeps_a_release_that_becomes_ready(tmp_path):
    base = fake_tree(tmp_path, "2.0", "1.0", pending=True)
    ready = tmp_path / "ready"
    # READY comes on the third poll, as after a daemon's start-up.
    probe = f"n=$(cat {ready} 2>/dev/null || echo 0); echo $((n+1)) > {ready}; [ $n -ge 2 ]"
    out = release("confirm", "--root", str(tmp_path), "--deadline", "30", "--poll", "0.1",
                  "--settle", "0", "--ready-command", probe)
    assert "release 2.0 reached READY" in out.stdout and "confirmed" in out.stdout
    assert link(tmp_path, "current") == "releases/2.0"
    assert not (base / "pending.json").exists()


def test_confirm_without_a_pending_release_changes_nothing(tmp_path):
    fake_tree(tmp_path, "2.0", "1.0", pending=False)
    before = snapshot(tmp_path)
    out = release("confirm", "--root", str(tmp_path), "--ready-command", "false")
    assert "no release is waiting" in out.stdout
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("cmd", [["install", "bundle.tar"], ["rollback"], ["status"]])
def test_a_root_that_is_not_a_folder_is_wrong_usage(tmp_path, cmd):
    out = release(cmd[0], "--root", str(tmp_path / "missing"), *cmd[1:], check=False)
    assert out.returncode == 2 and "is not a folder" in out.stderr
    assert not (tmp_path / "missing").exists()


def test_rollback_without_a_previous_release_is_refused(tmp_path):
    fake_tree(tmp_path, "1.0", None, pending=False)
    before = snapshot(tmp_path)
    out = release("rollback", "--root", str(tmp_path), check=False)
    assert out.returncode == 1 and "no previous release" in out.stderr
    assert snapshot(tmp_path) == before


# -- real bundles: build, install, check, switch, roll back ---------------------------------------
def index_reachable(tmp: Path) -> bool:
    """Can pip fetch a pinned wheel here (network, or pip's cache)?"""
    out = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                          "--only-binary=:all:", "-d", str(tmp), "smbus2==0.6.1"],
                         capture_output=True, text=True, timeout=120, check=False)
    return out.returncode == 0


@pytest.fixture(scope="module")
def bundles(keys, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    if not index_reachable(d / "probe"):
        pytest.skip("no package index reachable: building a bundle downloads the pinned wheels")
    b = {"1.0": d / "calmtunes-1.0-host.tar", "2.0": d / "calmtunes-2.0-host.tar",
         "broken": d / "calmtunes-3.0-host.tar", "theirs": d / "theirs.tar"}
    common = ["--key", str(keys["ours"]), "--platform", "host"]
    out = release("build", *common, "--version", "1.0", "--out", str(b["1.0"]))
    assert "wrote" in out.stdout
    # The next ones take their wheels from the first bundle, as an offline build machine would.
    house = d / "wheelhouse"
    with tarfile.open(b["1.0"]) as tar:
        for m in tar.getmembers():
            if m.name.startswith("wheels/") and "calmtunes-" not in m.name:
                (house / Path(m.name).name).parent.mkdir(parents=True, exist_ok=True)
                (house / Path(m.name).name).write_bytes(tar.extractfile(m).read())
    offline = ["--wheelhouse", str(house)]
    release("build", *common, *offline, "--version", "2.0", "--out", str(b["2.0"]))
    # A model that is not ONNX at all, with a manifest that matches it: it passes the hash but
    # cannot load.
    bad = d / "bad-model" / MODEL.name
    bad.parent.mkdir()
    bad.write_bytes(b"not an onnx model " * 1000)
    manifest = json.loads(MODEL.with_suffix(".json").read_text())
    manifest["sha256"] = hashlib.sha256(bad.read_bytes()).hexdigest()
    bad.with_suffix(".json").write_text(json.dumps(manifest))
    release("build", *common, *offline, "--version", "3.0", "--model", str(bad),
            "--out", str(b["broken"]))
    release("build", "--key", str(keys["theirs"]), "--platform", "host", *offline,
            "--version", "9.9", "--out", str(b["theirs"]))
    return b


@pytest.fixture(scope="module")
def device(bundles, keys, tmp_path_factory) -> Path:
    """A root with release 1.0 installed, then 2.0 (current) over it."""
    root = tmp_path_factory.mktemp("device")
    (root / "etc/calmtunes").mkdir(parents=True)
    (root / "etc/calmtunes/config.yaml").write_text("music:\n  temperature: 0.8\n")
    for v in ("1.0", "2.0"):
        install(root, keys, bundles[v])
    return root


def install(root: Path, keys, bundle: Path, key: str = "ours",
            check: bool = True) -> subprocess.CompletedProcess:
    return release("install", "--root", str(root), "--pubkey", f"{keys[key]}.pub",
                   "--python", sys.executable, str(bundle), check=check)


def calmtunes_of(root: Path, name: str) -> Path:
    return root / "opt/calmtunes" / name / "venv/bin/calmtunes"


@pytest.mark.slow
def test_install_switches_to_the_new_release_and_keeps_the_previous(device):
    assert link(device, "current") == "releases/2.0"
    assert link(device, "previous") == "releases/1.0"
    rel = device / "opt/calmtunes/releases/2.0"
    assert (rel / "model" / MODEL.name).read_bytes() == MODEL.read_bytes()
    manifest = json.loads((rel / "MANIFEST.json").read_text())
    assert manifest["version"] == "2.0" and manifest["platform"] == "host"
    # The program in current runs from the release's own venv, with the bundle's packages.
    out = subprocess.run([str(calmtunes_of(device, "current")), "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("calmtunes ")
    venv_py = rel / "venv/bin/python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as systemd starts it
    where = subprocess.run([str(venv_py), "-c", "import numpy, calmtunes; "
                            "print(numpy.__file__); print(calmtunes.__file__)"],
                           capture_output=True, text=True, check=True, env=env).stdout.split()
    assert all(p.startswith(str(rel / "venv")) for p in where), where


@pytest.mark.slow
def test_installing_the_current_release_again_changes_nothing(device, bundles, keys):
    before = snapshot(device)
    out = install(device, keys, bundles["2.0"])
    assert "nothing changed" in out.stdout
    assert snapshot(device) == before


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["wheel byte", "manifest byte", "signature byte",
                                    "member added", "other key"])
def test_a_changed_or_foreign_bundle_is_refused_and_nothing_changes(device, bundles, keys,
                                                                    tmp_path, damage):
    bundle = tmp_path / "bundle.tar"
    if damage == "other key":
        bundle = bundles["theirs"]
    elif damage == "member added":
        shutil.copy(bundles["1.0"], bundle)
        extra = tmp_path / "evil.whl"
        extra.write_bytes(b"PK\x03\x04")
        with tarfile.open(bundle, "a") as tar:
            tar.add(extra, arcname="wheels/evil-1.0-py3-none-any.whl")
    else:
        shutil.copy(bundles["1.0"], bundle)
        member = {"wheel byte": "wheels/", "manifest byte": "MANIFEST.json",
                  "signature byte": "MANIFEST.json.sig"}[damage]
        with tarfile.open(bundle) as tar:
            m = next(m for m in tar.getmembers() if m.name.startswith(member))
        with open(bundle, "r+b") as f:  # one byte changed in the member's data
            f.seek(m.offset_data + m.size // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x01]))
    before = snapshot(device)
    out = install(device, keys, bundle, check=False)
    assert out.returncode == 1, out.stdout
    reason = {"wheel byte": "does not match the signed manifest",
              "manifest byte": "signature does not verify",
              "signature byte": "signature does not verify",
              "member added": "members do not match the signed manifest",
              "other key": "signature does not verify"}[damage]
    assert reason in out.stderr, out.stderr
    assert snapshot(device) == before


@pytest.mark.slow
def test_rollback_switches_back_and_forth(device):
    release("rollback", "--root", str(device))
    assert link(device, "current") == "releases/1.0"
    assert link(device, "previous") == "releases/2.0"
    status = release("status", "--root", str(device)).stdout
    assert "current   1.0" in status and "asked for" in status
    release("rollback", "--root", str(device))
    assert link(device, "current") == "releases/2.0"


@pytest.mark.slow
def test_a_different_build_under_the_previous_version_is_refused(device, keys, bundles, tmp_path):
    assert link(device, "previous") == "releases/1.0"
    rebuilt = tmp_path / "calmtunes-1.0-again.tar"  # same version, another build: another manifest
    house = tmp_path / "wheels"
    with tarfile.open(bundles["1.0"]) as tar:
        for m in tar.getmembers():
            if m.name.startswith("wheels/") and "calmtunes-" not in m.name:
                house.mkdir(exist_ok=True)
                (house / Path(m.name).name).write_bytes(tar.extractfile(m).read())
    release("build", "--key", str(keys["ours"]), "--platform", "host", "--version", "1.0",
            "--wheelhouse", str(house), "--out", str(rebuilt))
    before = snapshot(device)
    out = install(device, keys, rebuilt, check=False)
    assert out.returncode == 1 and "is the previous release but this bundle's contents differ" \
        in out.stderr
    assert snapshot(device) == before


@pytest.mark.slow
def test_a_release_whose_model_does_not_load_is_not_switched_to(device, bundles, keys):
    current, previous = link(device, "current"), link(device, "previous")
    out = install(device, keys, bundles["broken"], check=False)
    assert out.returncode == 1
    assert "FAIL  config and model" in out.stdout and "generator model" in out.stdout
    assert "release 3.0 failed its health check" in out.stderr
    assert (link(device, "current"), link(device, "previous")) == (current, previous)
    assert not (device / "opt/calmtunes/releases/3.0").exists()
    subprocess.run([str(calmtunes_of(device, "current")), "--version"], check=True,
                   capture_output=True)


@pytest.mark.slow
def test_a_local_config_the_release_refuses_keeps_current(device, bundles, keys):
    # Release 1.0 is still installed (previous); going back to it is checked again, against
    # today's config, which it does not accept.
    config = device / "etc/calmtunes/config.yaml"
    good = config.read_text()
    config.write_text("music:\n  temprature: 0.8\n")
    try:
        current, previous = link(device, "current"), link(device, "previous")
        out = install(device, keys, bundles["1.0"], check=False)
        assert out.returncode == 1
        assert "FAIL  config" in out.stdout and "temprature" in out.stdout
        assert (link(device, "current"), link(device, "previous")) == (current, previous)
        assert (device / "opt/calmtunes/releases/1.0/.complete").exists()  # kept as previous
    finally:
        config.write_text(good)


@pytest.mark.slow
def test_a_bundle_for_another_machine_is_refused(device, bundles, keys, tmp_path):
    # The same bundle, but the target's Python says it is a Pi: refused before anything is
    # written, with the platform to build for.
    fake_python = tmp_path / "python3"
    fake_python.write_text("#!/bin/sh\necho aarch64 3.11\n")
    fake_python.chmod(0o755)
    before = snapshot(device)
    out = release("install", "--root", str(device), "--pubkey", f"{keys['ours']}.pub",
                  "--python", str(fake_python), str(bundles["1.0"]), check=False)
    assert out.returncode == 1 and "build one with --platform pi" in out.stderr
    assert snapshot(device) == before


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                    reason="systemd-sysusers (package systemd) is not installed")
def test_install_pi_installs_a_bundle_and_a_rerun_changes_nothing(bundles, keys, tmp_path):
    root = tmp_path / "root"
    for d in ("etc/systemd/system", "boot/firmware", "opt", "var/lib", "usr/share/doc"):
        (root / d).mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\nVERSION_CODENAME=bookworm\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "boot/firmware/config.txt").write_text("dtparam=audio=on\n")

    def install_pi(*args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([str(REPO / "scripts/install-pi"), "--root", str(root), *args],
                             capture_output=True, text=True, timeout=900, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        return out

    install_pi("--bundle", str(bundles["1.0"]), "--pubkey", f"{keys['ours']}.pub")
    assert link(root, "current") == "releases/1.0"
    assert (root / "etc/calmtunes/release.pub").read_text() == \
        Path(f"{keys['ours']}.pub").read_text()
    assert (root / "opt/calmtunes/releases/1.0/venv/bin/calmtunes").exists()
    before = snapshot(root)
    out = install_pi("--bundle", str(bundles["1.0"]))  # the key is on the device now
    assert "already installed, nothing changed" in out.stdout
    assert snapshot(root) == before


@pytest.mark.parametrize("mark", ["{\"version\": ", "[1, 2]", "\x00\xff garbage"])
def test_an_unreadable_pending_mark_still_has_the_current_release_checked(tmp_path, mark):
    """A mark cut short by a power cut was dropped as "stale" and confirm exited 0: a release
    that never came up was never rolled back. It is now taken as naming the current release;
    status says what it is instead of a traceback."""
    base = fake_tree(tmp_path, "2.0", "1.0", pending=True)
    (base / "pending.json").write_text(mark)
    status = release("status", "--root", str(tmp_path))
    assert "pending   a mark that cannot be read" in status.stdout
    (base / "last-rollback.json").write_text(mark)
    assert "rollback  a record that cannot be read" in release("status", "--root",
                                                                str(tmp_path)).stdout
    out = release("confirm", "--root", str(tmp_path), "--deadline", "1", "--poll", "0.2",
                  "--ready-command", "false", check=False)
    assert out.returncode == 1 and "unreadable; taking it as naming the current" in out.stdout
    assert link(tmp_path, "current") == "releases/1.0"  # rolled back


@pytest.mark.parametrize("arg", [["--deadline", "inf"], ["--deadline", "nan"],
                                 ["--poll", "-1"], ["--settle", "-1"], ["--deadline", "0"]])
def test_confirm_times_must_be_finite_seconds(tmp_path, arg):
    fake_tree(tmp_path, "2.0", "1.0", pending=True)
    out = release("confirm", "--root", str(tmp_path), *arg, "--ready-command", "true",
                  check=False)
    assert out.returncode == 2 and "needs a finite number of seconds" in out.stderr
    assert "Traceback" not in out.stderr
