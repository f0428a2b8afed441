"""Float32 heatmap rows to float16, with their per-map maxima, in one compiled pass (numba).

The heatmaps stage stores rows as float16. In numpy, a row took five passes over its 0.6-1.2
MB (find the non-zeros, gather them, cast them, scatter them into a zeroed row, and the
per-map maximum for ``max_norm``), more time than rendering the row, and most of it spent
holding the GIL, so the stage's render threads waited on each other. Here one loop, which
releases the GIL, reads each value once: zeros (~98 % of a row) are skipped by one compare,
and every other value is rounded to float16 bits.

Numba has no float16 type, so the rounding is done on the bits: IEEE 754 round to nearest,
ties to even, which is what numpy's ``astype(np.float16)`` does (its software path
``npy_floatbits_to_halfbits`` and the F16C instruction agree on every finite value): values
below half the smallest subnormal go to zero, values from 65520 up to infinity, subnormals
are rounded like the rest. ``tests/test_float16.py`` compares every exponent against numpy;
the check of all 2^32 bit patterns is ``python -m jmrn.float16`` (a few minutes).
Rendered heatmaps are finite and non-negative; a NaN or infinity is refused (-1), not stored.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def half_bits(bits):
    """The float16 bits (as an int) nearest to the float32 with these bits (uint32), ties to
    even; -1 for NaN and infinity."""
    sign = (bits >> 16) & 0x8000
    exponent = bits & 0x7F800000
    if exponent == 0x7F800000:
        return -1
    if exponent >= 0x47800000:  # 2^16 and up: beyond float16's range
        return sign | 0x7C00
    if exponent <= 0x38000000:  # below 2^-14: a float16 subnormal, or zero
        if exponent < 0x33000000:  # below 2^-25: rounds to zero
            return sign
        shift = 113 - (exponent >> 23)  # 1 to 11 more bits than a normal value loses
        significand = (0x00800000 + (bits & 0x007FFFFF)) >> shift
        # ties to even: add half a unit unless the kept part is even and exactly half is
        # dropped (bits lost by the shift above count as more than half)
        if (significand & 0x3FFF) != 0x1000 or (bits & ((1 << shift) - 1)) != 0:
            significand += 0x1000
        return sign | (significand >> 13)  # a carry into the exponent is the right result
    significand = bits & 0x007FFFFF
    if (significand & 0x3FFF) != 0x1000:
        significand += 0x1000
    # a carry from the rounding increments the exponent, to infinity at worst: both right
    return sign | (((exponent - 0x38000000) >> 13) + (significand >> 13))


@njit(cache=True, nogil=True)
def quantise_row(words, maps, stored, peaks):
    """Round a float32 row into float16 bits and find each map's maximum.

    ``words``: the row's bytes as uint64, two float32 values each (an odd-sized row padded
    with a zero value); ``maps`` equal stretches of the row, one per (channel, joint) map.
    Writes every value's float16 bits into ``stored`` (uint16, any content: it is cleared
    here, without the GIL, not by numpy's ``zeros`` under it) and each map's float32 maximum
    into ``peaks``. Returns the number of non-zero float16 values, or -1 if the row holds a
    NaN or an infinity. Zero words, most of a row, cost one compare."""
    stored[:] = 0
    size = stored.shape[0] // maps
    values = words.view(np.float32)
    bits = words.view(np.uint32)
    peaks[:] = -np.inf
    present = np.zeros(maps, np.int64)  # non-zero values per map: any fewer, and 0 counts
    nonzero, m, end = 0, 0, size  # the map of value i, and where it ends
    for w in range(words.shape[0]):
        if words[w] == 0:
            continue
        for i in range(2 * w, min(2 * w + 2, stored.shape[0])):
            if bits[i] == 0:
                continue
            half = half_bits(bits[i])
            if half < 0:
                return -1
            stored[i] = half
            nonzero += (half & 0x7FFF) != 0
            while i >= end:
                m, end = m + 1, end + size
            present[m] += 1
            peaks[m] = max(peaks[m], values[i])
    for m in range(maps):
        if present[m] < size:
            peaks[m] = max(peaks[m], np.float32(0))
    return nonzero


def to_float16(row: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A float32 row (C, V, H, W) as (float16 row, (C, V) float32 maxima, non-zeros)."""
    flat = np.ascontiguousarray(row, dtype=np.float32).reshape(-1)
    if len(flat) % 2:
        flat = np.append(flat, np.float32(0))
    maps = row.shape[0] * row.shape[1]
    stored = np.empty(row.size, np.uint16)
    peaks = np.empty(maps, np.float32)
    nonzero = quantise_row(flat.view(np.uint64), maps, stored, peaks)
    if nonzero < 0:
        raise ValueError("a heatmap row holds a NaN or an infinity")
    return stored.view(np.float16).reshape(row.shape), peaks.reshape(row.shape[:2]), nonzero


@njit(cache=True, nogil=True)
def _all_half_bits(start, count, out):
    for i in range(count):
        out[i] = half_bits(np.uint32(start + i))


def _check_every_float32() -> None:
    """Compare ``half_bits`` with numpy on every finite float32 (``python -m jmrn.float16``)."""
    step = 1 << 24
    out = np.empty(step, np.int64)
    for start in range(0, 1 << 32, step):
        bits = np.arange(start, start + step, dtype=np.uint64).astype(np.uint32)
        values = bits.view(np.float32)
        _all_half_bits(start, step, out)
        finite = np.isfinite(values)
        with np.errstate(over="ignore"):
            expected = values[finite].astype(np.float16).view(np.uint16)
        wrong = np.flatnonzero(out[finite] != expected)
        if len(wrong):
            first = bits[finite][wrong[0]]
            raise SystemExit(f"float32 bits {first:#010x}: {out[finite][wrong[0]]:#06x}, "
                             f"numpy {expected[wrong[0]]:#06x}")  # fmt: skip
        if np.any(out[~finite] != -1):
            raise SystemExit(f"a NaN or infinity near {start:#010x} was not refused")
    print("every finite float32 rounds to numpy's float16; NaN and infinity are refused")


if __name__ == "__main__":
    _check_every_float32()
