"""heatmaps.h5: the aggregated representation of every video of a dataset (format version 1).

Schema (N videos, C temporal channels, V joints, H x W grid, K classes):

    attrs   format_version=1, kind="jmrn.heatmaps", dataset, layout, layout_spec (as in
            keypoints.h5), joint_names (V),
            class_names (K), multi_label, channels, height, width, sigma, truncate, min_conf,
            discretisation
    video_id    (N,)              str
    num_frames  (N,)              int32    T used for the temporal weights
    label       (N,)              int32    single label (-1 for multi-label datasets)
    labels      (N, K)            bool     multi-hot targets
    heatmaps    (N, C, V, H, W)   float16 or float32, un-normalised U (values up to
                                           sum_t o_c(t)); one chunk per video, lzf-compressed
                                           (h5py's standard filter; encoded by jmrn.lzf)
    area_norm   (N, C)            float32  sum_t o_c(t): divide by it for "area" normalisation
    max_norm    (N, C, V)         float32  max over the grid of each map: for "max" (PoTion)
    splits/<name> (n,)            int64    sorted video indices, as in keypoints.h5

Normalisation is a training-time choice (``jmrn.heatmaps.normalise``), so trying ``area``
against ``max`` never rebuilds this file.

Clip files (``data/<dataset>/clips/heatmaps.h5``, for pose-guided clip selection) have the same
schema with one row per clip instead of per video, plus:

    attrs   unit="clip" (whole-video files: unit="video"), clip_len, clip_stride
    video_id    (N,)   str      clip id "<video id>#<k>", k = the clip's position in its video
    clip_video  (N,)   int64    the clip's video: its row in keypoints.h5
    clip_start  (N,)   int32    first frame of the clip; num_frames is its length
    labels, label               the video's; splits/<name> hold the clips of that split's videos

A video of T frames has max(1, (T - clip_len) // clip_stride + 1) clips starting at frames
0, clip_stride, 2 * clip_stride, ...; a video shorter than clip_len is one clip of T frames.

Person-box files (AVA, ``heatmap.box_context``) render each row inside the box of person
slot 0 (enlarged by ``box_margin`` on each side) and store 2C channels: C temporal channels
of that person, then C of every other person (the context), with attrs context=True,
box_margin, temporal_channels=C; channels is 2C and area_norm repeats the C normalisers.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path

import h5py
import numpy as np

from jmrn.h5file import ValidatedH5
from jmrn.heatmaps import Grid, aggregate, compiled_kernel, renderer, temporal_weights
from jmrn.io import atomic_path
from jmrn.keypoints_file import KeypointsFile
from jmrn.layouts import layout_from_attrs
from jmrn.parallel import ordered_map
from jmrn.progress import announce_total

FORMAT_VERSION = 1
KIND = "jmrn.heatmaps"
_REQUIRED = ("video_id", "num_frames", "label", "labels", "heatmaps", "area_norm", "max_norm")


def clip_windows(num_frames: np.ndarray, clip_len: int, stride: int) -> np.ndarray:
    """(N, 3) rows (video, first frame, end frame) of every clip of videos of ``num_frames``."""
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len ({clip_len}) and stride ({stride}) must be positive")
    num_frames = np.asarray(num_frames, np.int64)
    counts = np.maximum(1, (num_frames - clip_len) // stride + 1)
    video = np.repeat(np.arange(len(num_frames)), counts)
    position = np.arange(len(video)) - np.repeat(np.cumsum(counts) - counts, counts)
    start = position * stride
    end = np.minimum(start + clip_len, num_frames[video])
    return np.stack([video, start, end], axis=1)


def render_box_with_context(keypoints: np.ndarray, box: np.ndarray, grid: Grid, channels: int,
                            discretisation: str, margin: float) -> np.ndarray:  # fmt: skip
    """(2C, V, H, W): the actor (person slot 0) and, as C more channels, everybody else, both
    rendered in the person's box enlarged by ``margin`` of its size on each side, fitted to the
    grid (AVA: one sample per person box, the others' pose as context)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    x1, y1, x2, y2 = x1 - dx, y1 - dy, x2 + dx, y2 + dy
    shifted = keypoints.copy()
    present = shifted[..., 2] > 0
    shifted[..., 0] = np.where(present, shifted[..., 0] - x1, 0)
    shifted[..., 1] = np.where(present, shifted[..., 1] - y1, 0)
    size = (max(y2 - y1, 1.0), max(x2 - x1, 1.0))
    actor = aggregate(shifted[:, :1], size, grid, channels, discretisation)
    if shifted.shape[1] == 1:
        return np.concatenate([actor, np.zeros_like(actor)])
    return np.concatenate([actor, aggregate(shifted[:, 1:], size, grid, channels,
                                            discretisation)])  # fmt: skip


@cache
def _lzf_encoder() -> Callable[[np.ndarray], bytes | None] | None:
    """``jmrn.lzf.lzf_encode`` (numba), or None where numba cannot be imported."""
    try:
        return importlib.import_module("jmrn.lzf").lzf_encode
    except ImportError:
        return None


@cache
def _float16_rounder() -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, int]] | None:
    """``jmrn.float16.to_float16`` (numba), or None where numba cannot be imported."""
    try:
        return importlib.import_module("jmrn.float16").to_float16
    except ImportError:
        return None


