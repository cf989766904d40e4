"""A real camera, where one is plugged in: a frame arrives and is analysed. Skipped elsewhere."""

from __future__ import annotations

import os

import pytest

from calmtunes.config import Config
from calmtunes.scene.analyser import SceneAnalyser
from calmtunes.scene.backends import make_camera

pytestmark = pytest.mark.hardware


@pytest.mark.skipif(not os.path.exists("/dev/video0"), reason="no camera at /dev/video0")
def test_usb_camera_gives_a_frame_that_analyses():
    cam = make_camera(Config().replace(scene={"backend": "opencv", "device": 0}))
    cam.open()
    try:
        frame = cam.read()
    finally:
        cam.close()
    features = SceneAnalyser(320, 240).analyse(frame, 0.0)
    assert 0.0 <= features.luminance <= 1.0
