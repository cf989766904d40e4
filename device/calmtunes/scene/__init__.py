"""Scene context from the camera: a handful of numbers, never an image.

About once per ``scene.interval_s`` the scene component (:mod:`.component`) takes one frame at
``scene.width × scene.height`` from a camera backend (:mod:`.backends`: USB through OpenCV, the
Pi camera through picamera2, or the emulated room in :mod:`calmtunes.sim.camera`), measures it
(:mod:`.analyser`) and publishes a :class:`.features.SceneFeatures` record on ``"scene"``:

- mean luminance (0–1) and an estimate of the light's colour temperature (K),
- motion energy (share of the view changed since the previous frame, 0–1),
- the number of faces turned to the camera (OpenCV's bundled Haar cascade, :mod:`.people`),
- a label — night, dim, quiet_day, active — held steady by hysteresis (:mod:`.labels`).

Privacy by construction: a frame is a local variable of one step; it is measured and dropped,
never written, logged, published or handed to another component. The only picture-derived
state kept between frames is an 80×60 grey thumbnail for the frame difference, in memory,
dropped whenever the camera closes. ``scene.enabled: false`` or the privacy button
(``Command("privacy")``) keep the camera closed; ``"camera"`` tells the panel's LED.
``tests/scene/test_scene_privacy.py`` watches a simulated session's every write (Python audit
hook and ``strace``) to show no frame leaves the process.
"""
