"""The compiled renderer behind ``jmrn.heatmaps.aggregate`` (numba; see that module for the
representation and every decision about it).

Why a compiled loop. Per video the work is small: T x M x V blobs of at most 7 x 7 cells
(sigma 1, truncate 3), each added to the at most two temporal channels whose weight is
non-zero at its frame: about 60,000 multiply-adds for a JHMDB video. numpy cannot express
"add this 7 x 7 window at this offset" without dense per-blob profiles, index arrays or a
scatter, each a pass over arrays much larger than the arithmetic, plus 5-10 us of overhead per
call; the separable matmul path (``aggregate_numpy``) spends most of its time building dense
profiles and multiplying zeros. Measured side by side (bench/heatmaps.py, one thread), this
loop is 5-28x faster than that path and 3-6x the cost of merely allocating and writing the
output (18x for a two-person video, whose blobs outnumber the output's values); torch ops
would keep numpy's per-call overheads and add their own.

Exactness. Values are accumulated in float64 and rounded once into the float32 output, so
they agree with ``aggregate_reference`` to float32 rounding. Where blobs of two persons of the
same joint overlap in a frame, their per-pixel maximum is formed on a scratch canvas and
added once (the max over persons, not the sum), whatever the number of persons.

Numba compiles these functions on first use and caches the machine code next to this file
(``jmrn/__pycache__``): the first call on a machine takes about 20 s (with the float16 and LZF
code), later processes load the cache in about 0.5-1.5 s. Where numba is not installed,
``jmrn.heatmaps`` falls back to the numpy path (same values to ~1e-7 of the maximum, 5-28x
slower).
"""

from __future__ import annotations

import math

import numpy as np
from numba import __version__ as numba_version
from numba import njit

__all__ = ["numba_version", "render"]


@njit(cache=True, nogil=True)
def _grid_coordinates(keypoints, scale, offset_x, offset_y, reach, width, height, min_conf,
                      x, y, conf):  # fmt: skip
    """Flat grid coordinates and confidences of every (joint, frame, person); confidence 0
    marks an absent joint. The same arithmetic as ``jmrn.heatmaps.to_grid`` (float32 source
    coordinates times a float32 scale, plus a float64 offset, stored as float32) and the same
    rule: not finite, below ``min_conf``, or farther than ``reach`` outside the grid = absent.
    """
    frames, persons, joints = keypoints.shape[0], keypoints.shape[1], keypoints.shape[2]
    scale32 = np.float32(scale)
    for t in range(frames):
        for m in range(persons):
            for v in range(joints):
                k = (v * frames + t) * persons + m  # joint-major: each joint's blobs together
                gx = np.float64(keypoints[t, m, v, 0] * scale32) + offset_x
                gy = np.float64(keypoints[t, m, v, 1] * scale32) + offset_y
                c = keypoints[t, m, v, 2]
                inside = -reach <= gx <= width + reach and -reach <= gy <= height + reach
                if c > 0 and c >= min_conf and np.isfinite(c) and inside:
                    x[k], y[k], conf[k] = np.float32(gx), np.float32(gy), c
                else:
                    conf[k] = 0.0


LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: n * LN2_HI is exact for |n| < 2^20
LN2_LO = 1.90821492927058770002e-10
ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2^52: adding it rounds a double to an integer
# 1/13!, 1/12!, ..., 1/1!, 1: Taylor series of exp(r) on |r| <= ln2 / 2, truncation error < 4e-18
EXP_TAYLOR = tuple(1.0 / math.factorial(i) for i in range(13, -1, -1))


