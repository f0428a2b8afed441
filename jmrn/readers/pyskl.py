"""PYSKL / MMAction2 skeleton annotation pickles (HMDB51, UCF101, NTU, Kinetics 2D skeletons).

File: ``{"split": {name: [frame_dir, ...]}, "annotations": [ann, ...]}`` (a bare list of
annotations is accepted too), each ``ann`` with ``frame_dir``, ``label`` (int), ``img_shape``
(H, W), ``keypoint`` (M, T, V, 2) pixels and ``keypoint_score`` (M, T, V). Some releases keep
the score as a third coordinate of ``keypoint``; that is accepted. Releases without
``keypoint`` (PYSKL's Kinetics-400 keeps keypoints in separate files) are rejected.

Options: ``file`` (pickle name inside raw_dir; default: its only ``.pkl``), ``class_names``
(text file, one class per line, index = line), ``layout`` (``auto`` picks a built-in layout
by joint count; or a built-in name, or the path of a layout YAML file). Integer coordinates
are cast to float32 (never wrapped).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from jmrn.layouts import get_layout
from jmrn.readers.common import class_names_from_file, find_single_file
from jmrn.records import ReadError, Skipped, SourceIndex, Video
from jmrn.safe_pickle import load_pickle

LAYOUT_BY_JOINTS = {15: "jhmdb15", 17: "coco17", 18: "openpose18", 25: "ntu25"}


def index(raw_dir: Path, options: dict) -> SourceIndex:
    path = find_single_file(raw_dir, options.get("file"), "*.pkl")
    data = load_pickle(path)
    if isinstance(data, dict) and "annotations" in data:
        annotations, splits = data["annotations"], data.get("split", {})
    elif isinstance(data, list):
        annotations, splits = data, {}
    else:
        raise ReadError(f"{path}: expected a dict with 'annotations' (and 'split') or a list "
                        f"of annotations, got {type(data).__name__}")  # fmt: skip
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise ReadError(f"{path}: 'split' must map split names to lists of frame_dir")
    if not annotations or not all(isinstance(a, dict) for a in annotations):
        raise ReadError(f"{path}: 'annotations' must be a non-empty list of dicts")
    if not any("keypoint" in a for a in annotations):
        raise ReadError(
            f"{path}: no annotation has 'keypoint'. This looks like a PYSKL release that keeps "
            "keypoints in separate files (e.g. Kinetics-400); merge them into the pickle first"
        )
    joint_counts = Counter(np.shape(a["keypoint"])[2] for a in annotations
                           if "keypoint" in a and np.ndim(a["keypoint"]) == 4)  # fmt: skip
    layout = options.get("layout") or "auto"
    common = joint_counts.most_common(1)[0][0] if joint_counts else None
    if layout == "auto":
        if common not in LAYOUT_BY_JOINTS:
            raise ReadError(f"{path}: {common} joints per person matches no built-in layout "
                            f"({', '.join(f'{v} = {n}' for v, n in LAYOUT_BY_JOINTS.items())}); "
                            "describe the skeleton in a layout YAML file and set the dataset's "
                            "source.layout to its path")  # fmt: skip
        layout = LAYOUT_BY_JOINTS[common]
    try:
        expected = get_layout(layout).num_joints
    except ValueError as err:
        raise ReadError(f"source.layout: {err}") from None
    if common is not None and common != expected:
        raise ReadError(f"{path}: the keypoints have {common} joints per person, but layout "
                        f"{layout!r} has {expected}")  # fmt: skip
    if options.get("class_names"):
        class_names = class_names_from_file(options["class_names"])
    else:
        labels = [int(a["label"]) for a in annotations if "label" in a]
        class_names = [f"class_{k}" for k in range(max(labels, default=-1) + 1)]
    entries = [dict(a, _source=f"{path}[{i}]") for i, a in enumerate(annotations)]
    splits = {str(k): [str(v) for v in vids] for k, vids in splits.items()}
    return SourceIndex(layout, class_names, False, splits, entries, parallel=False)


def load(entry: dict) -> Video | Skipped:
    source = entry["_source"]
    video_id = str(entry.get("frame_dir", source))
    for key in ("keypoint", "label"):
        if key not in entry and not (key == "label" and "labels" in entry):
            return Skipped(video_id, source, f"annotation has no '{key}'")
    kp = np.asarray(entry["keypoint"], dtype=np.float32)
    if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
        return Skipped(video_id, source, f"keypoint has shape {kp.shape}, expected (M, T, V, 2)")
    if "keypoint_score" in entry:
        score = np.asarray(entry["keypoint_score"], dtype=np.float32)
        if score.shape != kp.shape[:3]:
            return Skipped(video_id, source, f"keypoint_score has shape {score.shape}, "
                                             f"expected {kp.shape[:3]}")  # fmt: skip
    elif kp.shape[-1] == 3:
        score = kp[..., 2]
    else:
        return Skipped(video_id, source, "annotation has no 'keypoint_score'")
    shape = entry.get("img_shape", entry.get("original_shape"))
    if shape is None or len(shape) != 2:
        return Skipped(video_id, source, "annotation has no img_shape (H, W)")
    keypoints = np.concatenate([kp[..., :2], score[..., None]], axis=-1).transpose(1, 0, 2, 3)
    labels = tuple(entry["labels"]) if "labels" in entry else (int(entry["label"]),)
    return Video(video_id, keypoints, (int(shape[0]), int(shape[1])), labels,
                 source)  # fmt: skip
