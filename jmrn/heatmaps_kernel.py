"""The compiled renderer behind ``jmrn.heatmaps.aggregate`` (numba; see that module for the
representation and every decision about it).

Why a compiled loop. Per video the work is small: T x M x V blobs of at most 7 x 7 cells
(sigma 1, truncate 3), each added to the at most two temporal channels whose weight is
non-zero at its frame: about 60,000 multiply-adds for a JHMDB video. numpy cannot express
"add this 7 x 7 window at this offset" without dense per-blob profiles, index arrays or a
scatter, each a pass over arrays much larger than the arithmetic, plus 5-10 us of overhead per
call; the separable matmul path (``aggregate_numpy``) spends most of its time building dense
profiles and multiplying zeros. torch ops would keep numpy's per-call overheads and add their
own. Measured side by side (bench/heatmaps.py, one thread), this loop is 10-45x faster than
that path and 2-8x the cost of merely allocating and writing the output.

How it is laid out. Each choice was timed against the kernel before it, side by side in one
process on bench/heatmaps.py's videos (one-off probes, not a committed command); together
they took the two-person video from 0.52-0.56 ms to 0.28-0.31 ms and the JHMDB-like one from
0.11 to 0.08 ms:

* Channel pairs. With C temporal channels every frame's weights are non-zero in at most one
  adjacent pair (p, p + 1), p rising with t (tents; ``frame_pairs`` checks it). The sums are
  kept in C - 1 buffers that interleave a pair cell by cell, so one blob row, both channels,
  is a single contiguous 16-value add instead of two 8-value ones: the per-row loop set-up
  (aliasing checks, index arithmetic) costs as much as the adds. When p moves on, channel
  p + 1's sum so far is carried into the first lane of pair p + 1, so every channel is still
  summed frame by frame in time order.
* Weights folded into the x window. A blob's x window is stored once per lane of its pair,
  already multiplied by the frame's two weights, so a row add reads two arrays, not three.
* Margins instead of clipping. The buffers extend ``pad`` cells beyond the grid on every side,
  wider than any window can reach, so windows are never cut at the border (no branches in
  the window and row loops); cells in the margin are simply not copied out.
* Max over persons. Where two persons' blobs of a joint overlap in a frame, the second adds
  max(0, b - a) instead of b, so the pair adds max(a, b); where more than one pair overlaps
  (three persons or more), the blobs take their per-cell maximum on a scratch canvas (exact
  for any number, but it costs a pass over the union of their windows).

Exactness. Values are accumulated in float64 and rounded once into the float32 output, so they
agree with ``aggregate_reference`` to float32 rounding (bench/heatmaps.py reports the largest
difference). Only the order of some products changed from the previous kernel: in a one-off
probe on 1,148 videos (bench's, JHMDB-14's test videos at two grid sizes, 576 random ones
with random grids, sigmas, channel counts and persons, NaN and absurd coordinates) the float32
outputs of the two were bit-identical.

Numba compiles these functions on first use and caches the machine code next to this file
(``jmrn/__pycache__``): the first call on a machine takes about 20 s (with the float16 and LZF
code), later processes load the cache in about 0.5-1.5 s. Where numba is not installed,
``jmrn.heatmaps`` falls back to the numpy path (same values to ~1e-7 of the maximum, 10-45x
slower).
"""

from __future__ import annotations

import math

import numpy as np
from numba import __version__ as numba_version
from numba import njit

__all__ = ["numba_version", "render"]

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
def frame_pairs(weights):
    """For every frame t, the channel pair (p, p + 1) that holds its non-zero weights (C, T).

    Raises unless each frame's non-zero weights lie in one adjacent pair and p never falls
    with t: true of both of ``jmrn.heatmaps.temporal_weights``' discretisations (tents), and
    what lets the buffers keep one pair per frame."""
    channels, frames = weights.shape
    pair = np.empty(frames, np.int64)
    p = 0
    for t in range(frames):
        lo, hi = channels, -1
        for ch in range(channels):
            if weights[ch, t] != 0.0:
                lo, hi = min(lo, ch), max(hi, ch)
        if hi >= 0:  # a frame without weight keeps the previous pair and adds zeros
            q = min(lo, channels - 2)
            if hi > q + 1 or q < p:
                raise ValueError("temporal weights must be non-zero in at most two adjacent "
                                 "channels per frame, the pair moving forward in time")  # fmt: skip
            p = q
        pair[t] = p
    return pair


