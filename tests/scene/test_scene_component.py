"""The scene component: publishing, the privacy switch, config switches, faults, no frame kept."""

from __future__ import annotations

import numpy as np
import pytest

from calmtunes.component import DEGRADED, DISABLED, OK
from calmtunes.config import Config
from calmtunes.hub import Hub
from calmtunes.scene.backends import CameraError, make_camera
from calmtunes.scene.component import BAD_FRAMES_TO_REOPEN, SceneComponent, make_component
from calmtunes.scene.features import LABELS, SceneFeatures
from calmtunes.sim.camera import SimCamera


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def setup(scenario: str = "day", **scene) -> tuple[SceneComponent, Hub, SimCamera, Clock]:
    config = Config().replace(scene={"backend": "sim", **scene}, sim={"scenario": scenario})
    hub = Hub()
    clock = Clock()
    camera = SimCamera(config.scene.width, config.scene.height, scenario=scenario, clock=clock)
    component = SceneComponent(config, hub, camera=camera, clock=clock)
    return component, hub, camera, clock


def run(component: SceneComponent, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):
        clock.now += 1.0
        component.step(clock.now)


def record(hub: Hub, topic: str) -> list:
    seen: list = []
    hub.subscribe(topic, seen.append)
    return seen


def test_publishes_feature_records_and_lights_the_camera_led():
    component, hub, _camera, clock = setup("night")
    cameras = record(hub, "camera")
    run(component, clock, 3)
    features = hub.latest("scene")
    assert isinstance(features, SceneFeatures)
    assert features.label == "night" and features.label in LABELS
    assert features.t == clock.now
    assert 0.0 <= features.luminance < 0.12
    assert cameras == [{"active": True, "reason": ""}]  # published once, not every frame
    assert component.health().state == OK
    assert component.status()["frames"] == 3


def test_step_asks_for_the_next_frame_one_interval_later():
    component, _, _, clock = setup(interval_s=2.0)
    clock.now = 5.0
    delay = component.step(4.6)  # the step began 0.4 s ago (by the injected clock)
    assert delay == pytest.approx(1.6)


def test_privacy_command_turns_the_camera_off_and_on():
    component, hub, camera, clock = setup()
    cameras = record(hub, "camera")
    run(component, clock, 2)
    hub.publish("privacy", True)  # the control loop owns the switch; the component obeys
    assert component.privacy
    run(component, clock, 1)
    assert not camera.is_open  # the device itself is released
    assert hub.latest("scene") is None  # the last record is withdrawn
    assert cameras[-1] == {"active": False, "reason": "camera off for privacy"}
    assert component.health().state == DISABLED
    opens, frames = camera.opens, component.frames_analysed
    run(component, clock, 3)
    assert (camera.opens, component.frames_analysed) == (opens, frames)  # nothing taken
    hub.publish("privacy", False)
    run(component, clock, 1)
    assert camera.is_open and isinstance(hub.latest("scene"), SceneFeatures)
    assert cameras[-1] == {"active": True, "reason": ""}
    assert component.health().state == OK


def test_privacy_pressed_while_the_camera_opens_takes_no_frame():
    # opening a camera takes a moment (up to the open timeout): the switch pressed then is
    # obeyed before the first frame, not after it
    component, hub, camera, clock = setup()
    real_open = camera.open

    def slow_open():
        real_open()
        hub.publish("privacy", True)

    camera.open = slow_open
    clock.now += 1.0
    component.step(clock.now)
    assert component.frames_analysed == 0 and hub.latest("scene") is None
    assert not camera.is_open and component.health().state == DISABLED


def test_the_component_obeys_the_privacy_state_and_never_toggles_it():
    component, hub, _, _clock = setup()
    hub.publish("privacy", True)
    hub.publish("privacy", True)  # the same state again: still private, not toggled back
    assert component.privacy
    hub.publish("privacy", False)
    assert not component.privacy
    hub.command("privacy")  # a command is the control loop's to interpret, not ours
    assert not component.privacy


