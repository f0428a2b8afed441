"""The compiled renderer behind ``jmrn.heatmaps.aggregate`` (numba; see that module for the
representation and every decision about it).

Why a compiled loop. Per video the work is small: T x M x V blobs of at most 7 x 7 cells
(sigma 1, truncate 3), each added to the at most two temporal channels whose weight is
non-zero at its frame: about 60,000 multiply-adds for a JHMDB video. numpy cannot express
"add this 7 x 7 window at this offset" without dense per-blob profiles, index arrays or a
scatter, each a pass over arrays much larger than the arithmetic, plus 5-10 us of overhead per
call; the separable matmul path (``aggregate_numpy``) spends most of its time building dense
profiles and multiplying zeros. Measured side by side (bench/heatmaps.py, one thread), this
loop is 7-17x faster than that path and within a few times of merely allocating and writing
the output; torch ops would keep numpy's per-call overheads and add their own.

Exactness. Values are accumulated in float64 and rounded once into the float32 output, so
they agree with ``aggregate_reference`` to float32 rounding. Where blobs of two persons of the
same joint overlap in a frame, their per-pixel maximum is formed on a scratch canvas and
added once (the max over persons, not the sum), whatever the number of persons.

Numba compiles these functions on first use and caches the machine code next to this file
(``jmrn/__pycache__``): the first call on a machine takes 5-15 s, later processes load the
cache in about 0.5-1.5 s. Where numba is not installed, ``jmrn.heatmaps`` falls back to the numpy
path (same values to ~1e-7 of the maximum, 7-17x slower).
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


@njit(cache=True, nogil=True)
def _axis_windows(coord, conf, size, reach, sigma, first, count, profile):
    """For every blob, the cells of one axis it reaches inside the grid: the first cell, how
    many (0: none) and the Gaussian at their centres, exp(-d^2 / 2 sigma^2). d steps by one
    cell, so the Gaussian is updated by a ratio that itself changes by a constant factor:
    two exp calls per blob and axis instead of one per cell."""
    scale = -0.5 / (sigma * sigma)
    ratio_step = math.exp(2.0 * scale)
    for k in range(coord.shape[0]):
        count[k] = 0
        if conf[k] <= 0:
            continue
        c = np.float64(coord[k])
        cell = math.ceil(c - reach - 0.5)
        d = cell + 0.5 - c  # signed distance from the joint to the cell's centre
        value, ratio = math.exp(d * d * scale), math.exp((2.0 * d + 1.0) * scale)
        n = 0
        for _ in range(profile.shape[1]):
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


@njit(cache=True, nogil=True)
def _accumulate(conf, weights, y0, ny, gy, x0, nx, gx, persons, joints, out):
    """Add every blob to ``out`` (C, V, H, W), one joint at a time in a float64 buffer.

    The blobs of one (frame, joint) go straight in when no two of them overlap; otherwise
    their per-pixel maximum is taken on ``canvas`` first and each of its cells added once.
    """
    channels, height, width = out.shape[0], out.shape[2], out.shape[3]
    frames = weights.shape[1]
    acc = np.zeros((channels, height, width))
    canvas = np.zeros((height, width))
    live = np.empty(max(persons, 1), np.int64)
    for v in range(joints):
        top, bottom, left, right = height, -1, width, -1  # the cells this joint touched
        for t in range(frames):
            n = 0
            for m in range(persons):
                k = (v * frames + t) * persons + m
                if ny[k] > 0 and nx[k] > 0:
                    live[n] = k
                    n += 1
                    top, bottom = min(top, y0[k]), max(bottom, y0[k] + ny[k] - 1)
                    left, right = min(left, x0[k]), max(right, x0[k] + nx[k] - 1)
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
                    top_k, left_k, rows, cols = y0[k], x0[k], ny[k], nx[k]  # hoisted: numba
                    for ch in range(channels):  # cannot prove the stores below leave them be
                        w = weights[ch, t] * conf[k]
                        if w == 0.0:
                            continue
                        for i in range(rows):
                            row = w * gy[k, i]
                            for j in range(cols):
                                acc[ch, top_k + i, left_k + j] += row * gx[k, j]
                continue
            for a in range(n):  # max over persons on the canvas
                k = live[a]
                for i in range(ny[k]):
                    row = conf[k] * gy[k, i]
                    for j in range(nx[k]):
                        value = row * gx[k, j]
                        if value > canvas[y0[k] + i, x0[k] + j]:
                            canvas[y0[k] + i, x0[k] + j] = value
            for a in range(n):  # add each canvas cell once, and clear it
                k = live[a]
                for i in range(ny[k]):
                    for j in range(nx[k]):
                        y, x = y0[k] + i, x0[k] + j
                        value = canvas[y, x]
                        if value != 0.0:
                            for ch in range(channels):
                                acc[ch, y, x] += weights[ch, t] * value
                            canvas[y, x] = 0.0
        for ch in range(channels):
            for y in range(top, bottom + 1):
                for x in range(left, right + 1):
                    out[ch, v, y, x] = acc[ch, y, x]
                    acc[ch, y, x] = 0.0


@njit(cache=True, nogil=True)
def render(keypoints, weights, scale, offset_x, offset_y, sigma, truncate, min_conf, out):
    """Add the video ``keypoints`` (T, M, V, 3) float32, in source pixels, to ``out``
    (C, V, H, W) float32 zeros, with temporal weights (C, T) float64 and the frame fitted to
    the grid by ``scale`` and ``offset_*`` (as in ``jmrn.heatmaps.to_grid``)."""
    frames, persons, joints = keypoints.shape[0], keypoints.shape[1], keypoints.shape[2]
    height, width = out.shape[2], out.shape[3]
    reach = truncate * sigma
    span = int(math.floor(2 * reach)) + 1
    blobs = frames * persons * joints
    x, y, conf = np.zeros(blobs, np.float32), np.zeros(blobs, np.float32), np.empty(blobs)
    _grid_coordinates(keypoints, scale, offset_x, offset_y, reach, width, height, min_conf,
                      x, y, conf)  # fmt: skip
    x0, nx, gx = np.zeros(blobs, np.int64), np.empty(blobs, np.int64), np.empty((blobs, span))
    y0, ny, gy = np.zeros(blobs, np.int64), np.empty(blobs, np.int64), np.empty((blobs, span))
    _axis_windows(x, conf, width, reach, sigma, x0, nx, gx)
    _axis_windows(y, conf, height, reach, sigma, y0, ny, gy)
    _accumulate(conf, weights, y0, ny, gy, x0, nx, gx, persons, joints, out)
