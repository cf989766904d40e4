"""The hardware profile: one factory that gives every part its backend, real or emulated.

As gpiozero's pin factory stands between its devices and the pins, :class:`Hardware` stands
between the components and the machine: the pulse component asks it for an I2C bus, the scene
component for a camera, the panel for a pin factory, the audio component for a sink. Which one
comes back is decided by the config alone:

``device.hardware: pi`` (the device)
    each part's own ``backend`` option: ``pulse.backend: max30102`` opens ``/dev/i2c-N``,
    ``scene.backend: opencv`` a USB camera, ``panel.backend: gpio`` the GPIO pins.
``device.hardware: sim`` (``calmtunes simulate``)
    every sense is emulated — the register-level MAX30102 on an emulated bus watching the
    simulated listener, the synthetic room, gpiozero's ``MockFactory`` — whatever the part's own
    backend says, except that a part set to ``none`` stays off (:func:`resolve`).

The profile is applied to every config the daemon takes, the reloaded ones included, so a
reload in simulation can never put the real sensor or camera in place of the emulated ones.

Hardware libraries (smbus2, OpenCV, picamera2, gpiozero, PortAudio) are imported here, late,
only for the backend in use.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from calmtunes.clock import SYSTEM
from calmtunes.errors import HardwareError

if TYPE_CHECKING:
    from calmtunes.audio.ring import AudioRing
    from calmtunes.audio.sinks import Sink
    from calmtunes.config import Config
    from calmtunes.hub import Hub
    from calmtunes.scene.backends import Camera

log = logging.getLogger(__name__)

PROFILES = ("pi", "sim")
#: the emulated backend of each sense under ``device.hardware: sim``
SIM_BACKENDS = {"pulse": "sim", "scene": "sim", "panel": "mock"}


def resolve(config: Config) -> Config:
    """``config`` with each part's backend as the hardware profile gives it."""
    if config.device.hardware != "sim":
        return config
    changes = {part: {"backend": backend} for part, backend in SIM_BACKENDS.items()
               if getattr(config, part).backend not in ("none", backend)}
    changes.setdefault("device", {})["simulate"] = True
    return config.replace(**changes)


class Hardware:
    """Makes the backends; keeps the simulated listener (when there is one) for traces."""

    def __init__(self, clock: Callable[[], float] = SYSTEM, hub: Hub | None = None) -> None:
        self.clock = clock
        self.hub = hub
        self.listener: Any = None  # the simulated listener the emulated finger belongs to

    @property
    def virtual(self) -> bool:
        return bool(getattr(self.clock, "virtual", False))

    # -- the pulse sensor ---------------------------------------------------------------------
    def pulse_bus(self, config: Config) -> Any:
        """The I2C bus for ``pulse.backend`` (``max30102`` or ``sim``), open."""
        p = config.pulse
        if p.backend == "sim":
            from calmtunes.sim.closed_loop import sim_scenario
            from calmtunes.sim.max30102 import emulated_bus

            scenario = sim_scenario(config.sim.scenario, config.sim.seed, self.hub)
            trajectory = getattr(scenario, "trajectory", None)
            if trajectory is not None and hasattr(trajectory, "listen_to"):
                self.listener = trajectory
            return emulated_bus(scenario=scenario, seed=config.sim.seed, clock=self.clock)
        if self.virtual:
            raise HardwareError("the real MAX30102 runs in real time: on the virtual clock use "
                                "device.hardware: sim")
        from smbus2 import SMBus  # only on the device

        try:
            return SMBus(p.i2c_bus)
        except FileNotFoundError:
            raise HardwareError(
                f"/dev/i2c-{p.i2c_bus} does not exist: enable I2C (dtparam=i2c_arm=on in "
                "/boot/firmware/config.txt, then reboot) or set pulse.i2c_bus"
            ) from None
        except PermissionError:
            raise HardwareError(
                f"no permission to open /dev/i2c-{p.i2c_bus}: add this user to the `i2c` group"
            ) from None

    # -- the camera ----------------------------------------------------------------------------
    def camera(self, config: Config) -> Camera:
        """The camera ``scene.backend`` names, not yet opened."""
        sc = config.scene
        if sc.backend == "sim":
            from calmtunes.sim.camera import SimCamera

            return SimCamera(sc.width, sc.height, scenario=config.sim.scenario,
                             seed=config.sim.seed, clock=self.clock)
        if self.virtual:
            raise HardwareError("a real camera runs in real time: on the virtual clock use "
                                "device.hardware: sim")
        from calmtunes.scene.backends import make_camera

        return make_camera(config, clock=self.clock)

    # -- buttons and LEDs ------------------------------------------------------------------------
    def pin_factory(self, config: Config) -> Any:
        """gpiozero's pin factory for ``panel.backend``: its mock pins for ``mock``, None for
        ``gpio`` (gpiozero's default, which the panel sets with :func:`use_local_pins` as it
        opens: lgpio on a Pi)."""
        if config.panel.backend == "mock":
            return mock_pin_factory()
        return None

    # -- sound ------------------------------------------------------------------------------------
    def sink(self, config: Config, ring: AudioRing, max_frames: int | None = None) -> Sink:
        from calmtunes.audio.sinks import make_sink

        a = config.audio
        return make_sink(a.backend, ring, a.sample_rate, device=a.device, wav_path=a.wav_path,
                         realtime=a.realtime, clock=self.clock, max_frames=max_frames)