@pytest.mark.parametrize("scene, reason", [
    ({"enabled": False}, "scene.enabled: false"),
    ({"backend": "none"}, "scene.backend: none"),
])
def test_config_keeps_the_camera_off(scene, reason):
    config = Config().replace(scene=scene)
    hub = Hub()
    component = make_component(config, hub)
    assert isinstance(component, SceneComponent)
    cameras = record(hub, "camera")
    assert component.step(0.0) >= 1.0
    assert component.health().state == DISABLED
    assert reason in component.health().detail
    assert cameras == [{"active": False, "reason": component.health().detail}]
    assert component._camera is None  # no camera was ever made


def test_reconfigure_to_disabled_closes_the_camera():
    component, hub, camera, clock = setup()
    run(component, clock, 1)
    component.reconfigure(component.config.replace(scene={"enabled": False}))
    run(component, clock, 1)
    assert not camera.is_open
    assert hub.latest("camera")["active"] is False


def test_absent_camera_raises_for_back_off_and_says_why():
    component, hub, camera, _clock = setup()
    camera.present = False
    with pytest.raises(CameraError, match="no camera"):
        component.step(1.0)
    assert hub.latest("camera") == {
        "active": False, "reason": "camera unavailable: emulated camera: no camera connected"}


def test_unplugged_mid_session_withdraws_the_scene_and_reopens_later():
    component, hub, camera, clock = setup()
    run(component, clock, 2)
    camera.unplug()
    with pytest.raises(CameraError, match="unplugged"):
        run(component, clock, 1)
    assert hub.latest("scene") is None
    assert hub.latest("camera")["active"] is False
    assert "unplugged" in hub.latest("camera")["reason"]
    camera.plug_in()
    run(component, clock, 1)
    assert isinstance(hub.latest("scene"), SceneFeatures)
    assert camera.opens == 2


def test_a_black_frame_is_skipped_and_retried_at_once():
    component, hub, camera, clock = setup()
    run(component, clock, 2)
    before = hub.latest("scene")
    camera.inject("black")
    clock.now += 1
    assert component.step(clock.now) == 0.0
    assert component.health().state == DEGRADED
    assert "black" in component.health().detail
    assert hub.latest("scene") is before  # nothing published from a black frame
    run(component, clock, 1)
    assert component.health().state == OK


@pytest.mark.parametrize("kind", ["black", "corrupt"])
def test_bad_frames_in_a_row_count_as_a_lost_camera(kind):
    component, hub, camera, clock = setup()
    run(component, clock, 1)
    camera.inject(kind, BAD_FRAMES_TO_REOPEN)
    for _ in range(BAD_FRAMES_TO_REOPEN - 1):
        component.step(clock.now)
    with pytest.raises(CameraError, match=f"{BAD_FRAMES_TO_REOPEN} bad frames in a row"):
        component.step(clock.now)
    assert hub.latest("scene") is None
    assert not camera.is_open


def test_faults_in_the_running_task_degrade_then_recover():
    """On the scheduler, as the daemon runs it on a virtual clock: back-off and reopening are
    the component base's, in virtual time."""
    from calmtunes.clock import VirtualClock
    from calmtunes.scheduler import Scheduler

    clock = VirtualClock(start=10.0)
    config = Config().replace(scene={"backend": "sim", "interval_s": 0.2})
    hub = Hub()
    camera = SimCamera(config.scene.width, config.scene.height, scenario="day", clock=clock)
    component = SceneComponent(config, hub, camera=camera, clock=clock)
    sched = Scheduler(clock)
    states: list = []
    hub.subscribe("health", states.append)
    component.start(sched)
    try:
        sched.run_until(11.0)
        assert component.frames_analysed >= 4
        camera.unplug()
        sched.run_until(12.0)
        assert component.health().state == DEGRADED
        assert "CameraUnplugged" in component.health().detail
        camera.plug_in()
        frames = component.frames_analysed
        sched.run_until(20.0)  # the back-off is 0.5 s doubling: well within 8 s
        assert component.frames_analysed > frames and component.health().state == OK
    finally:
        component.stop()
    assert ("scene", DEGRADED) in {(name, state) for name, state, _ in states}
    assert not camera.is_open
    assert hub.latest("camera") == {"active": False, "reason": "stopped"}



