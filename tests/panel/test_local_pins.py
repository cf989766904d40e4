"""Real pins are driven from this process, never through pigpio's daemon over the network.

gpiozero's own default tries lgpio, RPi.GPIO, pigpio, then native. The pigpio client opens a TCP
socket to $PIGPIO_ADDR, so where lgpio fails (a user not in group gpio) and the client is
installed, gpiozero alone would drive the panel over the network. Each library is replaced here
by a stand-in module (gpiozero imports its factories by module name), so the tests say the same
on a Pi, on this machine, with or without any GPIO library installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.exc import BadPinFactory

from calmtunes import selftest as st
from calmtunes.config import Config
from calmtunes.hardware import LOCAL_PIN_FACTORIES, use_local_pins
from calmtunes.hub import Hub
from calmtunes.panel.component import PanelComponent

MODULES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
}


@pytest.fixture
def libraries(monkeypatch):
    """Stand-ins for gpiozero's four pin libraries: ``set(works={...})`` makes the named ones
    load and the others fail as off a Pi; returns the list of factories built, by name."""
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    built: list[str] = []

    def install(works: set[str] = frozenset()) -> list[str]:
        for name, (module, cls) in MODULES.items():
            def init(self, _name=name):
                if _name not in works:
                    raise OSError(f"{_name} cannot open the GPIO chip here")
                built.append(_name)

            fake = types.ModuleType(module)
            setattr(fake, cls, type(cls, (), {"__init__": init, "close": lambda self: None}))
            monkeypatch.setitem(sys.modules, module, fake)
        return built

    return install


def test_left_to_itself_gpiozero_would_drive_the_pins_over_the_network(libraries):
    """The control: with lgpio and RPi.GPIO failing, gpiozero's default takes pigpio."""
    built = libraries(works={"pigpio", "native"})
    with pytest.warns(Warning):
        Device._default_pin_factory()
    assert built == ["pigpio"]


def test_the_local_libraries_are_tried_in_order_and_pigpio_never(libraries):
    built = libraries(works={"pigpio", "native"})
    use_local_pins()
    assert built == ["native"]
    assert type(Device.pin_factory).__name__ == "NativeFactory"
    assert "pigpio" not in [name for name, _, _ in LOCAL_PIN_FACTORIES]


def test_the_first_local_library_that_loads_is_used(libraries):
    built = libraries(works={"lgpio", "rpigpio", "pigpio", "native"})
    use_local_pins()
    assert built == ["lgpio"]


def test_no_local_library_says_why_each_failed(libraries):
    built = libraries(works={"pigpio"})
    with pytest.raises(BadPinFactory) as err:
        use_local_pins()
    assert built == []
    for name in ("lgpio", "rpigpio", "native"):
        assert f"{name} cannot open the GPIO chip here" in str(err.value)
    assert Device.pin_factory is None


@pytest.mark.parametrize("named", ["pigpio", "PiGPIOFactory", " PIGPIO "])
def test_pigpio_named_by_the_environment_is_refused(libraries, monkeypatch, named):
    built = libraries(works={"pigpio"})
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", named)
    with pytest.raises(BadPinFactory, match="network"):
        use_local_pins()
    assert built == []


def test_another_factory_named_by_the_environment_is_gpiozeros_to_load(libraries, monkeypatch):
    libraries()
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    use_local_pins()
    assert Device.pin_factory is None  # gpiozero loads the mock factory at the first device


def test_the_panel_runs_without_its_pins_rather_than_over_the_network(libraries):
    built = libraries(works={"pigpio"})
    panel = PanelComponent(Config().replace(panel={"backend": "gpio"}), Hub())
    panel.open()  # no exception: the music goes on without the panel
    try:
        assert built == [] and not panel.buttons and not panel.leds
        assert "no GPIO access" in panel._no_gpio and "rpigpio" in panel._no_gpio
    finally:
        panel.close()


