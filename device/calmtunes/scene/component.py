"""The scene component: about one frame per ``scene.interval_s``, a few numbers out.

Each step reads one frame, measures it (:class:`~calmtunes.scene.analyser.SceneAnalyser`),
drops it, and publishes the :class:`~calmtunes.scene.features.SceneFeatures` record on
``"scene"`` — the only thing that leaves this package. The frame is a local of :meth:`step`:
it is never stored, logged, written or published.

The camera's state goes out on ``"camera"`` as ``{"active": bool, "reason": str}`` for the
panel's camera LED: lit exactly while frames are being taken.

Off switches: ``scene.enabled: false`` or ``scene.backend: none`` keep the camera closed; the
control loop owns the privacy switch and publishes it on ``"privacy"`` (True: camera off), which
this component obeys — it never toggles anything itself. In
privacy the camera device is released, not merely ignored, and the last scene record is
withdrawn (``"scene"`` becomes None) so nothing goes on acting on a picture of the past.

Faults never stop the music: a camera that is absent or unplugged raises
:class:`~calmtunes.scene.backends.CameraError`, which the component base logs, reports as
degraded and retries with exponential back-off (0.5 s doubling to 30 s), reopening the camera.
A single black or corrupt frame is skipped and the next one tried at once; three in a row count
as a lost camera. While the camera is lost, ``"scene"`` is None: the conductor plays on without
scene context.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from calmtunes.clock import SYSTEM
from calmtunes.component import OK, Component
from calmtunes.config import Config
from calmtunes.hardware import Hardware
from calmtunes.hub import Hub
from calmtunes.scene.analyser import SceneAnalyser
from calmtunes.scene.backends import Camera, CameraError
from calmtunes.scene.features import FrameError

log = logging.getLogger(__name__)

#: this many black or corrupt frames in a row and the camera is taken as lost and reopened
BAD_FRAMES_TO_REOPEN = 3
#: how often an idle (disabled or private) component looks at its switches again, s
IDLE_S = 5.0


class SceneComponent(Component):
    name = "scene"
    config_sections = ("scene", "sim")

    def __init__(self, config: Config, hub: Hub, camera: Camera | None = None,
                 analyser: SceneAnalyser | None = None,
                 clock: Callable[[], float] = SYSTEM, hardware: Hardware | None = None) -> None:
        super().__init__(config, hub, clock)
        self.hardware = hardware or Hardware(clock, hub)
        self._clock = clock
        self._camera = camera
        self._analyser = analyser
        self._camera_open = False
        self._privacy = False
        self._bad_frames = 0
        self._published: tuple[bool, str] | None = None
        self.frames_analysed = 0
        self.analysis_ms = 0.0  # CPU time of the last analysis, ms
        self._rebuild = False
        hub.subscribe("privacy", self._on_privacy)

    # -- switches ------------------------------------------------------------------------------
    @property
    def privacy(self) -> bool:
        return self._privacy

    def _on_privacy(self, private: Any) -> None:
        # Runs in the publisher's thread: set the switch and wake our thread, nothing more.
        private = bool(private)
        if private != self._privacy:
            self._privacy = private
            self.wake()

    def reconfigure(self, config: Config) -> str:
        """A new camera, size or rate is taken at the next frame: the camera is reopened."""
        self.config = config
        self._rebuild = True
        self.wake()
        return "reconfigured (camera reopened)"

    # -- the work ------------------------------------------------------------------------------
    def step(self, now: float) -> float:
        sc = self.config.scene
        if self._rebuild:
            self._rebuild = False
            self._close_camera("reconfigured")
            self._camera = self._analyser = None
        off = self._off_reason()
        if off:
            self._close_camera(off)
            self.disable(off)
            return IDLE_S
        if not self._camera_open:
            self._open_camera()
            off = self._off_reason()  # privacy pressed while it opened: no frame is taken
            if off:
                self._close_camera(off)
                self.disable(off)
                return IDLE_S
        assert self._camera is not None and self._analyser is not None
        started = time.thread_time()
        try:
            frame = self._camera.read()
        except CameraError as exc:
            self._close_camera(f"camera lost: {exc}")
            raise
        try:
            features = self._analyser.analyse(frame, now)
        except FrameError as exc:
            self._bad_frames += 1
            if self._bad_frames >= BAD_FRAMES_TO_REOPEN:
                reason = f"{self._bad_frames} bad frames in a row, last: {exc}"
                self._close_camera(reason)
                raise CameraError(reason) from None
            self.degrade(str(exc))
            return 0.0
        finally:
            del frame  # the picture ends here
        self.analysis_ms = (time.thread_time() - started) * 1000.0
        self._bad_frames = 0
        self.frames_analysed += 1
        self.hub.publish("scene", features)
        self._publish_camera(True, "")
        if self._state != OK:
            self.mark_ok(self._analyser.people_note)
        return max(0.0, sc.interval_s - (self._clock() - now))

    def _off_reason(self) -> str:
        sc = self.config.scene
        if sc.backend == "none":
            return "no camera configured (scene.backend: none)"
        if not sc.enabled:
            return "camera disabled in config (scene.enabled: false)"
        if self._privacy:
            return "camera off for privacy"
        return ""

    def _open_camera(self) -> None:
        sc = self.config.scene
        if self._analyser is None:
            self._analyser = SceneAnalyser(sc.width, sc.height,
                                           people_every_s=sc.people_every_s,
                                           people_still_s=sc.people_still_s)
        if self._camera is None:
            self._camera = self.hardware.camera(self.config)
        try:
            self._camera.open()
        except CameraError as exc:
            self._publish_camera(False, f"camera unavailable: {exc}")
            raise
        self._camera_open = True
        self._bad_frames = 0
        self._analyser.reset()  # no motion against a frame from before the gap
        # said once; reopening after a fault that lasts says nothing new
        (log.debug if self._failures else log.info)(
            "camera %s open, %dx%d every %.1f s", self._camera.name, sc.width, sc.height,
            sc.interval_s)

    def _close_camera(self, reason: str) -> None:
        if self._camera_open and self._camera is not None:
            try:
                self._camera.close()
            finally:
                self._camera_open = False
        if self._analyser is not None:
            self._analyser.reset()
        if self._published is None or self._published[0]:
            self.hub.publish("scene", None)  # withdraw the last record: it is out of date
        self._publish_camera(False, reason)

    def _publish_camera(self, active: bool, reason: str) -> None:
        if self._published != (active, reason):
            self._published = (active, reason)
            self.hub.publish("camera", {"active": active, "reason": reason})

    def close(self) -> None:
        """Release the camera (after a fault, and on stop)."""
        if self._camera_open:
            self._close_camera("stopped" if self.stopping else "camera closed after a fault")

    def status(self) -> dict:
        return {
            "backend": self.config.scene.backend,
            "camera_active": bool(self._published and self._published[0]),
            "privacy": self._privacy,
            "frames": self.frames_analysed,
            "people_detector": self._analyser is not None and self._analyser.detector is not None,
            "analysis_ms": round(self.analysis_ms, 1),
            # simulation: the CPU time the emulated camera took drawing frames
            **({"emulator_cpu_s": round(self._camera.cpu_s, 3)}
               if hasattr(self._camera, "cpu_s") else {}),
        }


def make_component(config: Config, hub: Hub, hardware: Hardware | None = None) -> Component:
    hardware = hardware or Hardware(SYSTEM, hub)
    return SceneComponent(config, hub, clock=hardware.clock, hardware=hardware)