@njit(cache=True, nogil=True, inline="always")
def _gaussian_windows(profile, lanes, paired, dist, first_value, first_ratio, step, reach,
                      weight_a, weight_b):  # fmt: skip
    """Every blob's window along one axis: the Gaussian at its cells' centres, 0 where |d|,
    the distance to the joint, exceeds the reach; one value per lane, or (``paired``) two,
    times the frame's two lane weights. d steps by one cell, so the Gaussian is updated by a
    ratio that itself changes by the constant factor ``step``. Inlined, so that a constant
    ``lanes`` (8, the default grid's) gives a fully unrolled loop: about 2x faster."""
    flat = profile.reshape(profile.size)
    width = np.uint64(2 * lanes if paired else lanes)  # a constant where ``lanes`` is one
    for k in range(np.uint64(dist.shape[0])):
        d, value, ratio = dist[k], first_value[k], first_ratio[k]
        a, b = weight_a[k], weight_b[k]
        base = k * width
        for j in range(lanes):
            kept = value if abs(d) <= reach else 0.0
            if paired:
                flat[base + np.uint64(2 * j)] = kept * a
                flat[base + np.uint64(2 * j + 1)] = kept * b
            else:
                flat[base + np.uint64(j)] = kept
            value *= ratio
            ratio *= step
            d += 1.0


@njit(cache=True, nogil=True)
def _blob_windows(keypoints, scale, offset_x, offset_y, sigma, reach, width, height, min_conf,
                  lane_weights, conf, x0, gx, y0, gy):  # fmt: skip
    """Where every blob lands, blob k = (v * T + t) * M + m (joint-major: each joint's blobs
    together): its confidence (0: absent), the first cell of its window along x and y (left
    of or above the grid near its border: the buffers have margins), the y window's
    Gaussians ``gy`` (blobs, lanes) and the x window's ``gx`` (blobs, 2 lanes), each cell
    twice, times the frame's two lane weights ``lane_weights`` (T, 2).

    The grid position is ``jmrn.heatmaps.to_grid``'s arithmetic (float32 coordinates times a
    float32 scale, plus a float64 offset, stored as float32) and the same rule: not finite,
    below ``min_conf``, or farther than ``reach`` outside the grid = absent. Two exponentials
    per blob and axis, all computed at once by ``exp_inplace``."""
    frames, persons, joints = keypoints.shape[0], keypoints.shape[1], keypoints.shape[2]
    blobs = frames * persons * joints
    scale32 = np.float32(scale)
    exponent = -0.5 / (sigma * sigma)
    growth = np.empty((4, blobs))  # x then y: Gaussian at the first cell, its ratio to the next
    dist = np.empty((2, blobs))  # x then y: signed distance from the joint to the first cell
    weight_a, weight_b = np.empty(blobs), np.empty(blobs)
    for t in range(frames):  # the order keypoints are stored in: reading them costs the most
        for m in range(persons):
            for v in range(joints):
                k = (v * frames + t) * persons + m
                weight_a[k], weight_b[k] = lane_weights[t, 0], lane_weights[t, 1]
                grid_x = np.float64(keypoints[t, m, v, 0] * scale32) + offset_x
                grid_y = np.float64(keypoints[t, m, v, 1] * scale32) + offset_y
                c = keypoints[t, m, v, 2]
                inside = (-reach <= grid_x <= width + reach
                          and -reach <= grid_y <= height + reach)  # fmt: skip
                if c > 0 and c >= min_conf and np.isfinite(c) and inside:
                    px, py = np.float64(np.float32(grid_x)), np.float64(np.float32(grid_y))
                    conf[k] = c
                else:
                    px, py, conf[k] = 0.0, 0.0, 0.0
                cell = math.ceil(px - reach - 0.5)
                d = cell + 0.5 - px
                x0[k], dist[0, k] = np.int64(cell), d
                growth[0, k], growth[1, k] = d * d * exponent, (2.0 * d + 1.0) * exponent
                cell = math.ceil(py - reach - 0.5)
                d = cell + 0.5 - py
                y0[k], dist[1, k] = np.int64(cell), d
                growth[2, k], growth[3, k] = d * d * exponent, (2.0 * d + 1.0) * exponent
    exp_inplace(growth.reshape(growth.size), np.empty(growth.size))
    step = math.exp(2.0 * exponent)
    lanes = gy.shape[1]
    dist_x, value_x, ratio_x = dist[0], growth[0], growth[1]
    dist_y, value_y, ratio_y = dist[1], growth[2], growth[3]
    if lanes == 8:  # the default grid's 7-cell window
        _gaussian_windows(gx, 8, True, dist_x, value_x, ratio_x, step, reach, weight_a, weight_b)
        _gaussian_windows(gy, 8, False, dist_y, value_y, ratio_y, step, reach, weight_a, weight_b)
    else:
        _gaussian_windows(gx, lanes, True, dist_x, value_x, ratio_x, step, reach, weight_a,
                          weight_b)  # fmt: skip
        _gaussian_windows(gy, lanes, False, dist_y, value_y, ratio_y, step, reach, weight_a,
                          weight_b)  # fmt: skip


