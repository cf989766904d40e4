"""IIR filters in plain numpy: Butterworth and elliptic design, and block-wise filtering.

The daemon must not load scipy (about 77 MB of resident memory and 2–3 s of import on a Pi), so
the few filters it needs are designed and run here.

Design follows the textbook route scipy takes (analog prototype → frequency transform → bilinear
transform with prewarping → second-order sections); the elliptic prototype, whose design needs
elliptic integrals, is stored as constants made by ``scripts/make_iir_constants``.

Filtering: a per-sample Python loop costs ~1 µs a sample, far too slow for audio. A cascade of
biquads is a linear state-space system ``s' = A s + B x, y = C s + D x`` (the biquads in direct
form II transposed, so the state is the same ``(sections, 2)`` layout scipy's ``sosfilt`` keeps).
Over a chunk of ``M`` samples its output is a matrix product — the zero-state response (a lower
triangular Toeplitz matrix of the impulse response) plus the response to the state at the chunk's
start — and the states at the chunk starts follow from another product. So a block is filtered
with a handful of small matrix products and no Python loop over samples; the result equals the
sample-by-sample recursion up to float64 rounding (≈1e-13 relative; the tests compare with
scipy).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Elliptic analog low-pass prototype for order 6, 0.1 dB pass-band ripple, 75 dB stop band,
# pass-band edge 1 rad/s (scipy.signal.ellipap(6, 0.1, 75.0); scripts/make_iir_constants).
ELLIP_6_01_75 = (
    np.array([7.051513273756827j, 2.666876772422759j, 2.015054805829131j,
              -7.051513273756827j, -2.666876772422759j, -2.015054805829131j]),
    np.array([-0.45880089889976144 - 0.3160464919584393j,
              -0.29570514159849776 - 0.8127631229074046j,
              -0.09578180864137391 - 1.0504286257191646j,
              -0.45880089889976144 + 0.3160464919584393j,
              -0.29570514159849776 + 0.8127631229074046j,
              -0.09578180864137391 + 1.0504286257191646j]),
    0.00017782794100389205,
)


# ------------------------------------------------------------------ design


def _butter_prototype(order: int) -> tuple[np.ndarray, np.ndarray, float]:
    m = np.arange(-order + 1, order, 2)
    return np.zeros(0, complex), -np.exp(1j * np.pi * m / (2 * order)), 1.0


def _bilinear(z: np.ndarray, p: np.ndarray, k: float, fs: float):
    fs2 = 2.0 * fs
    zd = (fs2 + z) / (fs2 - z)
    pd = (fs2 + p) / (fs2 - p)
    zd = np.append(zd, -np.ones(len(p) - len(z)))  # zeros at infinity → Nyquist
    kd = k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))
    return zd, pd, kd


def _transform(z, p, k, btype: str, freqs, fs: float):
    """Analog low-pass prototype (edge 1 rad/s) → digital filter at ``freqs`` Hz, sampled at fs."""
    w = 2.0 * fs * np.tan(np.pi * np.atleast_1d(np.asarray(freqs, dtype=float)) / fs)
    degree = len(p) - len(z)
    if btype == "lowpass":
        z, p, k = z * w[0], p * w[0], k * w[0] ** degree
    elif btype == "highpass":
        k = k * np.real(np.prod(-z) / np.prod(-p))
        z, p = w[0] / z, w[0] / p
        z = np.append(z, np.zeros(degree))
    elif btype == "bandpass":
        bw, w0 = w[1] - w[0], np.sqrt(w[0] * w[1])
        zl, pl = z * bw / 2.0, p * bw / 2.0
        z = np.concatenate((zl + np.sqrt(zl**2 - w0**2 + 0j), zl - np.sqrt(zl**2 - w0**2 + 0j)))
        p = np.concatenate((pl + np.sqrt(pl**2 - w0**2 + 0j), pl - np.sqrt(pl**2 - w0**2 + 0j)))
        z = np.append(z, np.zeros(degree))
        k = k * bw**degree
    else:
        raise ValueError(f"filter type {btype!r}: use 'lowpass', 'highpass' or 'bandpass'")
    return _bilinear(z, p, k, fs)


def _pairs(roots: np.ndarray) -> list[np.ndarray]:
    """Roots grouped into conjugate pairs (complex) and pairs of reals (a lone real last)."""
    cplx = roots[roots.imag > 1e-12]
    real = np.sort(roots[np.abs(roots.imag) <= 1e-12].real)
    groups = [np.array([r, np.conj(r)]) for r in cplx]
    groups += [real[i:i + 2].astype(complex) for i in range(0, len(real), 2)]
    return groups


def _zpk2sos(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    poles = sorted(_pairs(p), key=lambda g: -np.abs(g).max())  # farthest from the circle first
    zeros = _pairs(z)
    sos = []
    for pg in poles:
        if zeros:  # the zero pair nearest this pole pair
            j = int(np.argmin([np.abs(zg[:, None] - pg[None, :]).min() for zg in zeros]))
            zg = zeros.pop(j)
        else:
            zg = np.zeros(0)
        b = np.real(np.poly(zg)) if len(zg) else np.array([1.0])
        a = np.real(np.poly(pg))
        sos.append(np.concatenate((np.pad(b, (0, 3 - len(b))), np.pad(a, (0, 3 - len(a))))))
    sos = np.array(sos)
    sos[0, :3] *= k
    return sos


def butter_sos(order: int, freqs, btype: str, fs: float) -> np.ndarray:
    """Butterworth second-order sections, as ``scipy.signal.butter(..., output="sos")``.

    ``freqs`` in Hz (one edge, or two for ``bandpass``), each below ``fs / 2``."""
    f = np.atleast_1d(np.asarray(freqs, dtype=float))
    if np.any(f <= 0) or np.any(f >= fs / 2.0) or len(f) != (2 if btype == "bandpass" else 1):
        raise ValueError(f"filter edges {freqs} Hz: give {'two' if btype == 'bandpass' else 'one'}"
                         f" frequency between 0 and {fs / 2.0:g} Hz (Nyquist)")
    return _zpk2sos(*_transform(*_butter_prototype(order), btype, f, fs))


def ellip_lowpass_sos(edge_hz: float, fs: float) -> np.ndarray:
    """6th-order elliptic low-pass (0.1 dB ripple, 75 dB stop band) with pass-band edge
    ``edge_hz``, as ``scipy.signal.ellip(6, 0.1, 75.0, edge_hz, fs=fs, output="sos")``."""
    if not 0.0 < edge_hz < fs / 2.0:
        raise ValueError(f"filter edge {edge_hz} Hz: must be between 0 and {fs / 2.0:g} Hz")
    return _zpk2sos(*_transform(*ELLIP_6_01_75, "lowpass", edge_hz, fs))


# ------------------------------------------------------------------ filtering


def _state_space(sos: np.ndarray):
    """(A, B, C, D) of the biquad cascade, each section in direct form II transposed."""
    A = np.zeros((0, 0))
    B = np.zeros(0)
    C = np.zeros(0)
    D = 1.0
    for b0, b1, b2, a0, a1, a2 in np.asarray(sos, dtype=float):
        b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
        As = np.array([[-a1, 1.0], [-a2, 0.0]])
        Bs = np.array([b1 - a1 * b0, b2 - a2 * b0])
        Cs = np.array([1.0, 0.0])
        n = len(B)
        An = np.zeros((n + 2, n + 2))
        An[:n, :n] = A
        An[n:, :n] = np.outer(Bs, C)  # this section's input is the cascade's output so far
        An[n:, n:] = As
        A = An
        B = np.concatenate((B, Bs * D))
        C = np.concatenate((b0 * C, Cs))
        D = b0 * D
    return A, B, C, D


# OpenBLAS hands a product to its thread pool above about 262 144 multiply-adds; for the small
# products here waking those threads costs far more than the arithmetic, so larger ones are
# split by rows (the same limit as calmtunes.music.dsp.matmul_single).
_SINGLE_THREAD_MNK = 200_000


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m, k = a.shape
    n = b.shape[1]
    if m * n * k <= _SINGLE_THREAD_MNK:
        return a @ b
    out = np.empty((m, n))
    rows = max(1, _SINGLE_THREAD_MNK // max(1, n * k))
    for i in range(0, m, rows):
        np.matmul(a[i:i + rows], b, out=out[i:i + rows])
    return out


class BlockIIR:
    """The linear maps that filter chunks of ``chunk`` samples through a biquad cascade.

    Per chunk: ``y = x·Hᵀ + s·Oᵀ`` (zero-state response plus the start state's response) and
    ``s_end = s·(A^m)ᵀ + x·G``. The chunk-end states obey ``e_k = A^m e_(k−1) + u_k``, a linear
    recurrence solved for all chunks at once: by one product with a cached block-Toeplitz
    matrix when chunks × order is small, by two levels of such products (within groups of
    chunks, then across the groups) when the chunk count factors that way — the ×3 upsampler's
    100 chunks: 25 % faster than the scan — and otherwise by a prefix scan (log₂ chunks
    vectorised steps), so the Python work per call grows only with the logarithm of the block
    length."""

    def __init__(self, sos: np.ndarray, chunk: int = 48) -> None:
        self.sos = np.array(sos, dtype=np.float64)
        if self.sos.ndim != 2 or self.sos.shape[1] != 6 or np.any(self.sos[:, 3] == 0):
            raise ValueError("second-order sections must be an (n, 6) array with a0 ≠ 0")
        A, B, C, D = _state_space(self.sos)
        n, m = len(B), chunk
        self.order, self.chunk = n, m
        powers = [np.eye(n)]
        for _ in range(m):
            powers.append(A @ powers[-1])
        self.powers = np.array(powers)  # A^0 … A^m
        h = np.array([D] + [C @ powers[i - 1] @ B for i in range(1, m)])
        idx = np.arange(m)
        lag = idx[:, None] - idx[None, :]
        self.H_T = np.where(lag >= 0, h[np.clip(lag, 0, m - 1)], 0.0).T  # x_row @ H_T = y_row
        self.O_T = np.array([C @ powers[i] for i in range(m)]).T  # (n, m): s_row @ O_T
        self.G = np.array([powers[m - 1 - j] @ B for j in range(m)])  # (m, n): x_row @ G
        self._doubling = [powers[m].T]  # (A^m)^(2^j), transposed, grown on demand
        self._direct_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # power → (T, P)
        self.B, self.A = B, A

    def steady_state(self) -> np.ndarray:
        """The state after a long unit step (as ``scipy.signal.sosfilt_zi``, flattened)."""
        return np.linalg.solve(np.eye(self.order) - self.A, self.B)

    #: while chunks × order stays within this, the chunk-end states come from one product with
    #: a (chunks·order)² matrix (cached per chunk count) instead of the log-step scan; beyond
    #: it the product's O(chunks²) work costs more than the scan's Python steps
    DIRECT_SIZE = 128

    def _direct(self, k: int, power: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(T, P) with e = u·T + s·P: e_i = Σ_(j≤i) M^(i−j) u_j + M^(i+1) s, flattened, for
        M = (A^m)^power (power > 1: the states of groups of ``power`` chunks).

        The matrices for k chunks are the leading (k·order) rows and columns of those for more
        chunks, so one pair per power is kept, as large as asked for so far, and sliced: a
        filter fed blocks of many lengths (a pulse window's, say) keeps one 128 KB pair, not
        one per length (which grew to 3 MB in the daemon's first minute)."""
        n = self.order
        got = self._direct_cache.get(power)
        if got is None or got[0].shape[0] < k * n:
            step = np.linalg.matrix_power(self._doubling[0].T, power)  # M
            am = [np.eye(n)]
            for _ in range(k):
                am.append(step @ am[-1])
            am = np.array(am)  # M^0 … M^k
            lag = np.arange(k)[None, :] - np.arange(k)[:, None]  # [j, i] = i − j
            blocks = am[np.clip(lag, 0, k)].transpose(0, 1, 3, 2)  # (M^(i−j))ᵀ at [j, i]
            blocks[lag < 0] = 0.0
            T = blocks.transpose(0, 2, 1, 3).reshape(k * n, k * n)
            P = np.concatenate([am[i + 1].T for i in range(k)], axis=1)
            got = self._direct_cache[power] = (T, P)
        T, P = got
        if T.shape[0] == k * n:
            return T, P
        return T[:k * n, :k * n], P[:, :k * n]

    def _grouping(self, k: int) -> int:
        """A group size g (dividing k) for which both the chunks of a group and the groups
        are few enough for the direct products; 0 if there is none."""
        n, limit = self.order, self.DIRECT_SIZE
        for g in range(min(k, limit // n), 1, -1):
            if k % g == 0 and (k // g) * n <= limit:
                return g
        return 0

    def _step_T(self, j: int) -> np.ndarray:
        while len(self._doubling) <= j:
            last = self._doubling[-1]
            self._doubling.append(last @ last)
        return self._doubling[j]

    def run(self, x: np.ndarray, s: np.ndarray, up: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Filter rows of ``x`` (rows, frames) from states ``s`` (rows, order).

        With ``up`` > 1, ``x`` stands for its zero-stuffed upsampling (each sample followed by
        ``up − 1`` zeros; ``up`` must divide the chunk) and the filtered (rows, frames × up) is
        returned; the zeros cost nothing. Returns (y, final states); the inputs are not
        modified."""
        rows, frames = x.shape[0], x.shape[1] * up
        m, n = self.chunk, self.order
        if m % up:
            raise ValueError(f"upsampling by {up} needs a chunk that it divides, not {m}")
        k = frames // m
        y = np.empty((rows, frames))
        if k:
            seg = x[:, :k * m // up].reshape(rows * k, m // up)
            zero_state = _mm(seg, self.H_T[::up])
            e = _mm(seg, self.G[::up]).reshape(rows, k, n)  # each chunk's own contribution
            if k * n <= self.DIRECT_SIZE:  # one product with the chunk-state matrix
                T, P = self._direct(k)
                e = (_mm(e.reshape(rows, k * n), T) + s @ P).reshape(rows, k, n)
            elif g := self._grouping(k):
                # two levels of the same: states within groups of g chunks from a zero start,
                # then the states at the groups' ends, then each group's start carried in
                groups = k // g
                Tg, Pg = self._direct(g)
                local = _mm(e.reshape(rows * groups, g * n), Tg)
                TG, PG = self._direct(groups, power=g)
                ends = local.reshape(rows, groups, g * n)[:, :, -n:].reshape(rows, groups * n)
                ends = ends @ TG + s @ PG
                starts = np.concatenate((s[:, None, :], ends.reshape(rows, groups, n)[:, :-1]),
                                        axis=1).reshape(rows * groups, n)
                e = (local + _mm(starts, Pg)).reshape(rows, k, n)
            else:
                e[:, 0] += s @ self._doubling[0]
                d, j = 1, 0
                while d < k:  # inclusive scan: e_k += A^(m·d) e_(k−d)
                    e[:, d:] = e[:, d:] + (e[:, :-d].reshape(-1, n) @ self._step_T(j)).reshape(
                        rows, k - d, n)
                    d, j = 2 * d, j + 1
            starts = np.concatenate((s[:, None, :], e[:, :-1]), axis=1).reshape(rows * k, n)
            y[:, :k * m] = (zero_state + starts @ self.O_T).reshape(rows, k * m)
            s = e[:, -1]
        r = frames - k * m
        if r:
            xr = x[:, k * m // up:]
            y[:, k * m:] = xr @ self.H_T[:r:up, :r] + s @ self.O_T[:, :r]
            s = s @ self.powers[r].T + xr @ self.G[m - r::up]
        return y, s


@lru_cache(maxsize=64)
def _cached(key: bytes, shape: tuple[int, int], chunk: int) -> BlockIIR:
    return BlockIIR(np.frombuffer(key, dtype=np.float64).reshape(shape), chunk)


def block_iir(sos: np.ndarray, chunk: int = 48) -> BlockIIR:
    """A (cached) :class:`BlockIIR` for ``sos``, working in chunks of ``chunk`` samples."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    return _cached(sos.tobytes(), sos.shape, chunk)


def chunk_for(frames: int, order: int, up: int = 1) -> int:
    """The chunk length that filters blocks of ``frames`` (output) samples fastest.

    The cheapest case is a chunk that divides the block (no leftover to handle apart) into at
    most ``DIRECT_SIZE / order`` chunks (chunk states by one product, no scan): the shortest
    such chunk from 16 to 96 samples, a multiple of ``up``. Otherwise 48, which does well on
    any length (measured on (2, 1600) blocks: 35 µs instead of 46 µs for a 2nd-order section,
    47 µs instead of 78 µs for two)."""
    for m in range(16, 97):
        if frames % m == 0 and m % up == 0 and (frames // m) * order <= BlockIIR.DIRECT_SIZE:
            return m
    # Next best, for longer blocks (a render's 6400-frame chunks): a chunk of at least 32 that
    # divides the block into chunks whose states two levels of direct products solve (measured
    # on (2, 6400) blocks: 32 takes 58–65 µs where 48, with its leftover, takes 73–87 µs)
    for m in range(32, 97):
        if frames % m == 0 and m % up == 0 and _groups(frames // m, order):
            return m
    return 48


def _groups(k: int, order: int) -> bool:
    """Whether ``k`` chunks split into groups for :meth:`BlockIIR._grouping` (the same test)."""
    limit = BlockIIR.DIRECT_SIZE
    return any(k % g == 0 and (k // g) * order <= limit
               for g in range(min(k, limit // order), 1, -1))


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Filter the 1-D ``x`` through ``sos`` from the flat state ``zi`` (zeros if None).

    Returns (y, final state), as ``scipy.signal.sosfilt(sos, x, zi=zi.reshape(-1, 2))``."""
    f = block_iir(sos)
    s = np.zeros((1, f.order)) if zi is None else np.asarray(zi, dtype=float).reshape(1, f.order)
    y, s = f.run(np.asarray(x, dtype=np.float64)[None, :], s)
    return y[0], s[0]


def sos_response(sos: np.ndarray, freqs_hz: np.ndarray, fs: float) -> np.ndarray:
    """Complex frequency response of second-order sections at ``freqs_hz`` (Hz, sample rate
    ``fs``): what ``scipy.signal.sosfreqz(sos, worN=freqs_hz, fs=fs)[1]`` gives."""
    z1 = np.exp(-2j * np.pi * np.asarray(freqs_hz, dtype=np.float64) / fs)  # z^-1
    h = np.ones_like(z1)
    for b0, b1, b2, a0, a1, a2 in np.asarray(sos, dtype=np.float64):
        h *= (b0 + z1 * (b1 + z1 * b2)) / (a0 + z1 * (a1 + z1 * a2))
    return h
