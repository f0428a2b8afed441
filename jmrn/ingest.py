"""Raw keypoints in any supported format -> keypoints.h5 plus a report of what was kept.

Policy for bad input (documented in the README):
* a problem with the dataset as a whole (missing folder, unreadable or unsafe annotation
  file, unknown format, a layout that cannot be converted) raises an error naming the file;
* a problem with one video (unreadable file, NaN coordinates, wrong joint count, no frames,
  too few frames, unknown label, duplicate id) skips that video; every skip is listed in the
  report with its source and reason, and counted per reason;
* if more than ``max_skipped_fraction`` of the videos are skipped, or none is kept, ingest
  fails: a systematic problem must not pass as a few skips.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from jmrn.io import atomic_path
from jmrn.keypoints_file import KeypointsWriter
from jmrn.layouts import Layout, convert, get_layout
from jmrn.parallel import ordered_map
from jmrn.readers import detect_format, get_reader
from jmrn.records import ReadError, Skipped, Video, check_video


def _reason_kind(reason: str) -> str:
    """The stable part of a skip reason, for counting ("unknown label(s) [7] ..." -> ...)."""
    for stop in (" (", ":", "["):
        reason = reason.split(stop)[0]
    return reason.strip()


def _load_checked(entry: dict, *, load: Callable[[dict], Video | Skipped], source: Layout,
                  target: Layout, num_classes: int, multi_label: bool,
                  min_frames: int) -> Video | Skipped:  # fmt: skip
    """Worker: read one video, validate it and convert it to the target layout, so that the
    main process only checks ids and writes."""
    item = load(entry)
    if isinstance(item, Video):
        item = check_video(item, source.num_joints, num_classes, multi_label)
    if isinstance(item, Video) and item.keypoints.shape[0] < min_frames:
        item = Skipped(item.video_id, item.source,
                       f"too short ({item.keypoints.shape[0]} frames, min_frames is "
                       f"{min_frames})")  # fmt: skip
    if isinstance(item, Video):
        item.keypoints = convert(item.keypoints, source, target)
    return item


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
    required_splits: tuple[str, ...] = (),
    n_jobs: int = -1,
    progress=None,
) -> dict:
    """Read every video, validate it, convert it to ``layout`` and stream it to ``out_path``.

    Returns the report (also meant to be written as reports/<dataset>/ingest.json).
    """
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
                        f"{sorted(index.splits)}; set datasets.{dataset}.splits")  # fmt: skip
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
                   min_frames=min_frames)  # fmt: skip
    loaded = ordered_map(load, index.entries, n_jobs if index.parallel else 1,
                         tasks_per_worker=64)  # fmt: skip

    kept_ids: dict[str, int] = {}
    skipped: list[Skipped] = []
    per_class = np.zeros(num_classes, dtype=np.int64)
    with atomic_path(out_path) as tmp:
        writer = KeypointsWriter(tmp, dataset=dataset, source_format=fmt, layout=target,
                                 class_names=index.class_names,
                                 multi_label=index.multi_label)  # fmt: skip
        try:
            for item in loaded:
                if progress is not None:
                    progress(1)
                if isinstance(item, Video) and item.video_id in kept_ids:
                    item = Skipped(item.video_id, item.source, "duplicate video id")
                if isinstance(item, Skipped):
                    skipped.append(item)
                    continue
                kept_ids[item.video_id] = len(kept_ids)
                per_class[list(item.labels)] += 1
                writer.add(item)
            total = len(kept_ids) + len(skipped)
            if not kept_ids:
                raise ReadError(f"{raw_dir}: no usable video among {total} "
                                f"({_summary(skipped)})")  # fmt: skip
            if len(skipped) > max_skipped_fraction * total:
                raise ReadError(
                    f"{raw_dir}: {len(skipped)} of {total} videos skipped, more than "
                    f"max_skipped_fraction={max_skipped_fraction} ({_summary(skipped)}); see the "
                    "reasons above, fix the data or raise ingest.max_skipped_fraction"
                )
            splits, missing = {}, {}
            for name, ids in index.splits.items():
                splits[name] = [kept_ids[v] for v in ids if v in kept_ids]
                missing[name] = len(ids) - len(splits[name])
            writer.close(splits)
        except BaseException:
            writer.file.close()
            raise
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
        "splits": {name: len(v) for name, v in splits.items()},
        "split_entries_not_kept": missing,
        "skipped_videos": [vars(s) for s in skipped],
    }


def _summary(skipped: list[Skipped]) -> str:
    """The commonest skip reasons, and the first skipped video's file and reason in full."""
    counts = Counter(_reason_kind(s.reason) for s in skipped).most_common(3)
    if not counts:
        return "nothing read"
    first = skipped[0]
    return (", ".join(f"{n}x {reason}" for reason, n in counts)
            + f"; first: {first.source}: {first.reason}")
