"""One frame in, one :class:`SceneFeatures` out; the frame is not kept.

The analyser holds only what the next frame needs: the motion meter's 80×60 grey thumbnail and
the label tracker's state. It never stores, logs or returns the frame or anything of its size.
"""

from __future__ import annotations

import logging

import numpy as np

from calmtunes.scene.features import (
    MotionMeter,
    SceneFeatures,
    check_frame,
    check_not_black,
    colour_temperature,
    grey,
    mean_luminance,
)
from calmtunes.scene.labels import LabelTracker
from calmtunes.scene.people import DetectorUnavailable, PeopleDetector

log = logging.getLogger(__name__)

#: a frame changing less than this share of the motion meter's view is a still room (0.2 % is
#: 10 of its 4800 pixels; a face at the far side of the room covers 36, a person walking past
#: hundreds; sensor noise, averaged over 4×4 blocks, stays far under the meter's threshold)
STILL_MOTION = 0.002
#: a mean luma change (0–1) larger than this since the last count is new light on the room (a
#: lamp switched on can show faces the dark hid): the labels' own light margin
LIGHT_CHANGE = 0.03


class SceneAnalyser:
    """Measures frames of ``width × height`` pixels (others are resized first).

    ``detector`` counts people; by default OpenCV's face cascade, or none (people always 0,
    with :attr:`people_note` saying why) where this OpenCV lacks it. The count is taken at most
    once every ``people_every_s`` seconds (the cascade is most of a frame's cost, and visitors
    come and go over minutes) and held between; light and motion are measured on every frame.
    In a **still room** — no frame since the last count changed :data:`STILL_MOTION` of the
    view, the light within :data:`LIGHT_CHANGE` — the count is held up to ``people_still_s``
    seconds: nobody can have come, gone or turned to the camera without moving. The first
    slot after any movement counts again, so a visitor who walks in and sits still is counted
    once they have settled. Most of a night is a still room.
    """

    def __init__(self, width: int = 320, height: int = 240,
                 detector: PeopleDetector | None = None, hold: int = 3,
                 people_every_s: float = 0.0, people_still_s: float = 0.0) -> None:
        self.width, self.height = width, height
        self.people_every_s = people_every_s
        self.people_still_s = people_still_s
        # (time of the last count, the count, the mean luma it was taken under)
        self._people: tuple[float, int, float] | None = None
        self._moved = True  # a frame moved since the last count
        self.motion = MotionMeter()
        self.labels = LabelTracker(hold=hold)
        self.people_note = ""
        if detector is None:
            try:
                detector = PeopleDetector()
            except DetectorUnavailable as exc:
                self.people_note = f"no people count: {exc}"
                log.warning("%s", self.people_note)
        self.detector = detector

    def reset(self) -> None:
        """Forget the previous frame, the label and the count (after a gap in the pictures)."""
        self.motion.reset()
        self.labels.reset()
        self._people = None
        self._moved = True

    def analyse(self, frame: np.ndarray, t: float) -> SceneFeatures:
        """Measure one frame taken at monotonic time ``t`` (s).

        Raises :class:`~calmtunes.scene.features.FrameError` for a corrupt or black frame,
        before any state is touched.
        """
        frame = check_frame(frame, self.width, self.height)
        luma = grey(frame)
        check_not_black(luma)
        luminance = mean_luminance(luma)
        cct = colour_temperature(frame, luma)
        del frame  # colour is done with; only the grey picture is needed below
        motion = self.motion.update(luma)
        if motion >= STILL_MOTION:
            self._moved = True
        people = self._count_people(luma, t, luminance)
        label = self.labels.update(luminance, motion, people)
        return SceneFeatures(t=t, luminance=luminance, colour_temp_k=cct, motion=motion,
                             people=people, label=label)

    def _count_people(self, luma: np.ndarray, t: float, luminance: float) -> int:
        if self.detector is None:
            return 0
        last = self._people
        if last is not None:
            since = t - last[0]
            if 0.0 <= since < self.people_every_s:
                return last[1]
            still = not self._moved and abs(luminance - last[2]) <= LIGHT_CHANGE
            if still and 0.0 <= since < self.people_still_s:
                return last[1]
        count = self.detector.count(luma)
        self._people = (t, count, luminance)
        self._moved = False
        return count
