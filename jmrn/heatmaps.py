"""PoTion / JMRN pose-motion representation from keypoints (method.md §1.3, §2).

For every joint j, temporal channel c and grid cell (y, x):

    U_j[c, y, x] = sum_t o_c(t) * H_j^t(y, x),    H_j^t = max over persons of conf * Gaussian

Decisions taken here (method.md §10 asks for each to be deliberate):

* Grid: the frame is scaled to fit inside ``height x width`` keeping its aspect ratio and is
  centred (a 320x240 frame on 64x86 fills the height, 0.33 cells of margin left and right).
  Cell i spans [i, i+1) in grid units, so its centre is at i + 0.5.
* Blob: Gaussian with ``sigma`` grid cells, peak = keypoint confidence, cut to zero where
  |dx| > truncate*sigma or |dy| > truncate*sigma (a square support, so the blob is exactly
  separable). Joints with confidence 0 (or below ``min_conf``) draw nothing. The reach
  truncate*sigma is at least half a cell, so a joint anywhere inside the grid draws at least
  the cell it lies in (``Grid`` refuses a smaller one).
* Absurd coordinates: a joint that is not finite, or lies farther than the reach outside the
  grid (so it cannot touch any cell), is absent, decided in float before any integer cell
  index is computed: one 1e30 or inf coordinate cannot overflow the window arithmetic and
  blank or corrupt the rest of its video.
* Persons: combined with a per-pixel max, like OpenPose's own confidence maps.
* Temporal weights: the official code's discretisation (breakpoint at floor(T/2), §2.2) or
  the continuous PoTion formula (§2.1). Both form a partition of unity over channels.
  Videos need at least ``channels`` frames (T <= 2 leaves a channel with zero total weight,
  which makes "area" normalisation divide by zero): shorter ones raise ``TooShortError``.
* Heatmap values lie in [0, 1] (no 255 scale), so the "area" normaliser of channel c is
  simply sum_t o_c(t), the value a joint sitting still on one cell with confidence 1 reaches.

Three renderers give the same values (to float32 rounding):

* ``aggregate`` is the one to call. It runs the compiled loop of ``jmrn.heatmaps_kernel``
  (numba): each blob's at most 7 x 7 window added where it lies, both channels of a frame in
  one pass; where two persons' blobs overlap the second adds max(0, b - a), so the pair adds
  the max. 2-8x the cost of writing the output (bench/heatmaps.py). Where numba cannot be
  imported it runs ``aggregate_numpy``.
* ``aggregate_numpy``, the fallback, uses separability: a blob is the outer product of a
  column profile g_y and a row profile g_x, so the sum over frames and persons is one matrix
  product per joint and channel, ``U_j[c] = G_y diag(o_c * conf) G_x^T``. Where two persons'
  blobs of the same joint overlap in a frame, max differs from sum; those (frame, joint)
  pairs are rendered in full and the difference (max - sum) is added: exact, 10-45x slower.
* ``aggregate_reference`` renders every frame and sums: slow, obviously correct, for tests and
  the benchmark.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache, lru_cache
from types import ModuleType

import numpy as np


class TooShortError(ValueError):
    """A video with fewer frames than temporal channels."""


MIN_REACH = 0.5
"""Smallest blob reach truncate*sigma, in cells: a joint is at most half a cell from the centre
of the cell it lies in, so with this reach every joint inside the grid draws that cell."""


@dataclass(frozen=True)
class Grid:
    """The heatmap grid and the blob drawn for each joint (module docstring); checked when
    made, so the library used directly is as safe as the pipeline, which checks params.yaml."""

    height: int = 64
    width: int = 86
    sigma: float = 1.0
    truncate: float = 3.0
    min_conf: float = 0.0

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Grid.{name} must be an integer >= 1, got {value!r}")
        for name in ("sigma", "truncate", "min_conf"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not np.isfinite(value):  # fmt: skip
                raise ValueError(f"Grid.{name} must be a finite number, got {value!r}")
        if self.sigma <= 0 or self.truncate <= 0:
            raise ValueError(f"Grid.sigma ({self.sigma}) and Grid.truncate ({self.truncate}) "
                             "must be > 0")  # fmt: skip
        if self.truncate * self.sigma < MIN_REACH:
            raise ValueError(f"Grid.truncate * Grid.sigma = {self.truncate * self.sigma:g} is "
                             f"below {MIN_REACH}: a joint inside the grid could draw nothing, "
                             "not even the cell it lies in")  # fmt: skip
        if not 0 <= self.min_conf < 1:
            raise ValueError(f"Grid.min_conf must be in [0, 1), got {self.min_conf!r} (1 or "
                             "more would drop every joint)")  # fmt: skip


def temporal_weights(num_frames: int, channels: int = 3, discretisation: str = "code"):
    """(C, T) float64 weights o_c(t); columns sum to 1 (partition of unity).

    ``code``: the official implementation. Window k spans frames [b_k, b_{k+1}] with
    b = floor(linspace(0, T, C)) (the last window ends at T - 1); inside it channel k falls
    1 -> 0 and channel k + 1 rises 0 -> 1; a boundary frame belongs to the later window.
    ``continuous``: o_c(tau) = max(0, 1 - |tau (C - 1) - c|) with tau = t / (T - 1).
    """
    if channels < 2:
        raise ValueError(f"need at least 2 temporal channels, got {channels}")
    if num_frames < channels:
        raise TooShortError(
            f"{num_frames} frames is too short for {channels} temporal channels "
            f"(need at least {channels})"
        )
    t = np.arange(num_frames, dtype=np.float64)
    weights = np.zeros((channels, num_frames))
    if discretisation == "continuous":
        tau = t / (num_frames - 1)
        centres = np.arange(channels)[:, None]
        return np.maximum(0.0, 1.0 - np.abs(tau[None] * (channels - 1) - centres))
    if discretisation != "code":
        raise ValueError(f"unknown discretisation {discretisation!r} (code | continuous)")
    starts = np.floor(np.linspace(0, num_frames, channels)).astype(int)[:-1]
    ends = np.append(starts[1:], num_frames - 1)
    window = np.searchsorted(starts, t, side="right") - 1  # later window wins at boundaries
    frac = (t - starts[window]) / (ends[window] - starts[window])
    cols = np.arange(num_frames)
    weights[window, cols] = 1.0 - frac
    weights[window + 1, cols] = frac
    return weights


def to_grid(keypoints: np.ndarray, image_size: tuple[int, int], grid: Grid) -> np.ndarray:
    """Map (..., 3) keypoints from source pixels to grid units (aspect-preserving fit, centred).

    Confidences below ``grid.min_conf`` become 0, and so do coordinates of absent joints. A
    joint whose grid position is not finite or lies farther than the blob's reach outside the
    grid is absent too: it could draw nothing, and its huge cell index would overflow the
    integer window bounds of ``axis_profile`` (one 1e30 would corrupt the whole video).
    """
    img_h, img_w = image_size
    scale = min(grid.height / img_h, grid.width / img_w)
    offset = np.array([(grid.width - img_w * scale) / 2, (grid.height - img_h * scale) / 2])
    out = np.empty(keypoints.shape, dtype=np.float32)
    conf = keypoints[..., 2]
    with np.errstate(over="ignore", invalid="ignore"):  # inf, nan: dropped just below
        xy = keypoints[..., :2] * scale + offset
    reach = grid.truncate * grid.sigma
    limit = np.array([grid.width, grid.height]) + reach
    reachable = ((xy >= -reach) & (xy <= limit)).all(axis=-1)  # False for nan and inf
    present = (conf > 0) & (conf >= grid.min_conf) & np.isfinite(conf) & reachable
    out[..., :2] = np.where(present[..., None], xy, 0.0)
    out[..., 2] = np.where(present, conf, 0.0)
    return out


def axis_profile(coord: np.ndarray, size: int, grid: Grid):
    """Truncated 1-D Gaussian of every coordinate sampled at the cell centres.

    Returns the dense profiles (..., size) and the first and last cell of each support
    (first > last where the blob misses the grid). Only the at most floor(2 truncate sigma) + 1
    cells of a support are evaluated, then scattered into the dense array.
    """
    reach = grid.truncate * grid.sigma
    span = int(np.floor(2 * reach)) + 1
    first = np.ceil(coord - reach - 0.5).astype(np.int64)
    cells = first[..., None] + np.arange(span)  # (..., span)
    d = (cells + 0.5 - coord[..., None]).astype(np.float32)
    inside = (np.abs(d) <= reach) & (cells >= 0) & (cells < size)
    values = np.where(inside, np.exp(d * d * np.float32(-0.5 / grid.sigma**2)), 0.0)
    dense = np.zeros(coord.shape + (size + 1,), dtype=np.float32)  # last column: a bin
    np.put_along_axis(dense, np.where(inside, cells, size), values, axis=-1)
    lo = first + inside.argmax(axis=-1)
    hi = first + span - 1 - inside[..., ::-1].argmax(axis=-1)
    hi = np.where(inside.any(axis=-1), hi, lo - 1)
    return dense[..., :size], lo, hi


@cache
def compiled_kernel() -> ModuleType | None:
    """``jmrn.heatmaps_kernel``, or None where numba cannot be imported (then ``aggregate``
    runs the numpy path). Imported on first use: numba costs ~0.5 s to import, which
    processes that never render (training) should not pay."""
    try:
        return importlib.import_module("jmrn.heatmaps_kernel")
    except ImportError:
        return None


def renderer() -> str:
    """Which path ``aggregate`` takes here: "numba <version>" or "numpy" (the fallback)."""
    kernel = compiled_kernel()
    return "numpy" if kernel is None else f"numba {kernel.numba_version}"


@lru_cache(maxsize=4096)
def _cached_weights(num_frames: int, channels: int, discretisation: str) -> np.ndarray:
    weights = temporal_weights(num_frames, channels, discretisation)
    weights.flags.writeable = False  # shared between calls
    return weights


def aggregate(keypoints: np.ndarray, image_size: tuple[int, int], grid: Grid,
              channels: int = 3, discretisation: str = "code") -> np.ndarray:  # fmt: skip
    """(T, M, V, 3) keypoints in source pixels -> (C, V, H, W) float32 U (module docstring)."""
    kernel = compiled_kernel()
    if kernel is None:
        return aggregate_numpy(keypoints, image_size, grid, channels, discretisation)
    frames, _, joints, _ = keypoints.shape
    weights = _cached_weights(frames, channels, discretisation)
    img_h, img_w = image_size
    scale = min(grid.height / img_h, grid.width / img_w)
    heat = np.empty((channels, joints, grid.height, grid.width), dtype=np.float32)
    kernel.render(np.ascontiguousarray(keypoints, dtype=np.float32), weights, scale,
                  (grid.width - img_w * scale) / 2, (grid.height - img_h * scale) / 2,
                  float(grid.sigma), float(grid.truncate), float(grid.min_conf), heat)  # fmt: skip
    return heat


def aggregate_numpy(keypoints: np.ndarray, image_size: tuple[int, int], grid: Grid,
                    channels: int = 3, discretisation: str = "code") -> np.ndarray:  # fmt: skip
    """The numpy fallback of ``aggregate`` (separable matmul, module docstring)."""
    frames, persons, joints, _ = keypoints.shape
    weights = temporal_weights(frames, channels, discretisation).astype(np.float32)
    # Joints first, frames and persons folded into one axis k = t * M + m.
    kp = to_grid(keypoints, image_size, grid).transpose(2, 0, 1, 3).reshape(joints, -1, 3)
    gy, y0, y1 = axis_profile(kp[..., 1], grid.height, grid)  # (V, K, H)
    gx, x0, x1 = axis_profile(kp[..., 0], grid.width, grid)  # (V, K, W)
    present = (kp[..., 2] > 0) & (y0 <= y1) & (x0 <= x1)
    heat = np.zeros((channels, joints, grid.height, grid.width), dtype=np.float32)
    if not present.any():
        return heat
    # Only the rows and columns that some blob of this video touches take part in the product.
    rows = slice(y0[present].min(), y1[present].max() + 1)
    cols = slice(x0[present].min(), x1[present].max() + 1)
    amplitude = np.repeat(weights, persons, axis=1)[:, None, :] * kp[None, :, :, 2]  # (C, V, K)
    lhs = gy[:, :, rows].transpose(0, 2, 1)[None] * amplitude[:, :, None, :]  # (C, V, h, K)
    heat[:, :, rows, cols] = np.matmul(lhs, gx[None, :, :, cols])
    if persons > 1:
        supports = [a.reshape(joints, frames, persons) for a in (y0, y1, x0, x1, present)]
        _add_overlap_correction(heat, kp[..., 2], gy, gx, supports, weights, grid)
    return heat


def _add_overlap_correction(heat, conf, gy, gx, supports, weights, grid: Grid) -> None:
    """Turn the sum over persons into a max where two persons' blobs of a joint overlap.

    Only (joint, frame) pairs where two supports intersect are touched, and only inside the
    bounding box of the persons involved: that is where max - sum can be non-zero.
    """
    y0, y1, x0, x1, present = supports  # (V, T, M) each
    persons = y0.shape[-1]

    def meets(lo, hi):  # (V, T, M, M): do the intervals of persons m and n intersect?
        return (np.maximum(lo[..., :, None], lo[..., None, :])
                <= np.minimum(hi[..., :, None], hi[..., None, :]))  # fmt: skip

    pair = meets(y0, y1) & meets(x0, x1) & present[..., :, None] & present[..., None, :]
    pair &= ~np.eye(persons, dtype=bool)
    involved = pair.any(axis=-1)  # (V, T, M)
    v, t = np.nonzero(involved.any(axis=-1))
    if len(v) == 0:
        return
    inv = involved[v, t]  # (N, M)
    box_y0 = np.where(inv, y0[v, t], grid.height).min(axis=1)
    box_x0 = np.where(inv, x0[v, t], grid.width).min(axis=1)
    box_y1 = np.where(inv, y1[v, t], -1).max(axis=1)
    box_x1 = np.where(inv, x1[v, t], -1).max(axis=1)
    rows = box_y0[:, None] + np.arange((box_y1 - box_y0).max() + 1)  # (N, Ph)
    cols = box_x0[:, None] + np.arange((box_x1 - box_x0).max() + 1)  # (N, Pw)
    row_ok, col_ok = rows <= box_y1[:, None], cols <= box_x1[:, None]
    rows, cols = np.minimum(rows, grid.height - 1), np.minimum(cols, grid.width - 1)
    k = t[:, None] * persons + np.arange(persons)  # (N, M) folded frame-person index
    amp = conf[v[:, None], k][..., None] * row_ok[:, None]  # (N, M, Ph)
    patch_y = gy[v[:, None, None], k[..., None], rows[:, None, :]] * amp
    patch_x = gx[v[:, None, None], k[..., None], cols[:, None, :]] * col_ok[:, None]
    blobs = patch_y[..., :, None] * patch_x[..., None, :]  # (N, M, Ph, Pw)
    diff = blobs.max(axis=1) - blobs.sum(axis=1)  # zero outside the true box (masked)
    channel = np.arange(heat.shape[0])[:, None, None, None]
    np.add.at(heat, (channel, v[None, :, None, None], rows[None, :, :, None],
                     cols[None, :, None, :]), weights[:, t, None, None] * diff[None])  # fmt: skip


def aggregate_reference(keypoints: np.ndarray, image_size: tuple[int, int], grid: Grid,
                        channels: int = 3, discretisation: str = "code") -> np.ndarray:  # fmt: skip
    """Slow reference: render every frame as a full image (max over persons), then sum."""
    frames, persons, joints, _ = keypoints.shape
    weights = temporal_weights(frames, channels, discretisation)
    kp = to_grid(keypoints, image_size, grid).astype(np.float64)
    ys = np.arange(grid.height)[:, None] + 0.5
    xs = np.arange(grid.width)[None, :] + 0.5
    reach = grid.truncate * grid.sigma
    heat = np.zeros((channels, joints, grid.height, grid.width))
    for t in range(frames):
        x, y, conf = (kp[t, :, :, i][:, :, None, None] for i in range(3))  # (M, V, 1, 1)
        dx, dy = xs - x, ys - y
        blob = conf * np.exp(-(dx**2 + dy**2) / (2 * grid.sigma**2))
        blob = np.where((np.abs(dx) <= reach) & (np.abs(dy) <= reach), blob, 0.0)
        frame = blob.max(axis=0)  # (V, H, W)
        heat += weights[:, t, None, None, None] * frame[None]
    return heat


def hflip(heat: np.ndarray, flip_permutation: np.ndarray) -> np.ndarray:
    """Mirror (..., C, V, H, W) heatmaps left-right and swap left/right joints.

    This is the representation of the mirrored video: there, the person's left wrist is
    where the right wrist was, mirrored. ``flip_permutation`` comes from the layout.
    """
    return heat[..., flip_permutation, :, ::-1]


def normalise(heat: np.ndarray, area_norm: np.ndarray, max_norm: np.ndarray | None,
              method: str) -> np.ndarray:  # fmt: skip
    """Apply a normalisation to (..., C, V, H, W) heatmaps with the stored normalisers.

    ``area`` divides channel c by sum_t o_c(t) (values in [0, 1]; 1 = a joint that sat on
    one cell at full confidence for the whole video); ``max`` divides each (c, joint) map by
    its maximum (PoTion; an all-zero map stays zero); ``none`` leaves the raw sums.
    """
    if method == "area":
        return heat / area_norm[..., :, None, None, None]
    if method == "max":
        return heat / np.where(max_norm > 0, max_norm, 1.0)[..., None, None]
    if method == "none":
        return heat
    raise ValueError(f"unknown normalisation {method!r} (area | max | none)")