@njit(cache=True, nogil=True)
def _accumulate(conf, pair, y0, gy, x0, gx, span, pad, persons, joints, out):
    """Add every blob to ``out`` (C, V, H, W), one joint at a time, into float64 sums of the
    C - 1 channel pairs (module docstring), then copy the joint's box out and clear it.

    A blob whose window overlaps no other blob of its (frame, joint) is added as it is; where
    one pair of blobs overlaps, the second adds max(0, b - a); where more than one pair does
    (three persons or more), all of the frame's blobs take their per-cell maximum on
    ``canvas``. Every product is (confidence x y Gaussian) x (x Gaussian x weight)."""
    channels, height, width = out.shape[0], out.shape[2], out.shape[3]
    frames, lanes = pair.shape[0], gy.shape[1]
    cols = pad + width + lanes + 1  # buffer cells per row: margin, grid, a window's lanes past it
    rows, stride = pad + height + span + 1, 2 * cols
    sums = np.zeros((channels - 1, rows, stride))
    flat = sums.reshape(sums.size)
    canvas = np.zeros((rows if persons > 2 else 1, stride))
    canvas_flat = canvas.reshape(canvas.size)
    shifted = np.empty(2 * lanes)  # an overlapped blob's x window, moved to the other's cells
    live = np.empty(max(persons, 1), np.int64)
    x_flat, y_flat = gx.reshape(gx.size), gy.reshape(gy.size)
    out_flat = out.reshape(out.size)
    for q in range(np.uint64(out.size)):  # ``out`` may hold anything
        out_flat[q] = 0.0
    row_lanes, row_stride = np.uint64(2 * lanes), np.uint64(stride)
    for v in range(joints):
        top, bottom, left, right = rows, 0, cols, 0  # the buffer cells this joint touched
        p = pair[0]
        for t in range(frames):
            if pair[t] != p:  # channel p + 1's sum goes on in the first lane of pair p + 1
                for y in range(top, bottom):
                    src = np.uint64((p * rows + y) * stride + 1)
                    dst = np.uint64(((p + 1) * rows + y) * stride)
                    for x in range(np.uint64(2 * left), np.uint64(2 * right), np.uint64(2)):
                        flat[dst + x] = flat[src + x]
                p = pair[t]
            n = 0
            union_top, union_bottom, union_left, union_right = rows, 0, cols, 0
            for m in range(persons):
                k = (v * frames + t) * persons + m
                if conf[k] > 0:
                    live[n] = k
                    n += 1
                    union_top = min(union_top, y0[k] + pad)
                    union_bottom = max(union_bottom, y0[k] + pad + span)
                    union_left = min(union_left, x0[k] + pad)
                    union_right = max(union_right, x0[k] + pad + span)
            if n == 0:
                continue
            top, bottom = min(top, union_top), max(bottom, union_bottom)
            left, right = min(left, union_left), max(right, union_right)
            overlaps = 0
            for a in range(n):
                for b in range(a + 1, n):
                    ka, kb = live[a], live[b]
                    overlaps += abs(y0[ka] - y0[kb]) < span and abs(x0[ka] - x0[kb]) < span
            if overlaps <= 1:
                for a in range(n):
                    k = live[a]
                    other = -1  # the earlier blob this one overlaps, if any
                    for b in range(a):
                        kb = live[b]
                        if abs(y0[k] - y0[kb]) < span and abs(x0[k] - x0[kb]) < span:
                            other = kb
                    x_base, y_base = np.uint64(k) * row_lanes, np.uint64(k * lanes)
                    base = np.uint64((p * rows + y0[k] + pad) * stride + 2 * (x0[k] + pad))
                    if other < 0:
                        for i in range(np.uint64(span)):
                            row = conf[k] * y_flat[y_base + i]
                            cells = base + i * row_stride
                            for q in range(row_lanes):
                                flat[cells + q] += row * x_flat[x_base + q]
                        continue
                    offset = 2 * (x0[k] - x0[other])  # lane q here is the other's lane q + offset
                    for q in range(2 * lanes):
                        j = q + offset
                        shifted[q] = gx[other, j] if 0 <= j < 2 * lanes else 0.0
                    for i in range(span):
                        row = conf[k] * y_flat[y_base + np.uint64(i)]
                        cells = base + np.uint64(i) * row_stride
                        i_other = i + y0[k] - y0[other]
                        if 0 <= i_other < span:
                            row_other = conf[other] * gy[other, i_other]
                            for q in range(row_lanes):
                                mine = row * x_flat[x_base + q]
                                flat[cells + q] += max(mine - row_other * shifted[q], 0.0)
                        else:
                            for q in range(row_lanes):
                                flat[cells + q] += row * x_flat[x_base + q]
                continue
            for a in range(n):
                k = live[a]
                x_base = np.uint64(k) * row_lanes
                for i in range(span):
                    row = conf[k] * gy[k, i]
                    cells = np.uint64((y0[k] + pad + i) * stride + 2 * (x0[k] + pad))
                    for q in range(row_lanes):
                        value = row * x_flat[x_base + q]
                        if value > canvas_flat[cells + q]:
                            canvas_flat[cells + q] = value
            for y in range(union_top, union_bottom):  # add the union of the windows, clear it
                cells, kept = np.uint64((p * rows + y) * stride), np.uint64(y * stride)
                for q in range(np.uint64(2 * union_left), np.uint64(2 * union_right)):
                    flat[cells + q] += canvas_flat[kept + q]
                    canvas_flat[kept + q] = 0.0
        for pp in range(channels - 1):  # copy the joint's box out of the grid part, clear it
            for y in range(top, bottom):
                cells = np.uint64((pp * rows + y) * stride)
                if pad <= y < pad + height:  # cell x of the buffer is cell x - pad of ``out``
                    first = np.uint64(((pp * joints + v) * height + y - pad) * width)
                    last = np.uint64((((channels - 1) * joints + v) * height + y - pad) * width)
                    for x in range(np.uint64(max(left, pad)), np.uint64(min(right, pad + width))):
                        out_flat[first + x - np.uint64(pad)] = flat[cells + np.uint64(2) * x]
                        if pp == channels - 2:  # the last channel is the last pair's 2nd lane
                            out_flat[last + x - np.uint64(pad)] = flat[cells + np.uint64(2) * x
                                                                       + np.uint64(1)]  # fmt: skip
                for q in range(np.uint64(2 * left), np.uint64(2 * right)):
                    flat[cells + q] = 0.0


