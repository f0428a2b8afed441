"""OpenPose ``--write_json`` output: one folder of per-frame JSON files per video.

On disk::

    raw_dir/<class>/<video>/<anything>_<frame:012d>_keypoints.json
    raw_dir/splits/<split_name>.txt        optional, one video id per line, or HMDB51's own
    raw_dir/splits/<class>_test_split<k>.txt   lines "<video>.avi 1|2|0" (train, test, unused),
                                               giving splits train<k> and test<k>; the folder
                                               may have another name (HMDB's archive unpacks
                                               to testTrainMulti_7030_splits/) or be raw_dir

Each frame file is ``{"version": ..., "people": [{"pose_keypoints_2d": [x0, y0, c0, ...]},
...]}`` with x, y in pixels and ``people`` possibly empty (OpenPose 1.0's ``pose_keypoints``
key is accepted too). A missing joint is ``0, 0, 0``. 54 numbers per person is the COCO-18
model (layout ``openpose18``), 75 is BODY_25 (``openpose_body25``). The frame number is the
last run of digits before ``_keypoints.json``; T spans the first to the last frame number, and
frames without a file get zero confidence (empty frames: ingest counts them, and skips a
video mostly empty or with one run of them longer than its frames with a pose, the sign of a
stray frame number; ``jmrn.records.MAX_EMPTY_FRACTION``). Persons are not tracked by
OpenPose, so within each frame they are ordered by mean confidence, descending (ST-GCN's
rule); M is the most persons in any frame. Confidences slightly above 1 (real output) are
left for ``check_video`` to clip.

The video id is the video folder name (it must be unique across classes), the label the index
of its class folder. Without a ``splits`` folder every video is in one split, ``all`` (a class
folder cannot be named ``splits``). A video listed in a split file but absent on disk stays in
the split (ingest counts it as missing).

Options: ``image_size`` ([H, W] of every video's frames: OpenPose JSON does not record the
frame size), ``frame_sizes`` (a file in raw_dir giving each video folder's own frame size,
``jmrn.readers.common.read_frame_sizes``; a video absent from it gets ``image_size``, or is
skipped without one; one of the two options is required),
``class_names`` (text file, one class per line, index = line; default: the sorted class folder
names; videos of a class folder absent from the file are skipped), ``layout`` (``auto``, the
default, detects it from the first person found in the first frame files, which is cheap; a
built-in name or a layout YAML file for other models; a video whose persons have another
number of values is skipped).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from jmrn.layouts import get_layout
from jmrn.readers.common import (
    MAX_FRAME_SPAN,
    SPLIT_FILE,
    class_folder_videos,
    frame_sizes_option,
    json_numbers,
    pack_persons,
    read_test_split_files,
)
from jmrn.records import ReadError, Skipped, SourceIndex, Video

LAYOUT_BY_VALUES = {54: "openpose18", 75: "openpose_body25"}
FRAME_SUFFIX = "_keypoints.json"
FRAME_NUMBER = re.compile(r"(\d+)\D*$")  # the last run of digits
SPLIT_DIR = "splits"
DETECT_MAX_FILES = 50  # frame files opened at most to detect the layout


def layout_option(options: dict) -> str | None:
    """The layout forced by ``options["layout"]`` (a built-in name or a layout YAML file, for
    a model with other joints than OpenPose's), or None for ``auto``."""
    layout = options.get("layout") or "auto"
    if layout == "auto":
        return None
    try:
        get_layout(layout)
    except ValueError as err:
        raise ReadError(f"source.layout: {err}") from None
    return layout


def person_values(person: object) -> object:
    """The flat keypoint list of one person (key of OpenPose >= 1.2, or of 1.0)."""
    if not isinstance(person, dict):
        return None
    return person.get("pose_keypoints_2d", person.get("pose_keypoints"))


def _frame_files(video_dir: Path) -> list[Path]:
    return sorted(video_dir.glob("*" + FRAME_SUFFIX), key=lambda path: path.name)


def frame_numbers(files: list[Path]) -> list[int] | str:
    """The frame number of each frame file (its last digits before the suffix), or why the
    files cannot be used.

    Every reason, here and in ``read_people``, starts with a fixed kind and puts the file
    name and numbers after it in parentheses: ingest counts skips by that kind."""
    numbers = []
    for path in files:
        match = FRAME_NUMBER.search(path.name[: -len(FRAME_SUFFIX)])
        if match is None:
            return (f"frame file name without a frame number ({path.name}: no digits before "
                    f"{FRAME_SUFFIX})")  # fmt: skip
        numbers.append(int(match.group(1)))
    if len(set(numbers)) != len(numbers):
        first = {}
        for number, path in zip(numbers, files, strict=True):
            if number in first:
                return (f"two frame files have the same frame number ({number} in "
                        f"{first[number].name} and {path.name})")  # fmt: skip
            first[number] = path
    return numbers


def read_people(path: Path, entry: dict) -> np.ndarray | str:
    """(P, V, 3) float32 poses of one frame file, checked against the entry's layout
    (``entry["values"]`` per person), or why the file cannot be used. Shared by every reader
    of OpenPose output."""
    try:
        text = path.read_text()
        data = json.loads(text)
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError
        return f"cannot parse a frame file ({path.name}: {type(error).__name__}: {error})"
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        return f"no 'people' list in a frame file ({path.name})"
    values = []
    for k, person in enumerate(people):
        flat = person_values(person)
        if not isinstance(flat, list):
            return f"no pose_keypoints_2d list for a person ({path.name}, person {k})"
        if len(flat) != entry["values"]:
            found = LAYOUT_BY_VALUES.get(len(flat), "no known layout")
            return (f"person with another layout's number of values ({path.name}, person {k} "
                    f"has {len(flat)} values = {found}; the dataset's layout "
                    f"{entry['layout']} has {entry['values']})")  # fmt: skip
        values.append(flat)
    poses = json_numbers(values, text)
    if isinstance(poses, tuple):  # text, true/false or null among the numbers
        k, problem = poses
        return (f"non-numeric keypoint values ({path.name}"
                f"{'' if k is None else f', person {k}'}: {problem})")  # fmt: skip
    return poses.reshape(len(values), entry["values"] // 3, 3)


def detect_layout(entries: list[dict]) -> str:
    """Layout from the first person found, opening as few frame files as possible."""
    opened = 0
    for entry in entries:
        for path in _frame_files(Path(entry["dir"])):
            if opened >= DETECT_MAX_FILES:
                break
            opened += 1
            try:
                people = json.loads(path.read_text()).get("people") or []
            except (OSError, ValueError, AttributeError):
                continue  # a damaged file: that video is skipped in load
            for person in people:
                values = person_values(person)
                if isinstance(values, list) and values:
                    if len(values) not in LAYOUT_BY_VALUES:
                        raise ReadError(
                            f"{path}: {len(values)} values per person matches no OpenPose "
                            "layout (54 = COCO-18, 75 = BODY_25); set the dataset's source.layout"
                        )
                    return LAYOUT_BY_VALUES[len(values)]
        if opened >= DETECT_MAX_FILES:
            break
    raise ReadError(f"no person in the first {opened} frame files of {entries[0]['dir']} and "
                    "after; cannot detect the layout: set the dataset's source.layout")  # fmt: skip


def set_layout(entries: list[dict], options: dict) -> str:
    """The layout of OpenPose frame files, forced by ``options`` or detected from the first
    ones, written into every entry with its values per person (``load`` checks them); the
    readers of datasets shipped as OpenPose output (Charades, AVA) share it."""
    layout = layout_option(options) or detect_layout(entries)
    values = 3 * get_layout(layout).num_joints
    for entry in entries:
        entry["layout"], entry["values"] = layout, values
    return layout


def _read_splits(split_dir: Path) -> dict[str, list[str]]:
    files = sorted(p for p in split_dir.glob("*.txt") if p.is_file())
    if not files:
        raise ReadError(f"split directory {split_dir} has no <split_name>.txt files")
    splits = {}
    for path in files:
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            raise ReadError(f"split file {path} lists no video")
        splits[path.stem] = ids
    return splits


def _hmdb_split_dir(raw_dir: Path) -> Path | None:
    """Where HMDB's ``<class>_test_split<k>.txt`` files are: raw_dir itself, or the one folder
    directly under it that holds them (``splits/``, or ``testTrainMulti_7030_splits/`` as
    HMDB's archive unpacks); None if there are none."""
    def has_split_files(folder: Path) -> bool:
        return any(SPLIT_FILE.match(p.name) for p in folder.glob("*_test_split*.txt"))

    if has_split_files(raw_dir):
        return raw_dir
    found = [p for p in sorted(raw_dir.iterdir()) if p.is_dir() and has_split_files(p)]
    if len(found) > 1:
        raise ReadError(f"HMDB split files in several folders: {[str(p) for p in found]}")
    return found[0] if found else None


def index(raw_dir: Path, options: dict) -> SourceIndex:
    """Class and video folders, split files, and the few frame files the layout needs."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ReadError(f"raw directory {raw_dir} does not exist")
    sizes = frame_sizes_option(raw_dir, options)
    hmdb_split_dir = _hmdb_split_dir(raw_dir)
    exclude = (SPLIT_DIR,) + ((hmdb_split_dir.name,) if hmdb_split_dir else ())
    class_names, entries = class_folder_videos(raw_dir, options, exclude=exclude)
    for entry in entries:
        entry["image_size"] = sizes.of(entry["video_id"])  # (H, W), or why there is none
    layout = set_layout(entries, options)
    split_dir = raw_dir / SPLIT_DIR
    if hmdb_split_dir is not None:
        classes = sorted({e["class_name"] for e in entries})
        splits = read_test_split_files(hmdb_split_dir, classes)
    elif split_dir.is_dir():
        splits = _read_splits(split_dir)
    else:
        splits = {"all": [entry["video_id"] for entry in entries]}
    return SourceIndex(layout, class_names, False, splits, entries, parallel=True,
                       left_out=sizes.left_out(e["video_id"] for e in entries))  # fmt: skip


def load(entry: dict) -> Video | Skipped:
    """One video folder's frame files as (T, M, V, 3), or why it cannot be used."""
    video_id, source = entry["video_id"], entry["dir"]

    def skip(reason: str) -> Skipped:
        return Skipped(video_id, source, reason)

    if entry.get("label") is None and "labels" not in entry:
        return skip(f"unknown label: class folder {entry['class_name']!r} is not in the "
                    "class list")  # fmt: skip
    if isinstance(entry["image_size"], str):  # in neither source.frame_sizes nor image_size
        return skip(entry["image_size"])
    files = _frame_files(Path(source))
    if not files:
        return skip(f"no *{FRAME_SUFFIX} frame files in the video folder")
    numbers = frame_numbers(files)
    if isinstance(numbers, str):
        return skip(numbers)
    frame_of, poses = [], []
    for number, path in zip(numbers, files, strict=True):
        people = read_people(path, entry)
        if isinstance(people, str):
            return skip(people)
        poses.append(people)
        frame_of += [number] * len(people)
    persons = np.concatenate(poses)
    first = min(numbers)
    if max(numbers) - first + 1 > MAX_FRAME_SPAN:
        return skip(f"frame numbers span more than {MAX_FRAME_SPAN} frames ({first}.."
                    f"{max(numbers)})")  # fmt: skip
    keypoints = pack_persons(np.asarray(frame_of, dtype=np.int64) - first, persons,
                             max(numbers) - first + 1)  # fmt: skip
    # "labels": multi-hot datasets (Charades) give the label set of the video themselves
    labels = tuple(entry["labels"]) if "labels" in entry else (entry["label"],)
    return Video(video_id, keypoints, tuple(entry["image_size"]), labels, source)
