"""Counting people with a detector that ships inside OpenCV: a Haar cascade for frontal faces.

The cascade is ``haarcascade_frontalface_alt2.xml`` (Lienhart et al., trained on 24×20 windows)
from OpenCV's own data folder — no weights are downloaded, nothing leaves the device. It counts
faces turned towards the camera, which at a bedside is who is visiting; a person seen from
behind is not counted (motion still sees them).

OpenCV 5 moved ``CascadeClassifier`` and its models out of the main wheel into the contrib one
(``cv2.xobjdetect``). :func:`find_cascade` looks in every place they live: OpenCV 4's
``cv2.CascadeClassifier`` with ``cv2.data.haarcascades``, OpenCV 5 contrib's ``cv2.xobjdetect``,
and Debian's ``opencv-data`` package (``/usr/share/opencv4/haarcascades``). Where none is found,
:class:`PeopleDetector` raises :class:`DetectorUnavailable` saying how to fix it, and the scene
component goes on without a people count.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from calmtunes.errors import CalmtunesError

CASCADE = "haarcascade_frontalface_alt2.xml"
_DATA_DIRS = ("/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades")


class DetectorUnavailable(CalmtunesError, RuntimeError):
    """This OpenCV has no Haar cascade classifier, or its face model is missing."""


def find_cascade() -> tuple[Any, str]:
    """The ``CascadeClassifier`` class of this OpenCV and the path of the face model."""
    import cv2

    classifier = getattr(cv2, "CascadeClassifier", None)
    if classifier is None:
        classifier = getattr(getattr(cv2, "xobjdetect", None), "CascadeClassifier", None)
    if classifier is None:
        raise DetectorUnavailable(
            f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved it to contrib): "
            "install opencv-python-headless<5 or opencv-contrib-python-headless"
        )
    dirs = [getattr(getattr(cv2, "data", None), "haarcascades", ""), *_DATA_DIRS]
    for folder in dirs:
        path = os.path.join(folder, CASCADE) if folder else ""
        if path and os.path.isfile(path):
            return classifier, path
    raise DetectorUnavailable(
        f"{CASCADE} not found in {', '.join(d for d in dirs if d)}: install "
        "opencv-python-headless<5 (which ships it) or Debian's opencv-data"
    )


class PeopleDetector:
    """Counts frontal faces in an 8-bit grey frame.

    ``min_face_px`` is the smallest face looked for, in pixels of the analysed frame: 24 px at
    320×240 with a 60° lens is a face about 3.5 m away, the far side of a hospital room.
    ``scale_factor`` 1.2 between pyramid levels and ``min_neighbors`` 3 overlapping hits keep a
    320×240 frame near 6 ms of one core on a desktop CPU (see ``scripts/bench_scene``).
    """

    def __init__(self, min_face_px: int = 24, scale_factor: float = 1.2,
                 min_neighbors: int = 3) -> None:
        import cv2

        # One frame a second needs no worker pool: OpenCV's idle workers keep spinning after each
        # detection (about half a percent of a core) on cores the audio thread needs.
        cv2.setNumThreads(1)
        classifier, path = find_cascade()
        self._cascade = classifier(path)
        if self._cascade.empty():
            raise DetectorUnavailable(f"{path} could not be loaded: the file is damaged")
        self.min_face_px = min_face_px
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def count(self, luma: np.ndarray) -> int:
        faces = self._cascade.detectMultiScale(
            luma, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_face_px, self.min_face_px),
        )
        return len(faces)