@njit(cache=True, nogil=True)
def render(keypoints, weights, scale, offset_x, offset_y, sigma, truncate, min_conf, out):
    """Render the video ``keypoints`` (T, M, V, 3) float32, in source pixels, into ``out``
    (C, V, H, W) float32, with temporal weights (C, T) float64 (``frame_pairs``' rule) and
    the frame fitted to the grid by ``scale`` and ``offset_*`` (as in ``jmrn.heatmaps.to_grid``).

    ``out`` may hold anything: it is zeroed here, without the GIL (numpy's ``zeros`` clears
    a reused 1 MB buffer while holding it, which serialised the stage's render threads)."""
    frames, persons, joints = keypoints.shape[0], keypoints.shape[1], keypoints.shape[2]
    height, width = out.shape[2], out.shape[3]
    if weights.shape[0] < 2 or frames == 0:
        raise ValueError("render needs at least 2 temporal channels and 1 frame")
    reach = truncate * sigma
    span = int(math.floor(2 * reach)) + 1  # the most cells a window covers
    lanes = 8 * ((span + 7) // 8)
    pad = int(math.floor(2 * reach + 0.5)) + 1  # > how far left of the grid a window starts
    pair = frame_pairs(weights)
    lane_weights = np.empty((frames, 2))
    for t in range(frames):
        lane_weights[t, 0], lane_weights[t, 1] = weights[pair[t], t], weights[pair[t] + 1, t]
    blobs = frames * persons * joints
    conf = np.empty(blobs)
    x0, gx = np.empty(blobs, np.int64), np.empty((blobs, 2 * lanes))
    y0, gy = np.empty(blobs, np.int64), np.empty((blobs, lanes))
    _blob_windows(keypoints, scale, offset_x, offset_y, sigma, reach, width, height, min_conf,
                  lane_weights, conf, x0, gx, y0, gy)  # fmt: skip
    for k in range(blobs):  # the row loops index without bounds checks: make sure
        inside = 0 <= x0[k] + pad <= pad + width and 0 <= y0[k] + pad <= pad + height
        if conf[k] > 0 and not inside:
            raise ValueError("render: a blob's window lies outside its buffer")
    _accumulate(conf, pair, y0, gy, x0, gx, span, pad, persons, joints, out)