def _h5py_chunk(stored: np.ndarray, compression: str | None) -> tuple[int, bytes]:
    """One row's stored chunk as h5py's own filter writes it (in an in-memory file): the
    fallback without numba, ~10x slower than ``jmrn.lzf`` on heatmap rows."""
    with h5py.File(io.BytesIO(), "w") as f:
        ds = f.create_dataset("row", data=stored[None], chunks=(1, *stored.shape),
                              compression=compression)  # fmt: skip
        return ds.id.read_direct_chunk((0,) * (stored.ndim + 1))


def stored_chunk(heat: np.ndarray, dtype: str, compression: str | None,
                 ) -> tuple[int, bytes, int, np.ndarray]:  # fmt: skip
    """One row (C, V, H, W) float32 as its HDF5 chunk: (filter mask, bytes, stored non-zeros,
    the (C, V) float32 maximum of each map, for ``max_norm``).

    Made in the workers, so the main process only copies bytes (``write_direct_chunk``).
    float16 rows are rounded by ``jmrn.float16`` (compiled, one pass, without the GIL, so the
    stage's render threads run side by side); without numba, only the non-zero values (~2 %
    of a row) are cast by numpy: its float16 cast takes ~5 ns a value, so casting whole rows
    cost more than rendering them. A row that LZF does not shrink is stored raw with the
    filter skipped (mask 1), as h5py's own filter does.
    """
    rounder = _float16_rounder()
    if dtype == "float16" and rounder is not None:
        stored, peaks, nonzero = rounder(heat)
    else:
        peaks = heat.max(axis=(2, 3))
        if dtype == "float16":
            flat = heat.reshape(-1)
            where = np.flatnonzero(flat != 0)  # 10x faster than flatnonzero(flat) on floats
            values = flat[where].astype(np.float16)
            stored = np.zeros(flat.shape, np.float16)
            stored[where] = values
            stored = stored.reshape(heat.shape)
            nonzero = np.count_nonzero(values)  # a tiny value can round to 0
        else:
            stored, nonzero = heat.astype(dtype, copy=False), np.count_nonzero(heat)
    if compression is None:
        return 0, stored.tobytes(), int(nonzero), peaks
    encode = _lzf_encoder()
    if compression != "lzf" or encode is None:
        return (*_h5py_chunk(stored, compression), int(nonzero), peaks)
    data = encode(stored)
    return (1, stored.tobytes(), int(nonzero), peaks) if data is None else \
        (0, data, int(nonzero), peaks)  # fmt: skip


def _render_chunk(keypoints_path: str, task: tuple[np.ndarray, np.ndarray, list[str]], *,
                  grid: Grid, channels: int, discretisation: str, dtype: str,
                  box_margin: float | None, compression: str | None):  # fmt: skip
    """Worker: render one chunk of rows (video, first, end frame) and compress them.

    ``task`` also holds, per row, its video's first keypoints row, frames, persons, height and
    width (``spans``) and id, taken from the file the main process validated: the worker
    reads the chunk's keypoints as one contiguous block (videos are stored in order) instead
    of opening and validating the whole file again, which costs O(N) per chunk.
    """
    rows, spans, ids = task
    start, persons = spans[:, 0], spans[:, 2]
    lo, hi = int(start.min()), int((start + spans[:, 1] * persons).max())
    with h5py.File(keypoints_path, "r") as f:
        block = f["keypoints"][lo:hi]
        box_block = f["boxes"][lo:hi] if box_margin is not None else None
    chunks = []
    for (_, first, end), (s, t, m, height, width), video_id in zip(rows, spans, ids,
                                                                   strict=True):  # fmt: skip
        keypoints = block[s - lo : s - lo + t * m].reshape(t, m, -1, 3)
        if box_margin is None:
            heat = aggregate(keypoints[first:end], (height, width), grid, channels,
                             discretisation)  # fmt: skip
        else:
            boxes = box_block[s - lo : s - lo + t * m].reshape(t, m, 4)[:, 0]
            box = boxes[np.isfinite(boxes).all(1)]
            if len(box) == 0:
                raise ValueError(f"{keypoints_path}: video {video_id!r} has no box for person "
                                 "slot 0, which box_context crops to")  # fmt: skip
            heat = render_box_with_context(keypoints[first:end], box[0], grid, channels,
                                           discretisation, box_margin)  # fmt: skip
        # encoded and summarised here, not in the main process, which writes every row alone
        chunks.append(stored_chunk(heat, dtype, compression))
    return ([chunk[:2] for chunk in chunks], np.stack([chunk[3] for chunk in chunks]),
            sum(chunk[2] for chunk in chunks))  # fmt: skip