@njit(cache=True, nogil=True)
def exp_inplace(x, power):
    """x <- exp(x) for every element (float64, not NaN: the windows' arguments are finite),
    within 2 ulp of ``math.exp``, arguments clipped to [-708, 709] (no overflow, no
    subnormals). ``power`` is scratch of x's length.

    Why not ``math.exp``: numba calls libm once per element (5-7 ns, two thirds of the window
    computation); this is plain arithmetic that LLVM vectorises (about 2x faster). exp(x) =
    2^n exp(r) with n = round(x / ln 2): exp(r) is a Taylor polynomial, and 2^n is written
    straight into the exponent bits of ``power`` (the low bits of x / ln 2 + 1.5 * 2^52 hold
    n). No fused multiply-add, so every x86-64 machine computes the same bits."""
    bits = power.view(np.int64)
    for k in range(x.shape[0]):
        v = min(max(x[k], -708.0), 709.0)
        shifted = v * LOG2E + ROUND_MAGIC
        n = shifted - ROUND_MAGIC
        r = (v - n * LN2_HI) - n * LN2_LO
        p = EXP_TAYLOR[0]
        for c in EXP_TAYLOR[1:]:
            p = p * r + c
        x[k] = p
        power[k] = shifted
    for k in range(x.shape[0]):
        bits[k] = (bits[k] + 1023) << 52
    for k in range(x.shape[0]):
        x[k] *= power[k]


@njit(cache=True, nogil=True)
def _axis_windows(coord, conf, size, reach, sigma, first, count, profile):
    """For every blob, the cells of one axis it reaches inside the grid: the first cell, how
    many (0: none) and the Gaussian at their centres, exp(-d^2 / 2 sigma^2), zero-padded to
    the profile's width. d steps by one cell, so the Gaussian is updated by a ratio that
    itself changes by a constant factor: two exponentials per blob and axis, computed for all
    blobs at once by ``exp_inplace``."""
    blobs = coord.shape[0]
    scale = -0.5 / (sigma * sigma)
    ratio_step = math.exp(2.0 * scale)
    start = np.empty(blobs)
    growth = np.empty(2 * blobs)  # value of the first cell, then its ratio to the next
    for k in range(blobs):
        c = np.float64(coord[k])
        cell = math.ceil(c - reach - 0.5)
        d = cell + 0.5 - c  # signed distance from the joint to the first cell's centre
        start[k] = cell
        growth[k] = d * d * scale
        growth[blobs + k] = (2.0 * d + 1.0) * scale
    exp_inplace(growth, np.empty(2 * blobs))
    for k in range(blobs):
        n = 0
        if conf[k] > 0:
            cell = np.int64(start[k])
            d = start[k] + 0.5 - np.float64(coord[k])
            value, ratio = growth[k], growth[blobs + k]
            for _ in range(profile.shape[1]):  # past the span, |d| > reach: never kept
                if abs(d) <= reach and 0 <= cell < size:
                    if n == 0:
                        first[k] = cell
                    profile[k, n] = value
                    n += 1
                value *= ratio
                ratio *= ratio_step
                d += 1.0
                cell += 1
        count[k] = n
        for j in range(n, profile.shape[1]):
            profile[k, j] = 0.0


