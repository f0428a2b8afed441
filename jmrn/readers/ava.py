"""AVA v2.x: one sample per (video, keyframe, person box), with the pose of that person and
of everybody else around the keyframe (method.md §2, AVA).

On disk::

    raw_dir/ava_train_v2.x.csv, ava_val_v2.x.csv          the official box annotations
    raw_dir/ava_{train,val}_excluded_timestamps_v2.x.csv   optional
    raw_dir/<...>action_list<...>.pbtxt                   the evaluated classes (60)
    raw_dir/openpose/<video_id>/*_keypoints.json          OpenPose output, frame numbers
                                                          from 0 at second ``start_second``
    raw_dir/<...>proposals<...>.pkl                       optional person detections

Rows are parsed by ``jmrn.ava_annotations`` (bad rows: counted, or an error naming the line).
A sample's id is ``<video>,<timestamp:04d>,<x1>,<y1>,<x2>,<y2>`` (box to 3 decimals): the key
per-box logits of another model (SlowFast) are matched on. Its keypoints are the frames of
``clip_seconds`` centred on the keyframe (frame = round((second - start_second) * fps)). In
every frame the person slot 0 is the *actor*: the OpenPose person with the largest share of
confident joints inside the box (at least ``min_inside``; none = an empty slot that frame);
the other persons follow as context. A box that no pose matches in any frame of its clip is
a counted skip. ``boxes`` holds the annotated box (pixels) in slot 0 of every frame: the
heatmaps stage crops to it.

Detected boxes: with a person-detection pickle (``{"<video>,<timestamp>": (N, 5) [x1, y1, x2,
y2, score]}``, SlowFast's), every detection of a val keyframe scoring at least
``proposal_min_score`` becomes an unlabelled sample of split ``val_detected``, id
``<video>,<timestamp>,<box>,det``, read exactly like an annotated box; ``jmrn.ava_eval``
scores them with the official frame-mAP at IoU 0.5 against the val CSV.

Options: ``image_size`` ([H, W] of the frames OpenPose saw), ``frame_sizes`` (a file in
raw_dir giving each movie's frame size, keyed by the CSVs' video id, as the OpenPose reader's
option: AVA movies differ in resolution, and the size maps the normalised boxes to pixels; a
movie absent from it gets ``image_size``, its boxes are skipped without one; one of the two is
required), ``fps`` (30),
``start_second`` (900), ``clip_seconds`` (1.0), ``min_inside`` (0.5), ``layout`` (as the
OpenPose reader), ``action_list`` (file name, default: the one .pbtxt), ``proposals``
(``auto``: the one ``*proposals*.pkl`` of raw_dir, or the one of those with ``val`` in its
name, none if there is none; a file name; null: no detected boxes), ``proposal_min_score``
(0.8, as SlowFast's AVA configs).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from jmrn.ava_annotations import (
    BoxSamples,
    read_action_list,
    read_boxes,
    read_excluded,
    read_proposals,
    select_proposals,
)
from jmrn.readers import openpose
from jmrn.readers.common import find_single_file, frame_sizes_option
from jmrn.records import ReadError, Skipped, SourceIndex, Video

SPLITS = ("train", "val")
DETECTED_SPLIT = "val_detected"  # the detected boxes of the val keyframes
DETECTED_SUFFIX = ",det"


def sample_id(video: str, second: int, box: tuple[float, ...], detected: bool = False) -> str:
    text = f"{video},{second:04d}," + ",".join(f"{v:.3f}" for v in box)
    return text + DETECTED_SUFFIX if detected else text


def parse_sample_id(sample: str) -> tuple[str, int, tuple[float, float, float, float]]:
    """(video, timestamp, box) of an annotated or a detected box's sample id."""
    parts = sample.removesuffix(DETECTED_SUFFIX).split(",")
    try:
        if len(parts) != 6:
            raise ValueError
        return parts[0], int(parts[1]), tuple(float(v) for v in parts[2:])  # type: ignore[return-value]
    except ValueError:
        raise ValueError(f"{sample!r} is not an AVA sample id <video>,<timestamp>,<x1>,<y1>,"
                         "<x2>,<y2>[,det]") from None  # fmt: skip


def find_proposals(raw_dir: Path, option: str | None) -> Path | None:
    """The person-detection pickle the ``proposals`` option names (module docstring)."""
    if option is None:
        return None
    if option != "auto":
        return find_single_file(raw_dir, option, "")
    found = sorted(raw_dir.glob("*proposals*.pkl"))
    if len(found) > 1:
        found = [p for p in found if "val" in p.name]
    if len(found) > 1:
        raise ReadError(f"{raw_dir}: several proposal pickles {[p.name for p in found]}; set "
                        "source.proposals to the val one")  # fmt: skip
    return found[0] if found else None


def action_list(raw_dir: Path, options: dict) -> list[tuple[int, str]]:
    """(AVA action id, name) of the evaluated classes, in class-index order."""
    return read_action_list(find_single_file(raw_dir, options.get("action_list"), "*.pbtxt"))


def annotations(raw_dir: Path, actions: list[tuple[int, str]],
                split: str) -> tuple[BoxSamples, set[tuple[str, int]]]:  # fmt: skip
    """The annotated boxes of ``split`` (train | val) and its excluded (video, timestamp)s."""
    found = sorted(Path(raw_dir).glob(f"ava_{split}_v2*.csv"))
    if len(found) != 1:
        raise ReadError(f"expected one ava_{split}_v2.x.csv in {raw_dir}, found "
                        f"{[p.name for p in found] or 'none'}")  # fmt: skip
    excluded_files = sorted(Path(raw_dir).glob(f"ava_{split}_excluded_timestamps_v2*.csv"))
    excluded = set().union(*(read_excluded(p) for p in excluded_files))
    return read_boxes(found[0], [a for a, _ in actions], excluded), excluded


