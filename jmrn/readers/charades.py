"""Charades (multi-label): the official annotation CSVs, with keypoints from OpenPose JSON
folders per video or from a PYSKL-style pickle.

On disk::

    raw_dir/Charades_v1_classes.txt     157 lines "c000 Holding some clothes"
    raw_dir/Charades_v1_train.csv       columns id, ..., actions  -> split "train"
    raw_dir/Charades_v1_test.csv        the same                  -> split "test"
    raw_dir/openpose/<id>/*_keypoints.json     OpenPose --write_json output of video <id>
    or raw_dir/<name>.pkl                       PYSKL-style annotations, frame_dir = <id>

``actions`` is ``"c092 11.90 21.20;c147 0.00 12.60"`` (class, start and end in seconds) or
empty: a video's target is the multi-hot set of its classes, and a video without any action
is kept with an all-zero target (the mAP ranks it last for every class, method.md §6.3).
Other columns are ignored. A row whose ``actions`` cannot be parsed or names a class absent
from the class file skips that video, with the reason (its kind first, then the action, CSV
and line in parentheses). A CSV without the ``id`` or ``actions``
column, a video id in both CSVs, or a malformed class line is an error naming the file.
Videos with keypoints but in neither CSV have no label and are left out (counted); videos in
a CSV without keypoints stay in its split and are counted by ingest as not kept.

Options: ``keypoints`` (``auto``: the pickle if raw_dir has one, else ``openpose/``;
``pyskl`` | ``openpose``), ``file`` (the pickle), ``image_size`` ([H, W]; with OpenPose
it or ``frame_sizes`` is required: its JSON does not record the frame size), ``frame_sizes``
(with OpenPose: a file in raw_dir giving each Charades id's frame size, as the OpenPose
reader's option, since Charades videos differ in resolution; videos absent from it get
``image_size``, or are skipped without it; with a pickle it is an error: the pickle's
``img_shape`` is each video's size), ``layout`` (as the OpenPose / PYSKL
readers: ``auto`` or a layout name or file).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from jmrn.readers import openpose, pyskl
from jmrn.readers.common import FrameSizes, frame_sizes_option
from jmrn.records import ReadError, Skipped, SourceIndex, Video

CLASSES_FILE = "Charades_v1_classes.txt"
CSV_FILES = {"train": "Charades_v1_train.csv", "test": "Charades_v1_test.csv"}
CLASS_LINE = re.compile(r"^(c\d{3})\s+(.+)$")
ACTION = re.compile(r"^(c\d{3}) (\d+(?:\.\d*)?) (\d+(?:\.\d*)?)$")


def read_classes(path: Path) -> tuple[list[str], dict[str, int]]:
    """(class names, class id -> index) from Charades_v1_classes.txt."""
    if not path.is_file():
        raise ReadError(f"{path} does not exist (the Charades class list)")
    names, index = [], {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        match = CLASS_LINE.match(line.strip())
        if not match or match[1] in index:
            raise ReadError(f"{path}, line {number}: expected a new 'c<3 digits> <name>', got "
                            f"{line.strip()!r}")  # fmt: skip
        index[match[1]] = len(names)
        names.append(match[2].strip())
    if not names:
        raise ReadError(f"{path} lists no class")
    return names, index


def parse_actions(text: str, class_index: dict[str, int]) -> tuple[int, ...]:
    """Sorted class indices of an ``actions`` cell; ValueError(kind, detail) saying what is
    wrong (the kind is fixed text: ingest counts skips by it)."""
    labels = set()
    for item in filter(None, (part.strip() for part in (text or "").split(";"))):
        match = ACTION.match(item)
        if not match:
            raise ValueError("malformed action", f"{item!r} is not 'c<3 digits> <start> <end>'")
        if match[1] not in class_index:
            raise ValueError("action class not in the class list",
                             f"{match[1]!r} is not in {CLASSES_FILE}")  # fmt: skip
        if float(match[3]) < float(match[2]):
            raise ValueError("action ends before it starts", repr(item))
        labels.add(class_index[match[1]])
    return tuple(sorted(labels))


def read_csv(path: Path, class_index: dict[str, int]) -> dict[str, tuple[int, ...] | str]:
    """video id -> its label tuple, or the reason its row is unusable (a string)."""
    if not path.is_file():
        raise ReadError(f"{path} does not exist")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("id", "actions") if c not in (reader.fieldnames or [])]
        if missing:
            raise ReadError(f"{path}: no column(s) {missing}; the header is "
                            f"{reader.fieldnames}")  # fmt: skip
        rows = {}
        for number, row in enumerate(reader, start=2):
            video = (row["id"] or "").strip()
            # a None key: more cells than the header; a None value: fewer (a truncated file)
            if not video or None in row or None in row.values():
                raise ReadError(f"{path}, line {number}: malformed or truncated row "
                                f"({len([v for v in row.values() if v is not None])} of "
                                f"{len(reader.fieldnames)} columns)")  # fmt: skip
            if video in rows:
                raise ReadError(f"{path}, line {number}: video {video!r} appears twice")
            try:
                rows[video] = parse_actions(row["actions"], class_index)
            except ValueError as err:
                kind, detail = err.args
                rows[video] = f"{kind} ({detail}; {path.name}, line {number})"
    return rows


def index(raw_dir: Path, options: dict) -> SourceIndex:
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ReadError(f"raw directory {raw_dir} does not exist")
    class_names, class_index = read_classes(raw_dir / CLASSES_FILE)
    labels: dict[str, tuple[int, ...] | str] = {}
    csv_of: dict[str, str] = {}  # video id -> its CSV, the source of a skip for its row
    splits = {}
    for split, name in CSV_FILES.items():
        rows = read_csv(raw_dir / name, class_index)
        twice = sorted(set(rows) & set(labels))
        if twice:
            raise ReadError(f"{raw_dir / name}: video {twice[0]!r} is also in another CSV")
        labels.update(rows)
        csv_of.update(dict.fromkeys(rows, str(raw_dir / name)))
        splits[split] = sorted(rows)
    source = options.get("keypoints") or "auto"
    if source == "auto":
        source = "pyskl" if any(raw_dir.glob("*.pkl")) else "openpose"
    left_out = {}
    if source == "pyskl":
        if options.get("frame_sizes"):
            raise ReadError("source.frame_sizes is for OpenPose keypoints: the pickle's img_shape "
                            "gives each video's frame size; set it to null")  # fmt: skip
        inner = pyskl.index(raw_dir, {k: options[k] for k in ("file", "layout") if k in options})
        entries = [{**e, "_video": str(e.get("frame_dir"))} for e in inner.entries]
    elif source == "openpose":
        folder = raw_dir / "openpose"
        if not folder.is_dir():
            raise ReadError(f"{folder} does not exist (expected openpose/<id>/*_keypoints.json)")
        sizes = frame_sizes_option(raw_dir, options)
        inner = _openpose_index(folder, options, sizes)
        entries = [{**e, "_video": e["video_id"]} for e in inner.entries]
        left_out = sizes.left_out(e["video_id"] for e in entries)
    else:
        raise ReadError(f"source.keypoints must be auto, pyskl or openpose, not {source!r}")
    kept, no_row = [], 0
    for entry in entries:
        if source == "pyskl" and not _has_id(entry):  # pyskl.load skips it, with the reason
            kept.append({**entry, "_format": source, "labels": (), "_csv": None})
            continue
        label = labels.get(entry["_video"])
        if label is None:
            no_row += 1
        else:
            kept.append({**entry, "_format": source, "labels": label,
                         "_csv": csv_of[entry["_video"]]})  # fmt: skip
    return SourceIndex(inner.layout, class_names, True, splits, kept, parallel=source != "pyskl",
                       left_out={"video in neither Charades CSV": no_row, **left_out})  # fmt: skip


def _has_id(entry: dict) -> bool:
    """A pickle annotation with a usable video id: one without is a counted skip, not a
    video "in neither CSV" under the made-up id 'None'."""
    frame_dir = entry.get("frame_dir")
    return "_annotation" not in entry and isinstance(frame_dir, str) and bool(frame_dir.strip())


def _openpose_index(folder: Path, options: dict, sizes: FrameSizes) -> SourceIndex:
    """OpenPose folders ``<id>/`` directly (no class level): entries as the OpenPose reader's,
    each with its frame size (or the reason it has none)."""
    entries = [{"video_id": p.name, "dir": str(p), "class_name": None, "label": None,
                "image_size": sizes.of(p.name)}
               for p in sorted(folder.iterdir()) if p.is_dir()]  # fmt: skip
    if not entries:
        raise ReadError(f"no video folders in {folder}")
    return SourceIndex(openpose.set_layout(entries, options), [], True, {}, entries)


def load(entry: dict) -> Video | Skipped:
    if isinstance(entry["labels"], str):  # the CSV row could not be used
        return Skipped(entry["_video"], entry["_csv"], entry["labels"])
    if entry["_format"] == "pyskl":
        return pyskl.load(entry)
    return openpose.load(entry)
