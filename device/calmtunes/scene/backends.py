"""Cameras behind one small interface, chosen by ``config.scene.backend``.

Every backend has ``open()`` (raise :class:`CameraError` when the camera is not there),
``read()`` (one 8-bit BGR frame as a ``numpy`` array, or :class:`CameraError` when none comes)
and ``close()`` (may be called twice). One object is reopened after each fault, so it can keep
what it learnt (the emulator keeps its clock and timeline).

============ ======================================================== ============================
backend      what                                                     module (imported only here)
============ ======================================================== ============================
opencv       a USB (UVC) camera through OpenCV's V4L2 capture          ``scene.opencv_camera``
picamera2    the Pi's CSI camera through libcamera                    ``scene.picamera2_camera``
sim          the emulated room (made by ``calmtunes.hardware``)       ``sim.camera``
none         no camera: the scene component stays off                 —
============ ======================================================== ============================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from calmtunes.errors import CameraError

if TYPE_CHECKING:
    from calmtunes.config import Config

BACKENDS = ("opencv", "picamera2", "sim")


__all__ = ["BACKENDS", "Camera", "CameraError", "make_camera"]


class Camera(Protocol):
    name: str

    def open(self) -> None: ...

    def read(self) -> np.ndarray: ...

    def close(self) -> None: ...


def make_camera(config: Config, clock: Callable[[], float] = time.monotonic) -> Camera:
    """The camera ``config.scene.backend`` names, not yet opened.

    ``clock`` drives the emulated camera's timeline (tests step it by hand); real cameras take
    pictures when asked. Raises ValueError for ``"none"`` or an unknown name.
    """
    sc = config.scene
    if sc.backend == "opencv":
        from calmtunes.scene.opencv_camera import OpenCVCamera

        return OpenCVCamera(sc.device, sc.width, sc.height)
    if sc.backend == "picamera2":
        from calmtunes.scene.picamera2_camera import Picamera2Camera

        return Picamera2Camera(sc.width, sc.height)
    if sc.backend == "sim":  # the emulator lives in calmtunes.sim; the hardware profile makes it
        from calmtunes.hardware import Hardware

        return Hardware(clock).camera(config)
    raise ValueError(f"scene.backend {sc.backend!r} makes no camera; choose one of "
                     f"{', '.join(BACKENDS)}")
