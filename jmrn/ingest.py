"""Raw keypoints in any supported format -> keypoints.h5 plus a report of what was kept.

Policy for bad input (documented in docs/datasets.md, "Bad input"):

* a problem with the dataset as a whole (missing folder, unreadable or unsafe annotation
  file, unknown format, a layout that cannot be converted, a video listed twice in a split or
  in two splits that must be disjoint, an invalid ``ingest.*`` setting) raises an error naming
  the file, video or key;
* a problem with one video skips that video: unreadable file, malformed annotation field,
  NaN/inf coordinates, wrong joint count, no frames, too few frames, a label that is not an
  integer or not a class, a confidence above ``records.MAX_CONFIDENCE`` (not a probability),
  more than ``max_outside_fraction`` of its detected joints outside the frame (a wrong
  ``source.image_size``), non-finite values after the layout conversion, duplicate id. Every
  skip is listed in the report with its source and reason, and counted per reason kind (the
  reason without its per-video numbers and details);
* what is tidied rather than skipped is counted in the report: joints outside the frame
  (beyond ``frame_tolerance`` of its size) and joints exactly at ``placeholder_xy`` are set
  missing, confidences in (1, MAX_CONFIDENCE] are clipped to 1;
* if more than ``max_skipped_fraction`` of the videos are skipped, or none is kept, ingest
  fails with the commonest skip reasons, their counts and an example video of each: a
  systematic problem must not pass as a few skips.

The report also describes what is not an error but may be one: classes with no kept video
(overall and per split), per-joint statistics that expose placeholder joints (the fraction of
frames in which a joint sits at exactly its previous pixel, and its commonest exact position),
and the videos with the most joints outside the frame; and per joint (``per_joint``, drawn in
plots/<dataset>/ingest.png) its missing fraction, confidence quantiles and the share of its
detections outside the frame: a joint never detected, or a wrong layout order or frame size,
shows at a glance. Workers do the per-video work
(``_load_checked``); the main process only checks ids, tallies and writes.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from jmrn.cli import show_value
from jmrn.io import atomic_path
from jmrn.layouts import Layout, convert, get_layout
from jmrn.readers import detect_format, get_reader
from jmrn.records import ReadError, Skipped, Video, check_placeholder_xy, check_video

LISTED_VIDEOS = 100  # videos with joints outside the frame listed by name in the report
TOP_REASONS = 5  # skip reasons (with an example each) in the message of a failed ingest
POSITIONS_PER_VIDEO = 3  # commonest exact positions of each joint a worker reports
POSITIONS_KEPT = 32  # ... and the main process keeps per joint (pruned to this, merged)
POSITIONS_BUFFER = 1 << 16  # position rows the main process buffers between merges
# A joint whose commonest exact pixel holds this share of its detections is listed under
# suspected_placeholders: real detections (floats) almost never repeat a pixel that often.
PLACEHOLDER_SUSPECT_FRACTION = 0.01
# Per-joint confidences are summarised by a histogram over (0, 1] (bins of 0.01), which sums
# across videos and workers; the report's quantiles are read off the merged histogram.
CONFIDENCE_BINS = 100
CONFIDENCE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# A number in a skip reason ("412 of 5883", "340x256", "1.2", "3e+38"), not inside a word.
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])[-+]?\d[\d.]*(?:e[-+]?\d+)?(?:x\d+)?")


def _reason_kind(reason: str) -> str:
    """The stable part of a skip reason, for counting: cut at the first detail (" (", ":",
    "["), numbers replaced by N ("confidence 50 above 1.2: ..." -> "confidence N above N")."""
    for stop in (" (", ":", "["):
        reason = reason.split(stop)[0]
    return _NUMBER.sub("N", reason.strip())


def check_settings(*, min_frames: object, max_skipped_fraction: object,
                   frame_tolerance: object, max_outside_fraction: object,
                   placeholder_xy: object) -> tuple[float, float] | None:  # fmt: skip
    """Validate the ``ingest`` section's values; errors name ``ingest.<key>``. Returns
    placeholder_xy as a tuple (or None)."""

    def fraction(key: str, value: object) -> None:
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value) or not 0 <= value <= 1):  # fmt: skip
            raise ValueError(f"ingest.{key} must be a number in [0, 1], got {show_value(value)}")

    if not isinstance(min_frames, int) or isinstance(min_frames, bool) or min_frames < 1:
        raise ValueError(f"ingest.min_frames must be an integer >= 1, got "
                         f"{show_value(min_frames)}")
    fraction("max_skipped_fraction", max_skipped_fraction)
    fraction("frame_tolerance", frame_tolerance)
    fraction("max_outside_fraction", max_outside_fraction)
    return check_placeholder_xy(placeholder_xy, "ingest.placeholder_xy")


def check_splits(splits: dict[str, list[str]], disjoint: list[tuple[str, ...]],
                 where: str) -> None:  # fmt: skip
    """A video listed twice in one split, or in two splits of a ``disjoint`` group (e.g. a
    train and its test split), would be trained and tested on: an error naming it."""
    for name, ids in splits.items():
        twice = [v for v, n in Counter(ids).items() if n > 1]
        if twice:
            raise ReadError(f"{where}: video {twice[0]!r} is listed twice in split {name!r} "
                            f"(and split {name!r}; {len(twice)} such video(s))")  # fmt: skip
    for group in disjoint:
        present = [name for name in dict.fromkeys(group) if name in splits]
        for i, a in enumerate(present):
            for b in present[i + 1:]:
                both = set(splits[a]) & set(splits[b])
                if both:
                    raise ReadError(f"{where}: video {sorted(both)[0]!r} is in split {a!r} and "
                                    f"in split {b!r}, which must be disjoint ({len(both)} "
                                    "such video(s))")  # fmt: skip


def disjoint_splits_from_params(params: dict) -> list[tuple[str, ...]]:
    """For every numbered split (``splits.all``, else the one split): its train and test
    splits, ``also_test`` and ``detected`` splits, which must share no video."""
    from jmrn.config import dataset_block, split_names

    groups = []
    for k in dataset_block(params)["splits"].get("all") or [None]:
        names = split_names(params, k)
        group = [names["train"], names["test"], *names.get("also_test", [])]
        if names.get("detected"):
            group.append(names["detected"])
        groups.append(tuple(group))
    return groups


def _top_positions(rows: np.ndarray, keep: int, min_count: int = 1) -> np.ndarray:
    """Rows (joint, x, y, count) with the counts of identical (joint, x, y) summed, and of
    each joint only the ``keep`` commonest positions seen at least ``min_count`` times,
    sorted by joint, commonest first."""
    rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]  # faster than np.unique
    new = np.ones(len(rows), bool)
    new[1:] = (rows[1:, :3] != rows[:-1, :3]).any(axis=1)
    keys = rows[new, :3]
    counts = np.bincount(np.cumsum(new) - 1, weights=rows[:, 3], minlength=len(keys))
    frequent = counts >= min_count
    keys, counts = keys[frequent], counts[frequent]
    order = np.lexsort((-counts, keys[:, 0]))
    keys, counts = keys[order], counts[order]
    rank = np.arange(len(counts)) - np.searchsorted(keys[:, 0], keys[:, 0])
    return np.column_stack([keys, counts])[rank < keep]


def joint_statistics(keypoints: np.ndarray) -> dict:
    """Per joint of a (T, M, V, 3) video: detections, consecutive-frame pairs (same person
    slot, detected in both), how many of those pairs sit at exactly the same pixel, and the
    ``POSITIONS_PER_VIDEO`` commonest exact positions seen in at least 2 frames, as rows
    (joint, x, y, count). A placeholder (a constant pixel for invisible joints) shows as a
    high static fraction and one dominant position; real detections rarely repeat a pixel."""
    present = keypoints[..., 2] > 0
    both = present[1:] & present[:-1]
    same = both & (keypoints[1:, ..., :2] == keypoints[:-1, ..., :2]).all(axis=-1)
    joint = np.nonzero(present)[2]
    xy = np.ascontiguousarray(keypoints[..., :2][present], dtype=np.float32)
    # Candidates first: positions (of any joint) seen at least twice, found by sorting one
    # 64-bit key per detection (the bits of x and y); usually few, so the exact per-joint
    # count below is cheap whatever the video's length.
    key = xy.view(np.uint64).ravel()
    order = np.argsort(key)
    equal = key[order[1:]] == key[order[:-1]]
    repeated = np.zeros(len(key), bool)
    repeated[order[1:][equal]] = repeated[order[:-1][equal]] = True
    rows = np.column_stack([joint[repeated], xy[repeated],
                            np.ones(int(repeated.sum()))]).astype(np.float64)  # fmt: skip
    return {"joint_detected": present.sum(axis=(0, 1)), "joint_pairs": both.sum(axis=(0, 1)),
            "joint_static": same.sum(axis=(0, 1)),
            "positions": _top_positions(rows, POSITIONS_PER_VIDEO, min_count=2)}  # fmt: skip


def joint_confidence(keypoints: np.ndarray) -> dict:
    """Per joint of a tidied (T, M, V, 3) video: the person-frames (a person slot in a frame
    with at least one joint detected), how many of them lack the joint, and a
    ``CONFIDENCE_BINS`` histogram of its confidence where detected. Sums over videos give
    each joint's missing fraction and confidence quantiles, so a joint that is never
    detected, or one that a wrong layout order fills with another joint's scores, shows."""
    conf = keypoints[..., 2]
    present = conf > 0
    person = present.any(axis=-1)  # (T, M)
    joints = conf.shape[-1]
    joint = np.nonzero(present)[-1]
    bins = np.clip(np.ceil(conf[present] * CONFIDENCE_BINS).astype(np.int64) - 1,
                   0, CONFIDENCE_BINS - 1)  # fmt: skip
    hist = np.bincount(joint * CONFIDENCE_BINS + bins, minlength=joints * CONFIDENCE_BINS)
    return {"person_frames": int(person.sum()),
            "joint_missing": (person[..., None] & ~present).sum(axis=(0, 1)),
            "confidence_hist": hist.reshape(joints, CONFIDENCE_BINS),
            "confidence_min": np.where(present, conf, np.inf).min(axis=(0, 1)),
            "confidence_max": np.where(present, conf, -np.inf).max(axis=(0, 1))}  # fmt: skip


