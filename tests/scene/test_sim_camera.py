"""The emulated camera: scenes with known labels, a scripted timeline, faults."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from calmtunes.scene.analyser import SceneAnalyser
from calmtunes.scene.backends import CameraError
from calmtunes.scene.features import colour_temperature, grey, mean_luminance
from calmtunes.scene.people import DetectorUnavailable, PeopleDetector
from calmtunes.sim.camera import SCENE_LABELS, TIMELINES, RoomRenderer, SceneTimeline, SimCamera


def detector_or_skip() -> PeopleDetector:
    try:
        return PeopleDetector()
    except DetectorUnavailable as exc:
        pytest.skip(str(exc))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_frames_are_8bit_bgr_at_the_asked_size():
    cam = SimCamera(160, 120, scenario="day", clock=Clock())
    cam.open()
    frame = cam.read()
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8


def test_same_seed_same_room_other_seed_other_visitors():
    a = RoomRenderer(320, 240, seed=5)
    b = RoomRenderer(320, 240, seed=5)
    c = RoomRenderer(320, 240, seed=6)
    assert a.visitors == b.visitors
    assert a.visitors != c.visitors
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    assert np.array_equal(a.render("visitors", 3.0, rng1), b.render("visitors", 3.0, rng2))


def test_light_of_each_scene_is_what_its_label_says():
    rng = np.random.default_rng(0)
    r = RoomRenderer(320, 240)
    lum = {s: mean_luminance(grey(r.render(s, 1.0, rng))) for s in SCENE_LABELS}
    assert lum["night"] < lum["empty_dim"] < lum["day"]
    night_k = colour_temperature(r.render("night", 1.0, rng))
    day_k = colour_temperature(r.render("day", 1.0, rng))
    assert night_k == pytest.approx(2700, rel=0.1)  # the lamp
    assert day_k == pytest.approx(6000, rel=0.15)  # daylight
    assert night_k < day_k


def test_opencv_finds_the_drawn_visitors_and_nobody_in_empty_rooms():
    detector = detector_or_skip()
    rng = np.random.default_rng(0)
    found = []
    for seed in (0, 1):
        r = RoomRenderer(320, 240, seed=seed)
        found += [detector.count(grey(r.render("visitors", float(t), rng))) for t in range(8)]
        for scene in ("day", "empty_dim", "night"):
            assert detector.count(grey(r.render(scene, 0.0, rng))) == 0, scene
    assert np.mean([n >= 1 for n in found]) >= 0.8
    assert max(found) >= 2


def test_timeline_labels_and_loops():
    tl = SceneTimeline("tour", seed=0)
    first, seconds = tl.segments[0]
    assert tl.label_at(0.0) == SCENE_LABELS[first]
    assert tl.label_at(seconds + 1.0) == SCENE_LABELS[tl.segments[1][0]]
    assert tl.label_at(tl.total_s + 1.0) == tl.label_at(1.0)
    assert len(tl.transitions()) == len(tl.segments) - 1
    assert SceneTimeline("no such scenario").segments == SceneTimeline("tour").segments
    assert SceneTimeline("night").label_at(100.0) == "night"
    jittered = SceneTimeline("tour", seed=3)
    assert [s for s, _ in jittered.segments] == [s for s, _ in TIMELINES["tour"]]
    assert jittered.total_s != tl.total_s


def test_analysed_labels_follow_the_timeline_on_the_injected_clock():
    clock = Clock()
    cam = SimCamera(320, 240, scenario="tour", seed=2, clock=clock)
    cam.open()
    analyser = SceneAnalyser(320, 240)
    right = total = 0
    for start in [0.0, *cam.timeline.transitions()]:
        analyser.reset()  # a gap in the pictures
        for dt in range(16):
            clock.now = start + dt
            label = analyser.analyse(cam.read(), clock.now).label
            if dt >= 6:  # settled: past the cross-fade and the label's dwell
                right += label == cam.label_at(clock.now)
                total += 1
    assert right / total >= 0.95


def test_unplug_and_absent_camera_raise_camera_errors():
    cam = SimCamera(scenario="day", clock=Clock())
    cam.open()
    cam.unplug()
    with pytest.raises(CameraError, match="unplugged"):
        cam.read()
    with pytest.raises(CameraError, match="no camera"):
        cam.open()
    cam.plug_in()
    cam.open()
    assert cam.read().shape == (240, 320, 3)
    with pytest.raises(CameraError, match="no camera"):
        SimCamera(present=False, clock=Clock()).open()


def test_injected_black_and_corrupt_frames_come_once_each():
    cam = SimCamera(scenario="day", clock=Clock())
    cam.open()
    cam.inject("black")
    cam.inject("corrupt")
    assert not cam.read().any()
    assert cam.read().ndim == 1
    assert cam.read().shape == (240, 320, 3)
    with pytest.raises(ValueError, match="black"):
        cam.inject("purple")


def test_the_camera_counts_its_own_cpu_time():
    cam = SimCamera(160, 120, scenario="visitors", clock=Clock())
    cam.open()
    assert cam.cpu_s == 0.0
    for _ in range(3):
        cam.read()
    assert cam.cpu_s > 0.0


class CountingDetector:
    """The real face detector, counting how often it runs."""

    def __init__(self, detector: PeopleDetector) -> None:
        self.detector, self.runs = detector, []

    def count(self, luma: np.ndarray) -> int:
        self.runs.append(len(self.runs))
        return self.detector.count(luma)


def test_a_still_room_keeps_its_people_count_and_movement_or_new_light_counts_again():
    detector = CountingDetector(detector_or_skip())
    clock = Clock()
    cam = SimCamera(320, 240, scenario="stressed", seed=1, clock=clock)
    cam.open()
    analyser = SceneAnalyser(320, 240, detector=detector, people_every_s=5.0,
                             people_still_s=60.0)
    leave, dusk, night = cam.timeline.transitions()
    runs_at, people = {}, {}
    for t in range(int(night) + 30):
        clock.now = float(t)
        before = len(detector.runs)
        people[t] = analyser.analyse(cam.read(), clock.now).people
        runs_at[t] = len(detector.runs) > before
    counted = [t for t, ran in runs_at.items() if ran]
    # visitors walking about: counted every 5 s, and seen
    visiting = [t for t in counted if t < leave]
    assert len(visiting) >= leave / 5 - 1
    assert max(people[t] for t in range(int(leave))) >= 2
    # they leave (movement): counted again once the room is still, and nobody is there
    assert any(leave < t <= leave + 10 for t in counted)
    settled = int(leave) + 10
    assert all(people[t] == 0 for t in range(settled, int(dusk)))
    # the still day room: the count is held, the detector runs once a minute at most
    still = [t for t in counted if settled <= t < dusk - 1]
    assert len(still) <= (dusk - settled) / 60 + 1
    assert all(b - a >= 60 for a, b in itertools.pairwise(still))
    # dusk: the light changes by more than the labels' margin, so the room is counted afresh
    assert any(dusk - 1 <= t <= dusk + 10 for t in counted)


def test_without_a_still_hold_every_slot_counts():
    detector = CountingDetector(detector_or_skip())
    clock = Clock()
    cam = SimCamera(320, 240, scenario="day", seed=0, clock=clock)
    cam.open()
    analyser = SceneAnalyser(320, 240, detector=detector, people_every_s=5.0)
    for t in range(60):
        clock.now = float(t)
        analyser.analyse(cam.read(), clock.now)
    assert len(detector.runs) == 12