@njit(cache=True, nogil=True)
def _accumulate(conf, weights, y0, ny, gy, x0, nx, gx, persons, joints, out):
    """Add every blob to ``out`` (C, V, H, W), one joint at a time in a float64 buffer.

    The blobs of one (frame, joint) go straight in when no two of them overlap; otherwise
    their per-pixel maximum is taken on ``canvas`` first and the union of their windows
    added. Rows are added whole: ``gx`` is zero-padded to ``lanes`` (a multiple of 8) and the
    buffers have ``lanes`` spare columns, so the inner loops have no bounds to test and LLVM
    vectorises them (adding the padding's zeros changes nothing). Each cell's sum is formed in
    the same order as a cell-by-cell loop, so the values do not depend on this layout.
    """
    channels, height, width = out.shape[0], out.shape[2], out.shape[3]
    frames, lanes = weights.shape[1], gx.shape[1]
    stride = width + lanes
    acc = np.zeros((channels, height, stride))
    flat = acc.reshape(acc.size)
    canvas = np.zeros((height, stride))
    live = np.empty(max(persons, 1), np.int64)
    for v in range(joints):
        top, bottom, left, right = height, 0, width, 0  # the cells this joint touched
        for t in range(frames):
            n = 0
            union_top, union_bottom, union_left, union_right = height, 0, width, 0
            for m in range(persons):
                k = (v * frames + t) * persons + m
                if ny[k] > 0 and nx[k] > 0:
                    live[n] = k
                    n += 1
                    union_top = min(union_top, y0[k])
                    union_bottom = max(union_bottom, y0[k] + ny[k])
                    union_left = min(union_left, x0[k])
                    union_right = max(union_right, x0[k] + nx[k])
            top, bottom = min(top, union_top), max(bottom, union_bottom)
            left, right = min(left, union_left), max(right, union_right)
            overlap = False
            for a in range(n):
                for b in range(a + 1, n):
                    ka, kb = live[a], live[b]
                    if (y0[ka] < y0[kb] + ny[kb] and y0[kb] < y0[ka] + ny[ka]
                            and x0[ka] < x0[kb] + nx[kb] and x0[kb] < x0[ka] + nx[ka]):
                        overlap = True  # fmt: skip
            if not overlap:
                for a in range(n):
                    k = live[a]
                    for ch in range(channels):
                        w = weights[ch, t] * conf[k]
                        if w == 0.0:
                            continue
                        for i in range(ny[k]):
                            row = w * gy[k, i]
                            # unsigned: numba wraps negative indices, which stops vectorising
                            base = np.uint64((ch * height + y0[k] + i) * stride + x0[k])
                            for j in range(np.uint64(lanes)):
                                flat[base + j] += row * gx[k, j]
                continue
            for a in range(n):  # max over persons on the canvas
                k = live[a]
                for i in range(ny[k]):
                    row = conf[k] * gy[k, i]
                    cells = canvas[y0[k] + i, x0[k]:x0[k] + lanes]
                    for j in range(lanes):
                        value = row * gx[k, j]
                        cells[j] = value if value > cells[j] else cells[j]
            span = np.uint64(union_right - union_left)
            for ch in range(channels):  # add the union of the windows once, then clear it
                w = weights[ch, t]
                if w == 0.0:
                    continue
                for y in range(union_top, union_bottom):
                    base = np.uint64((ch * height + y) * stride + union_left)
                    cells = canvas[y, union_left:union_right]
                    for j in range(span):
                        flat[base + j] += w * cells[j]
            canvas[union_top:union_bottom, union_left:union_right] = 0.0
        for ch in range(channels):
            out[ch, v, top:bottom, left:right] = acc[ch, top:bottom, left:right]
            acc[ch, top:bottom, left:right] = 0.0


@njit(cache=True, nogil=True)
def render(keypoints, weights, scale, offset_x, offset_y, sigma, truncate, min_conf, out):
    """Render the video ``keypoints`` (T, M, V, 3) float32, in source pixels, into ``out``
    (C, V, H, W) float32, with temporal weights (C, T) float64 and the frame fitted to the
    grid by ``scale`` and ``offset_*`` (as in ``jmrn.heatmaps.to_grid``).

    ``out`` may hold anything: it is zeroed here, without the GIL (numpy's ``zeros`` clears
    a reused 1 MB buffer while holding it, which serialised the stage's render threads)."""
    out[:] = 0.0
    frames, persons, joints = keypoints.shape[0], keypoints.shape[1], keypoints.shape[2]
    height, width = out.shape[2], out.shape[3]
    reach = truncate * sigma
    span = int(math.floor(2 * reach)) + 1
    lanes = 8 * ((span + 7) // 8)
    blobs = frames * persons * joints
    x, y, conf = np.zeros(blobs, np.float32), np.zeros(blobs, np.float32), np.empty(blobs)
    _grid_coordinates(keypoints, scale, offset_x, offset_y, reach, width, height, min_conf,
                      x, y, conf)  # fmt: skip
    x0, nx, gx = np.zeros(blobs, np.int64), np.empty(blobs, np.int64), np.empty((blobs, lanes))
    y0, ny, gy = np.zeros(blobs, np.int64), np.empty(blobs, np.int64), np.empty((blobs, lanes))
    _axis_windows(x, conf, width, reach, sigma, x0, nx, gx)
    _axis_windows(y, conf, height, reach, sigma, y0, ny, gy)
    _accumulate(conf, weights, y0, ny, gy, x0, nx, gx, persons, joints, out)
