"""What a reader hands to ingest: one record per video, or a reasoned skip.

Readers parse their format; the checks that every format shares (shapes, finiteness, labels)
live here, so a malformed video is rejected the same way whatever file it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
    """

    video_id: str
    keypoints: np.ndarray
    image_size: tuple[int, int]
    labels: tuple[int, ...]
    source: str
    boxes: np.ndarray | None = None


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


def check_video(
    video: Video, num_joints: int, num_classes: int, multi_label: bool
) -> Video | Skipped:
    """Validate and tidy one video; return it, or a ``Skipped`` that says what is wrong.

    Tidying is limited to what the formats define: confidences above 1 (real OpenPose output)
    are clipped, and coordinates of joints with confidence 0 are set to 0 (some formats store
    NaN there). Everything else that is off is a skip with a reason, never a silent pass.
    """

    def skip(reason: str) -> Skipped:
        return Skipped(video.video_id, video.source, reason)

    kp = np.asarray(video.keypoints, dtype=np.float32)
    if kp.ndim != 4 or kp.shape[-1] != 3:
        return skip(f"keypoints have shape {kp.shape}, expected (T, M, V, 3)")
    frames, persons, joints, _ = kp.shape
    if joints != num_joints:
        return skip(f"{joints} joints per person, the layout has {num_joints}")
    if frames == 0:
        return skip("zero frames")
    if persons == 0:
        return skip("no person in any frame")
    conf = kp[..., 2]
    if not np.isfinite(conf).all():
        return skip("non-finite confidence values")
    if (conf < 0).any():
        return skip(f"negative confidence {conf.min():.3g}")
    present = conf > 0
    bad = present & ~np.isfinite(kp[..., :2]).all(axis=-1)
    if bad.any():
        t, m, v = np.argwhere(bad)[0]
        return skip(f"non-finite coordinates (first at frame {t}, person {m}, joint {v})")
    if not present.any():
        return skip("no joint detected in any frame")
    kp = kp.copy()
    kp[..., :2][~present] = 0.0
    kp[..., 2] = np.minimum(conf, 1.0)
    labels = tuple(int(label) for label in video.labels)
    if not multi_label and len(labels) != 1:
        return skip(f"{len(labels)} labels for a single-label dataset")
    unknown = [label for label in labels if not 0 <= label < num_classes]
    if unknown:
        return skip(f"unknown label(s) {unknown} (the class list has {num_classes} classes)")
    height, width = (int(s) for s in video.image_size)
    if height <= 0 or width <= 0:
        return skip(f"invalid image size {video.image_size}")
    boxes = video.boxes
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.shape != (frames, persons, 4):
            return skip(f"boxes have shape {boxes.shape}, expected {(frames, persons, 4)}")
    return Video(video.video_id, kp, (height, width), labels, video.source, boxes)