def test_a_camera_that_keeps_sending_bad_frames_backs_off_and_is_said_once(caplog):
    """A lens covered for good (black frames, every read): reopened with the base's doubling
    back-off, not every 0.5 s; one error in the log, no false 'recovered' between reopens."""
    import logging

    from calmtunes.clock import VirtualClock
    from calmtunes.scheduler import Scheduler

    caplog.set_level(logging.INFO, logger="calmtunes")
    clock = VirtualClock(start=10.0)
    config = Config().replace(scene={"backend": "sim", "interval_s": 1.0})
    camera = SimCamera(config.scene.width, config.scene.height, scenario="day", clock=clock)
    opens = 0
    open_camera = camera.open

    def counted_open():
        nonlocal opens
        opens += 1
        open_camera()

    camera.open = counted_open
    component = SceneComponent(config, Hub(), camera=camera, clock=clock)
    sched = Scheduler(clock)
    component.start(sched)
    try:
        sched.run_until(12.0)
        camera.inject("black", 100_000)
        sched.run_until(612.0)
        covered = component.health()
        camera._faults.clear()  # the lens uncovered
        sched.run_until(660.0)
        uncovered = component.health()
    finally:
        component.stop()
    assert opens <= 30  # 0.5 s doubling to 30 s: ~25 in 10 min, not ~1,200
    assert covered.state == DEGRADED and "bad frames" in covered.detail
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len([m for m in said if "bad frames in a row" in m]) == 1
    assert len([m for m in said if "camera" in m and "open" in m]) == 1
    assert len([m for m in said if "recovered" in m]) <= 1
    assert uncovered.state == OK

def test_no_frame_outlives_its_step():
    """Nothing the component holds, or published, is anywhere near a frame's size."""
    component, hub, _camera, clock = setup("visitors")
    published: list = []
    for topic in ("scene", "camera", "health"):
        hub.subscribe(topic, published.append)
    run(component, clock, 5)
    frame_px = 320 * 240
    seen: set[int] = set()

    def arrays(obj, depth=0):
        if id(obj) in seen or depth > 6:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            yield obj
            return
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            children = list(obj)
        elif hasattr(obj, "__dict__"):
            children = list(vars(obj).values())
        else:
            return
        for child in children:
            yield from arrays(child, depth + 1)

    analyser = component._analyser
    held = [a for a in arrays(analyser) if a.size >= 80 * 60]
    assert [a.shape for a in held] == [(60, 80)]  # only the motion meter's thumbnail
    assert not any(a.size >= frame_px for a in held)
    assert not list(arrays(published))  # records are numbers, not pictures
    component._close_camera("test")
    assert not [a for a in arrays(analyser) if a.size >= 80 * 60]  # dropped on close


def test_make_camera_chooses_by_config():
    config = Config().replace(scene={"backend": "sim"}, sim={"scenario": "night", "seed": 4})
    cam = make_camera(config, clock=Clock())
    assert isinstance(cam, SimCamera) and cam.timeline.scenario == "night"
    with pytest.raises(ValueError, match="none"):
        make_camera(Config().replace(scene={"backend": "none"}))


def test_opencv_backend_without_a_camera_says_what_to_check():
    cam = make_camera(Config().replace(scene={"backend": "opencv", "device": 63}))
    with pytest.raises(CameraError, match="/dev/video63"):
        cam.open()
    cam.close()
    cam.close()  # twice is fine


