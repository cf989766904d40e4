"""A simulated scene session, run as its own process by test_scene_privacy.py.

    python scene_privacy_session.py clean|leak-python|leak-cv2 LEAK_DIR

Runs the real scene component on the emulated camera for 60 frames across every scene, with a
privacy toggle and black and corrupt frames on the way. An audit hook records every file the
process opens for writing; the list is printed as JSON on the last line of stdout. The
``leak-*`` modes save each analysed frame into LEAK_DIR — from Python, or from OpenCV's C++
(``cv2.imwrite``, which no Python audit hook sees) — so the test can show its watchers catch a
leak when there is one.
"""

from __future__ import annotations

import json
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
opened_for_writing: list[str] = []


def audit(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS)
        if writing:
            opened_for_writing.append(str(path))
    elif event in ("os.rename", "os.replace", "shutil.copyfile", "os.link", "os.symlink"):
        opened_for_writing.append(f"{event}: {args[1]}")


def main() -> int:
    mode, leak_dir = sys.argv[1], sys.argv[2]
    sys.addaudithook(audit)

    from calmtunes.config import Config
    from calmtunes.hub import Hub
    from calmtunes.scene import analyser as analyser_mod
    from calmtunes.scene.component import SceneComponent
    from calmtunes.sim.camera import SimCamera

    if mode != "clean":
        real = analyser_mod.SceneAnalyser.analyse
        count = [0]

        def leaky(self, frame, t):
            count[0] += 1
            path = os.path.join(leak_dir, f"frame{count[0]}.png")
            if mode == "leak-cv2":
                import cv2

                cv2.imwrite(path, frame)
            else:
                with open(path, "wb") as f:
                    f.write(frame.tobytes())
            return real(self, frame, t)

        analyser_mod.SceneAnalyser.analyse = leaky

    config = Config().replace(scene={"backend": "sim"}, sim={"scenario": "tour", "seed": 1})
    hub = Hub()
    now = [0.0]
    camera = SimCamera(320, 240, scenario="tour", seed=1, clock=lambda: now[0])
    component = SceneComponent(config, hub, camera=camera, clock=lambda: now[0])
    component.open()
    published = 0
    hub.subscribe("scene", lambda features: None)
    for i in range(60):
        now[0] = float(i * 15)  # 15 s apart: every scene of the tour in 60 frames
        if i == 20:
            hub.command("privacy")
        if i == 25:
            hub.command("privacy")
        if i == 30:
            camera.inject("black", 2)
        if i == 40:
            camera.inject("corrupt", 1)
        component.step(now[0])
        published += hub.latest("scene") is not None
    component.close()
    print(json.dumps({"frames": component.frames_analysed, "published": published,
                      "opened_for_writing": opened_for_writing}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
