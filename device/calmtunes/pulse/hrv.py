"""Inter-beat intervals with artefact correction, heart rate and time-domain HRV.

Each interval is compared with the median of its neighbours (up to 5 on each side), which follows
slow changes such as respiratory sinus arrhythmia but not single faults:

* **missed beat** – an interval close to k × the local median (k ≥ 2, within 20 %): the beat(s)
  the detector missed are put back, evenly spaced, and marked as interpolated;
* **extra beat** – a short interval whose sum with its neighbour is close to the local median:
  the spurious beat between them is removed;
* **bigeminy** – every interval alternating short and long: all are premature pairs;
* **premature beat** – a short interval followed by a longer one that together make two local
  medians, between normal intervals: a premature (ectopic) beat and its compensatory pause.
  Both intervals are real beats and count for the heart rate; neither is a normal-to-normal
  interval, so HRV leaves both out;
* **ectopic or unexplained** – any interval still differing from the local median by more than
  20 % (the classic Malik criterion) is excluded from HRV, and from the heart rate while at
  least half of the intervals are clean.

RMSSD uses only successive pairs of clean (neither interpolated nor ectopic) intervals, SDNN the
clean intervals. Heart rate is 60 / the mean corrected interval, i.e. beats per minute over the
stretch the beats span, which is what a monitor's averaged reading reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calmtunes.pulse.stats import diff, mean, median

#: relative deviation from the local median beyond which an interval is abnormal
TOLERANCE = 0.2
#: neighbours on each side used for the local median
HALF_WIDTH = 5


@dataclass(frozen=True)
class Intervals:
    beat_times: np.ndarray  # s, after correction (inserted beats included, extra ones removed)
    ibi_s: np.ndarray  # interval ending at beat_times[1:], s
    clean: np.ndarray  # bool per interval: usable for HRV
    reference: np.ndarray  # local median each interval was judged against, s
    missed: int  # beats put back
    extra: int  # beats removed
    ectopic: int  # intervals left out of HRV
    #: per interval: half of a premature beat and its compensatory pause (counted for the
    #: heart rate, left out of HRV)
    premature: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def n_corrected(self) -> int:
        return self.missed + self.extra + self.ectopic


def local_median(ibi: np.ndarray, half: int = HALF_WIDTH) -> np.ndarray:
    """Median of each interval's neighbourhood (itself included), mirrored at the edges."""
    n = len(ibi)
    if n < 3:
        return np.full(n, median(ibi)) if n else ibi.copy()
    h = min(half, n - 1)
    j = np.abs(np.arange(n)[:, None] + np.arange(-h, h + 1))
    j = np.where(j > n - 1, 2 * (n - 1) - j, j)
    return np.sort(ibi[j], axis=1)[:, h]