def test_picamera2_backend_names_what_is_missing():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        cam = make_camera(Config().replace(scene={"backend": "picamera2"}))
        with pytest.raises(CameraError, match="python3-picamera2"):
            cam.open()
    else:
        pytest.skip("picamera2 is installed here; the hardware test belongs on the Pi")


class StandInPicamera2:
    """picamera2's Picamera2 as far as open() uses it: one camera, which a process holds from
    Picamera2() until close(); its start fails while ``fail_start`` is set (libcamera's
    RuntimeError, e.g. a camera that cannot stream)."""

    held = False
    fail_start = True

    @staticmethod
    def global_camera_info():
        return [{"Model": "imx708"}]

    def __init__(self):
        if StandInPicamera2.held:
            raise RuntimeError("Failed to acquire camera: Device or resource busy")
        StandInPicamera2.held = True

    def create_video_configuration(self, **kw):
        return kw

    def configure(self, config):
        self.config = config

    def start(self):
        if StandInPicamera2.fail_start:
            raise RuntimeError("Failed to start camera: Invalid argument")

    stalled = False

    def capture_array(self, name, wait=None):
        assert wait is False  # a job, waited for with a timeout
        return "job"

    def wait(self, job, timeout=None):
        if StandInPicamera2.stalled:
            raise TimeoutError
        return np.zeros((240, 320, 3), dtype=np.uint8)

    def stop(self):
        pass

    def close(self):
        StandInPicamera2.held = False


def test_a_csi_camera_that_fails_to_start_is_released_for_the_next_try(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "picamera2",
                        types.SimpleNamespace(Picamera2=StandInPicamera2))
    monkeypatch.setattr(StandInPicamera2, "held", False)
    monkeypatch.setattr(StandInPicamera2, "fail_start", True)
    cam = make_camera(Config().replace(scene={"backend": "picamera2"}))
    with pytest.raises(CameraError, match="did not start: Failed to start"):
        cam.open()
    assert not StandInPicamera2.held  # not kept acquired by the failed try
    StandInPicamera2.fail_start = False
    cam.open()  # the retry acquires it (it would be "busy" otherwise)
    assert cam.read().shape == (240, 320, 3)
    monkeypatch.setattr(StandInPicamera2, "stalled", True)  # the sensor stops sending
    with pytest.raises(CameraError, match="no frame within 3 s"):
        cam.read()  # fails in time for the component to reopen it, not hung past its heartbeat
    cam.close()
    assert not StandInPicamera2.held


def test_a_stalled_usb_camera_cannot_outlast_the_scene_heartbeat(monkeypatch):
    # OpenCV's V4L2 backend waits 10 s for each frame of a camera that stopped sending, and a
    # read is two waits (grab, then read): 20 s, past the 10 s after which the supervisor
    # takes the scene thread for hung and lets systemd restart the daemon (the music with it).
    from calmtunes.scene import opencv_camera

    monkeypatch.setenv(opencv_camera.V4L_SELECT_TIMEOUT_ENV, "")  # (restored afterwards)
    monkeypatch.delenv(opencv_camera.V4L_SELECT_TIMEOUT_ENV)
    cam = make_camera(Config().replace(scene={"backend": "opencv", "device": 63}))
    with pytest.raises(CameraError):
        cam.open()  # no /dev/video63 here; the wait is set before any capture all the same
    import os

    wait = float(os.environ[opencv_camera.V4L_SELECT_TIMEOUT_ENV])
    assert 2 * wait < SceneComponent.heartbeat_timeout_s / 2  # with room for the analysis
    monkeypatch.setenv(opencv_camera.V4L_SELECT_TIMEOUT_ENV, "5")  # a technician's own
    with pytest.raises(CameraError):
        cam.open()
    assert os.environ[opencv_camera.V4L_SELECT_TIMEOUT_ENV] == "5"
