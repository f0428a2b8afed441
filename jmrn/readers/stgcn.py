"""ST-GCN's Kinetics-skeleton JSON: one file per video, OpenPose poses normalised to [0, 1].

On disk (the layout of ST-GCN's ``kinetics-skeleton`` release)::

    raw_dir/<split>/<video_id>.json
    raw_dir/<split>_label.json        optional: {video_id: {"has_skeleton": bool,
                                                            "label": name, "label_index": int}}

A video file is ``{"data": [{"frame_index": i, "skeleton": [{"pose": [x0, y0, ...],
"score": [c0, ...]}, ...]}, ...], "label": name, "label_index": int}`` with x, y divided by
the frame width and height. A pose of 36 numbers is OpenPose COCO-18 (layout ``openpose18``),
50 is BODY_25 (``openpose_body25``); a video with another length, or with another layout than
the dataset's, is skipped. Frame indices may start at 0 or 1 and have gaps: T spans the first
to the last index and missing frames get zero confidence. A negative frame_index is skipped
(no frame has one); a stray large one leaves a long run of empty frames, which ingest skips
(``jmrn.records.MAX_EMPTY_FRACTION``). A joint with score 0 is missing.
Persons are untracked, so within each frame they are ordered by confidence, descending (the
rule of ST-GCN's feeder); M is the most persons in any frame. ``data: []`` is skipped as an
empty sequence, ``label_index`` -1 (or absent) as an unknown label.

Split names are the folder names. The label of a video comes from its split's label file when
that file lists it (it takes precedence), else from the video file itself.

Options: ``image_size`` ([H, W] the poses were normalised by; default [256, 340], the size
ST-GCN resized Kinetics to), ``class_names`` (text file, one class per line, index = line;
checked against the names in the label files), ``layout`` (``auto``, the default, detects it
from the first non-empty video files; ``openpose18`` when none is found). Without
``class_names`` the class list is built from the (label_index, label) pairs of the label
files; with neither, ``index`` reads the label of every video file (slow on a large dataset:
give ``class_names`` instead). ``subset_classes`` (text file of class names, e.g. Mimetics'
50 Kinetics classes) keeps only the videos of those classes, renumbered in that file's order
and matched by name (so another release's label indices, such as Mimetics', need not be
Kinetics'); the others are left out before loading and counted in the report, and a name
matching no class of the data is an error. A video whose label file entry says
``has_skeleton: false`` is skipped without being opened.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jmrn.cli import show_value
from jmrn.layouts import get_layout
from jmrn.readers.common import (
    MAX_FRAME_SPAN,
    class_names_from_file,
    image_size_option,
    json_numbers,
    pack_persons,
)
from jmrn.readers.openpose import layout_option
from jmrn.records import ReadError, Skipped, SourceIndex, Video

DEFAULT_IMAGE_SIZE = (256, 340)
LAYOUT_BY_POSE_LENGTH = {36: "openpose18", 50: "openpose_body25"}
DEFAULT_LAYOUT = "openpose18"  # the Kinetics-skeleton release is COCO-18
DETECT_MAX_FILES = 20  # video files opened at most to detect the layout


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _normalise(name: str) -> str:
    """Class names compare equal up to case and ``_`` vs space (label files and lists differ)."""
    return " ".join(name.replace("_", " ").lower().split())


def _read_label_file(path: Path) -> dict[str, dict]:
    try:
        labels = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ReadError(f"label file {path} cannot be read ({error})") from None
    if not isinstance(labels, dict) or not all(isinstance(v, dict) for v in labels.values()):
        raise ReadError(f"label file {path} must map video ids to "
                        '{"label": name, "label_index": int, ...}')  # fmt: skip
    return labels


def _peek(path: Path) -> dict:
    """A video file's label and pose length (None where absent or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    pose_length = None
    for frame in data.get("data") or []:
        skeletons = frame.get("skeleton") if isinstance(frame, dict) else None
        for skeleton in skeletons or []:
            pose = skeleton.get("pose") if isinstance(skeleton, dict) else None
            if isinstance(pose, list) and pose:
                pose_length = len(pose)
                break
        if pose_length:
            break
    return {"label": data.get("label"), "label_index": data.get("label_index"),
            "pose_length": pose_length}  # fmt: skip