def build_heatmaps(keypoints_path: str | Path, out_path: str | Path, grid: Grid, *,
                   channels: int = 3, discretisation: str = "code", dtype: str = "float16",
                   compression: str | None = "lzf", n_jobs: int = -1, chunk_videos: int = 64,
                   clips: tuple[int, int] | None = None, box_margin: float | None = None,
                   progress=None) -> dict:  # fmt: skip
    """Render every video of a keypoints.h5 into heatmaps.h5, streaming and in parallel.

    Workers each render ``chunk_videos`` rows at a time, a few chunks per worker at once
    (``ordered_map``), so memory depends on the chunk size, not on the dataset size. Each
    chunk opens the keypoints file and reads its rows while holding the GIL (h5py), a few
    milliseconds the other render threads wait for: 64 rows a chunk spread that over four
    times the work that 16 did (docs/benchmarks.md).
    ``clips=(clip_len, stride)`` renders one row per clip instead of per video (see the
    schema). ``box_margin`` (AVA) renders each video inside its person-slot-0 box enlarged by
    that margin, with 2C channels: C of that person, C of everybody else (the context). The
    output appears atomically at ``out_path`` only once complete. Returns a summary.
    """
    keypoints_path = str(keypoints_path)
    with KeypointsFile(keypoints_path) as kf:
        n, joints = len(kf), len(kf.joint_names)
        num_frames = kf.num_frames.copy()
        too_short = np.nonzero(num_frames < channels)[0]
        if len(too_short):
            first = kf.video_ids[too_short[0]]
            raise ValueError(f"{keypoints_path}: {len(too_short)} videos have fewer than "
                             f"{channels} frames (first: {first!r}); ingest drops them with "
                             f"min_frames >= {channels}")  # fmt: skip
        if box_margin is not None and "boxes" not in kf.file:
            raise ValueError(f"{keypoints_path} has no person boxes, which box_context crops "
                             "to (its reader does not record boxes)")  # fmt: skip
        attrs = dict(kf.file.attrs)
        video_ids, splits = kf.video_ids, kf.splits
        label, labels = kf.label, kf.labels
        # per video: first keypoints row, frames, persons, height, width (for the workers)
        spans = np.column_stack([kf.offset, num_frames, kf.num_persons, kf.image_size])
        source_ids = kf.video_ids
    if clips is None:
        rows = np.stack([np.arange(n), np.zeros(n, np.int64), num_frames], axis=1)
        unit = {"unit": "video"}
    else:
        rows = clip_windows(num_frames, *clips)
        unit = {"unit": "clip", "clip_len": clips[0], "clip_stride": clips[1]}
        position = np.arange(len(rows)) - np.searchsorted(rows[:, 0], rows[:, 0])
        video_ids = [f"{video_ids[v]}#{k}" for v, k in zip(rows[:, 0], position, strict=True)]
        member = np.zeros((len(splits), n), bool)
        for row, indices in enumerate(splits.values()):
            member[row, indices] = True
        splits = {name: np.nonzero(member[row, rows[:, 0]])[0]
                  for row, name in enumerate(splits)}  # fmt: skip
        label, labels, num_frames = label[rows[:, 0]], labels[rows[:, 0]], rows[:, 2] - rows[:, 1]
    n = len(rows)
    if box_margin is not None:
        unit["context"], unit["box_margin"], unit["temporal_channels"] = True, box_margin, channels
    stored = 2 * channels if box_margin is not None else channels
    shape = (stored, joints, grid.height, grid.width)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(
            format_version=FORMAT_VERSION, kind=KIND, dataset=attrs["dataset"],
            layout=attrs["layout"], layout_spec=layout_from_attrs(attrs).to_json(),
            joint_names=attrs["joint_names"],
            class_names=attrs["class_names"], multi_label=attrs["multi_label"],
            channels=stored, height=grid.height, width=grid.width, sigma=grid.sigma,
            truncate=grid.truncate, min_conf=grid.min_conf, discretisation=discretisation,
            **unit,
        )  # fmt: skip
        f.create_dataset("video_id", data=np.array(video_ids, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))  # fmt: skip
        f.create_dataset("num_frames", data=num_frames.astype(np.int32))
        f.create_dataset("label", data=label)
        f.create_dataset("labels", data=labels)
        if clips is not None:
            f.create_dataset("clip_video", data=rows[:, 0].astype(np.int64))
            f.create_dataset("clip_start", data=rows[:, 1].astype(np.int32))
        for name, indices in splits.items():
            f.create_dataset(f"splits/{name}", data=np.asarray(indices, np.int64))
        area = np.stack([temporal_weights(int(t), channels, discretisation).sum(axis=1)
                         for t in np.unique(num_frames)])  # fmt: skip
        area = np.tile(area, (1, stored // channels))  # context channels: the same weights
        lookup = np.searchsorted(np.unique(num_frames), num_frames)
        f.create_dataset("area_norm", data=area[lookup].astype(np.float32))
        heat_ds = f.create_dataset("heatmaps", shape=(n, *shape), dtype=dtype,
                                   chunks=(1, *shape), compression=compression)  # fmt: skip
        max_ds = f.create_dataset("max_norm", shape=(n, stored, joints), dtype="float32")
        starts = range(0, n, chunk_videos)
        render = partial(_render_chunk, keypoints_path, grid=grid, channels=channels,
                         discretisation=discretisation, dtype=dtype, box_margin=box_margin,
                         compression=compression)  # fmt: skip
        tasks = ((rows[s:s + chunk_videos], spans[rows[s:s + chunk_videos, 0]],
                  [source_ids[v] for v in rows[s:s + chunk_videos, 0]]) for s in starts)
        # threads: the renderer and the encoder release the GIL (jmrn.parallel)
        results = ordered_map(render, tasks, n_jobs, threads=compiled_kernel() is not None)
        announce_total(progress, n)  # rows: videos, or clips
        nonzero = 0
        origin = (0,) * len(shape)
        for s, (chunks, max_norm, chunk_nonzero) in zip(starts, results, strict=True):
            for i, (filter_mask, data) in enumerate(chunks):
                heat_ds.id.write_direct_chunk((s + i, *origin), data, filter_mask)
            max_ds[s:s + len(chunks)] = max_norm
            nonzero += chunk_nonzero
            if progress is not None:
                progress(len(chunks))
        peak_area = max_ds[:] / f["area_norm"][:][:, :, None]
    return {
        "videos": int(len(video_ids) if clips is None else len(np.unique(rows[:, 0]))),
        **({} if clips is None else {"clips": int(n)}),
        "shape": list(shape),
        "dtype": dtype,
        "renderer": renderer(),  # "numpy": numba is missing, rendering is 10-45x slower
        "mean_frames": float(num_frames.mean()),
        # fraction of grid cells with any heat: grows with sigma and with motion
        "occupancy": nonzero / (n * int(np.prod(shape))),
        # mean over videos, channels, joints of the area-normalised peak: 1 = never moved
        "mean_area_peak": float(peak_area.mean()),
    }


class HeatmapsFile(ValidatedH5):
    """Read-only access to a heatmaps.h5, validated against the schema above."""

    KIND, FORMAT_VERSION, REQUIRED, STAGE = KIND, FORMAT_VERSION, _REQUIRED, "heatmaps"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        attrs = self.file.attrs
        self.heatmaps = self.file["heatmaps"]
        self.area_norm = self.file["area_norm"][:]
        self.max_norm = self.file["max_norm"][:]
        self.unit = str(attrs.get("unit", "video"))
        self.clip_video = self.file["clip_video"][:] if self.unit == "clip" else None
        self.clip_start = self.file["clip_start"][:] if self.unit == "clip" else None
        expected = (len(self.video_ids), int(attrs["channels"]), len(self.joint_names),
                    int(attrs["height"]), int(attrs["width"]))  # fmt: skip
        if self.heatmaps.shape != expected:
            self.close()
            raise ValueError(f"{self.path}: heatmaps have shape {self.heatmaps.shape}, "
                             f"the attributes say {expected}")  # fmt: skip
