"""A USB (UVC) camera through OpenCV's ``VideoCapture`` on V4L2 (``/dev/videoN``).

The capture is asked for the analysis size; a camera that cannot give it delivers its nearest
mode and the analyser resizes. The driver's queue is cut to one buffer so a read returns the
picture of now, not one taken seconds ago at 1 analysed frame per second (V4L2 drops new frames
while every buffer is full, so the one queued buffer is first discarded with ``grab()``). A
camera unplugged mid-session makes ``read()`` fail (V4L2 answers ENODEV), and one that stalls
fails it within :data:`V4L_SELECT_TIMEOUT_S` a wait; that raises :class:`CameraError` and the
component reopens it with back-off.

Real cameras expose automatically: a dim room comes out brighter than it is, which moves the
luminance bands of the labels. Where that matters, fix the exposure with
``v4l2-ctl -c auto_exposure=1,exposure_time_absolute=...`` in the unit's ExecStartPre.
"""

from __future__ import annotations

import os

import numpy as np

from calmtunes.scene.backends import CameraError

#: OpenCV's V4L2 backend waits this long (s) for each frame of a camera that stopped sending
#: (``select()`` on the device; its own default is 10 s, read once, at the first capture). A read
#: here is a grab and a retrieve: at the default a stalled camera (a USB hiccup, a firmware that
#: hangs) held the scene thread 20 s, past its 10 s heartbeat, so the supervisor withheld the
#: watchdog and systemd restarted the daemon: the music stopped for a camera. At 2 s a stalled
#: read fails within 4 s and the component reopens the camera with back-off; a camera at any
#: frame rate it is asked for (the analysis takes one frame a second) answers far sooner. An
#: OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT in the environment is left as it is.
V4L_SELECT_TIMEOUT_S = 2
V4L_SELECT_TIMEOUT_ENV = "OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT"


class OpenCVCamera:
    name = "opencv"

    def __init__(self, index: int = 0, width: int = 320, height: int = 240) -> None:
        self.index, self.width, self.height = index, width, height
        self._cap = None

    @property
    def path(self) -> str:
        return f"/dev/video{self.index}"

    def open(self) -> None:
        os.environ.setdefault(V4L_SELECT_TIMEOUT_ENV, str(V4L_SELECT_TIMEOUT_S))
        import cv2

        if not os.path.exists(self.path):
            raise CameraError(f"no camera at {self.path}: check the USB cable, or set "
                              "scene.device to the camera's index (ls /dev/video*)")
        cap = cv2.VideoCapture(self.index, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.path} exists but does not open as a camera: is another "
                              "program using it, or is the calmtunes user not in group video?")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise CameraError(f"{self.path}: read before open")
        self._cap.grab()  # the queued frame is as old as the last read: discard it
        ok, frame = self._cap.read()
        if not ok or frame is None:
            gone = "" if os.path.exists(self.path) else " (the device has gone: unplugged?)"
            raise CameraError(f"{self.path}: no frame{gone}")
        return frame

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
