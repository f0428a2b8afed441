"""PYSKL / MMAction2 skeleton annotation pickles (HMDB51, UCF101, NTU, Kinetics 2D skeletons).

File: ``{"split": {name: [frame_dir, ...]}, "annotations": [ann, ...]}`` (a bare list of
annotations is accepted too), each ``ann`` with ``frame_dir``, ``label`` (int), ``img_shape``
(H, W), ``keypoint`` (M, T, V, 2) pixels and ``keypoint_score`` (M, T, V). Some releases keep
the score as a third coordinate of ``keypoint``; that is accepted. Releases without
``keypoint`` (PYSKL's Kinetics-400 keeps keypoints in separate files) are rejected.

A malformed annotation (not a dict, ``frame_dir`` not a string, ``label`` not an integer,
``img_shape`` not two positive integers, ``keypoint``/``keypoint_score`` not numeric arrays of
the right shapes) is a skip naming the field; its video id is its ``frame_dir`` or, without a
usable one, ``<file>[i]``. An annotation without ``frame_dir``, or with an empty (or blank)
one, is such a skip: a video without an id belongs to no split. ``index`` only reads what
parses (joint counts, integer labels).

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
from jmrn.records import (
    ReadError,
    Skipped,
    SourceIndex,
    Video,
    image_size_problem,
    is_integer,
    show,
)
from jmrn.safe_pickle import load_pickle

LAYOUT_BY_JOINTS = {15: "jhmdb15", 17: "coco17", 18: "openpose18", 25: "ntu25"}


def _joint_count(keypoint: object) -> int | None:
    """V of a well-formed (M, T, V, C) keypoint array, None for anything else (ragged lists,
    strings, dicts): ``index`` must not crash on what ``load`` will skip with a reason."""
    if isinstance(keypoint, np.ndarray):
        shape = keypoint.shape if keypoint.dtype != object else None
    else:
        try:
            shape = np.asarray(keypoint, dtype=np.float32).shape
        except (TypeError, ValueError):
            shape = None
    return shape[2] if shape is not None and len(shape) == 4 else None


def index(raw_dir: Path, options: dict) -> SourceIndex:
    if options.get("frame_sizes"):  # e.g. the hmdb preset (format auto) given a pickle
        raise ReadError("source.frame_sizes is for OpenPose keypoints: a PYSKL pickle's "
                        "img_shape gives each video's frame size; set it to null")  # fmt: skip
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
    if (not isinstance(annotations, list) or not annotations
            or not any(isinstance(a, dict) for a in annotations)):  # fmt: skip
        raise ReadError(f"{path}: 'annotations' must be a non-empty list of dicts")
    dicts = [a for a in annotations if isinstance(a, dict)]
    if not any("keypoint" in a for a in dicts):
        raise ReadError(
            f"{path}: no annotation has 'keypoint'. This looks like a PYSKL release that keeps "
            "keypoints in separate files (e.g. Kinetics-400); merge them into the pickle first"
        )
    joint_counts = Counter(_joint_count(a["keypoint"]) for a in dicts if "keypoint" in a)
    joint_counts.pop(None, None)
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
    else:  # non-integer labels are skipped by load(), so they do not count here
        labels = [a["label"] for a in dicts if is_integer(a.get("label")) and a["label"] >= 0]
        class_names = [f"class_{k}" for k in range(int(max(labels, default=-1)) + 1)]
    _check_label_conflicts(annotations, path, class_names)
    entries = [{"_annotation": a, "_source": f"{path}[{i}]"} if not isinstance(a, dict)
               else dict(a, _source=f"{path}[{i}]") for i, a in enumerate(annotations)]
    splits = {str(k): [str(v) for v in vids] for k, vids in splits.items()}
    return SourceIndex(layout, class_names, False, splits, entries, parallel=False)


def _check_label_conflicts(annotations: list, path: Path, class_names: list[str]) -> None:
    """The same frame_dir twice with different labels: which one is right cannot be known,
    and keeping the first (as a duplicate id would be) silently picks one. An error naming
    the video and both labels, as the other readers' "appears twice" errors."""
    first: dict[str, tuple[tuple[int, ...], int]] = {}
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not isinstance(ann.get("frame_dir"), str):
            continue
        if "label" not in ann and "labels" not in ann:
            continue
        labels = _labels(ann)
        if isinstance(labels, str):  # load() skips it with the reason
            continue
        labels = tuple(int(k) for k in labels)
        seen = first.setdefault(ann["frame_dir"], (labels, i))
        if seen[0] != labels:
            def named(ks: tuple[int, ...]) -> str:
                return ", ".join(f"{k} ({class_names[k]!r})" if 0 <= k < len(class_names)
                                 else str(k) for k in ks) or "none"  # fmt: skip
            raise ReadError(f"{path}: video {ann['frame_dir']!r} appears twice with different "
                            f"labels: {named(seen[0])} in annotation {seen[1]} and "
                            f"{named(labels)} in annotation {i}; keep one copy (or give them "
                            "different frame_dir)")  # fmt: skip


