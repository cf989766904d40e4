"""deploy/ansible: the playbook's shape (what the fleet relies on), its agreement with
scripts/install-pi, and ansible-playbook --syntax-check / ansible-lint where they are installed:

    pip install -e '.[fleet]'      # ansible-core and ansible-lint
    python -m pytest tests/deploy/test_ansible.py

The playbook run for real, over SSH against booted hosts: tests/deploy/test_fleet.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "deploy" / "ansible"
ROLES = ("system", "hardware", "release", "service")


def load(path: Path):
    return yaml.safe_load(path.read_text())


def tasks(node) -> list[dict]:
    """Every task of a task list, also those inside block/rescue/always."""
    out = []
    for t in node or []:
        out.append(t)
        for key in ("block", "rescue", "always"):
            out += tasks(t.get(key))
    return out


def modules(task: dict) -> list[str]:
    return [k for k in task if "." in k]


def test_play_is_a_rolling_update_that_stops_at_the_first_failure():
    (play,) = load(ANSIBLE / "site.yml")
    assert play["hosts"] == "calmtunes" and play["become"] is True
    assert "calmtunes_serial" in str(play["serial"])
    assert play["max_fail_percentage"] == 0
    assert [r["role"] for r in play["roles"]] == ["system", "hardware", "service", "release"]


def test_every_role_uses_builtin_modules_only():
    for role in ROLES:
        for kind in ("tasks", "handlers"):
            f = ANSIBLE / "roles" / role / kind / "main.yml"
            if not f.exists():
                continue
            for task in tasks(load(f)):
                for m in modules(task):
                    if m.startswith("ansible.builtin."):
                        continue
                    pytest.fail(f"{f.relative_to(REPO)}: {task.get('name')!r} uses {m}, not a "
                                "module of ansible.builtin")


def test_defaults_name_the_variables_the_fleet_sets():
    defaults = load(ANSIBLE / "group_vars" / "all.yml")
    for var in ("calmtunes_bundle", "calmtunes_release_pubkey", "calmtunes_config",
                "calmtunes_serial", "calmtunes_ready_deadline"):
        assert var in defaults, var
    inventory = load(ANSIBLE / "inventory.example.yml")
    assert inventory["calmtunes"]["hosts"]


def test_bookworm_is_required_and_pi_parts_are_skipped_elsewhere():
    system = tasks(load(ANSIBLE / "roles/system/tasks/main.yml"))
    assert "bookworm" in str(system[0]["ansible.builtin.assert"]["that"])
    hardware = tasks(load(ANSIBLE / "roles/hardware/tasks/main.yml"))
    pi_block = next(t for t in hardware if "block" in t)
    assert pi_block["when"] == "hardware_is_pi"
    skipped = next(t for t in hardware if "ansible.builtin.debug" in t)
    assert skipped["when"] == "not hardware_is_pi" and "skipped" in \
        skipped["ansible.builtin.debug"]["msg"]


def test_boot_block_and_watchdog_match_install_pi():
    """Either tool may maintain a device: the boot-config block's markers and the watchdog
    drop-in are the same as install-pi's."""
    script = (REPO / "scripts/install-pi").read_text()
    hardware = tasks(load(ANSIBLE / "roles/hardware/tasks/main.yml"))
    block = next(t["ansible.builtin.blockinfile"] for t in hardware
                 if "ansible.builtin.blockinfile" in t)
    begin = re.search(r'^BEGIN_MARK="(.*)"$', script, re.M).group(1)
    end = re.search(r'^END_MARK="(.*)"$', script, re.M).group(1)
    assert (block["marker_begin"], block["marker_end"]) == (begin, end)
    # the block's text is install-pi's here-document (what follows its EOF is a note, not config)
    shell_block = script.split("$BEGIN_MARK\n", 1)[1].split("\nEOF\n", 1)[0] + "\n"
    assert block["block"] == shell_block.replace("$DAC", "{{ calmtunes_dac }}")
    dropin = next(t["ansible.builtin.copy"]["content"] for t in hardware
                  if "calmtunes-watchdog" in str(t.get("ansible.builtin.copy", {}).get("dest")))
    shell_dropin = script.split("$WATCHDOG_DROPIN\" 0644 0:0 <<'EOF'\n", 1)[1].split("EOF", 1)[0]
    assert dropin == shell_dropin


@pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                    reason="ansible is not installed (see this file's docstring)")
def test_syntax_check():
    out = subprocess.run(["ansible-playbook", "-i", "inventory.example.yml", "site.yml",
                          "--syntax-check"], cwd=ANSIBLE, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("ansible-lint") is None,
                    reason="ansible-lint is not installed (see this file's docstring)")
def test_ansible_lint_production_profile():
    out = subprocess.run(["ansible-lint", "--offline", "--profile", "production"], cwd=ANSIBLE,
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_folders_are_made_before_files_are_copied_into_them():
    """ansible.builtin.copy does not make a missing parent folder: on a fresh device (no
    install-pi before), /opt/calmtunes/bin, /etc/systemd/system.conf.d and the READY check's
    drop-in folder must be made by an earlier task of the play."""
    made = {"/etc", "/etc/systemd/system"}  # what a fresh bookworm has
    order = [t for role in ("system", "hardware", "service", "release")
             for t in tasks(load(ANSIBLE / "roles" / role / "tasks" / "main.yml"))]
    for t in order:
        f = t.get("ansible.builtin.file", {})
        if f.get("state") == "directory":
            paths = t.get("loop") or [f["path"]]
            made.update(str(p) for p in paths)
        c = t.get("ansible.builtin.copy")
        if c:
            parent = str(Path(c["dest"].replace("{{ item }}", "x")).parent)
            if "{{" in parent:  # e.g. the bundle's folder, checked by its own name below
                parent = parent.split("/{{")[0]
            assert parent in made, f"{t['name']!r} copies into {parent}, made by no earlier task"


def test_the_device_itself_decides_on_ready_with_the_fleet_deadline():
    """The play starts the device's own calmtunes-release-check.service (which rolls back even
    if the connection drops) and fails the host, stopping the rollout, when it did not
    confirm; the deadline reaches the unit through a drop-in."""
    release = tasks(load(ANSIBLE / "roles/release/tasks/main.yml"))
    wait = next(t for t in release if t.get("name") == "Wait for the new release to reach READY")
    assert wait["when"] == "release_pending.stat.exists"
    (start,) = wait["block"]
    assert start["ansible.builtin.systemd_service"] == {
        "name": "calmtunes-release-check.service", "state": "started"}
    assert any("ansible.builtin.fail" in t for t in wait["rescue"])
    service = tasks(load(ANSIBLE / "roles/service/tasks/main.yml"))
    dropin = next(t["ansible.builtin.copy"] for t in service
                  if "calmtunes-release-check.service.d" in
                  str(t.get("ansible.builtin.copy", {}).get("dest")))
    assert "--deadline {{ calmtunes_ready_deadline | int }}" in dropin["content"]
    assert "ExecStart=\n" in dropin["content"]  # replaces the unit's ExecStart, not a second one
    unit = (REPO / "systemd/calmtunes-release-check.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*) --deadline", unit, re.M).group(1)
    assert f"ExecStart={exec_start} --deadline" in dropin["content"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_the_deadline_drop_in_verifies_with_the_check_unit(tmp_path):
    """The drop-in as Ansible writes it for a 40 s deadline, beside the unit: systemd-analyze
    verify reads both; the unit's time limit outlasts the deadline and the settle time."""
    service = tasks(load(ANSIBLE / "roles/service/tasks/main.yml"))
    content = next(t["ansible.builtin.copy"]["content"] for t in service
                   if "calmtunes-release-check.service.d" in
                   str(t.get("ansible.builtin.copy", {}).get("dest")))
    rendered = (content.replace("{{ calmtunes_ready_deadline | int + 120 }}", "160")
                .replace("{{ calmtunes_ready_deadline | int }}", "40"))
    assert "{{" not in rendered, rendered
    python = shutil.which("python3") or "/bin/true"
    unit = REPO / "systemd/calmtunes-release-check.service"
    (tmp_path / unit.name).write_text(unit.read_text().replace("/usr/bin/python3", python))
    dropins = tmp_path / f"{unit.name}.d"
    dropins.mkdir()
    (dropins / "deadline.conf").write_text(rendered.replace("/usr/bin/python3", python))
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit.name)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    settle = float(re.search(r"--settle (\d+)", rendered).group(1))
    assert 40 + settle < float(re.search(r"TimeoutStartSec=(\d+)", rendered).group(1))
