"""Training data from heatmaps.h5: splits, a validation split carved from train, crops and
normalisation (method.md §3.1 steps 1-3; augmentation runs batched on the device later).

Decisions:
* Model selection uses a validation split carved from the training split (``val_fraction``,
  stratified by class, seeded); the test split is only reported (method.md §10.21). Rows that
  share a source are kept on one side: the clips of one video always, and where the preset
  names a grouping (``train.val_group``, a regex over the video id) the clips of one YouTube
  video (HMDB/JHMDB ``..._0``/``..._1``) or the keyframes of one AVA movie.
* Crops: random at training, centre at evaluation (offset round((size - crop) / 2)). A map
  smaller than the crop is zero-padded to it, centred, instead of being resized (the authors'
  resize distorts the aspect ratio, §10.11).
* Normalisation follows the crop, as in the authors' loader (§2.3): ``max`` divides each
  (channel, joint) map by its maximum inside the crop. (heatmaps.h5's ``max_norm`` is the
  full-grid maximum, kept for analysis; training does not use it.)
* Random crop offsets come from a generator seeded by (seed, epoch, video index), so they are
  the same whatever the number of DataLoader workers (§10.10).
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch.utils.data import Dataset

from jmrn.heatmaps import normalise
from jmrn.heatmaps_file import HeatmapsFile


def stratified_split(
    indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Split ``indices`` into (keep, held_out) with about ``fraction`` of each class held out.

    ``labels`` are multi-hot rows of the indexed videos; a video is stratified by its first
    label (multi-label videos) or kept in training if it has none. Every class with at least
    two videos keeps at least one in training and, if fraction > 0, gives at least one.
    ``groups`` (e.g. the video of each clip) keeps the rows of a group on one side: the groups
    are split, by the label of their first row, so no video has clips on both sides.
    """
    if groups is not None:
        unique, first_row = np.unique(groups, return_index=True)
        keep, held = stratified_split(unique, labels[first_row], fraction, seed)
        return indices[np.isin(groups, keep)], indices[np.isin(groups, held)]
    rng = np.random.default_rng(seed)
    first = np.where(labels.any(axis=1), labels.argmax(axis=1), -1)
    held = []
    for k in np.unique(first[first >= 0]):
        members = indices[first == k]
        n = int(round(fraction * len(members)))
        if fraction > 0 and len(members) >= 2:
            n = min(max(n, 1), len(members) - 1)
        held.append(rng.permutation(members)[:n])
    held_out = np.sort(np.concatenate(held)) if held else np.array([], dtype=indices.dtype)
    keep = np.setdiff1d(indices, held_out)
    return keep, held_out


def validation_groups(video_ids: list[str], pattern: str | None) -> np.ndarray | None:
    """The source video (or movie) of every row, for a validation split that keeps it on one
    side: the first capture group of ``pattern`` (``train.val_group``) matched against the id,
    or the whole match if it has no group. Clip ids ("<video>#<k>") are matched by their
    video's id. ``None`` when the dataset defines no grouping. An id the pattern does not match
    is an error: a silently ungrouped row would leak its source video into validation.
    """
    if not pattern:
        return None
    regex = re.compile(pattern)
    keys = []
    for video_id in video_ids:
        match = regex.search(video_id.rsplit("#", 1)[0])
        if match is None:
            raise ValueError(f"train.val_group {pattern!r} does not match video id {video_id!r}; "
                             "fix the pattern or set train.val_group to null")  # fmt: skip
        keys.append(match.group(1) if regex.groups else match.group(0))
    return np.asarray(keys)


def crop_offsets(size: int, crop: int, random: bool, rng: np.random.Generator) -> int:
    if size <= crop:
        return 0
    return int(rng.integers(0, size - crop + 1)) if random else int(round((size - crop) / 2))


class HeatmapDataset(Dataset):
    """Videos ``indices`` of a heatmaps.h5: (C, V, H', W') float32 tensors and float targets.

    The HDF5 file is opened lazily in each DataLoader worker (h5py handles do not survive a
    fork). Every item reads one chunk (one video) from disk: memory does not grow with the
    dataset.
    """

    def __init__(self, path: str, indices: np.ndarray, crop: tuple[int, int], normalisation: str,
                 train: bool, seed: int = 0) -> None:  # fmt: skip
        self.path, self.indices = str(path), np.asarray(indices)
        self.crop, self.normalisation = tuple(crop), normalisation
        self.train, self.seed = train, seed
        self.epoch = 0
        self._file: HeatmapsFile | None = None
        with HeatmapsFile(self.path) as hf:
            self.targets = hf.labels[self.indices].astype(np.float32)
            self.area_norm = hf.area_norm[self.indices]
            self.grid = tuple(hf.heatmaps.shape[-2:])
        normalise(np.zeros((1, 1, 1, 1)), np.ones(1), np.ones((1, 1)), normalisation)  # validate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._file is None:
            self._file = HeatmapsFile(self.path)
        video = int(self.indices[item])
        rng = np.random.default_rng((self.seed, self.epoch, video))
        (h, w), (ch, cw) = self.grid, self.crop
        y0, x0 = crop_offsets(h, ch, self.train, rng), crop_offsets(w, cw, self.train, rng)
        heat = self._file.heatmaps[video, :, :, y0:y0 + ch, x0:x0 + cw].astype(np.float32)
        # "max" divides by the maximum of the crop, as the authors do (normalisation follows the
        # crop), not by the stored full-grid max_norm: a joint whose peak fell outside the crop
        # would otherwise never reach 1 in the network's input.
        crop_max = heat.max(axis=(-2, -1)) if self.normalisation == "max" else None
        heat = normalise(heat, self.area_norm[item], crop_max, self.normalisation)
        if heat.shape[-2:] != (ch, cw):  # smaller than the crop: pad with zeros, centred
            pad_h, pad_w = ch - heat.shape[-2], cw - heat.shape[-1]
            heat = np.pad(heat, ((0, 0), (0, 0), (pad_h // 2, pad_h - pad_h // 2),
                                 (pad_w // 2, pad_w - pad_w // 2)))  # fmt: skip
        return torch.from_numpy(np.ascontiguousarray(heat)), torch.from_numpy(self.targets[item])
