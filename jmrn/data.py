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
* Training never waits for data (issue 14): a batch is read with one call (``__getitems__``)
  and ``jmrn.train`` iterates its loader through :class:`Prefetcher`, a background thread
  that prepares the next batches while the model runs on this one. Neither changes a value
  or the order of the batches.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterable, Iterator

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

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


def class_balanced_batches(labels: np.ndarray, batch_size: int, per_class: int, seed: int,
                           epoch: int) -> list[list[int]]:  # fmt: skip
    """One epoch of class-aware batches over the rows of ``labels`` (N, K) one-hot: each batch
    holds ``per_class`` videos of each of ``batch_size // per_class`` different classes.

    Why: with 16 videos of 14 classes in a batch, most anchors of the joint-contrastive loss
    have no positive but their own other view, and the "same class" term of ``proposed``
    hardly acts (issue 23 §4). The epoch has ceil(N / batch_size) batches, as a shuffled
    epoch has. A batch's classes are drawn without replacement with probability proportional
    to their number of videos (so the classification loss keeps the data's class frequencies
    on average); each class hands out its videos in a shuffled order and reshuffles once it
    has handed out all of them, so every video is seen about equally often. A class with
    fewer videos than ``per_class`` repeats some in a batch (their two augmented views
    differ). Seeded by (seed, epoch): a resumed run draws the same batches.
    """
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"labels must be a non-empty (N, K) array, got {labels.shape}")
    if per_class < 2 or batch_size % per_class:
        raise ValueError(f"train.videos_per_class = {per_class} must be >= 2 and divide "
                         f"train.batch_size = {batch_size}")  # fmt: skip
    classes = labels.argmax(axis=1)
    present, sizes = np.unique(classes, return_counts=True)
    n_classes = batch_size // per_class
    if len(present) < n_classes:
        raise ValueError(f"train.videos_per_class = {per_class} with train.batch_size = "
                         f"{batch_size} needs {n_classes} classes in a batch, but the "
                         f"training rows have {len(present)}: raise videos_per_class")  # fmt: skip
    rng = np.random.default_rng((seed, epoch, 0xC1A55))
    pools = {int(c): rng.permutation(np.flatnonzero(classes == c)) for c in present}
    cursor = dict.fromkeys(pools, 0)
    batches = []
    for _ in range(-(-len(labels) // batch_size)):
        batch: list[int] = []
        for c in rng.choice(present, n_classes, replace=False, p=sizes / sizes.sum()):
            c = int(c)
            for _ in range(per_class):
                if cursor[c] == len(pools[c]):
                    pools[c], cursor[c] = rng.permutation(pools[c]), 0
                batch.append(int(pools[c][cursor[c]]))
                cursor[c] += 1
        batches.append(batch)
    return batches


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


def clips_of_epoch(clip_video: np.ndarray, per_video: int, seed: int,
                   epoch: int) -> np.ndarray:  # fmt: skip
    """Sorted positions into the training rows ``clip_video`` (the video of each clip): at
    most ``per_video`` clips of each video, drawn afresh (without replacement) each epoch.

    Why (issue 24): trained on every clip, the clip classifier sees a video's 7 or more
    clips per epoch and costs twice JMRN per video, while neighbouring clips overlap and
    teach nearly the same thing. Seeded by (seed, epoch): a resumed run draws the same clips.
    """
    if per_video < 1:
        raise ValueError(f"clips.per_video = {per_video}: at least 1 (0 = every clip)")
    clip_video = np.asarray(clip_video)
    rng = np.random.default_rng((seed, epoch, 0xC11B5))
    order = np.lexsort((rng.random(len(clip_video)), clip_video))  # by video, random within
    videos = clip_video[order]
    first = np.r_[True, videos[1:] != videos[:-1]]
    starts = np.flatnonzero(first)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return np.sort(order[rank < per_video])


def shuffled_batches(rows: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """``rows`` in a random order (seeded by (seed, epoch)), cut into batches of
    ``batch_size``; the last may be smaller, as a shuffled DataLoader's is."""
    order = np.random.default_rng((seed, epoch, 0x5B)).permutation(np.asarray(rows))
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]


class HeatmapDataset(Dataset):
    """Videos ``indices`` of a heatmaps.h5: (C, V, H', W') float32 tensors and float targets.

    The HDF5 file is opened lazily in each DataLoader worker (h5py handles do not survive a
    fork). Every item reads one chunk (one video) from disk: memory does not grow with the
    dataset. A DataLoader fetches a whole batch with one ``__getitems__`` call, which converts,
    normalises and pads the batch at once (issue 14: item by item, with numpy's float16
    conversion and the collate's stacking, these cost as much as the reads);
    ``__getitem__`` is the same code for a batch of one, so both give the same values.
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
            self.shape = tuple(hf.heatmaps.shape[1:3])  # (C, V)
            self.grid = tuple(hf.heatmaps.shape[-2:])
            self.dtype = hf.heatmaps.dtype
        normalise(np.zeros((1, 1, 1, 1)), np.ones(1), np.ones((1, 1)), normalisation)  # validate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([item])[0]

    def __getitems__(self, items: list[int]) -> HeatmapBatch:
        """Items ``items`` (the DataLoader passes a batch's indices), read, cropped, converted,
        normalised and padded as one batch."""
        if self._file is None:
            self._file = HeatmapsFile(self.path)
        items = np.asarray(items, dtype=np.int64)
        (h, w), (ch, cw) = self.grid, self.crop
        rh, rw = min(h, ch), min(w, cw)  # the window read: the crop, or the whole smaller map
        raw = np.empty((len(items), *self.shape, rh, rw), dtype=self.dtype)
        # h5py's low-level read: the same bytes as heatmaps[video, :, :, y0:y0 + rh, ...]
        # without the high-level selection machinery, a third of the time of a read
        dataset = self._file.heatmaps.id
        file_space, window = dataset.get_space(), (1, *self.shape, rh, rw)
        memory_space = h5py.h5s.create_simple(window)
        for k, item in enumerate(items):
            video = int(self.indices[item])
            rng = np.random.default_rng((self.seed, self.epoch, video))
            y0, x0 = crop_offsets(h, ch, self.train, rng), crop_offsets(w, cw, self.train, rng)
            file_space.select_hyperslab((video, 0, 0, y0, x0), window)
            try:
                dataset.read(memory_space, file_space, raw[k:k + 1])
            except OSError as err:  # h5py's message names neither the file nor the video
                raise OSError(f"{self.path}: cannot read the heatmaps of video "
                              f"{self._file.video_ids[video]!r} (row {video}): {err}; the "
                              "file is damaged: re-run the heatmaps stage") from err  # fmt: skip
        # float16 -> float32 is exact either way, and torch's conversion is vectorised (about
        # 20x numpy's astype, which cost as much as the read)
        heat = torch.from_numpy(raw).float().numpy()
        # "max" divides by the maximum of the crop, as the authors do (normalisation follows the
        # crop), not by the stored full-grid max_norm: a joint whose peak fell outside the crop
        # would otherwise never reach 1 in the network's input.
        crop_max = heat.max(axis=(-2, -1)) if self.normalisation == "max" else None
        heat = normalise(heat, self.area_norm[items], crop_max, self.normalisation)
        if (rh, rw) != (ch, cw):  # smaller than the crop: pad with zeros, centred
            top, left = (ch - rh) // 2, (cw - rw) // 2
            padded = np.zeros((len(items), *self.shape, ch, cw), dtype=np.float32)
            padded[..., top:top + rh, left:left + rw] = heat
            heat = padded
        return HeatmapBatch(torch.from_numpy(np.ascontiguousarray(heat)),
                            torch.from_numpy(self.targets[items]))  # fmt: skip


class HeatmapBatch(list):
    """A batch of ``HeatmapDataset`` items: the list of (heatmaps, target) pairs that any
    DataLoader's default collate stacks, and the batch already stacked (``stacked``), which
    :func:`collate` returns without stacking it again (a copy of the whole batch)."""

    def __init__(self, heatmaps: torch.Tensor, targets: torch.Tensor) -> None:
        super().__init__(zip(heatmaps, targets, strict=True))
        self.stacked = (heatmaps, targets)


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """A DataLoader's ``collate_fn`` for a ``HeatmapDataset``: its stacked batch as it is."""
    if isinstance(batch, HeatmapBatch):
        return batch.stacked
    return default_collate(batch)


class Prefetcher:
    """Iterate ``batches`` (e.g. a DataLoader) in a background thread, up to ``depth`` batches
    ahead of the consumer.

    Without loader workers, reading, decompressing, cropping and normalising a batch would
    otherwise run between two training steps, with the model idle. In a thread it overlaps
    the model's step: h5py holds the GIL while it decompresses (about 0.3 ms a video), but
    the conversion and normalisation and the model's torch kernels release it. An error in
    the thread (a damaged file) is raised in the consumer at the batch it would have
    produced, never swallowed or left hanging; a consumer that stops early (an error in its
    loop, a ``break``) stops the thread. ``len`` is the source's. With DataLoader workers it
    only hands their batches on. What it gains on 2 cores, where the model's own threads
    keep both cores busy: docs/training.md, "Input pipeline" (``bench/train_input.py``).

    The thread's own torch ops (the float16 conversion) run on one core: on OpenMP builds a
    thread that runs a parallel op gets a team of its own, whose waiting threads spin on the
    cores the model's team needs.
    """

    def __init__(self, batches: Iterable, depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self.batches, self.depth = batches, depth

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator:
        slots: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def put(entry: tuple) -> bool:  # False once the consumer has gone
            while not stop.is_set():
                try:
                    slots.put(entry, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            restore = _single_torch_thread()
            try:
                for batch in self.batches:
                    if not put(("batch", batch)):
                        return
                put(("end", None))
            except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
                put(("error", err))
            finally:
                if restore is not None:
                    torch.set_num_threads(restore)

        thread = threading.Thread(target=produce, name="jmrn-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = slots.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()
            thread.join()


def _single_torch_thread() -> int | None:
    """Make the calling thread's torch ops single-threaded, where that stays in the thread:
    with OpenMP (PyTorch's CPU builds) ``torch.set_num_threads`` sets the calling thread's
    team size. Returns the value to restore when the thread ends (torch also keeps it as the
    default of threads it starts later), or None where nothing was changed (another parallel
    backend, whose setting is process-wide)."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before
