"""The emulated camera: a hospital room drawn with numpy and OpenCV, on a scripted timeline.

Four scenes, each with the label a correct analysis must give it:

=========== =========== =====================================================================
scene       label       what is drawn
=========== =========== =====================================================================
day         quiet_day   the room by daylight (6000 K) through the window, nobody in it
empty_dim   dim         the same room at dusk, lights low (3800 K), nobody in it
night       night       dark but for a bedside lamp (2700 K) glowing in the corner
visitors    active      the day room with two or three visitors walking about
=========== =========== =====================================================================

Visitors are drawn as people: a body and a face — hair, skin shaded darker at the sides, brows,
eyes with whites and irises, a lit nose bridge, nostrils and a mouth. These are the light and
dark patches a frontal-face Haar cascade looks for, and OpenCV's own cascade finds them
(``tests/scene/test_sim_camera.py`` checks that it does); no photograph is used.

The picture is composed in linear light: reflectances lit by an illuminant of known colour
temperature (Kim et al. 2002's fit of the Planckian locus, converted to linear sRGB), then
encoded to sRGB with sensor noise, so the colour-temperature estimate is checked against a
known answer rather than its own inverse.

A timeline (:data:`TIMELINES`, chosen by ``config.sim.scenario``; durations and the visitors'
paths vary with ``config.sim.seed``) says which scene is on view when; scenes cross-fade over
:data:`BLEND_S`. The clock is injected: tests and the benchmark step it by hand.

Faults, for tests and the demo: :meth:`SimCamera.unplug` / :meth:`SimCamera.plug_in`,
``SimCamera(present=False)`` for a camera that is not there at all, and
:meth:`SimCamera.inject` for the next few frames coming out ``"black"`` or ``"corrupt"``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from calmtunes.errors import CameraError
from calmtunes.scene.features import planck_xy

SCENE_LABELS = {"day": "quiet_day", "empty_dim": "dim", "night": "night", "visitors": "active"}
BLEND_S = 2.0  # cross-fade between scenes, s (lights dimming, visitors walking in)

# Scenario → [(scene, seconds)]. The listener scenarios of `calmtunes simulate` each get a room;
# a scene's own name shows that scene alone; anything else gets "tour".
TIMELINES: dict[str, list[tuple[str, float]]] = {
    "tour": [("day", 120), ("visitors", 90), ("day", 90), ("empty_dim", 120), ("night", 150),
             ("empty_dim", 90), ("visitors", 90), ("night", 120)],
    "stressed": [("visitors", 120), ("day", 150), ("empty_dim", 150), ("night", 300)],
    "rest": [("day", 200), ("empty_dim", 200), ("night", 300)],
    "sleepy": [("empty_dim", 120), ("night", 600)],
    **{scene: [(scene, 3600)] for scene in SCENE_LABELS},
}


def timeline_for(scenario: str) -> list[tuple[str, float]]:
    return TIMELINES.get(scenario, TIMELINES["tour"])


class CameraUnplugged(CameraError):
    """The emulated camera has been unplugged (or was never there)."""


# -- colour ------------------------------------------------------------------------------------
_XYZ_TO_RGB = np.array(
    [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]
)


def illuminant_rgb(cct: float) -> np.ndarray:
    """Linear sRGB of white light at ``cct`` K, scaled so its luminance Y is 1."""
    x, y = planck_xy(cct)
    xyz = np.array([x / y, 1.0, (1.0 - x - y) / y])
    rgb = np.clip(_XYZ_TO_RGB @ xyz, 0.0, None)
    return rgb / (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])


def srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


# Lookup tables for the per-frame conversions (the emulator's own cost counts in the daemon's
# simulated CPU figures): 8-bit codes → linear, and linear in 1/16384 steps → codes × 255 (a step
# is under 0.3 of a code value even in the darkest, steepest part of the curve).
_DECODE_LUT = srgb_decode(np.arange(256, dtype=np.float32) / 255.0).astype(np.float32)
_ENCODE_STEPS = 16384
_ENCODE_LUT = (srgb_encode(np.arange(_ENCODE_STEPS + 1) / _ENCODE_STEPS) * 255.0).astype(
    np.float32)


def encode_255(linear: np.ndarray) -> np.ndarray:
    """sRGB-encode linear light to 0–255 (float32) through :data:`_ENCODE_LUT`."""
    index = np.clip(linear * _ENCODE_STEPS + 0.5, 0, _ENCODE_STEPS).astype(np.intp)
    return _ENCODE_LUT[index]


# -- drawing -------------------------------------------------------------------------------------
def draw_face(img: np.ndarray, cx: float, cy: float, h: float,
              skin: tuple[int, int, int] = (150, 170, 205),
              hair: tuple[int, int, int] = (40, 50, 60)) -> None:
    """Draw a frontal face ``h`` px tall centred on (cx, cy) into a BGR uint8 image."""
    import cv2

    s = h / 100.0

    def p(x: float, y: float) -> tuple[int, int]:
        return int(cx + x * s), int(cy + y * s)

    def r(a: float, b: float) -> tuple[int, int]:
        return max(1, int(a * s)), max(1, int(b * s))

    dark = tuple(int(c * 0.75) for c in skin)
    light = tuple(min(255, int(c * 1.12)) for c in skin)
    cv2.ellipse(img, p(0, -8), r(46, 60), 0, 180, 360, hair, -1)  # hair
    cv2.ellipse(img, p(0, 0), r(40, 52), 0, 0, 360, skin, -1)  # face
    cv2.ellipse(img, p(-36, 2), r(8, 40), 0, 0, 360, dark, -1)  # shaded sides
    cv2.ellipse(img, p(36, 2), r(8, 40), 0, 0, 360, dark, -1)
    cv2.ellipse(img, p(0, -36), r(38, 14), 0, 180, 360, hair, -1)  # fringe
    for ex in (-16, 16):
        cv2.ellipse(img, p(ex, -16), r(11, 3), 0, 0, 360, hair, -1)  # brow
        cv2.ellipse(img, p(ex, -6), r(9, 4), 0, 0, 360, (225, 225, 225), -1)  # eye white
        cv2.circle(img, p(ex, -6), max(1, int(4 * s)), (40, 30, 30), -1)  # iris
    cv2.ellipse(img, p(0, 6), r(5, 13), 0, 0, 360, light, -1)  # nose bridge
    cv2.ellipse(img, p(-5, 17), r(3, 2), 0, 0, 360, dark, -1)  # nostrils
    cv2.ellipse(img, p(5, 17), r(3, 2), 0, 0, 360, dark, -1)
    cv2.ellipse(img, p(0, 30), r(14, 4), 0, 0, 360, (70, 70, 140), -1)  # mouth


def draw_person(img: np.ndarray, cx: float, top: float, face_h: float,
                shirt: tuple[int, int, int], skin: tuple[int, int, int],
                hair: tuple[int, int, int]) -> None:
    """A standing person facing the camera: shoulders and body below a face."""
    import cv2

    h = img.shape[0]
    body_w = face_h * 1.5
    neck_y = top + face_h * 1.05
    pts = np.array([
        (cx - body_w * 0.35, neck_y), (cx + body_w * 0.35, neck_y),
        (cx + body_w * 0.55, neck_y + face_h * 0.4), (cx + body_w * 0.5, h + 5),
        (cx - body_w * 0.5, h + 5), (cx - body_w * 0.55, neck_y + face_h * 0.4),
    ], dtype=np.int32)
    cv2.fillPoly(img, [pts], shirt)
    draw_face(img, cx, top + face_h * 0.5, face_h, skin=skin, hair=hair)


@dataclass(frozen=True)
class Visitor:
    x0: float  # centre of the walk, share of frame width
    span: float  # half the walk, share of frame width
    period_s: float  # there and back, s
    phase: float  # rad
    face_h: float  # face height, share of frame height
    top: float  # top of the head, share of frame height
    shirt: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]


_SHIRTS = ((150, 90, 60), (60, 120, 160), (90, 140, 90), (170, 160, 150), (70, 70, 150))
_SKINS = ((150, 170, 205), (110, 135, 175), (80, 100, 140), (170, 185, 215))
_HAIRS = ((40, 50, 60), (30, 30, 35), (35, 55, 80), (70, 70, 75))  # darker than any skin


def _visitors(rng: np.random.Generator) -> list[Visitor]:
    n = int(rng.integers(2, 4))
    slots = rng.permutation(np.linspace(0.22, 0.78, n))
    return [
        Visitor(
            x0=float(slots[i]), span=float(rng.uniform(0.08, 0.16)),
            period_s=float(rng.uniform(9.0, 16.0)), phase=float(rng.uniform(0, 2 * math.pi)),
            face_h=float(rng.uniform(0.16, 0.22)), top=float(rng.uniform(0.12, 0.25)),
            shirt=_SHIRTS[int(rng.integers(len(_SHIRTS)))],
            skin=_SKINS[int(rng.integers(len(_SKINS)))],
            hair=_HAIRS[int(rng.integers(len(_HAIRS)))],
        )
        for i in range(n)
    ]


class RoomRenderer:
    """Renders the scenes at ``width × height``; the room's fixed parts are drawn once."""

    # scene: (illuminant K, ambient level (linear), window glow, lamp, noise sd (of 255))
    LIGHTS: ClassVar[dict[str, tuple[float, float, float, bool, float]]] = {
        "day": (6000.0, 0.42, 0.9, False, 2.0),
        "visitors": (6000.0, 0.42, 0.9, False, 2.0),
        "empty_dim": (3800.0, 0.075, 0.12, False, 3.0),
        "night": (2700.0, 0.0015, 0.0, True, 4.0),
    }

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        self.width, self.height = width, height
        # the room's reflectances as their 8-bit codes, decoded to linear light (the same float32
        # values as srgb_decode of code / 255) only while a scene is composed: a quarter of the
        # memory of the decoded picture (0.2 MB at 320×240, not 0.9), which the emulator holds
        # all the time and needs only when the scene changes
        self._room_codes = self._draw_room()
        self._window = self._mask(0.06, 0.10, 0.30, 0.50)
        self._lamp_glow: np.ndarray | None = None  # made when the lamp is first lit
        self._lamp_shade = self._mask(0.80, 0.40, 0.92, 0.52)
        self.visitors = _visitors(np.random.default_rng(seed))
        # the scene on view: (scene, its coded picture, noise sd); one only, as the room shows one
        # scene for minutes (a frame of float32 is 0.9 MB at 320×240)
        self._still: tuple[str, np.ndarray, float] | None = None
        self._codes: dict[str, np.ndarray] = {}  # scene: see _people_codes
        self._noise: SensorNoise | None = None

    def _glow(self) -> np.ndarray:
        """The bedside lamp's glow on the room, (H×W×1) float32."""
        if self._lamp_glow is None:
            yy, xx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
            lx, ly = 0.86 * self.width, 0.52 * self.height
            d2 = ((xx - lx) ** 2 + (yy - ly) ** 2) / (0.18 * self.width) ** 2
            self._lamp_glow = (1.0 / (1.0 + d2))[..., None]
        return self._lamp_glow

    def _people_codes(self, scene: str) -> np.ndarray:
        """Flat (256 × 3) table: 8-bit reflectance code and BGR channel → coded value under
        the scene's light (cached per scene)."""
        got = self._codes.get(scene)
        if got is None:
            cct, ambient = self.LIGHTS[scene][:2]
            light = illuminant_rgb(cct)[::-1].astype(np.float32)  # BGR
            got = encode_255(_DECODE_LUT[:, None] * (ambient * light)).reshape(-1)
            self._codes[scene] = got
        return got

    def _mask(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        m = np.zeros((self.height, self.width, 1), bool)
        w, h = self.width, self.height
        m[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = True
        return m

    def _draw_room(self) -> np.ndarray:
        """Reflectances, as sRGB-coded BGR: a wall, floor, door, cabinet, picture, bed rail.

        The palette averages out near grey, as most rooms do: the grey-world assumption the
        colour-temperature estimate rests on."""
        import cv2

        w, h = self.width, self.height
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = (168, 172, 176)  # wall
        cv2.rectangle(img, (0, int(0.68 * h)), (w, h), (120, 124, 130), -1)  # floor
        cv2.rectangle(img, (int(0.40 * w), int(0.14 * h)), (int(0.58 * w), int(0.68 * h)),
                      (110, 130, 150), -1)  # door
        cv2.circle(img, (int(0.56 * w), int(0.42 * h)), max(1, w // 120), (60, 60, 60), -1)
        cv2.rectangle(img, (int(0.66 * w), int(0.20 * h)), (int(0.78 * w), int(0.34 * h)),
                      (90, 110, 80), -1)  # picture
        cv2.rectangle(img, (int(0.78 * w), int(0.52 * h)), (int(0.96 * w), int(0.80 * h)),
                      (140, 150, 160), -1)  # cabinet
        cv2.rectangle(img, (int(0.05 * w), int(0.09 * h)), (int(0.31 * w), int(0.51 * h)),
                      (200, 200, 200), -1)  # window frame
        cv2.line(img, (0, int(0.90 * h)), (w, int(0.86 * h)), (190, 190, 190), max(1, h // 60))
        return img

    def _people_layer(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        w, h = self.width, self.height
        img = np.zeros((h, w, 3), np.uint8)
        for v in self.visitors:
            cx = (v.x0 + v.span * math.sin(2 * math.pi * t / v.period_s + v.phase)) * w
            bob = 0.01 * h * math.sin(4 * math.pi * t / v.period_s * 3)
            draw_person(img, cx, v.top * h + bob, v.face_h * h, v.shirt, v.skin, v.hair)
        b, g, r = cv2.split(img)  # drawn where any channel is set (as img.any(axis=2), 30× faster)
        mask = np.minimum(cv2.bitwise_or(cv2.bitwise_or(b, g), r), 1)
        return img, mask

    def linear(self, scene: str, t: float, people: bool = True) -> tuple[np.ndarray, float]:
        """The scene in linear light (H×W×3 float, BGR) and its sensor noise sd (``people``:
        with the visitors, where the scene has them)."""
        cct, ambient, window, lamp, noise = self.LIGHTS[scene]
        light = illuminant_rgb(cct)[::-1].astype(np.float32)  # BGR
        room = _DECODE_LUT[self._room_codes]
        out = room * (ambient * light)
        if window:
            sky = illuminant_rgb(min(cct + 1000.0, 25000.0))[::-1].astype(np.float32)
            out = np.where(self._window, window * sky, out)
        if lamp:
            out = out + room * (0.08 * self._glow() * light)
            out = np.where(self._lamp_shade, 0.5 * light, out)
        if scene == "visitors" and people:
            people, mask = self._people_layer(t)
            out = np.where(mask[..., None] > 0, _DECODE_LUT[people] * (ambient * light), out)
        return out, noise

    def render(self, scene: str, t: float, rng: np.random.Generator,
               blend: tuple[str, float] | None = None) -> np.ndarray:
        """An 8-bit BGR frame; ``blend=(other scene, weight)`` cross-fades towards another."""
        if blend is None:
            # A still room under steady light: its coded picture is the same every frame, so it
            # is drawn once while the scene is on view; only the visitors (coded where they
            # stand) and the sensor noise are new.
            if self._still is None or self._still[0] != scene:
                lin, noise = self.linear(scene, t, people=False)
                self._still = (scene, encode_255(lin), noise)
            _, coded, noise = self._still
            if scene == "visitors":
                import cv2

                people, mask = self._people_layer(t)
                # the visitors coded where they stand: per channel, a 256-entry table of
                # encode_255(_DECODE_LUT[code] · ambient · light) (the same float32 operations
                # as converting each pixel, done once per code value), copied in under the mask
                coded = coded.copy()
                lut = self._people_codes(scene).reshape(1, 256, 3)
                cv2.copyTo(cv2.LUT(people, lut), mask, coded)
            return self._noisy(coded, noise, rng)
        lin, noise = self.linear(scene, t)
        if blend is not None:
            other, a = blend
            lin2, noise2 = self.linear(other, t)
            lin = (1.0 - a) * lin + a * lin2
            noise = (1.0 - a) * noise + a * noise2
        return self._noisy(encode_255(lin), noise, rng)

    def _noisy(self, coded: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
        if self._noise is None or self._noise.shape != coded.shape:
            self._noise = SensorNoise(coded.shape, rng)
        return self._noise.add(coded, noise, rng)


class SensorNoise:
    """Gaussian sensor noise for frames of one shape, cut from a pool drawn once.

    Drawing 230 400 normal deviates a frame was most of the emulated camera's cost. Each frame
    takes a contiguous slice of a pool one frame plus :data:`MARGIN_ROWS` rows long, at a random
    start, so within a frame every value is an independent N(0, 1) deviate as before. Between one
    frame and the next the start moves by at least :data:`MIN_SHIFT_ROWS` rows: no pixel, and no
    4×4 block the motion meter averages, sees the same deviates in two frames in a row, so the
    frame-to-frame difference of still parts is still noise of √2 times the sd.
    """

    MARGIN_ROWS = 64
    MIN_SHIFT_ROWS = 6  # > the 4 rows of a motion block, plus a row for the column shift

    def __init__(self, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        self.shape = shape
        self.row = int(np.prod(shape[1:]))  # values in one row of the frame
        rows = shape[0] + self.MARGIN_ROWS
        self.pool = rng.standard_normal(rows * self.row, dtype=np.float32)
        self._start_row = 0

    def add(self, coded: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
        """``coded`` (0–255, float32) plus noise of sd ``noise``, rounded and saturated to
        uint8 in one pass."""
        import cv2

        m, s = self.MARGIN_ROWS, self.MIN_SHIFT_ROWS
        start = (self._start_row + s + int(rng.integers(0, m - 2 * s + 1))) % m
        self._start_row = start
        offset = start * self.row + int(rng.integers(0, self.row))
        deviates = self.pool[offset:offset + coded.size].reshape(coded.shape)
        return cv2.addWeighted(deviates, float(noise), coded, 1.0, 0.0, dtype=cv2.CV_8U)


class SceneTimeline:
    """Which scene is on view at time ``t`` (s from the start); loops at the end."""

    def __init__(self, scenario: str, seed: int = 0) -> None:
        rng = np.random.default_rng(seed + 7919)
        self.scenario = scenario
        self.segments = [
            (scene, float(seconds) * (float(rng.uniform(0.85, 1.15)) if seed else 1.0))
            for scene, seconds in timeline_for(scenario)
        ]
        self.total_s = sum(s for _, s in self.segments)

    def at(self, t: float) -> tuple[int, str, float]:
        """(segment index, scene, seconds into it)."""
        t = t % self.total_s
        for i, (scene, seconds) in enumerate(self.segments):
            if t < seconds:
                return i, scene, t
            t -= seconds
        return len(self.segments) - 1, self.segments[-1][0], self.segments[-1][1]

    def label_at(self, t: float) -> str:
        return SCENE_LABELS[self.at(t)[1]]

    def transitions(self) -> list[float]:
        """Start times (s) of every segment after the first."""
        out, t = [], 0.0
        for _, seconds in self.segments[:-1]:
            t += seconds
            out.append(t)
        return out


class SimCamera:
    """The emulated camera, behind the same interface as the real ones (open/read/close).

    ``clock`` is any monotonic clock in s (``time.monotonic`` by default); the timeline starts
    at its reading when the camera is made, so reopening after a fault does not rewind the room.
    """

    name = "sim"

    def __init__(self, width: int = 320, height: int = 240, scenario: str = "tour",
                 seed: int = 0, clock: Callable[[], float] = time.monotonic,
                 present: bool = True) -> None:
        self.width, self.height = width, height
        self.clock = clock
        self.timeline = SceneTimeline(scenario, seed)
        self.renderer = RoomRenderer(width, height, seed)
        self._rng = np.random.default_rng(seed)
        self._t0 = clock()
        self.present = present
        self.is_open = False
        self.opens = 0
        self.cpu_s = 0.0  # CPU time spent drawing frames, s
        self._faults: list[str] = []

    # -- the camera interface ----------------------------------------------------------------
    def open(self) -> None:
        if not self.present:
            raise CameraUnplugged("emulated camera: no camera connected")
        self.is_open = True
        self.opens += 1

    def close(self) -> None:
        self.is_open = False

    def read(self) -> np.ndarray:
        if not self.is_open:
            raise CameraUnplugged("emulated camera: read while closed")
        if not self.present:
            raise CameraUnplugged("emulated camera: unplugged (no frame within the timeout)")
        started = time.thread_time()
        try:
            if self._faults:
                return self._faulty(self._faults.pop(0))
            return self.frame_at(self.elapsed())
        finally:
            self.cpu_s += time.thread_time() - started  # the emulator's own cost

    # -- the room ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self._t0

    def label_at(self, t: float) -> str:
        return self.timeline.label_at(t)

    def frame_at(self, t: float) -> np.ndarray:
        index, scene, into = self.timeline.at(t)
        blend = None
        if into < BLEND_S and t >= BLEND_S and len(self.timeline.segments) > 1:
            previous = self.timeline.segments[index - 1][0]
            if previous != scene:
                # fade from the previous scene: weight of the new one rises over BLEND_S
                return self.renderer.render(previous, t, self._rng, blend=(scene, into / BLEND_S))
        return self.renderer.render(scene, t, self._rng, blend)

    # -- faults ------------------------------------------------------------------------------
    def unplug(self) -> None:
        self.present = False

    def plug_in(self) -> None:
        self.present = True

    def inject(self, kind: str, frames: int = 1) -> None:
        """The next ``frames`` reads return ``kind`` frames: ``"black"`` or ``"corrupt"``."""
        if kind not in ("black", "corrupt"):
            raise ValueError(f"fault kind {kind!r}: expected 'black' or 'corrupt'")
        self._faults.extend([kind] * frames)

    def _faulty(self, kind: str) -> np.ndarray:
        if kind == "black":
            return np.zeros((self.height, self.width, 3), np.uint8)
        # a frame cut short, as a USB camera delivers when its buffer is torn mid-transfer
        whole = self.frame_at(self.elapsed())
        return whole.reshape(-1)[: whole.size // 3]
