"""What a reader hands to ingest: one record per video, or a reasoned skip.

Readers parse their format; the checks that every format shares (shapes, finiteness, labels,
confidences, coordinates against the frame) live here, so a malformed video is rejected the
same way whatever file it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real

import numpy as np

from jmrn.cli import show_value

# Confidences above 1 are tolerated up to this value and clipped to 1. OpenPose's score is a
# heatmap peak value, not a normalised probability, and can overshoot 1 by a few percent;
# 1.2 leaves room for that, while anything clearly larger (a percentage, a count, a
# coordinate in the score column) is not a probability: a skip.
MAX_CONFIDENCE = 1.2
# A frame with no detected joint (after tidying) is empty: a frame number with no file, a
# frame whose people list is empty, a gap in ST-GCN's frame_index. A video more than this
# share of whose frames are empty is skipped: its temporal channels would describe mostly
# nothing. So is one with a run of empty frames longer than all its frames with a pose
# together: the signature of one stray frame number (frame 100000 beside frames 0-19), which
# stretches a video to T = 100,001 and squeezes its real content into the first channel.
MAX_EMPTY_FRACTION = 0.5


class ReadError(ValueError):
    """A dataset-level problem: a missing folder, an unusable or unsafe annotation file.

    Damage confined to one video is a ``Skipped`` instead (see ``jmrn.ingest``)."""


@dataclass
class Video:
    """One video's keypoints in the layout its reader declares.

    keypoints: (T, M, V, 3) float32 = x, y in source pixels, confidence in [0, 1] (0 = missing).
    image_size: (height, width) of the frames the coordinates refer to.
    labels: class indices (one for single-label datasets, any number for multi-label ones).
    boxes: optional (T, M, 4) float32 person boxes x1, y1, x2, y2 in source pixels (NaN = none).
    stats: per-video tallies for the ingest report (what ``check_video`` tidied, joint
    statistics); filled by ingest, never stored in keypoints.h5.
    """

    video_id: str
    keypoints: np.ndarray
    image_size: tuple[int, int]
    labels: tuple[int, ...]
    source: str
    boxes: np.ndarray | None = None
    stats: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Skipped:
    video_id: str
    source: str
    reason: str


@dataclass
class SourceIndex:
    """Everything a reader knows before loading any video.

    entries are small picklable descriptions of each video (paths, or the parsed annotation),
    handed one by one to the reader's ``load`` function, possibly in joblib workers.
    """

    layout: str
    class_names: list[str]
    multi_label: bool
    splits: dict[str, list[str]]
    entries: list = field(default_factory=list)
    parallel: bool = True  # False when entries already hold the data (pickles): no gain
    # videos left out by design before loading (e.g. of classes outside a chosen subset),
    # counted per reason in the ingest report; they are not skips
    left_out: dict[str, int] = field(default_factory=dict)


def is_integer(value: object) -> bool:
    """An int or numpy integer, not a bool: what a label or a size must be. Floats (even 3.0),
    strings and None are refused rather than int()-ed, which would hide a wrong column."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def show(value: object) -> str:
    """A value for a skip reason: strings quoted (so "3" and 3 differ), numbers plain."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, np.generic):
        return str(value.item())
    if isinstance(value, tuple):
        return "(" + ", ".join(show(v) for v in value) + ")"
    return str(value)


def image_size_problem(value: object) -> str | None:
    """Why ``value`` is not a (height, width) pair of positive integers, or None if it is."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__"):
        return f"is {show(value)}, expected (height, width)"
    if len(value) != 2:
        return f"has {len(value)} values {show(tuple(value))}, expected (height, width)"
    if not all(_whole(s) and s > 0 for s in value):
        return f"is {show(tuple(value))}, expected two positive integers"
    return None


def _whole(value: object) -> bool:
    """An integer, or a float with an integral value (240.0): sizes are lossless as int."""
    if is_integer(value):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value)


def check_placeholder_xy(value: object, key: str = "ingest.placeholder_xy") -> tuple | None:
    """None, or [x, y] of two finite numbers; errors name ``key``."""
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)
                       for v in value)):  # fmt: skip
        raise ValueError(f"{key} must be null or [x, y] (two finite numbers), got "
                         f"{show_value(value)}")
    return float(value[0]), float(value[1])