def test_selftest_reports_the_panel_instead_of_reaching_pigpio(libraries):
    built = libraries(works={"pigpio"})
    probe = st.Probe(dev=Path("/nonexistent"), chime=False, led_on_s=0.0, environ={},
                     run=lambda *a, **k: None)
    results = st.check_panel(Config(), probe)
    assert built == []
    assert len(results) == 1 and results[0].ok is False
    assert "lgpio" in results[0].detail and "python3-lgpio" in results[0].fix


def test_lgpio_gets_a_folder_of_its_own_when_started_by_hand(libraries, monkeypatch, tmp_path):
    """lgpio makes its FIFO in $LG_WD, else in the working folder (and moves the process
    there): a hand-started `selftest` left `.lgd-nfy*` where it was started, or failed in a
    folder its user may not write. The unit sets LG_WD; by hand, a private folder is used."""
    import os

    seen: list[str] = []
    libraries(works={"lgpio"})
    module, cls = MODULES["lgpio"]
    factory = getattr(sys.modules[module], cls)
    original = factory.__init__
    def init(self):
        seen.append(os.environ.get("LG_WD", ""))
        original(self)

    monkeypatch.setattr(factory, "__init__", init)
    monkeypatch.setenv("LG_WD", "")  # unset, as by hand (restored afterwards)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: real_find_spec(name, *a)
                        if name != "lgpio" else object())  # lgpio installed, as on a Pi
    use_local_pins()
    assert seen and Path(seen[0]).parent == tmp_path and Path(seen[0]).is_dir()
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("LG_WD", "/run/calmtunes")  # the unit's: left as it is
    use_local_pins()
    assert seen[-1] == "/run/calmtunes"


def test_without_lgpio_no_folder_is_made(libraries, monkeypatch, tmp_path):
    """Off a Pi (no lgpio) nothing is made anywhere: a strace of `selftest` in a clean
    environment showed a folder made and removed in /tmp for a library that is not there."""
    import importlib.util

    libraries(works={"native"})
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                        if name == "lgpio" else real_find_spec(name, *a))
    monkeypatch.setenv("LG_WD", "")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    use_local_pins()
    assert list(tmp_path.iterdir()) == []


def test_gpiozero_loads_without_package_metadata_and_still_finds_a_named_factory(tmp_path):
    """calmtunes.hardware.import_gpiozero leaves importlib.metadata (2–3 MB) unloaded until
    gpiozero looks a name up: a factory named by GPIOZERO_PIN_FACTORY, or a mock pin class by
    name, is found as gpiozero finds it. A fresh interpreter: this one has loaded it already."""
    code = """
import sys
from calmtunes.hardware import import_gpiozero
import_gpiozero("gpiozero.pins.mock")
print("before", "importlib.metadata" in sys.modules, "importlib_metadata" in sys.modules)
from gpiozero import LED
from gpiozero.pins.mock import MockFactory
print(type(LED(17).pin_factory).__name__, MockFactory(pin_class="mockpwmpin").pin_class.__name__)
"""
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60, check=True).stdout.split("\n")
    assert out[:2] == ["before False False", "MockFactory MockPWMPin"]


def test_the_metadata_stand_in_is_the_standard_module_to_any_other_importer(tmp_path):
    """While gpiozero loads, every thread sees the stand-in as ``importlib_metadata``: a library
    that tries the backport first and keeps what it got must find the standard module's names
    in it, and find_spec must work on it. A fresh interpreter, with the stand-in in place as
    import_gpiozero puts it."""
    code = """
import importlib.util, sys
from calmtunes.hardware import _metadata_stand_in
sys.modules["importlib_metadata"] = _metadata_stand_in()
import importlib_metadata
print(importlib.util.find_spec("importlib_metadata").name)
import importlib.metadata as real
print(importlib_metadata.version("numpy") == real.version("numpy"),
      importlib_metadata.PackageNotFoundError is real.PackageNotFoundError)
try:
    importlib_metadata.__wrapped__
except AttributeError:
    print("dunder: AttributeError")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60, check=True).stdout.split("\n")
    assert out[:3] == ["importlib_metadata", "True True", "dunder: AttributeError"]
