"""PoTion / JMRN pose-motion representation from keypoints (method.md §1.3, §2).

For every joint j, temporal channel c and grid cell (y, x):

    U_j[c, y, x] = sum_t o_c(t) * H_j^t(y, x),    H_j^t = max over persons of conf * Gaussian

Decisions taken here (method.md §10 asks for each to be deliberate):

* Grid: the frame is scaled to fit inside ``height x width`` keeping its aspect ratio and is
  centred (a 320x240 frame on 64x86 fills the height, 0.33 cells of margin left and right).
  Cell i spans [i, i+1) in grid units, so its centre is at i + 0.5.
* Blob: Gaussian with ``sigma`` grid cells, peak = keypoint confidence, cut to zero where
  |dx| > truncate*sigma or |dy| > truncate*sigma (a square support, so the blob is exactly
  separable). Joints with confidence 0 (or below ``min_conf``) draw nothing.
* Persons: combined with a per-pixel max, like OpenPose's own confidence maps.
* Temporal weights: the official code's discretisation (breakpoint at floor(T/2), §2.2) or
  the continuous PoTion formula (§2.1). Both form a partition of unity over channels.
  Videos need at least ``channels`` frames (T <= 2 leaves a channel with zero total weight,
  which makes "area" normalisation divide by zero): shorter ones raise ``TooShortError``.
* Heatmap values lie in [0, 1] (no 255 scale), so the "area" normaliser of channel c is
  simply sum_t o_c(t), the value a joint sitting still on one cell with confidence 1 reaches.

The fast path uses separability: a blob is the outer product of a column profile g_y and a
row profile g_x, so the sum over frames and persons is one matrix product per joint and
channel, ``U_j[c] = G_y diag(o_c * conf) G_x^T``. Where two persons' blobs of the same joint
overlap in a frame, max differs from sum; those (frame, joint) pairs are rendered in full and
the difference (max - sum) is added, so the result is exact, not an approximation.
``aggregate_reference`` renders every frame and sums: slow, obviously correct, for tests and
the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class TooShortError(ValueError):
    """A video with fewer frames than temporal channels."""


@dataclass(frozen=True)
class Grid:
    height: int = 64
    width: int = 86
    sigma: float = 1.0
    truncate: float = 3.0
    min_conf: float = 0.0


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

    Confidences below ``grid.min_conf`` become 0, and so do coordinates of absent joints.
    """
    img_h, img_w = image_size
    scale = min(grid.height / img_h, grid.width / img_w)
    offset = np.array([(grid.width - img_w * scale) / 2, (grid.height - img_h * scale) / 2])
    out = np.empty(keypoints.shape, dtype=np.float32)
    conf = keypoints[..., 2]
    present = (conf > 0) & (conf >= grid.min_conf)
    out[..., :2] = np.where(present[..., None], keypoints[..., :2] * scale + offset, 0.0)
    out[..., 2] = np.where(present, conf, 0.0)
    return out


def axis_profile(coord: np.ndarray, size: int, grid: Grid) -> np.ndarray:
    """Truncated 1-D Gaussian of every coordinate sampled at the cell centres: (..., size)."""
    d = (np.arange(size, dtype=np.float32) + 0.5) - coord[..., None]
    profile = np.exp(d * d * np.float32(-0.5 / grid.sigma**2))
    profile[np.abs(d) > grid.truncate * grid.sigma] = 0.0
    return profile


def aggregate(keypoints: np.ndarray, image_size: tuple[int, int], grid: Grid,
              channels: int = 3, discretisation: str = "code") -> np.ndarray:  # fmt: skip
    """Fast path: (T, M, V, 3) keypoints in source pixels -> (C, V, H, W) float32 U."""
    frames, persons, joints, _ = keypoints.shape
    weights = temporal_weights(frames, channels, discretisation).astype(np.float32)
    kp = to_grid(keypoints, image_size, grid)
    conf = kp[..., 2]
    gy = axis_profile(kp[..., 1], grid.height, grid) * conf[..., None]  # (T, M, V, H)
    gx = axis_profile(kp[..., 0], grid.width, grid)  # (T, M, V, W)
    # Fold frames and persons into one axis k and contract it with a batched matmul.
    gy_k = gy.transpose(2, 3, 0, 1).reshape(joints, grid.height, frames * persons)
    gx_k = gx.transpose(2, 0, 1, 3).reshape(joints, frames * persons, grid.width)
    w_k = np.repeat(weights, persons, axis=1)  # (C, T*M), frame-major like gy_k / gx_k
    heat = np.matmul(gy_k[None] * w_k[:, None, None, :], gx_k[None])  # (C, V, H, W)
    if persons > 1:
        _add_overlap_correction(heat, gy, gx, weights, grid)
    return heat


def _add_overlap_correction(heat, gy, gx, weights, grid: Grid, chunk: int = 256) -> None:
    """Turn the sum over persons into a max where two persons' blobs of a joint overlap."""
    frames, persons, joints, _ = gy.shape
    occupied_y, occupied_x = gy > 0, gx > 0  # (T, M, V, H), (T, M, V, W)
    # Two blobs overlap iff their supports share a row and a column.
    rows = np.einsum("tmvh,tnvh->tvmn", occupied_y, occupied_y, dtype=np.int32) > 0
    cols = np.einsum("tmvw,tnvw->tvmn", occupied_x, occupied_x, dtype=np.int32) > 0
    pair = rows & cols & ~np.eye(persons, dtype=bool)
    t_idx, v_idx = np.nonzero(pair.any(axis=(2, 3)))
    hw = grid.height * grid.width
    flat = heat.reshape(heat.shape[0], joints, hw)
    for start in range(0, len(t_idx), chunk):
        t, v = t_idx[start:start + chunk], v_idx[start:start + chunk]
        blobs = gy[t, :, v, :, None] * gx[t, :, v, None, :]  # (N, M, H, W)
        diff = (blobs.max(axis=1) - blobs.sum(axis=1)).reshape(len(t), hw)
        onehot = (v[None, :] == np.arange(joints)[:, None]).astype(np.float32)  # (V, N)
        per_item = weights[:, t].T[:, :, None] * diff[:, None, :]  # (N, C, HW)
        flat += np.matmul(onehot, per_item.reshape(len(t), -1)).reshape(
            joints, -1, hw).transpose(1, 0, 2)  # fmt: skip


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


def normalise(heat: np.ndarray, area_norm: np.ndarray, max_norm: np.ndarray,
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