def index(raw_dir: Path, options: dict) -> SourceIndex:
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ReadError(f"raw directory {raw_dir} does not exist")
    actions = action_list(raw_dir, options)
    sizes = frame_sizes_option(raw_dir, options)
    settings = {"fps": float(options.get("fps", 30)),
                "start_second": float(options.get("start_second", 900)),
                "clip_seconds": float(options.get("clip_seconds", 1.0)),
                "min_inside": float(options.get("min_inside", 0.5))}  # fmt: skip
    entries, splits, left_out, movies = [], {}, {}, set()

    def add(video: str, second: int, box: tuple, labels: tuple, detected: bool = False) -> str:
        movies.add(video)
        entries.append({"video_id": sample_id(video, second, box, detected),
                        "dir": str(raw_dir / "openpose" / video), "second": second, "box": box,
                        "labels": labels, "image_size": sizes.of(video),  # (H, W) or why not
                        **settings})  # fmt: skip
        return entries[-1]["video_id"]

    for split in SPLITS:
        samples, excluded = annotations(raw_dir, actions, split)
        for reason, rows in samples.skipped_rows.items():
            left_out[f"{split} rows: {reason}"] = rows
        splits[split] = [add(video, second, box, tuple(sorted(labels)))
                         for (video, second), box, labels
                         in zip(samples.keys, samples.boxes, samples.labels, strict=True)]
        if split == "val":
            val_videos, val_excluded = samples.videos, excluded
    proposals_path = find_proposals(raw_dir, options.get("proposals", "auto"))
    if proposals_path is not None:
        detected = select_proposals(read_proposals(proposals_path), val_videos, val_excluded,
                                    float(options.get("proposal_min_score", 0.8)))
        for reason, boxes in detected.skipped.items():
            left_out[f"proposals: {reason}"] = boxes
        splits[DETECTED_SPLIT] = [add(video, second, box, (), detected=True)
                                  for (video, second), box
                                  in zip(detected.keys, detected.boxes, strict=True)]
    if len(set(e["video_id"] for e in entries)) != len(entries):
        raise ReadError(f"{raw_dir}: a (video, timestamp, box) is in both the train and val CSVs")
    left_out.update(sizes.left_out(movies))
    layout = openpose.set_layout(entries, options)
    class_names = [name for _, name in actions]
    return SourceIndex(layout, class_names, True, splits, entries, parallel=True,
                       left_out=left_out)  # fmt: skip


@lru_cache(maxsize=8)
def _frame_files(folder: str) -> dict[int, Path] | str:
    """Frame number -> file of an OpenPose folder, or why its files cannot be used (listed
    once per worker and video: a movie's folder holds ~27,000 files)."""
    files = openpose._frame_files(Path(folder))
    numbers = openpose.frame_numbers(files)
    return numbers if isinstance(numbers, str) else dict(zip(numbers, files, strict=True))


def load(entry: dict) -> Video | Skipped:
    video_id, folder = entry["video_id"], entry["dir"]

    def skip(reason: str) -> Skipped:
        return Skipped(video_id, folder, reason)

    if isinstance(entry["image_size"], str):  # in neither source.frame_sizes nor image_size
        return skip(entry["image_size"])
    files = _frame_files(folder)
    if isinstance(files, str):
        return skip(files)
    if not files:
        return skip("no OpenPose frame files for this video")
    centre = (entry["second"] - entry["start_second"]) * entry["fps"]
    half = entry["clip_seconds"] * entry["fps"] / 2
    numbers = range(int(round(centre - half)), int(round(centre + half)) + 1)
    if not any(n in files for n in numbers):
        return skip(f"no OpenPose frame in the clip (frames {numbers.start}..{numbers.stop - 1} "
                    f"around second {entry['second']}, fps {entry['fps']}, start_second "
                    f"{entry['start_second']})")  # fmt: skip
    height, width = entry["image_size"]
    x1, y1, x2, y2 = np.multiply(entry["box"], (width, height, width, height))
    joints = entry["values"] // 3
    frames = []  # (P, V, 3) poses of every frame of the clip; none where a file is missing
    for number in numbers:
        people = np.zeros((0, joints, 3), np.float32)
        if number in files:
            people = openpose.read_people(files[number], entry)
            if isinstance(people, str):
                return skip(people)
        frames.append(people)
    persons = max(len(p) for p in frames) + 1  # room for an empty actor slot
    keypoints = np.zeros((len(frames), persons, joints, 3), np.float32)
    found = False
    for t, pose in enumerate(frames):
        if not len(pose):
            continue
        seen = pose[..., 2] > 0
        inside = seen & (pose[..., 0] >= x1) & (pose[..., 0] <= x2) & \
            (pose[..., 1] >= y1) & (pose[..., 1] <= y2)  # fmt: skip
        share = inside.sum(1) / np.maximum(seen.sum(1), 1)
        actor = int(share.argmax()) if share.max() >= entry["min_inside"] else None
        found |= actor is not None
        order = ([actor] if actor is not None else []) + \
            [p for p in np.argsort(-pose[..., 2].mean(1), kind="stable") if p != actor]  # fmt: skip
        slots = order if actor is not None else [None] + order
        for m, p in enumerate(slots[:persons]):
            if p is not None:
                keypoints[t, m] = pose[p]
    if not found:
        return skip("no pose matches the box in the clip")
    boxes = np.full(keypoints.shape[:2] + (4,), np.nan, np.float32)
    boxes[:, 0] = (x1, y1, x2, y2)
    return Video(video_id, keypoints, (height, width), entry["labels"], folder, boxes)
