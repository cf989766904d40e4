"""The only thing that leaves calmtunes.scene: a small record, published on ``"scene"``.

Also the per-frame measurements behind it. Every function here takes a frame (an 8-bit BGR
``numpy`` array, OpenCV's layout, ``height × width × 3``) and returns plain numbers; none keeps the
frame. :class:`MotionMeter` keeps one 80×60 grey thumbnail of the previous frame, in memory only,
because motion is a difference between two frames; :meth:`MotionMeter.reset` drops it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LABELS = ("night", "dim", "quiet_day", "active")


@dataclass(frozen=True)
class SceneFeatures:
    t: float  # monotonic time, in s
    luminance: float  # mean luminance, 0 (black) – 1 (white)
    colour_temp_k: float | None  # estimated correlated colour temperature, K
    motion: float  # motion energy from frame differences, 0 (still) – 1
    people: int  # faces in view (0 where this OpenCV has no face cascade: see scene.people)
    label: str  # one of LABELS, with hysteresis


class FrameError(ValueError):
    """A frame that cannot be analysed; ``kind`` is ``"corrupt"`` or ``"black"``."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


# A frame whose 99th-percentile luma is at most this (of 255) carries no picture: a covered lens,
# a sensor that lost its clock, a USB camera streaming zeros. A real dark room is never this
# clean: sensor noise at high gain alone lifts the 99th percentile well above it.
BLACK_P99 = 3


def check_frame(frame: object, width: int, height: int) -> np.ndarray:
    """Return ``frame`` as a ``height × width × 3`` uint8 BGR array, or raise :class:`FrameError`.

    A frame of another size is resized (cameras do not always honour the size asked for); a
    grey frame is expanded to three channels. Anything else that is not an 8-bit image — a
    truncated buffer, the wrong number of channels, floats — is corrupt.
    """
    import cv2

    if not isinstance(frame, np.ndarray):
        raise FrameError("corrupt", f"frame is {type(frame).__name__}, not an image array")
    if frame.dtype != np.uint8:
        raise FrameError("corrupt", f"frame has dtype {frame.dtype}, expected uint8")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 8 or frame.shape[1] < 8:
        raise FrameError("corrupt", f"frame has shape {frame.shape}, expected (H, W, 3)")
    if frame.shape[:2] != (height, width):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return frame


def grey(frame: np.ndarray) -> np.ndarray:
    """8-bit luma Y' = 0.299 R' + 0.587 G' + 0.114 B' (ITU-R BT.601, as ``cv2.cvtColor``)."""
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def check_not_black(luma: np.ndarray) -> None:
    import cv2

    # np.percentile sorts; a histogram is cheaper on 8-bit data (OpenCV's: a fifth of bincount's)
    hist = cv2.calcHist([luma], [0], None, [256], [0, 256]).ravel()
    p99 = int(np.searchsorted(np.cumsum(hist), 0.99 * luma.size))
    if p99 <= BLACK_P99:
        raise FrameError("black", f"black frame (99th percentile luma {p99}/255): lens covered "
                         "or camera not delivering a picture")


def mean_luminance(luma: np.ndarray) -> float:
    """Mean luma of the frame, 0 (black) – 1 (white). Gamma-encoded, as the camera delivers it."""
    return float(luma.mean()) / 255.0


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding, values 0–1."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


# Linear sRGB (D65) → CIE XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
)


def planck_xy(cct: float) -> tuple[float, float]:
    """CIE 1931 xy of a black body at ``cct`` K (Kim et al. 2002 cubic fit, 1667–25000 K)."""
    t = float(cct)
    if not 1667.0 <= t <= 25000.0:
        raise ValueError(f"colour temperature {t} K outside 1667–25000 K")
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def _uv(x: float, y: float) -> tuple[float, float]:
    """CIE 1960 UCS uv from 1931 xy."""
    d = -2.0 * x + 12.0 * y + 3.0
    return 4.0 * x / d, 6.0 * y / d


#: farthest a colour may lie from the Planckian locus (CIE 1960 uv) and still be "white light";
#: ANSI C78.377 allows lamps ±0.006, a grey-world estimate of a real room needs more
MAX_DUV = 0.02


def colour_temperature(frame: np.ndarray, luma: np.ndarray | None = None) -> float | None:
    """Correlated colour temperature of the light in the room, in K, or None when unknown.

    Grey-world estimate: the mean colour of the well-exposed pixels (luma 8–95 %) is taken as
    the colour of the illuminant, converted to CIE 1931 xy and then to CCT with McCamy's cubic
    (McCamy 1992; within ±2 K of the Planckian locus for 2856–6504 K, usable 2000–12500 K).
    None when fewer than 2 % of the pixels are usable (a dark room says nothing about its light),
    when the estimate falls outside 1667–15000 K, or when the colour lies more than
    :data:`MAX_DUV` from the Planckian locus (the scene is not lit by anything near white).
    """
    import cv2

    if luma is None:
        luma = grey(frame)
    # luma 21–241 of 255 (8–95 %); OpenCV's masked mean sums the same pixels in one pass, where
    # numpy's boolean indexing copies them out first (0.1 ms instead of 4 ms a 320×240 frame)
    mask = cv2.inRange(luma, 21, 241)
    count = cv2.countNonZero(mask)
    if count < 0.02 * luma.size:
        return None
    bgr = np.array(cv2.mean(frame, mask=mask)[:3]) / 255.0
    rgb = _srgb_to_linear(bgr[::-1])
    x_, y_, z_ = _RGB_TO_XYZ @ rgb
    total = x_ + y_ + z_
    if total <= 0:
        return None
    x, y = x_ / total, y_ / total
    n = (x - 0.3320) / (0.1858 - y)
    cct = 449.0 * n**3 + 3525.0 * n**2 + 6823.3 * n + 5520.33
    if not 1667.0 <= cct <= 15000.0:
        return None
    u, v = _uv(x, y)
    pu, pv = _uv(*planck_xy(cct))
    if math.hypot(u - pu, v - pv) > MAX_DUV:
        return None
    return float(cct)


class MotionMeter:
    """Motion energy: the share of the view that changed since the previous frame, 0–1.

    Frames are shrunk to 80×60 (INTER_AREA averages 4×4 blocks at 320×240, cutting sensor noise
    fourfold) and the previous one is scaled by the change in mean brightness before the
    difference, so a lamp switched on or off is not taken for movement. A pixel counts as
    changed when it differs by more than ``threshold`` (of 255).
    """

    SIZE = (80, 60)

    def __init__(self, threshold: float = 12.0) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (after a gap, a reopen or privacy)."""
        self._previous = None

    def update(self, luma: np.ndarray) -> float:
        import cv2

        small = cv2.resize(luma, self.SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        previous, self._previous = self._previous, small
        if previous is None:
            return 0.0
        gain = (float(small.mean()) + 1.0) / (float(previous.mean()) + 1.0)
        diff = np.abs(small - previous * gain)
        return float(np.count_nonzero(diff > self.threshold)) / diff.size