def _array(entry: dict, key: str) -> np.ndarray | str:
    """``entry[key]`` as float32, or why it is not a numeric array."""
    value = entry[key]
    if isinstance(value, (str, bytes, dict)) or value is None:
        return f"{key} is a {type(value).__name__}, not a numeric array"
    try:
        kind = np.asarray(value).dtype.kind  # no dtype: bools, text and objects show in it
    except (TypeError, ValueError) as error:  # ragged nested lists
        return f"{key} is not a numeric array ({type(error).__name__}: {error})"
    if kind not in "iuf":  # a cast would make True 1.0, None NaN and "12.5" 12.5
        return f"{key} is not a numeric array (dtype {np.asarray(value).dtype})"
    return np.asarray(value, dtype=np.float32)


def _labels(entry: dict) -> tuple[int, ...] | str:
    """The label(s) of an annotation, or why they are unusable (never int()-ed)."""
    if "labels" in entry:
        labels = entry["labels"]
        if not isinstance(labels, (list, tuple, np.ndarray)):
            return f"labels is not a list: {show(labels)}"
        bad = [v for v in labels if not is_integer(v)]
        return f"labels has a non-integer: {show(bad[0])}" if bad else tuple(labels)
    label = entry["label"]
    return (label,) if is_integer(label) else f"label is not an integer: {show(label)}"


def load(entry: dict) -> Video | Skipped:
    source = entry["_source"]
    if "_annotation" in entry:
        return Skipped(source, source, f"annotation is a {type(entry['_annotation']).__name__}, "
                                       "not a dict")  # fmt: skip
    if "frame_dir" not in entry:  # no id: it could be in no split, and made-up ids collide
        return Skipped(source, source, "annotation has no 'frame_dir' (the video id)")
    frame_dir = entry["frame_dir"]
    if not isinstance(frame_dir, str):
        return Skipped(source, source, f"frame_dir is not a string: {show(frame_dir)}")
    if not frame_dir.strip():
        return Skipped(source, source, f"empty frame_dir (the video id: {show(frame_dir)})")
    video_id = frame_dir

    def skip(reason: str) -> Skipped:
        return Skipped(video_id, source, reason)

    for key in ("keypoint", "label"):
        if key not in entry and not (key == "label" and "labels" in entry):
            return skip(f"annotation has no '{key}'")
    labels = _labels(entry)
    if isinstance(labels, str):
        return skip(labels)
    kp = _array(entry, "keypoint")
    if isinstance(kp, str):
        return skip(kp)
    if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
        return skip(f"keypoint has shape {kp.shape}, expected (M, T, V, 2)")
    if "keypoint_score" in entry:
        score = _array(entry, "keypoint_score")
        if isinstance(score, str):
            return skip(score)
        if score.shape != kp.shape[:3]:
            return skip(f"keypoint_score has shape {score.shape}, expected {kp.shape[:3]}")
    elif kp.shape[-1] == 3:
        score = kp[..., 2]
    else:
        return skip("annotation has no 'keypoint_score'")
    key = "img_shape" if "img_shape" in entry else "original_shape"
    if key not in entry:
        return skip("annotation has no img_shape (H, W)")
    problem = image_size_problem(entry[key])
    if problem:
        return skip(f"invalid image size: {key} {problem}")
    height, width = (int(s) for s in entry[key])
    keypoints = np.concatenate([kp[..., :2], score[..., None]], axis=-1).transpose(1, 0, 2, 3)
    return Video(video_id, keypoints, (height, width), labels, source)
