"""scripts/install-pi against a fake root folder (--root): files land, reruns change nothing,
--dry-run changes nothing, --uninstall reverses, and it refuses what it must."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-pi"
USER_FILES = {"etc/passwd", "etc/passwd-", "etc/group", "etc/group-", "etc/shadow",
              "etc/shadow-", "etc/gshadow", "etc/gshadow-", "etc/.pwd.lock"}

pytestmark = pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                                reason="systemd-sysusers (package systemd) is not installed")

BOOKWORM = 'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\nID_LIKE=debian\n' \
           'VERSION_CODENAME=bookworm\n'
CONFIG_TXT = "# For more options see config.txt(5)\ndtparam=audio=on\n#dtparam=i2c_arm=on\n" \
             "[pi4]\narm_boost=1\n"
CMDLINE_TXT = "console=serial0,115200 console=tty1 root=PARTUUID=4d8097e2-02 rootfstype=ext4 " \
              "fsck.repair=yes rootwait\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "boot" / "firmware").mkdir(parents=True)
    # Folders every Debian root has.
    for d in ("etc/systemd/system/multi-user.target.wants", "usr/share/doc", "opt", "var/lib"):
        (r / d).mkdir(parents=True)
    (r / "etc/systemd/system/multi-user.target.wants/ssh.service").symlink_to(
        "/lib/systemd/system/ssh.service")
    (r / "etc" / "os-release").write_text(BOOKWORM)
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (r / "etc" / "group").write_text("root:x:0:\naudio:x:29:\nvideo:x:44:\n")
    (r / "boot" / "firmware" / "config.txt").write_text(CONFIG_TXT)
    (r / "boot" / "firmware" / "cmdline.txt").write_text(CMDLINE_TXT)
    return r


def install(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # PYTHON: a Python with PyYAML, for the example config when the checkout has none.
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run([str(SCRIPT), "--root", str(root), *args], capture_output=True,
                         text=True, env=env, timeout=120, check=False)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its kind, mode, owner and content hash (or link target)."""
    seen = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if path.is_symlink():
            seen[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            seen[rel] = ("dir", st.st_mode & 0o7777, st.st_uid, st.st_gid)
        else:
            seen[rel] = ("file", st.st_mode & 0o7777, st.st_uid, st.st_gid,
                         hashlib.sha256(path.read_bytes()).hexdigest())
    return seen


def group_id(root: Path, name: str) -> int:
    for line in (root / "etc" / "group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"no group {name} in the fake root")


def test_install_puts_everything_in_place(root):
    out = install(root)
    assert "install-pi: installed" in out.stdout
    unit = root / "etc/systemd/system/calmtunes.service"
    assert unit.read_text() == (REPO / "systemd/calmtunes.service").read_text()
    failed = root / "etc/systemd/system/calmtunes-failed.service"
    assert failed.read_text() == (REPO / "systemd/calmtunes-failed.service").read_text()
    assert not list(root.glob("etc/systemd/system/*.wants/calmtunes-failed.service"))  # OnFailure=
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/calmtunes.service") \
        == "/etc/systemd/system/calmtunes.service"
    dropin = root / "etc/systemd/system.conf.d/calmtunes-watchdog.conf"
    assert "RuntimeWatchdogSec=" in dropin.read_text()
    boot = (root / "boot/firmware/config.txt").read_text()
    assert boot.startswith(CONFIG_TXT)  # the owner's lines stay as they were
    block = boot[len(CONFIG_TXT):].splitlines()
    assert "[all]" in block and "dtparam=i2c_arm=on" in block and "dtoverlay=hifiberry-dac" in block
    assert "hw:CARD=sndrpihifiberry" in (root / "etc/asound.conf").read_text()
    passwd = (root / "etc/passwd").read_text()
    assert any(line.startswith("calmtunes:") and line.endswith(":/usr/sbin/nologin")
               for line in passwd.splitlines())
    for g in ("i2c", "gpio", "audio", "video", "calmtunes"):
        group_id(root, g)
    etc = root / "etc/calmtunes"
    assert etc.stat().st_mode & 0o777 == 0o750 and etc.stat().st_gid == group_id(root, "calmtunes")
    assert (etc / "config.yaml").stat().st_mode & 0o777 == 0o640
    assert (etc / "config.yaml").read_text() == (etc / "config.example.yaml").read_text()
    assert (root / "usr/share/doc/calmtunes/README.md").exists()
    assert "apt" in out.stdout and "skipped" in out.stdout  # a fake root gets no apt or pip


def test_installed_config_is_valid_and_complete(root):
    from calmtunes import config

    install(root)
    path = root / "etc/calmtunes/config.yaml"
    assert config.load(path) == config.Config()
    text = path.read_text()
    for key, _default, _help in config.describe():
        assert key.split(".", 1)[1] in text, f"{key} is not in the example config"


def test_model_is_installed_or_its_absence_warned(root):
    out = install(root)
    model = REPO / "models/calmtunes-generator.onnx"
    installed = root / "usr/share/calmtunes/calmtunes-generator.onnx"
    if model.exists():
        assert installed.read_bytes() == model.read_bytes()
        manifest = json.loads(installed.with_suffix(".json").read_text())
        assert manifest["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        from calmtunes.music.generator import load_manifest

        assert load_manifest(installed)["sha256"] == manifest["sha256"]  # as the daemon loads it
    else:
        assert not installed.exists()
        assert "warning: no generator model" in out.stdout


def test_second_run_changes_nothing(root):
    install(root)
    before = snapshot(root)
    out = install(root)
    assert "already installed, nothing changed" in out.stdout
    assert snapshot(root) == before


def test_local_config_is_never_overwritten(root):
    install(root)
    local = root / "etc/calmtunes/config.yaml"
    local.write_text("audio:\n  device: hifiberry\n")
    out = install(root)
    assert local.read_text() == "audio:\n  device: hifiberry\n"
    assert "kept the local" in out.stdout


def test_half_finished_install_is_completed_by_a_rerun(root):
    install(root)
    complete = snapshot(root)
    # As if power was lost halfway: some files gone, one truncated.
    (root / "etc/asound.conf").unlink()
    (root / "etc/systemd/system/calmtunes.service").write_text("[Unit]\n")
    (root / "etc/systemd/system.conf.d/calmtunes-watchdog.conf").unlink()
    install(root)
    assert snapshot(root) == complete


def test_dry_run_prints_every_action_and_changes_nothing(root):
    before = snapshot(root)
    out = install(root, "--dry-run")
    assert snapshot(root) == before
    for target in ("etc/sysusers.d/calmtunes.conf", "boot/firmware/config.txt",
                   "boot/firmware/cmdline.txt", "etc/asound.conf",
                   "etc/calmtunes/config.yaml", "etc/systemd/system/calmtunes.service",
                   "etc/systemd/system/calmtunes-failed.service",
                   "etc/systemd/system.conf.d/calmtunes-watchdog.conf"):
        assert f"would write: {root / target}" in out.stdout, target
    assert "+ systemd-sysusers" in out.stdout and "+ systemctl --root" in out.stdout
    assert "dry run done" in out.stdout


def test_dry_run_of_uninstall_changes_nothing(root):
    install(root)
    before = snapshot(root)
    out = install(root, "--uninstall", "--dry-run")
    assert snapshot(root) == before
    assert f"rm -rf -- {root / 'etc/systemd/system/calmtunes.service'}" in out.stdout


def test_uninstall_reverses_the_install(root):
    (root / "etc/asound.conf").write_text("# the owner's own ALSA config\n")
    before = snapshot(root)
    install(root)
    assert (root / "etc/asound.conf.calmtunes-orig").exists()
    out = install(root, "--uninstall")
    assert "uninstalled" in out.stdout
    after = snapshot(root)
    # Kept on purpose: the user (Debian keeps system users) and the local config and its folder.
    kept = {p for p in after if p in USER_FILES or p.startswith("etc/calmtunes")}
    assert {p: v for p, v in after.items() if p not in kept} == \
        {p: v for p, v in before.items() if p not in kept}
    assert (root / "etc/asound.conf").read_text() == "# the owner's own ALSA config\n"
    assert (root / "boot/firmware/config.txt").read_text() == CONFIG_TXT
    assert (root / "boot/firmware/cmdline.txt").read_text() == CMDLINE_TXT
    assert set(p for p in after if p.startswith("etc/calmtunes")) == {
        "etc/calmtunes", "etc/calmtunes/config.yaml"}


def test_purge_removes_config_state_and_user(root):
    install(root)
    (root / "var/lib/calmtunes").mkdir(parents=True)
    install(root, "--uninstall", "--purge")
    assert not (root / "etc/calmtunes").exists() and not (root / "var/lib/calmtunes").exists()
    assert "calmtunes:" not in (root / "etc/passwd").read_text()
    assert "\ncalmtunes:" not in (root / "etc/group").read_text()


def test_another_dac_replaces_the_block(root):
    install(root)
    install(root, "--dac", "iqaudio-dacplus")
    boot = (root / "boot/firmware/config.txt").read_text()
    assert boot.count("dtoverlay=") == 1 and "dtoverlay=iqaudio-dacplus" in boot
    assert "hw:CARD=IQaudIODAC" in (root / "etc/asound.conf").read_text()


def test_memory_cgroup_is_switched_on_for_memorymax(root):
    cmdline = root / "boot/firmware/cmdline.txt"
    install(root)
    assert cmdline.read_text() == CMDLINE_TXT.rstrip("\n") + " cgroup_enable=memory\n"
    install(root)  # a rerun keeps one
    assert cmdline.read_text().split().count("cgroup_enable=memory") == 1
    install(root, "--uninstall")
    assert cmdline.read_text() == CMDLINE_TXT


def test_an_owners_memory_cgroup_setting_is_left_alone(root):
    cmdline = root / "boot/firmware/cmdline.txt"
    mine = "cgroup_enable=memory " + CMDLINE_TXT
    cmdline.write_text(mine)
    install(root)
    assert cmdline.read_text() == mine
    install(root, "--uninstall")
    assert cmdline.read_text() == mine


@pytest.fixture
def readable_script():
    """The script, byte for byte, in a folder anyone may enter: the checkout may sit in a 0700
    folder (so may pytest's tmp_path), which the unprivileged user below cannot reach."""
    folder = Path(tempfile.mkdtemp(prefix="calmtunes-install-pi-"))
    try:
        folder.chmod(0o755)
        (folder / "scripts").mkdir(mode=0o755)
        script = folder / "scripts" / SCRIPT.name
        shutil.copyfile(SCRIPT, script)
        script.chmod(0o755)
        assert script.read_bytes() == SCRIPT.read_bytes()
        yield script
    finally:
        shutil.rmtree(folder)


def test_refuses_without_root(readable_script):
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is not installed")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               str(readable_script)]
    else:
        cmd = [str(readable_script)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False,
                         cwd=readable_script.parent)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "must run as root" in out.stderr


@pytest.mark.parametrize("os_release, reason", [
    ('PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nVERSION_CODENAME=noble\n',
     "unsupported operating"),
    ('PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\nVERSION_CODENAME=bullseye\n',
     "unsupported release"),
    (None, "cannot tell the operating system"),
])
def test_refuses_an_unsupported_os(root, os_release, reason):
    if os_release is None:
        (root / "etc/os-release").unlink()
    else:
        (root / "etc/os-release").write_text(os_release)
    before = snapshot(root)
    out = install(root, check=False)
    assert out.returncode == 3
    assert reason in out.stderr and "bookworm" in out.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize("args, message", [
    (["--frobnicate"], "unknown option '--frobnicate'"),
    (["--dac", "mystery-dac"], "give its ALSA card name with --card"),
    (["--camera", "thermal"], "--camera must be usb, csi or none"),
    (["--purge"], "--purge only goes with --uninstall"),
])
def test_wrong_usage_says_what_is_wrong(root, args, message):
    out = install(root, *args, check=False)
    assert out.returncode == 2
    assert message in out.stderr


def test_release_tool_and_its_check_unit_are_installed_and_enabled(root):
    install(root)
    tool = root / "opt/calmtunes/bin/calmtunes-release"
    assert tool.read_bytes() == (REPO / "scripts/release").read_bytes()
    assert tool.stat().st_mode & 0o777 == 0o755
    check = root / "etc/systemd/system/calmtunes-release-check.service"
    assert check.read_text() == (REPO / "systemd/calmtunes-release-check.service").read_text()
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/"
                       "calmtunes-release-check.service") == "/" + str(check.relative_to(root))


def test_bundle_option_needs_an_existing_file(root):
    out = install(root, "--bundle", str(root / "nowhere.tar"), check=False)
    assert out.returncode == 2 and "--bundle" in out.stderr and "no such file" in out.stderr


def test_a_program_installed_before_releases_is_adopted_as_current(root):
    # A device set up by an older install-pi: the program in /opt/calmtunes/venv, no releases.
    program = root / "opt/calmtunes/venv/bin/calmtunes"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\necho calmtunes 0.0.9\n")
    program.chmod(0o755)
    install(root)
    current = root / "opt/calmtunes/current"
    assert os.readlink(current) == "releases/legacy"
    assert os.readlink(root / "opt/calmtunes/releases/legacy/venv") == "/opt/calmtunes/venv"
    assert (root / "opt/calmtunes/releases/legacy/.complete").exists()  # a rollback target
    before = snapshot(root)
    assert "already installed, nothing changed" in install(root).stdout
    assert snapshot(root) == before


@pytest.mark.parametrize("args", [["--root", ""], ["--root="]])
def test_an_empty_root_is_refused_not_taken_for_the_running_system(args):
    """`--root ""` (an unset variable in a build script) left the prefix empty: the install
    acted on the running system. It is refused before anything runs."""
    out = subprocess.run([str(SCRIPT), *args, "--dry-run"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "--root needs a folder, got an empty one" in out.stderr
    assert "target /" not in out.stdout


def test_an_image_without_a_program_is_warned(root):
    """`install-pi --root DIR` enabled a unit whose program nothing installed (pip runs in the
    target, not here) and said 'installed': the first boot ended in the fault state."""
    out = install(root)
    assert "warning: no program in /opt/calmtunes/current" in out.stdout
    assert "calmtunes.service cannot start" in out.stdout


def test_a_technician_is_checked_in_the_image_and_added_once(root):
    """With --root, `id -nG` asked the host: every rerun called gpasswd again and said
    'installed'; a user missing from the image left a half-done install and no message."""
    before = snapshot(root)
    out = install(root, "--technician", "nobody-here", check=False)
    assert out.returncode == 3 and "no such user" in out.stderr
    assert snapshot(root) == before  # refused before anything was changed
    with open(root / "etc/passwd", "a") as f:
        f.write("tech:x:1001:1001::/home/tech:/bin/bash\n")
    install(root, "--technician", "tech")
    members = next(g for g in (root / "etc/group").read_text().splitlines()
                   if g.startswith("calmtunes:"))
    assert members.endswith(":tech"), members
    again = install(root, "--technician", "tech")
    assert "already installed, nothing changed" in again.stdout, again.stdout[-800:]