def import_gpiozero(module: str = "gpiozero") -> types.ModuleType:
    """gpiozero (or its ``module``), imported without ``importlib.metadata``: the daemon's parts
    import gpiozero here first.

    gpiozero 2.0 imports ``entry_points`` from ``importlib.metadata`` (or the
    ``importlib_metadata`` backport, which it tries first) as it loads, in ``gpiozero.devices``
    and ``gpiozero.pins.mock``, for one thing only: to find a pin factory (or mock pin class)
    named by a string, ``GPIOZERO_PIN_FACTORY``'s. That import brings ``email``, ``zipfile``
    and some 30 modules more, 2–3 MB of the daemon's memory for nothing when no factory is
    named (the panel sets lgpio itself: :func:`use_local_pins`). While gpiozero loads,
    ``importlib_metadata`` is a stand-in (:func:`_metadata_stand_in`) whose ``entry_points``
    imports the real one when first called, so a factory named in the environment is found as
    before."""
    if module in sys.modules:
        return sys.modules[module]
    if "importlib_metadata" in sys.modules or "importlib.metadata" in sys.modules:
        return importlib.import_module(module)  # already loaded: nothing to save
    stand_in = _metadata_stand_in()
    sys.modules["importlib_metadata"] = stand_in
    try:
        return importlib.import_module(module)
    finally:
        if sys.modules.get("importlib_metadata") is stand_in:
            del sys.modules["importlib_metadata"]


def _metadata_stand_in() -> types.ModuleType:
    """A module named ``importlib_metadata`` that is ``importlib.metadata`` once used.

    It is in ``sys.modules`` only while gpiozero loads, but every thread sees it then: a library
    imported by another thread at that moment that tries the backport first gets it and keeps
    it. So it is the standard library's module in all but when it loads: any name looked up in
    it (``version``, ``distribution`` …) comes from ``importlib.metadata``, imported then, and it
    has a module spec like any module (``importlib.util.find_spec`` works on it)."""
    stand_in = types.ModuleType("importlib_metadata")
    stand_in.__spec__ = importlib.machinery.ModuleSpec("importlib_metadata", None)
    stand_in.entry_points = _entry_points  # type: ignore[attr-defined]

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module("importlib.metadata"), name)

    stand_in.__getattr__ = __getattr__  # type: ignore[attr-defined]  # PEP 562
    return stand_in


def _entry_points(**params: Any) -> Any:
    from importlib.metadata import entry_points

    return entry_points(**params)


