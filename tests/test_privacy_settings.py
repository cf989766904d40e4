"""The package's privacy settings: forced on import, reached by every entry point, in the unit.

test_privacy_strace.py shows what they prevent; these check they are where they must be.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import calmtunes

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "calmtunes.service"
# Libraries with telemetry or caches of their own, or that load them (models: training, export).
WATCHED = ("onnxruntime", "onnx", "torch", "cv2")


def _fresh_python(code: str, **env: str) -> str:
    """``code`` in a fresh interpreter started from the repository root, with ``env`` added to
    an environment that has none of the package's variables."""
    base = {k: v for k, v in os.environ.items() if k not in calmtunes.PRIVACY_ENVIRONMENT}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT / "device"), str(ROOT)])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**base, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_onnxruntime_telemetry_is_off_in_the_settings():
    assert calmtunes.PRIVACY_ENVIRONMENT["ORT_DISABLE_TELEMETRY"] == "1"


@pytest.mark.parametrize("module", ["calmtunes", "calmtunes.cli", "models.generator.vocab"])
def test_importing_the_package_forces_the_settings_over_inherited_values(module):
    shown = _fresh_python(
        f"import os, {module}; print(os.environ['ORT_DISABLE_TELEMETRY'], "
        "os.environ['OPENCV_OPENCL_RUNTIME'])",
        ORT_DISABLE_TELEMETRY="0", OPENCV_OPENCL_RUNTIME="/opt/vendor/libOpenCL.so")
    assert shown == "1 disabled"


def test_the_settings_are_in_force_before_onnxruntime_is_imported():
    shown = _fresh_python("import sys, calmtunes; print('onnxruntime' in sys.modules)")
    assert shown == "False"


def test_the_test_suite_runs_with_the_settings():
    # conftest imports calmtunes before any test module, so every test and every process a test
    # starts with os.environ has telemetry off.
    for name, value in calmtunes.PRIVACY_ENVIRONMENT.items():
        assert os.environ.get(name) == value, name


def _imports(tree: ast.AST) -> list[tuple[int, str, bool]]:
    """(line, top-level module, at module level) for every import in a parsed file."""
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n.split(".")[0], id(node) in top) for n in names]
    return sorted(found)


def _python_scripts() -> list[Path]:
    return sorted(p for p in (ROOT / "scripts").iterdir() if p.is_file()
                  and p.read_text(errors="replace").startswith("#!/usr/bin/env python"))


def import_order_problem(source: str, name: str) -> str | None:
    """What is wrong with the order of a script's imports, or None: a script that loads a
    watched library must import calmtunes (or models, which imports it) at module level, and
    before any module-level import of a watched library."""
    imports = _imports(ast.parse(source, name))
    watched = [(line, mod) for line, mod, _ in imports if mod in WATCHED]
    if not watched:
        return None  # it loads none of them itself (e.g. runs `calmtunes` as a process)
    first = [line for line, mod, top in imports if top and mod in ("calmtunes", "models")]
    if not first:
        return f"{name} imports {watched[0][1]} but never calmtunes at module level"
    early = [f"{mod} (line {line})" for line, mod, top in imports
             if top and mod in WATCHED and line < first[0]]
    if early:
        return f"{name} imports {', '.join(early)} before calmtunes (line {first[0]})"
    return None


@pytest.mark.parametrize("script", _python_scripts(), ids=lambda p: p.name)
def test_scripts_import_the_package_before_any_watched_library(script):
    assert import_order_problem(script.read_text(), script.name) is None


def test_the_import_order_check_finds_a_library_loaded_too_early():
    assert "torch (line 2)" in import_order_problem(
        "import os\nimport torch\nimport calmtunes\n", "early")
    assert "never calmtunes" in import_order_problem(
        "def f():\n    import onnxruntime\n", "lazy")
    assert import_order_problem("import calmtunes\ndef f():\n    import cv2\n", "ok") is None
    assert import_order_problem("import numpy\n", "none") is None


def test_the_unit_sets_telemetry_off_and_keeps_lgpio_in_the_runtime_folder():
    service, section = [], None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line.startswith("Environment="):
            service.append(line.partition("=")[2])
    assert "ORT_DISABLE_TELEMETRY=1" in service
    assert "OPENCV_OPENCL_RUNTIME=disabled" in service
    assert "LG_WD=/run/calmtunes" in service  # lgpio's FIFOs in the runtime folder
    assert "RuntimeDirectory=calmtunes" in UNIT.read_text()
