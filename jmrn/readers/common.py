"""Small helpers shared by the readers."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jmrn.cli import show_value
from jmrn.records import ReadError

# More frames than any video has (an hour at 30 fps): a larger span is a bad frame number, and
# allocating it would exhaust memory instead of skipping one video.
MAX_FRAME_SPAN = 108_000


def class_names_from_file(path: str | Path) -> list[str]:
    """Class names, one per line (index = 0-based line). Blank lines at the end are ignored;
    one before a class is an error naming the line: skipping it would shift every later
    class by one, and keeping it would make an unnamed class."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"class list {path} does not exist")
    lines = [line.strip() for line in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if "" in lines:
        blank = lines.index("")
        after = next(i for i in range(blank, len(lines)) if lines[i])
        raise ReadError(f"class list {path}, line {blank + 1}: blank line before the class on "
                        f"line {after + 1} ({lines[after]!r}); the class index is the line "
                        "number, so remove the blank line (or name the class)")  # fmt: skip
    names = lines
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
        raise ReadError(f"image_size must be [height, width], got "
                        f"{show_value(value)}") from None  # fmt: skip
    if height <= 0 or width <= 0:
        raise ReadError(f"image_size must be positive [height, width], got "
                        f"{show_value(value)}")  # fmt: skip
    return height, width


FRAME_SIZES_LEFT_OUT = "frame_sizes rows matching no video"
NO_FRAME_SIZE = "no frame size for this video"
FRAME_SIZE_COLUMNS = ("video_id", "height", "width")
POSITIVE_INT = re.compile(r"^\d+$")


@dataclass(frozen=True)
class FrameSizes:
    """The (H, W) of each video's frames: its ``source.frame_sizes`` row, else the dataset's
    ``source.image_size``.

    Formats that do not record the frame size (OpenPose JSON) need it per video: clips of one
    dataset differ in size, and a wrong size puts joints off the frame and AVA boxes on the
    wrong pixels.
    """

    table: dict[str, tuple[int, int]]
    default: tuple[int, int] | None
    file: str | None  # the table's file name (for reasons), None without a table

    def of(self, video: str) -> tuple[int, int] | str:
        """(H, W) of ``video``, or the reason to skip it when neither source gives one."""
        size = self.table.get(video, self.default)
        if size is not None:
            return size
        return f"{NO_FRAME_SIZE}: not in {self.file} and no source.image_size"

    def left_out(self, videos: Iterable[str]) -> dict[str, int]:
        """How many table rows name none of ``videos`` (harmless, but a sign of a table made
        for other data); nothing without a table."""
        if self.file is None:
            return {}
        return {FRAME_SIZES_LEFT_OUT: len(self.table.keys() - set(videos))}


def frame_sizes_option(raw_dir: Path, options: dict) -> FrameSizes:
    """``source.frame_sizes`` (a table file inside raw_dir, so that DVC tracks it with the raw
    data) and ``source.image_size`` (the size of videos absent from it); one of them is
    required."""
    name = options.get("frame_sizes")
    if not name:
        if not options.get("image_size"):
            raise ReadError("source.image_size [height, width] or source.frame_sizes (a table "
                            "of each video's frame size in raw_dir) is required for this format: "
                            "its files do not record the frame size")  # fmt: skip
        return FrameSizes({}, image_size_option(options, None), None)
    if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ReadError(f"source.frame_sizes must be the name of a file inside raw_dir "
                        f"{raw_dir}, got {show_value(name)}")  # fmt: skip
    path = Path(raw_dir) / name
    if not path.is_file():
        raise ReadError(f"source.frame_sizes: {path} does not exist")
    default = image_size_option(options, None) if options.get("image_size") else None
    return FrameSizes(read_frame_sizes(path), default, path.name)


def read_frame_sizes(path: Path) -> dict[str, tuple[int, int]]:
    """video id -> (height, width) from a ``.csv`` (header naming ``video_id``, ``height`` and
    ``width`` in any order, other columns ignored) or a ``.json`` file (``{"<id>": [h, w]}``
    or ``{"<id>": {"height": h, "width": w}}``). Anything malformed is a ReadError naming the
    file and the line or video: one bad size would silently misplace a whole video."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise ReadError(f"frame sizes file {path}: expected a .csv or .json file")
    try:
        if path.suffix.lower() == ".json":
            sizes = _frame_sizes_json(path)
        else:
            sizes = _frame_sizes_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError) as err:
        raise ReadError(f"cannot read frame sizes file {path} ({type(err).__name__}: "
                        f"{err})") from None  # fmt: skip
    if not sizes:
        raise ReadError(f"frame sizes file {path} lists no video")
    return sizes


def _frame_size(path: Path, where: str, height: object, width: object) -> tuple[int, int]:
    """(height, width) as positive ints, from CSV text or JSON numbers."""
    size = []
    for key, value in (("height", height), ("width", width)):
        if isinstance(value, str) and POSITIVE_INT.match(value.strip()):
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ReadError(f"{path}, {where}: {key} must be a positive integer, got "
                            f"{show_value(value)}")  # fmt: skip
        size.append(value)
    return size[0], size[1]


def _frame_sizes_csv(path: Path) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    first_line: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's BOM
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        if any(header.count(c) != 1 for c in FRAME_SIZE_COLUMNS):
            raise ReadError(f"{path}, line 1: the header must name each of video_id, height "
                            f"and width once (any order), got {header}")  # fmt: skip
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            # a None key: more cells than the header; a None value: fewer (a truncated row)
            if None in row or None in row.values():
                cells = sum(v is not None for k, v in row.items() if k is not None)
                raise ReadError(f"{path}, line {line}: {cells + len(row.get(None, []))} "
                                f"cells, the header has {len(header)} columns")  # fmt: skip
            video = row["video_id"].strip()
            if not video:
                raise ReadError(f"{path}, line {line}: empty video_id")
            size = _frame_size(path, f"line {line} (video {video!r})", row["height"],
                               row["width"])  # fmt: skip
            if video in sizes:
                raise ReadError(f"{path}, line {line}: video {video!r} appears twice (first "
                                f"on line {first_line[video]})")  # fmt: skip
            sizes[video], first_line[video] = size, line
    return sizes


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """json object_pairs_hook: a repeated key is an error (json keeps the last one silently)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ReadError(f"video or key {key!r} appears twice")
        out[key] = value
    return out


def _frame_sizes_json(path: Path) -> dict[str, tuple[int, int]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except ReadError as err:
        raise ReadError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise ReadError(f"{path}: expected an object {{\"<video id>\": [height, width]}}, got "
                        f"{type(data).__name__}")  # fmt: skip
    sizes = {}
    for video, value in data.items():
        if isinstance(value, list) and len(value) == 2:
            height, width = value
        elif isinstance(value, dict) and "height" in value and "width" in value:
            height, width = value["height"], value["width"]
        else:
            raise ReadError(f"{path}, video {video!r}: expected [height, width] or "
                            f"{{\"height\": h, \"width\": w}}, got "
                            f"{show_value(value)}")  # fmt: skip
        if isinstance(height, str) or isinstance(width, str):  # "480": a quoted number
            raise ReadError(f"{path}, video {video!r}: height and width must be JSON integers, "
                            f"got {show_value(value)}")  # fmt: skip
        sizes[video] = _frame_size(path, f"video {video!r}", height, width)
    return sizes


def json_numbers(rows: list, text: str,
                 dtype: type = np.float32) -> np.ndarray | tuple[int | None, str]:  # fmt: skip
    """``rows`` (lists of values parsed from the JSON ``text``) as a float array, or (the row,
    what is wrong) where a value is not a JSON number. numpy would silently take
    ``true``/``false`` as 1/0, ``null`` as NaN and a quoted "12.5" as 12.5: coordinates that
    were never numbers."""
    try:
        array = np.asarray(rows)  # no dtype: text and null show in it, and ragged rows fail
    except (TypeError, ValueError) as error:
        return None, f"{type(error).__name__}: {error}"
    booleans = array.dtype.kind == "b" or (("true" in text or "false" in text) and any(
        type(v) is bool for row in rows for v in row))  # mixed with numbers: a float array
    if array.dtype.kind not in "iuf" or booleans:
        for k, row in enumerate(rows):
            bad = [v for v in row if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad:
                return k, f"{json.dumps(bad[0])[:40]} is not a JSON number"
    try:
        return array.astype(dtype)
    except (TypeError, ValueError, OverflowError) as error:
        return None, f"{type(error).__name__}: {error}"


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
        video_dirs = (p for p in (root / class_name).iterdir() if p.is_dir())
        for video_dir in sorted(video_dirs, key=lambda path: path.name):
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