#: gpiozero's pin factories that drive the pins from this process, in gpiozero's own order of
#: preference: (name, module, class). Its default list also holds pigpio, between RPi.GPIO and
#: native, whose client drives the pins through the pigpio daemon over TCP ($PIGPIO_ADDR,
#: default localhost:8888): a network socket, which calmtunes never opens.
LOCAL_PIN_FACTORIES = (
    ("lgpio", "gpiozero.pins.lgpio", "LGPIOFactory"),
    ("rpigpio", "gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    ("native", "gpiozero.pins.native", "NativeFactory"),
)
#: GPIOZERO_PIN_FACTORY names (as gpiozero matches them: verbatim or lower-cased) of factories
#: that reach the pins over the network
NETWORK_PIN_FACTORIES = frozenset({"pigpio", "pigpiofactory"})


def use_local_pins() -> None:
    """Make gpiozero's default pin factory (``Device.pin_factory``, what every device created
    without a ``pin_factory`` uses) one that drives the pins from this process.

    Left to itself gpiozero tries lgpio, RPi.GPIO, then pigpio, then native: with lgpio
    failing (a user not in group ``gpio``) and pigpio's client installed, the panel would be
    driven over TCP. Here the first of :data:`LOCAL_PIN_FACTORIES` that loads is set instead. A
    factory named by ``GPIOZERO_PIN_FACTORY`` (``mock`` in a test) is gpiozero's to load, unless
    it is pigpio. Raises gpiozero's ``BadPinFactory`` saying why each was refused and what to
    do; the callers run without the panel then."""
    import_gpiozero()
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    named = os.environ.get("GPIOZERO_PIN_FACTORY")
    if named is not None and named.strip().lower() in NETWORK_PIN_FACTORIES:
        raise BadPinFactory(
            f"GPIOZERO_PIN_FACTORY={named} drives the pins through the pigpio daemon over the "
            "network, which calmtunes never uses; unset it (lgpio is used)")
    if named or Device.pin_factory is not None:
        return
    _lgpio_work_folder()
    reasons = []
    for name, module, cls in LOCAL_PIN_FACTORIES:
        try:
            Device.pin_factory = getattr(importlib.import_module(module), cls)()
            return
        except Exception as exc:  # each library fails in its own way off a Pi
            reasons.append(f"{name}: {exc}")
    raise BadPinFactory("no GPIO library can drive the pins here (" + "; ".join(reasons) + ")")


def _lgpio_work_folder() -> None:
    """Give lgpio a folder of its own for its notification FIFOs (``.lgd-nfyN``), which it makes
    in ``$LG_WD``, else in the working folder, and then moves the process into (lgpio 0.2.2,
    ``lgUtil.c``/``lgNotify.c``). The unit sets ``LG_WD=/run/calmtunes``; a command started by
    hand (``selftest``, ``fault``, ``run``) would leave the FIFO in the folder it was started
    from, or fail where that folder is not writable (a technician's home under ``sudo -u
    calmtunes``). It gets the user's runtime folder (``$XDG_RUNTIME_DIR``, as the lgpio issue
    joan2937/lg#12 suggests), else a private temporary folder removed at exit."""
    if os.environ.get("LG_WD") or importlib.util.find_spec("lgpio") is None:
        return  # set by the unit; or no lgpio here, so nothing to make a folder for
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not (base and os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK)):
        base = None
    try:
        folder = tempfile.mkdtemp(prefix="calmtunes-lgpio-", dir=base)
    except OSError:
        return  # lgpio's own message then says what it could not do
    atexit.register(shutil.rmtree, folder, True)
    os.environ["LG_WD"] = folder


#: state changes a simulated pin remembers (gpiozero's mock pins remember every one, for tests)
MOCK_PIN_HISTORY = 256


def mock_pin_factory() -> Any:
    """gpiozero's ``MockFactory`` with PWM pins that keep only their last
    :data:`MOCK_PIN_HISTORY` state changes: gpiozero's own keep all of them, and the simulated
    pulse LED changes ~10 times a second, some 300 000 records (~30 MB) over a night."""
    from collections import deque

    import_gpiozero("gpiozero.pins.mock")
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    class BoundedMockPWMPin(MockPWMPin):
        def clear_states(self) -> None:
            super().clear_states()
            self.states = deque(self.states, maxlen=MOCK_PIN_HISTORY)

    return MockFactory(pin_class=BoundedMockPWMPin)
