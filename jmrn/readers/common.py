"""Small helpers shared by the readers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from jmrn.records import ReadError

# More frames than any video has (an hour at 30 fps): a larger span is a bad frame number, and
# allocating it would exhaust memory instead of skipping one video.
MAX_FRAME_SPAN = 108_000


def class_names_from_file(path: str | Path) -> list[str]:
    """Class names, one per line (index = 0-based line); blank lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"class list {path} does not exist")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ReadError(f"class list {path} is empty")
    if len(set(names)) != len(names):
        raise ReadError(f"class list {path} names a class twice")
    return names


def find_single_file(raw_dir: Path, name: str | None, pattern: str) -> Path:
    """``raw_dir/name`` if given, else the only file matching ``pattern`` in ``raw_dir``."""
    raw_dir = Path(raw_dir)
    if name:
        path = raw_dir / name
        if not path.is_file():
            raise ReadError(f"{path} does not exist")
        return path
    found = sorted(raw_dir.glob(pattern))
    if len(found) != 1:
        raise ReadError(f"expected exactly one {pattern} in {raw_dir}, found "
                        f"{[p.name for p in found] or 'none'}; set the dataset's source.file")
    return found[0]


def image_size_option(options: dict, default: tuple[int, int] | None) -> tuple[int, int]:
    """``options["image_size"]`` as (H, W); absent without a default or malformed: ReadError."""
    value = options.get("image_size") or default
    if value is None:
        raise ReadError("source.image_size [height, width] is required for this format: its "
                        "files do not record the frame size")  # fmt: skip
    try:
        height, width = (int(s) for s in value)
    except (TypeError, ValueError):
        raise ReadError(f"image_size must be [height, width], got {value!r}") from None
    if height <= 0 or width <= 0:
        raise ReadError(f"image_size must be positive [height, width], got {value!r}")
    return height, width


def pack_persons(frame_of: np.ndarray, persons: np.ndarray, num_frames: int) -> np.ndarray:
    """Scatter persons ``(N, V, 3)`` of frames ``frame_of`` (N,) into ``(T, M, V, 3)``.

    Persons are untracked detections, so their order within a frame carries no identity; the
    most confident comes first (stable for ties), which is what ST-GCN's feeder does. Slots of
    frames with fewer persons, and frames with none, stay zero (= missing).
    """
    num_joints = persons.shape[1]
    if len(persons) == 0:
        return np.zeros((num_frames, 0, num_joints, 3), dtype=np.float32)
    order = np.lexsort((-persons[..., 2].mean(axis=1), frame_of))  # lexsort is stable
    frames = frame_of[order]
    slots = np.arange(len(order)) - np.searchsorted(frames, frames, side="left")
    out = np.zeros((num_frames, int(slots.max()) + 1, num_joints, 3), dtype=np.float32)
    out[frames, slots] = persons[order]
    out[..., :2][out[..., 2] == 0] = 0.0  # a joint with confidence 0 is missing: no position
    return out


def class_folder_videos(root: Path, options: dict, exclude: tuple[str, ...] = ()):
    """Videos laid out as ``root/<class>/<video>/``: the class list and one entry per video.

    Class names come from ``options["class_names"]`` (a file) or the sorted class folders;
    a video of a folder absent from that list gets label None (the reader skips it as an
    unknown label). Video ids are the folder names and must be unique across classes.
    Returns (class_names, entries) with entries ``{"video_id", "dir", "class_name", "label"}``.
    """
    class_dirs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in exclude)
    if options.get("class_names"):
        class_names = class_names_from_file(options["class_names"])
    else:
        class_names = class_dirs
    label_of = {name: k for k, name in enumerate(class_names)}
    entries, seen = [], {}
    for class_name in class_dirs:
        for video_dir in sorted(p for p in (root / class_name).iterdir() if p.is_dir()):
            if video_dir.name in seen:
                raise ReadError(f"video id {video_dir.name!r} appears twice: "
                                f"{seen[video_dir.name]} and {video_dir}")  # fmt: skip
            seen[video_dir.name] = video_dir
            entries.append({"video_id": video_dir.name, "dir": str(video_dir),
                            "class_name": class_name, "label": label_of.get(class_name)})
    if not entries:
        raise ReadError(f"no video folders found in {root}/<class>/")
    return class_names, entries


SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>\d+)\.txt$")
SPLIT_LINE = re.compile(r"^(?P<video>\S+?)(?:\.avi)?\s+(?P<mark>[012])$")


def read_test_split_files(split_dir: Path, class_dirs: list[str]) -> dict[str, list[str]]:
    """``train<k>``/``test<k>`` video ids from every ``<class>_test_split<k>.txt`` (the split
    files of HMDB51 and JHMDB: lines ``<video>.avi 1`` train, ``2`` test, ``0`` unused).

    A split number that lacks the file of some class on disk would silently drop that class
    from the split, so it is an error rather than a partial split.
    """
    if not split_dir.is_dir():
        raise ReadError(f"split directory {split_dir} does not exist")
    files: dict[int, dict[str, Path]] = {}
    for path in sorted(split_dir.iterdir()):
        match = SPLIT_FILE.match(path.name)
        if match and path.is_file():
            files.setdefault(int(match["k"]), {})[match["cls"]] = path
    if not files:
        raise ReadError(f"no <class>_test_split<k>.txt files in {split_dir}")
    splits: dict[str, list[str]] = {}
    for k in sorted(files):
        lacking = [c for c in class_dirs if c not in files[k]]
        if lacking:
            raise ReadError(
                f"split {k}: no split file for class(es) {lacking} "
                f"(expected e.g. {split_dir / f'{lacking[0]}_test_split{k}.txt'})"
            )
        train, test = [], []
        for path in files[k].values():
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                match = SPLIT_LINE.match(line.strip())
                if not match:
                    raise ReadError(
                        f"{path}, line {number}: expected '<video>.avi 1' (train) "
                        f"or '<video>.avi 2' (test), got {line.strip()!r}"
                    )
                if match["mark"] == "1":
                    train.append(match["video"])
                elif match["mark"] == "2":
                    test.append(match["video"])
        splits[f"train{k}"], splits[f"test{k}"] = sorted(train), sorted(test)
    return splits
