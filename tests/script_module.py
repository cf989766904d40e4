"""The project's scripts (``scripts/*``, Python files without a ``.py`` suffix) loaded as modules,
so tests can call their functions."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``scripts/<name>`` as a fresh module named ``calmtunes_<name>``."""
    module_name = "calmtunes_" + name.replace("-", "_")
    loader = importlib.machinery.SourceFileLoader(module_name, str(REPO / "scripts" / name))
    spec = importlib.util.spec_from_loader(module_name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