def check_video(
    video: Video, num_joints: int, num_classes: int, multi_label: bool, *,
    frame_tolerance: float = 0.1, max_outside_fraction: float = 0.2,
    placeholder_xy: tuple[float, float] | None = None,
) -> Video | Skipped:  # fmt: skip
    """Validate and tidy one video; return it, or a ``Skipped`` that says what is wrong.

    Tidying is limited to what real data needs, and every tidied value is counted in the
    returned video's ``stats`` (for the ingest report):

    * confidences in (1, ``MAX_CONFIDENCE``] are clipped to 1 (``clipped``); a larger one is
      not a probability: skip;
    * coordinates of joints with confidence 0 are set to 0 (some formats store NaN there);
    * a detected joint exactly at ``placeholder_xy`` (source pixels) is set missing
      (``placeholders``);
    * a detected joint outside the frame enlarged by ``frame_tolerance`` of its width/height
      on every side is set missing (``outside`` of ``detected``); if more than
      ``max_outside_fraction`` of the detected joints are outside, the coordinates do not
      belong to this frame size (wrong ``image_size``, normalised coordinates, garbage): skip.

    Labels must be integers (not bools, floats or strings) in range. Everything else that is
    off is a skip with a reason, never a silent pass.
    """

    def skip(reason: str) -> Skipped:
        return Skipped(video.video_id, video.source, reason)

    try:
        kp = np.asarray(video.keypoints, dtype=np.float32)
    except (TypeError, ValueError) as error:
        return skip(f"keypoints are not a numeric array ({error})")
    if kp.ndim != 4 or kp.shape[-1] != 3:
        return skip(f"keypoints have shape {kp.shape}, expected (T, M, V, 3)")
    frames, persons, joints, _ = kp.shape
    if joints != num_joints:
        return skip(f"{joints} joints per person, the layout has {num_joints}")
    if frames == 0:
        return skip("zero frames")
    if persons == 0:
        return skip("no person in any frame")
    labels = tuple(video.labels) if isinstance(video.labels, (tuple, list)) else None
    if labels is None:
        return skip(f"labels are not a list: {show(video.labels)}")
    not_int = [label for label in labels if not is_integer(label)]
    if not_int:
        return skip(f"label is not an integer: {show(not_int[0])}")
    labels = tuple(int(label) for label in labels)
    if not multi_label and len(labels) != 1:
        return skip(f"{len(labels)} labels for a single-label dataset")
    unknown = [label for label in labels if not 0 <= label < num_classes]
    if unknown:
        return skip(f"unknown label(s) {unknown} (the class list has {num_classes} classes)")
    problem = image_size_problem(video.image_size)
    if problem:
        return skip(f"invalid image size: image_size {problem}")
    height, width = (int(s) for s in video.image_size)
    conf = kp[..., 2]
    if not np.isfinite(conf).all():
        return skip("non-finite confidence values")
    if (conf < 0).any():
        return skip(f"negative confidence {conf.min():.3g}")
    if conf.max() > np.float32(MAX_CONFIDENCE):
        return skip(f"confidence {conf.max():.3g} above {MAX_CONFIDENCE}: not a probability")
    present = conf > 0
    bad = present & ~np.isfinite(kp[..., :2]).all(axis=-1)
    if bad.any():
        t, m, v = np.argwhere(bad)[0]
        return skip(f"non-finite coordinates (first at frame {t}, person {m}, joint {v})")
    x, y = kp[..., 0], kp[..., 1]
    placeholder = np.zeros_like(present)
    if placeholder_xy is not None:
        px, py = (np.float32(c) for c in placeholder_xy)
        placeholder = present & (x == px) & (y == py)
        present &= ~placeholder
    detected = int(present.sum())
    if detected == 0:
        return skip("no joint detected in any frame"
                    + (f" ({int(placeholder.sum())} at placeholder_xy removed)"
                       if placeholder.any() else ""))  # fmt: skip
    tol = float(frame_tolerance)
    outside = present & ((x < -tol * width) | (x > width * (1 + tol))
                         | (y < -tol * height) | (y > height * (1 + tol)))  # fmt: skip
    n_outside = int(outside.sum())
    if n_outside > max_outside_fraction * detected:
        return skip(f"{n_outside} of {detected} detected joints outside the {width}x{height} "
                    f"frame (tolerance {tol * 100:g}%): wrong source.image_size?")  # fmt: skip
    present &= ~outside
    if not present.any():
        return skip("no joint detected in any frame")
    problem, empty = _empty_frames(present.any(axis=(1, 2)))
    if problem:
        return skip(problem)
    kp = kp.copy()
    kp[~present] = 0.0
    clipped = int((kp[..., 2] > 1).sum())
    kp[..., 2] = np.minimum(kp[..., 2], 1.0)
    boxes = video.boxes
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.shape != (frames, persons, 4):
            return skip(f"boxes have shape {boxes.shape}, expected {(frames, persons, 4)}")
    stats = {"detected": detected, "outside": n_outside, "clipped": clipped,
             "placeholders": int(placeholder.sum()), "frames": frames,
             "empty_frames": empty}  # fmt: skip
    return Video(video.video_id, kp, (height, width), labels, video.source, boxes, stats)


def _empty_frames(content: np.ndarray) -> tuple[str | None, int]:
    """(why the video is skipped or None, its number of empty frames) from ``content`` (T,):
    whether each frame has a detected joint (at least one does). See MAX_EMPTY_FRACTION."""
    frames, with_pose = len(content), int(content.sum())
    empty = frames - with_pose
    edges = np.concatenate([[-1], np.flatnonzero(content), [frames]])
    gaps = np.diff(edges) - 1  # the runs of empty frames before, between and after the poses
    k = int(gaps.argmax())
    if gaps[k] > with_pose:
        return (f"a gap of {gaps[k]} empty frames longer than its {with_pose} frames with a "
                f"pose (frames {edges[k] + 1}..{edges[k + 1] - 1} of {frames}: a stray frame "
                "number?)"), empty  # fmt: skip
    if empty > MAX_EMPTY_FRACTION * frames:
        return (f"mostly empty frames ({empty} of {frames} frames have no detected joint; "
                f"more than {MAX_EMPTY_FRACTION:g} of them)"), empty  # fmt: skip
    return None, empty