def _class_names(pairs: list[tuple[int, object, str]], options: dict) -> list[str]:
    """The class list from the option, checked against the labelled pairs, or built from them.

    pairs: (label_index, label name or None, where it was read). A name that maps to two
    indices (or the reverse), or an index missing from a built list, means the labels cannot
    be trusted, so it is an error rather than a guess.
    """
    if options.get("class_names"):
        class_names = class_names_from_file(options["class_names"])
        for k, name, where in pairs:
            if k >= len(class_names):
                raise ReadError(
                    f"{where}: label_index {k}, but the class list "
                    f"{options['class_names']} has {len(class_names)} classes"
                )
            if isinstance(name, str) and _normalise(name) != _normalise(class_names[k]):
                raise ReadError(f"{where}: label_index {k} is {name!r}, but line {k + 1} of "
                                f"the class list {options['class_names']} is "
                                f"{class_names[k]!r}")  # fmt: skip
        return class_names
    names: dict[int, str] = {}
    first_seen: dict[int, str] = {}
    for k, name, where in pairs:
        if not isinstance(name, str):
            continue
        first_seen.setdefault(k, where)
        if names.setdefault(k, name) != name:
            raise ReadError(f"{where}: label_index {k} is {name!r}, but {names[k]!r} in "
                            f"{first_seen[k]}")  # fmt: skip
    if not names:
        raise ReadError(
            "no class list: no label file or video file names a label with a "
            "label_index >= 0; set the dataset's source.class_names"
        )
    by_name: dict[str, int] = {}
    for k, name in names.items():
        if by_name.setdefault(name, k) != k:
            raise ReadError(f"class {name!r} has two label indices, {by_name[name]} and {k}")
    gaps = sorted(set(range(max(names) + 1)) - set(names))
    if gaps:
        raise ReadError(f"the labels name no class for label_index {gaps[:10]}"
                        f"{' ...' if len(gaps) > 10 else ''}: the class list cannot be built; "
                        "set the dataset's source.class_names")  # fmt: skip
    return [names[k] for k in range(len(names))]