def correct(beat_times: np.ndarray, *, put_back: bool = True) -> Intervals:
    """Classify and correct the intervals between ``beat_times`` (s, increasing).

    ``put_back=False``: no missed beat is put back (an irregular rhythm, where an interval
    close to twice the median is no sign of one)."""
    t = np.asarray(beat_times, dtype=float)
    missed = extra = 0
    if _bigeminy(diff(t)):
        # every interval alternates short–long: a premature beat after every normal one. All
        # are real beats (the rate counts them); none is normal-to-normal (HRV leaves them out)
        # (each is judged against the median of its own kind, short or long)
        ibi = diff(t)
        n = len(ibi)
        ref = np.empty(n)
        ref[0::2], ref[1::2] = median(ibi[0::2]), median(ibi[1::2])
        return Intervals(t, ibi, np.zeros(n, dtype=bool), ref, 0, 0, 0, np.ones(n, dtype=bool))
    if len(t) >= 3:
        # extra beats: remove the beat splitting an interval in two short parts
        for _ in range(3):
            ibi = diff(t)
            ref = local_median(ibi)
            short = ibi < (1 - TOLERANCE) * ref
            pair = np.zeros(len(t), dtype=bool)
            # beat i+1 splits ibi[i] and ibi[i+1]; drop it when their sum fits the local median
            both = short[:-1] | short[1:]
            fits = np.abs(ibi[:-1] + ibi[1:] - ref[:-1]) < TOLERANCE * ref[:-1]
            drop = np.flatnonzero(both & fits) + 1
            if drop.size == 0:
                break
            # never drop two neighbouring beats in one pass
            drop = drop[np.concatenate(([True], diff(drop) > 1))]
            pair[drop] = True
            t = t[~pair]
            extra += int(drop.size)
            if len(t) < 3:
                break
    interp = np.zeros(len(t), dtype=bool)
    if len(t) >= 3 and put_back:
        ibi = diff(t)
        ref = local_median(ibi)
        k = np.rint(ibi / ref)
        k[k < 1] = 1
        gap = (k >= 2) & (np.abs(ibi / k - ref) < TOLERANCE * ref) & (k <= 4)
        if np.any(gap):
            parts = [t[:1]]
            flags = [interp[:1]]
            for i in range(len(ibi)):
                if gap[i]:
                    n = int(k[i])
                    parts.append(t[i] + ibi[i] * np.arange(1, n) / n)
                    flags.append(np.ones(n - 1, dtype=bool))
                    missed += n - 1
                parts.append(t[i + 1 : i + 2])
                flags.append(np.zeros(1, dtype=bool))
            t = np.concatenate(parts)
            interp = np.concatenate(flags)
    ibi = diff(t)
    if len(ibi) == 0:
        return Intervals(t, ibi, np.zeros(0, dtype=bool), ibi.copy(), missed, extra, 0)
    ref = local_median(ibi)
    normal = np.abs(ibi - ref) <= TOLERANCE * ref
    touched = interp[1:] | interp[:-1]
    clean = normal & ~touched
    ectopic = int(np.count_nonzero(~normal & ~touched))
    # a premature beat and its compensatory pause: a short interval followed by a longer one,
    # together two normal intervals, within an otherwise regular rhythm (a clean interval on
    # either side: a noisy window's double detections and gaps make no such pattern); both
    # are real beats (the rate counts them), neither is normal-to-normal (HRV leaves both out)
    premature = np.zeros(len(ibi), dtype=bool)
    if len(ibi) >= 4:
        a, b = ibi[1:-2], ibi[2:-1]
        r = ref[1:-2]
        first = (
            (a < (1 - TOLERANCE) * r)
            & (b > r)
            & (np.abs(a + b - 2 * r) <= TOLERANCE * r)
            & clean[:-3]
            & clean[3:]
            & ~touched[1:-2]
            & ~touched[2:-1]
        )
        premature[1:-2] |= first
        premature[2:-1] |= first
    clean &= ~premature
    return Intervals(t, ibi, clean, ref, missed, extra, ectopic, premature)


def _bigeminy(ibi: np.ndarray) -> bool:
    """Intervals strictly alternating short and long, the short ones more than
    :data:`TOLERANCE` shorter: bigeminy (a premature beat after every normal one)."""
    if len(ibi) < 6:
        return False
    step = np.sign(diff(ibi))
    if float(mean(step[1:] != step[:-1])) < 0.9:
        return False
    a, b = float(median(ibi[0::2])), float(median(ibi[1::2]))
    return min(a, b) < (1 - TOLERANCE) * max(a, b)


def heart_rate(iv: Intervals) -> float | None:
    """Beats per minute over the corrected intervals, None without two intervals."""
    if len(iv.ibi_s) < 2:
        return None
    return 60.0 / float(mean(iv.ibi_s))


def rmssd_ms(iv: Intervals, min_pairs: int = 5) -> float | None:
    """Root mean square of successive differences of clean intervals, in ms."""
    ok = iv.clean[1:] & iv.clean[:-1]
    if np.count_nonzero(ok) < min_pairs:
        return None
    dd = diff(iv.ibi_s)[ok] * 1000.0
    return float(np.sqrt(mean(dd * dd)))


def sdnn_ms(iv: Intervals, min_beats: int = 6) -> float | None:
    """Standard deviation of clean intervals, in ms."""
    nn = iv.ibi_s[iv.clean]
    if len(nn) < min_beats:
        return None
    return float(np.std(nn, ddof=1) * 1000.0)
