"""The Raspberry Pi's CSI camera through picamera2 (libcamera), imported only here.

picamera2 comes with Raspberry Pi OS (``apt install python3-picamera2``), not from PyPI; where
it is missing, ``open()`` says so and the component retries with back-off like any absent camera.
The stream is configured as ``RGB888`` — in libcamera's naming that is 24 bits per pixel stored
B, G, R, exactly OpenCV's BGR — at the analysis size, so no conversion or resize is needed.
"""

from __future__ import annotations

import contextlib

import numpy as np

from calmtunes.scene.backends import CameraError

#: the longest a frame is waited for, s: a camera that stalls must fail a read well within the
#: scene component's 10 s heartbeat, or the supervisor takes the thread for hung and the
#: watchdog restarts the daemon, music and all (picamera2 waits with a timeout since its
#: releases of early 2024, picamera2#889; an older one waits without)
READ_TIMEOUT_S = 3.0


class Picamera2Camera:
    name = "picamera2"

    def __init__(self, width: int = 320, height: int = 240) -> None:
        self.width, self.height = width, height
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError("picamera2 is not installed: apt install python3-picamera2, "
                              "or set scene.backend to opencv for a USB camera") from None
        cam = None
        try:
            if not Picamera2.global_camera_info():
                raise CameraError("no CSI camera found: check the ribbon cable and "
                                  "camera_auto_detect=1 in /boot/firmware/config.txt")
            cam = Picamera2()
            cam.configure(cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"}, buffer_count=2))
            cam.start()
        except Exception as exc:  # libcamera raises RuntimeError and friends
            if cam is not None:
                # Picamera2() acquired the camera: kept, every retry would find it busy (ours)
                with contextlib.suppress(Exception):  # the start's error is the one to report
                    cam.close()
            if isinstance(exc, CameraError):
                raise
            raise CameraError(f"CSI camera did not start: {exc}") from exc
        self._cam = cam

    def read(self) -> np.ndarray:
        if self._cam is None:
            raise CameraError("CSI camera: read before open")
        try:
            job = self._cam.capture_array("main", wait=False)
            try:
                return self._cam.wait(job, timeout=READ_TIMEOUT_S)
            except TypeError:  # an older picamera2: its wait() takes no timeout
                return self._cam.wait(job)
        except TimeoutError as exc:
            raise CameraError(f"CSI camera: no frame within {READ_TIMEOUT_S:g} s (stalled?)"
                              ) from exc
        except Exception as exc:
            raise CameraError(f"CSI camera: no frame ({exc})") from exc

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()