def index(raw_dir: Path, options: dict) -> SourceIndex:
    """Split folders and label files; video files are opened only to detect the layout.

    Exception (documented in the module): without label files and ``class_names``, every
    video file is read for its label, the only place the class list can come from.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ReadError(f"raw directory {raw_dir} does not exist")
    image_size = image_size_option(options, DEFAULT_IMAGE_SIZE)
    layout = layout_option(options)
    split_files = {
        p.name: sorted(p.glob("*.json"), key=lambda path: path.name)  # not Path order: 5x slower
        for p in sorted(raw_dir.iterdir())
        if p.is_dir()
    }
    split_files = {name: files for name, files in split_files.items() if files}
    if not split_files:
        raise ReadError(f"no <split>/<video_id>.json files in {raw_dir}")
    entries, splits, seen, pairs = [], {}, {}, []
    labelled: dict[str, tuple[object, Path]] = {}  # video id -> (label_index, label file)
    has_label_files = False
    for split, files in split_files.items():
        label_path = raw_dir / f"{split}_label.json"
        labels = _read_label_file(label_path) if label_path.is_file() else {}
        has_label_files |= label_path.is_file()
        for video_id, info in labels.items():
            k = info.get("label_index")
            if _is_index(k) and k >= 0:
                pairs.append((k, info.get("label"), f"{label_path} [{video_id!r}]"))
            first = labelled.setdefault(video_id, (k, label_path))
            if first[0] != k:  # the same video in two label files: which label is right?
                raise ReadError(f"video {video_id!r} appears twice with different labels: "
                                f"label_index {show_value(first[0])} in {first[1]} and "
                                f"{show_value(k)} in "
                                f"{label_path}")  # fmt: skip
        for path in files:
            if path.stem in seen:
                raise ReadError(f"video id {path.stem!r} appears twice: {seen[path.stem]} "
                                f"and {path}")  # fmt: skip
            seen[path.stem] = path
            info = labels.get(path.stem)
            entries.append({
                "video_id": path.stem,
                "path": str(path),
                "in_label_file": info is not None,
                "label": info.get("label_index") if info is not None else None,
                "label_name": info.get("label") if info is not None else None,
                "has_skeleton": info.get("has_skeleton", True) if info is not None else True,
                "image_size": image_size,
            })  # fmt: skip
        splits[split] = sorted({p.stem for p in files} | set(labels))
    peeked = 0
    if not has_label_files and not options.get("class_names"):
        for entry in entries:  # documented fallback: read every video's own label
            info = _peek(Path(entry["path"]))
            k = info.get("label_index")
            if _is_index(k) and k >= 0:
                pairs.append((k, info.get("label"), entry["path"]))
            if layout is None and info.get("pose_length") in LAYOUT_BY_POSE_LENGTH:
                layout = LAYOUT_BY_POSE_LENGTH[info["pose_length"]]
        peeked = DETECT_MAX_FILES  # every file was looked at: no second pass for the layout
    for entry in entries:
        if layout is not None or peeked >= DETECT_MAX_FILES:
            break
        peeked += 1
        length = _peek(Path(entry["path"])).get("pose_length")
        layout = LAYOUT_BY_POSE_LENGTH.get(length)
    layout = layout or DEFAULT_LAYOUT
    left_out = {}
    if options.get("subset_classes"):
        class_names, entries, splits, left_out = _keep_subset(options, pairs, entries, splits)
    else:
        class_names = _class_names(pairs, options)
    num_joints = get_layout(layout).num_joints
    for entry in entries:
        entry["layout"], entry["num_joints"] = layout, num_joints
    return SourceIndex(layout, class_names, False, splits, entries, parallel=True,
                       left_out=left_out)  # fmt: skip


def _keep_subset(options: dict, pairs: list, entries: list[dict], splits: dict):
    """Keep the videos of the classes named in ``options["subset_classes"]`` (e.g. the 50
    Kinetics classes of Mimetics), renumbered in that file's order, matched by *name* (the
    label indices of another release, such as Mimetics', need not be Kinetics'). A name that
    matches no class of the data (``class_names``, or else the label files) is an error."""
    subset_path = options["subset_classes"]
    subset = class_names_from_file(subset_path)
    if options.get("class_names"):
        known, source = class_names_from_file(options["class_names"]), options["class_names"]
    else:
        known, source = [n for _, n, _ in pairs if isinstance(n, str)], "the label files"
    known_set = {_normalise(n) for n in known}
    unknown = [n for n in subset if _normalise(n) not in known_set]
    if unknown:
        raise ReadError(f"{subset_path}: {len(unknown)} class name(s) match no class of "
                        f"{source} (first: {unknown[0]!r}); names compare up to case and "
                        "'_' vs ' '")  # fmt: skip
    index_of = {_normalise(n): k for k, n in enumerate(subset)}
    kept, left_out = [], 0
    for entry in entries:
        if entry["label_name"] is None:  # not in a label file: load() maps the file's name
            kept.append({**entry, "subset": index_of})
            continue
        k = index_of.get(_normalise(str(entry["label_name"])))
        if k is None:
            left_out += 1
        else:
            kept.append({**entry, "label": k})
    ids = {entry["video_id"] for entry in kept}
    splits = {name: [v for v in videos if v in ids] for name, videos in splits.items()}
    return subset, kept, splits, {"class not in source.subset_classes": left_out}


def load(entry: dict) -> Video | Skipped:
    """One video file as (T, M, V, 3) pixels, or why it cannot be used."""
    video_id, source = entry["video_id"], entry["path"]

    def skip(reason: str) -> Skipped:
        return Skipped(video_id, source, reason)

    if not entry.get("has_skeleton", True):
        return skip("has_skeleton is false in its label file")
    try:
        text = Path(source).read_text()
        data = json.loads(text)
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError
        return skip(f"cannot parse the JSON file ({type(error).__name__}: {error})")
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return skip("the JSON file has no 'data' list of frames")
    if not data["data"]:
        return skip("empty sequence ('data' has no frames)")
    label = entry["label"] if entry["in_label_file"] else data.get("label_index")
    if "subset" in entry:  # subset_classes, a video without a label file entry: by name
        label = entry["subset"].get(_normalise(str(data.get("label"))))
        if label is None:
            return skip(f"label {data.get('label')!r} is not in source.subset_classes")
    if not _is_index(label) or label < 0:
        where = "its label file entry" if entry["in_label_file"] else "the video file"
        return skip(f"unknown label (label_index {label!r} in {where})")
    num_joints = entry["num_joints"]
    frame_numbers, frame_of, poses, scores = [], [], [], []
    for f, frame in enumerate(data["data"]):
        if not isinstance(frame, dict) or not _is_index(frame.get("frame_index")):
            return skip(f"frame {f} has no integer frame_index")
        skeletons = frame.get("skeleton")
        if not isinstance(skeletons, list):
            return skip(f"frame_index {frame['frame_index']} has no 'skeleton' list")
        frame_numbers.append(frame["frame_index"])
        for m, skeleton in enumerate(skeletons):
            pose = skeleton.get("pose") if isinstance(skeleton, dict) else None
            score = skeleton.get("score") if isinstance(skeleton, dict) else None
            if not isinstance(pose, list) or not isinstance(score, list):
                return skip(f"frame_index {frame['frame_index']}, skeleton {m}: no pose/score "
                            "lists")  # fmt: skip
            if len(pose) != 2 * num_joints or len(score) != num_joints:
                found = LAYOUT_BY_POSE_LENGTH.get(len(pose), "no known layout")
                return skip(f"frame_index {frame['frame_index']}, skeleton {m}: pose has "
                            f"{len(pose)} values ({found}) and score {len(score)}; the "
                            f"dataset's layout {entry['layout']} needs {2 * num_joints} and "
                            f"{num_joints}")  # fmt: skip
            poses.append(pose)
            scores.append(score)
            frame_of.append(frame["frame_index"])
    if len(set(frame_numbers)) != len(frame_numbers):
        return skip("a frame_index appears twice")
    if min(frame_numbers) < 0:  # not a frame of the video: it would insert empty frames
        return skip(f"negative frame_index ({min(frame_numbers)})")
    pose_array, score_array = json_numbers(poses, text, np.float64), json_numbers(scores, text)
    for name, array in (("pose", pose_array), ("score", score_array)):
        if isinstance(array, tuple):  # text, true/false or null among the numbers
            k, problem = array
            where = "" if k is None else f"frame_index {frame_of[k]}, "
            return skip(f"non-numeric pose or score values ({where}{name}: {problem})")
    pose_array = pose_array.reshape(len(poses), num_joints, 2)
    score_array = score_array.reshape(len(scores), num_joints, 1)
    height, width = entry["image_size"]
    xy = (pose_array * (width, height)).astype(np.float32)  # normalised -> source pixels
    persons = np.concatenate([xy, score_array], axis=-1)
    first = min(frame_numbers)
    if max(frame_numbers) - first + 1 > MAX_FRAME_SPAN:
        return skip(f"frame_index {first}..{max(frame_numbers)} spans more than "
                    f"{MAX_FRAME_SPAN} frames")  # fmt: skip
    keypoints = pack_persons(np.asarray(frame_of, dtype=np.int64) - first, persons,
                             max(frame_numbers) - first + 1)  # fmt: skip
    return Video(video_id, keypoints, (height, width), (label,), source)