def histogram_quantiles(hist: np.ndarray, quantiles: tuple[float, ...],
                        low: np.ndarray | None = None,
                        high: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(V, Q) quantiles of (V, B) histograms over (0, 1] (B equal bins), linear within a bin
    and clipped to each joint's observed [low, high] (so constant confidences, such as
    ground truth's 1, come out exact); NaN for a joint with no count. Exact to one bin width,
    whatever the number of videos."""
    hist = np.asarray(hist, np.float64)
    bins = hist.shape[1]
    cum = hist.cumsum(axis=1)
    target = np.asarray(quantiles)[None, :] * cum[:, -1:]  # (V, Q)
    index = np.minimum((cum[:, None, :] < target[..., None]).sum(axis=-1), bins - 1)
    before = np.where(index > 0, np.take_along_axis(cum, np.maximum(index - 1, 0), axis=1), 0)
    count = np.take_along_axis(hist, index, axis=1)
    within = np.clip((target - before) / np.maximum(count, 1e-12), 0.0, 1.0)
    values = (index + within) / bins
    if low is not None and high is not None:
        values = np.clip(values, np.asarray(low)[:, None], np.asarray(high)[:, None])
    return np.where(cum[:, -1:] > 0, values, np.nan)


def _outside_mask(raw: Video, checked: Video, placeholder_xy: tuple[float, float] | None,
                  ) -> np.ndarray:  # fmt: skip
    """(T, M, V) bool in the source layout: the detections ``check_video`` set missing for
    lying outside the frame. Taken as what it removed minus the placeholders, so the
    per-joint counts agree with its total by construction."""
    kp = np.asarray(raw.keypoints, dtype=np.float32)
    removed = (kp[..., 2] > 0) & ~(checked.keypoints[..., 2] > 0)
    if placeholder_xy is not None:
        px, py = (np.float32(c) for c in placeholder_xy)
        removed &= ~((kp[..., 0] == px) & (kp[..., 1] == py))
    return removed


def _load_checked(entry: dict, *, load: Callable[[dict], Video | Skipped], source: Layout,
                  target: Layout, num_classes: int, multi_label: bool, min_frames: int,
                  frame_tolerance: float, max_outside_fraction: float,
                  placeholder_xy: tuple[float, float] | None) -> Video | Skipped:  # fmt: skip
    """Worker: read one video, validate it and convert it to the target layout, so that the
    main process only checks ids and writes."""
    item = raw = load(entry)
    if isinstance(item, Video) and not (isinstance(item.video_id, str) and item.video_id.strip()):
        # whatever the reader: a video without an id belongs to no split
        return Skipped(str(item.source), str(item.source),
                       f"empty video id (the video id: {show_value(item.video_id)})")  # fmt: skip
    if isinstance(item, Video):
        item = check_video(item, source.num_joints, num_classes, multi_label,
                           frame_tolerance=frame_tolerance,
                           max_outside_fraction=max_outside_fraction,
                           placeholder_xy=placeholder_xy)  # fmt: skip
    if isinstance(item, Video) and item.keypoints.shape[0] < min_frames:
        item = Skipped(item.video_id, item.source,
                       f"too short ({item.keypoints.shape[0]} frames, min_frames is "
                       f"{min_frames})")  # fmt: skip
    if isinstance(item, Video):
        # Per joint of the target layout (joints matched by name); a derived joint (the
        # neck, the shoulders' midpoint) counts as outside where both of its parents were.
        outside = np.zeros(item.keypoints.shape, np.float32)
        outside[..., 2] = _outside_mask(raw, item, placeholder_xy)
        item.keypoints = convert(item.keypoints, source, target)
        if not np.isfinite(item.keypoints).all():  # e.g. a derived joint that overflowed
            return Skipped(item.video_id, item.source, "non-finite values after the layout "
                           f"conversion ({source.name} to {target.name})")  # fmt: skip
        item.stats.update(joint_statistics(item.keypoints))
        item.stats.update(joint_confidence(item.keypoints))
        item.stats["joint_outside"] = (convert(outside, source, target)[..., 2] > 0
                                       ).sum(axis=(0, 1))  # fmt: skip
    return item


def _pixel(value: float) -> float:
    """A float32 coordinate as the shortest float that reads back as it (116.87, not
    116.87000274658203), so a position copied from the report into placeholder_xy matches."""
    return float(str(np.float32(value)))


class _Tally:
    """What the main process accumulates from the kept videos' ``stats`` for the report, in
    memory bounded by the number of joints and of listed videos, not of videos."""

    def __init__(self, num_joints: int) -> None:
        self.counts = Counter()
        self.joint = {k: np.zeros(num_joints, np.int64)
                      for k in ("joint_detected", "joint_pairs", "joint_static",
                                "joint_missing", "joint_outside")}  # fmt: skip
        self.joint["confidence_hist"] = np.zeros((num_joints, CONFIDENCE_BINS), np.int64)
        self.confidence_min = np.full(num_joints, np.inf)
        self.confidence_max = np.full(num_joints, -np.inf)
        self.positions = np.zeros((0, 4))  # (joint, x, y, count), top POSITIONS_KEPT a joint
        self._new_positions: list[np.ndarray] = []
        self._buffered = 0
        self.outside_videos: list[tuple[float, str, int, int]] = []  # min-heap by fraction
        self.videos_with_outside = 0

    def add(self, video: Video) -> None:
        stats = video.stats
        self.counts.update({k: stats.get(k, 0) for k in
                            ("detected", "outside", "clipped", "placeholders",
                             "person_frames", "frames", "empty_frames")})  # fmt: skip
        for key, total in self.joint.items():
            total += stats[key]
        np.minimum(self.confidence_min, stats["confidence_min"], out=self.confidence_min)
        np.maximum(self.confidence_max, stats["confidence_max"], out=self.confidence_max)
        self._new_positions.append(stats["positions"])
        self._buffered += len(stats["positions"])
        if self._buffered > POSITIONS_BUFFER:
            self._merge_positions()
        if stats.get("outside"):
            self.videos_with_outside += 1
            item = (stats["outside"] / stats["detected"], video.video_id, stats["outside"],
                    stats["detected"])  # fmt: skip
            if len(self.outside_videos) < LISTED_VIDEOS:
                heapq.heappush(self.outside_videos, item)
            else:
                heapq.heappushpop(self.outside_videos, item)

    def _merge_positions(self) -> None:
        """Approximate (positions pruned earlier are forgotten), but a placeholder, frequent
        in every video, is never pruned."""
        rows = np.concatenate([self.positions, *self._new_positions])
        self.positions = _top_positions(rows, POSITIONS_KEPT)
        self._new_positions, self._buffered = [], 0

    def report(self, joint_names: tuple[str, ...], frame_tolerance: float) -> dict:
        self._merge_positions()
        detected, outside = self.counts["detected"], self.counts["outside"]
        first = {int(row[0]): row for row in self.positions[::-1]}  # each joint's commonest
        joints, suspects = {}, []
        for j, name in enumerate(joint_names):
            n, pairs = int(self.joint["joint_detected"][j]), int(self.joint["joint_pairs"][j])
            xy, count = ([_pixel(first[j][1]), _pixel(first[j][2])], int(first[j][3])) \
                if j in first else (None, 0)  # fmt: skip
            fraction = count / n if n else 0.0
            joints[name] = {"detected": n,
                            "static_fraction": int(self.joint["joint_static"][j]) / pairs
                            if pairs else 0.0,
                            "most_common_xy": xy, "most_common_fraction": fraction}  # fmt: skip
            if fraction >= PLACEHOLDER_SUSPECT_FRACTION:
                suspects.append({"joint": name, "xy": xy, "fraction": fraction})
        listed = sorted(self.outside_videos, key=lambda item: (-item[0], item[1]))
        return {
            **self.per_joint(joint_names),
            "joints_outside_frame": {"outside": outside, "detected": detected,
                                     "fraction": outside / detected if detected else 0.0},
            "frame_tolerance": frame_tolerance,
            "videos_with_joints_outside": {
                "count": self.videos_with_outside,
                "listed": [{"video_id": v, "outside": o, "detected": d}
                           for _, v, o, d in listed],
            },  # fmt: skip
            "frames": self.counts["frames"],
            "empty_frames": self.counts["empty_frames"],
            "empty_frame_fraction": self.counts["empty_frames"] / self.counts["frames"]
            if self.counts["frames"] else 0.0,
            "confidences_clipped": self.counts["clipped"],
            "placeholders_removed": self.counts["placeholders"],
            "joint_positions": joints,
            "suspected_placeholders": sorted(suspects, key=lambda s: -s["fraction"]),
        }

    def per_joint(self, joint_names: tuple[str, ...]) -> dict:
        """What plots/<dataset>/ingest.png draws, per joint: kept detections, the fraction
        of person-frames without it, confidence quantiles where detected (None if never),
        and the detections removed as outside the frame (of kept + removed). A frame with
        nobody in it counts as one person-frame without any joint: empty frames are missing
        data too."""
        person_frames = int(self.counts["person_frames"])
        empty = int(self.counts["empty_frames"])
        quantiles = histogram_quantiles(self.joint["confidence_hist"], CONFIDENCE_QUANTILES,
                                        self.confidence_min, self.confidence_max)  # fmt: skip
        joints = {}
        for j, name in enumerate(joint_names):
            n = int(self.joint["joint_detected"][j])
            missing, out = int(self.joint["joint_missing"][j]), int(self.joint["joint_outside"][j])
            joints[name] = {
                "detected": n,
                "missing_fraction": (missing + empty) / (person_frames + empty)
                if person_frames + empty else 0.0,
                "confidence_quantiles": None if n == 0 else {
                    f"p{round(q * 100):02d}": round(float(v), 4)
                    for q, v in zip(CONFIDENCE_QUANTILES, quantiles[j], strict=True)},
                "outside": out,
                "outside_fraction": out / (n + out) if n + out else 0.0,
            }  # fmt: skip
        return {"person_frames": person_frames, "per_joint": joints}


def _not_in_data(splits: dict[str, list[str]], kept_ids: dict[str, int],
                 skipped: list[Skipped]) -> dict[str, dict]:  # fmt: skip
    """Per split with any: how many of its entries name a video that was neither kept nor
    skipped (absent from the data: a typo, another release's list), and the first of them."""
    read = kept_ids.keys() | {s.video_id for s in skipped}
    out = {}
    for name, ids in splits.items():
        absent = [v for v in ids if v not in read]
        if absent:
            out[name] = {"count": len(absent), "example": absent[0]}
    return out


def _check_required_splits(splits: dict[str, list[int]], required: tuple[str, ...],
                           listed: dict[str, list[str]], skipped: list[Skipped],
                           raw_dir: Path) -> None:  # fmt: skip
    """A split that params.yaml trains or tests on must keep a video: an empty test split
    otherwise passed ingest and failed training after its first epoch."""
    for name in required:
        if name not in splits or splits[name]:
            continue
        if not listed[name]:
            raise ReadError(f"{raw_dir}: split {name!r}, which params.yaml uses, lists no video")
        ids = set(listed[name])
        own = [s for s in skipped if s.video_id in ids]
        own_ids = {s.video_id for s in own}
        absent = [v for v in listed[name] if v not in own_ids]
        raise ReadError(f"{raw_dir}: split {name!r}, which params.yaml uses, has no kept video: "
                        f"of its {len(listed[name])} entries, {len(own_ids)} were skipped and "
                        f"{len(absent)} name no video of the data"
                        + (f" (e.g. {absent[0]!r})" if absent else "")
                        + (f". {_summary(own)}" if own else ""))  # fmt: skip


def _duplicate(video: Video, first_labels: tuple[int, ...], first_source: str,
               class_names: list[str]) -> Skipped:  # fmt: skip
    """A second copy of a kept video id: a counted skip when its labels agree with the kept
    copy's, an error naming the video and both labels when they do not (keeping the first
    would silently pick one of two labels)."""
    if tuple(video.labels) == tuple(first_labels):
        return Skipped(video.video_id, video.source, f"duplicate video id (first read from "
                                                     f"{first_source})")  # fmt: skip

    def named(labels: tuple[int, ...]) -> str:
        return "[" + ", ".join(repr(class_names[k]) for k in labels) + "]"

    raise ReadError(f"video {video.video_id!r} appears twice with different labels: "
                    f"{named(first_labels)} in {first_source} and {named(video.labels)} in "
                    f"{video.source}; keep one copy (or give them different ids)")


def _empty_classes(
    class_names: list[str], labels: list[tuple[int, ...]], splits: dict[str, list[int]]
) -> tuple[list[str], dict[str, list[str]]]:
    """Classes with no kept video, and per split the classes with no video in it (splits
    whose videos carry no labels at all, such as AVA's detected boxes, are left out)."""
    owner = np.repeat(np.arange(len(labels)), [len(lab) for lab in labels])
    flat = np.fromiter((k for lab in labels for k in lab), np.int64, len(owner))
    k = len(class_names)
    overall = [class_names[c] for c in np.flatnonzero(np.bincount(flat, minlength=k) == 0)]
    per_split = {}
    for name, indices in splits.items():
        mask = np.isin(owner, indices)
        if mask.any():
            counts = np.bincount(flat[mask], minlength=k)
            per_split[name] = [class_names[c] for c in np.flatnonzero(counts == 0)]
    return overall, per_split


def ingest(
    fmt: str,
    raw_dir: str | Path,
    out_path: str | Path,
    *,
    dataset: str,
    options: dict | None = None,
    layout: str | None = None,
    min_frames: int = 3,
    max_skipped_fraction: float = 0.25,
    frame_tolerance: float = 0.1,
    max_outside_fraction: float = 0.2,
    placeholder_xy: list[float] | None = None,
    required_splits: tuple[str, ...] = (),
    disjoint_splits: list[tuple[str, ...]] = (),
    n_jobs: int = -1,
    progress=None,
) -> dict:
    """Read every video, validate it, convert it to ``layout`` and stream it to ``out_path``.

    ``disjoint_splits``: groups of split names that must share no video (see
    ``disjoint_splits_from_params``). Returns the report (also meant to be written as
    reports/<dataset>/ingest.json; ``ingest_metrics`` picks its counts).
    """
    # Imported here, not at the top: the worker processes import this module for
    # ``_load_checked`` and need neither h5py, joblib nor tqdm (``python -X importtime``:
    # 0.52 -> 0.31 s of imports for each worker).
    from jmrn.parallel import ordered_map
    from jmrn.progress import announce_total

    placeholder = check_settings(min_frames=min_frames,
                                 max_skipped_fraction=max_skipped_fraction,
                                 frame_tolerance=frame_tolerance,
                                 max_outside_fraction=max_outside_fraction,
                                 placeholder_xy=placeholder_xy)  # fmt: skip
    raw_dir = Path(raw_dir)
    if not raw_dir.exists():
        raise ReadError(f"raw data folder {raw_dir} does not exist: put the {dataset!r} files "
                        f"there (format {fmt!r}) or set datasets.{dataset}.raw_dir")  # fmt: skip
    if fmt == "auto":
        fmt = detect_format(raw_dir)
    reader = get_reader(fmt)
    index = reader.index(raw_dir, dict(options or {}))
    absent = [s for s in required_splits if s not in index.splits]
    if absent:
        raise ReadError(f"{raw_dir}: no split(s) {absent} in the {fmt} data, which has "
                        f"{sorted(index.splits)}; set the top-level split (-S split=N) or "
                        f"datasets.{dataset}.splits")  # fmt: skip
    check_splits(index.splits, list(disjoint_splits), str(raw_dir))
    source = get_layout(index.layout)
    target = get_layout(layout) if layout else source
    try:  # fail before reading any video
        convert(np.zeros((1, source.num_joints, 3), np.float32), source, target)
    except ValueError as err:
        raise ReadError(f"{err}; set datasets.{dataset}.layout to null to keep the "
                        f"{source.name!r} layout of the raw files") from err  # fmt: skip
    num_classes = len(index.class_names)

    load = partial(_load_checked, load=reader.load, source=source, target=target,
                   num_classes=num_classes, multi_label=index.multi_label,
                   min_frames=min_frames, frame_tolerance=float(frame_tolerance),
                   max_outside_fraction=float(max_outside_fraction),
                   placeholder_xy=placeholder)  # fmt: skip
    loaded = ordered_map(load, index.entries, n_jobs if index.parallel else 1,
                         tasks_per_worker=4, batch_size=16)  # fmt: skip
    announce_total(progress, len(index.entries))  # the bar can show the time left
    from jmrn.keypoints_file import KeypointsWriter  # h5py: imported while the workers read

    kept_ids: dict[str, int] = {}
    kept_labels: list[tuple[int, ...]] = []
    first_source: dict[str, str] = {}
    skipped: list[Skipped] = []
    tally = _Tally(target.num_joints)
    with atomic_path(out_path) as tmp:
        writer = KeypointsWriter(tmp, dataset=dataset, source_format=fmt, layout=target,
                                 class_names=index.class_names,
                                 multi_label=index.multi_label)  # fmt: skip
        try:
            for item in loaded:
                if progress is not None:
                    progress(1)
                if isinstance(item, Video) and item.video_id in kept_ids:
                    item = _duplicate(item, kept_labels[kept_ids[item.video_id]],
                                      first_source[item.video_id], index.class_names)
                if isinstance(item, Skipped):
                    skipped.append(item)
                    continue
                kept_ids[item.video_id] = len(kept_ids)
                kept_labels.append(item.labels)
                first_source[item.video_id] = item.source
                tally.add(item)
                writer.add(item)
            total = len(kept_ids) + len(skipped)
            if not kept_ids:
                raise ReadError(f"{raw_dir}: no usable video among {total}; "
                                f"{_summary(skipped)}")  # fmt: skip
            if len(skipped) > max_skipped_fraction * total:
                raise ReadError(
                    f"{raw_dir}: {len(skipped)} of {total} videos skipped, more than "
                    f"ingest.max_skipped_fraction={max_skipped_fraction}; fix the data or "
                    f"raise ingest.max_skipped_fraction. {_summary(skipped)}"
                )
            splits, missing = {}, {}
            for name, ids in index.splits.items():
                splits[name] = [kept_ids[v] for v in ids if v in kept_ids]
                missing[name] = len(ids) - len(splits[name])
            not_in_data = _not_in_data(index.splits, kept_ids, skipped)
            _check_required_splits(splits, required_splits, index.splits, skipped, raw_dir)
            writer.close(splits)
        except BaseException:
            writer.file.close()
            raise
    empty, empty_per_split = _empty_classes(index.class_names, kept_labels, splits)
    per_class = np.bincount([k for labels in kept_labels for k in labels],
                            minlength=num_classes)  # fmt: skip
    return {
        "dataset": dataset,
        "format": fmt,
        "raw_dir": str(raw_dir),
        "source_layout": source.name,
        "layout": target.name,
        "videos_read": len(kept_ids) + len(skipped),
        "kept": len(kept_ids),
        "skipped": len(skipped),
        "skipped_by_reason": dict(Counter(_reason_kind(s.reason) for s in skipped)),
        "left_out": dict(index.left_out),
        "classes": num_classes,
        "videos_per_class": dict(zip(index.class_names, per_class.tolist(), strict=True)),
        "empty_classes": empty,
        "empty_classes_per_split": empty_per_split,
        "splits": {name: len(v) for name, v in splits.items()},
        "split_entries_not_kept": missing,
        "split_entries_not_in_data": not_in_data,
        **tally.report(target.joints, float(frame_tolerance)),
        "skipped_videos": [vars(s) for s in skipped],
    }


METRIC_KEYS = ("videos_read", "kept", "skipped", "skipped_by_reason", "left_out", "classes",
               "splits", "joints_outside_frame", "confidences_clipped", "placeholders_removed",
               "empty_frames")


def ingest_metrics(report: dict) -> dict:
    """The counts of a report that the stage writes as metrics (no per-video lists)."""
    metrics = {k: report[k] for k in METRIC_KEYS}
    metrics["empty_classes"] = len(report["empty_classes"])
    metrics["empty_classes_per_split"] = {name: len(v) for name, v in
                                          report["empty_classes_per_split"].items()}  # fmt: skip
    metrics["split_entries_not_in_data"] = {name: v["count"] for name, v in
                                            report["split_entries_not_in_data"].items()}
    return metrics


def empty_classes_warning(report: dict) -> str | None:
    """One line naming the classes without videos (overall and per split), or None."""
    parts = [f"no kept video of class(es) {report['empty_classes']}"] \
        if report["empty_classes"] else []  # fmt: skip
    parts += [f"no video of {names} in split {split!r}"
              for split, names in report["empty_classes_per_split"].items()
              if names and set(names) != set(report["empty_classes"])]  # fmt: skip
    if not parts:
        return None
    return f"warning: ingest {report['dataset']}: " + "; ".join(parts)


def missing_videos_warning(report: dict) -> str | None:
    """One line counting the split entries that name no video of the data, with an example
    per split, or None."""
    absent = report.get("split_entries_not_in_data") or {}
    if not absent:
        return None
    total = sum(v["count"] for v in absent.values())
    parts = [f"{v['count']} in split {name!r} (e.g. {v['example']!r})"
             for name, v in absent.items()]  # fmt: skip
    return (f"warning: ingest {report['dataset']}: {total} split entries name videos that are "
            f"not in the data: " + ", ".join(parts))


def _summary(skipped: list[Skipped]) -> str:
    """The commonest skip reasons with their counts and one example (video, file, reason in
    full) each, so the error says what went wrong without opening the report."""
    if not skipped:
        return "nothing read"
    counts = Counter(_reason_kind(s.reason) for s in skipped)
    example: dict[str, Skipped] = {}
    for s in skipped:
        example.setdefault(_reason_kind(s.reason), s)
    lines = [f"{n}x {kind!r}, e.g. video {example[kind].video_id!r} ({example[kind].source}): "
             f"{example[kind].reason}" for kind, n in counts.most_common(TOP_REASONS)]  # fmt: skip
    if len(counts) > TOP_REASONS:
        rest = sum(n for _, n in counts.most_common()[TOP_REASONS:])
        lines.append(f"and {rest} more of {len(counts) - TOP_REASONS} other reason(s)")
    return "Skip reasons:\n  " + "\n  ".join(lines)
