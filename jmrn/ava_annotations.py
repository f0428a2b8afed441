"""AVA v2.x annotation files, parsed and validated: the labels side of the AVA dataset (the
reader, ``jmrn.readers.ava``, adds the poses).

* ``ava_{train,val}_v2.x.csv``: rows ``video_id, timestamp, x1, y1, x2, y2, action_id,
  person_id`` (boxes normalised to [0, 1], one row per box and action; the test files have no
  ``action_id`` / ``person_id``). Rows of one (video, timestamp, box) are one sample with the
  multi-hot set of its actions.
* the action list ``.pbtxt``: ``item { name: "..." id: N }``, 1-based ids, not contiguous
  (the 60 evaluated classes of the 80): class index = position in the file.
* ``ava_..._excluded_timestamps_v2.x.csv``: ``video_id, timestamp`` rows dropped everywhere.
* person proposals, a pickle ``{"<video>,<timestamp>": (N, 5) [x1, y1, x2, y2, score]}`` as
  SlowFast distributes them (loaded with the restricted unpickler), for evaluation on
  detected boxes: ``select_proposals`` keeps those of the evaluated keyframes.

Bad rows: a truncated or non-numeric row is an error naming the file and line; a box that is
empty or outside [0, 1], a timestamp outside the movie's annotated seconds (902-1798), and
an action id that is not in the action list skip that row, counted by reason (the official
80-class files hold actions that are not evaluated: they are counted, never silently used).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jmrn.records import ReadError
from jmrn.safe_pickle import load_pickle

FIRST_SECOND, LAST_SECOND = 902, 1798  # AVA keyframes: the 15 annotated minutes of a movie
_ITEM = re.compile(r"item\s*\{(?P<body>[^}]*)\}", re.S)
_NAME = re.compile(r'name:\s*"(?P<name>[^"]*)"')
_ID = re.compile(r"\bid:\s*(?P<id>-?\d+)")


def read_action_list(path: str | Path) -> list[tuple[int, str]]:
    """(id, name) of every item of a label-map .pbtxt, in file order."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"{path} does not exist (the AVA action list)")
    items = []
    for k, match in enumerate(_ITEM.finditer(path.read_text())):
        name, ident = _NAME.search(match["body"]), _ID.search(match["body"])
        if name is None or ident is None:
            raise ReadError(f"{path}: item {k + 1} lacks a name or an id: {match[0]!r}")
        items.append((int(ident["id"]), name["name"]))
    ids = [i for i, _ in items]
    if not items or len(set(ids)) != len(ids):
        raise ReadError(f"{path}: {'no item' if not items else 'an id appears twice'}")
    return items


def read_excluded(path: str | Path) -> set[tuple[str, int]]:
    """(video_id, timestamp) pairs of an excluded-timestamps CSV."""
    excluded = set()
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if len(row) != 2 or not row[1].strip().isdigit():
                raise ReadError(f"{path}, line {number}: expected 'video_id,timestamp', got "
                                f"{row!r}")  # fmt: skip
            excluded.add((row[0].strip(), int(row[1])))
    return excluded


@dataclass
class BoxSamples:
    """One entry per (video, timestamp, box): the unit AVA is trained and scored on."""

    keys: list[tuple[str, int]] = field(default_factory=list)  # (video_id, timestamp)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    labels: list[set[int]] = field(default_factory=list)  # class indices (action list order)
    person_ids: list[int] = field(default_factory=list)  # -1 where the file has none
    videos: set[str] = field(default_factory=set)  # of every row, skipped ones included
    skipped_rows: Counter = field(default_factory=Counter)  # reason -> rows


def read_boxes(path: str | Path, action_ids: list[int],
               excluded: set[tuple[str, int]] = frozenset()) -> BoxSamples:  # fmt: skip
    """The samples of an AVA box CSV (see the module docstring for the rules)."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"{path} does not exist")
    index_of = {a: k for k, a in enumerate(action_ids)}
    samples, where = BoxSamples(), {}
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if len(row) not in (6, 7, 8):
                raise ReadError(f"{path}, line {number}: {len(row)} columns, expected "
                                "video_id,timestamp,x1,y1,x2,y2[,action_id[,person_id]] "
                                "(a truncated file?)")  # fmt: skip
            try:
                second = int(row[1])
                box = tuple(float(v) for v in row[2:6])
                action = int(row[6]) if len(row) > 6 else None
                person = int(row[7]) if len(row) > 7 else -1
            except ValueError:
                raise ReadError(f"{path}, line {number}: a non-numeric value in "
                                f"{row!r}") from None  # fmt: skip
            video = row[0].strip()
            samples.videos.add(video)
            if (video, second) in excluded:
                samples.skipped_rows["excluded timestamp"] += 1
                continue
            if not FIRST_SECOND <= second <= LAST_SECOND:
                samples.skipped_rows[f"timestamp outside {FIRST_SECOND}-{LAST_SECOND}"] += 1
                continue
            x1, y1, x2, y2 = box
            if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
                samples.skipped_rows["empty box or box outside [0, 1]"] += 1
                continue
            if action is not None and action not in index_of:
                samples.skipped_rows["action id not in the action list"] += 1
                continue
            key = (video, second, tuple(round(v, 3) for v in box))
            if key not in where:
                where[key] = len(samples.keys)
                samples.keys.append((video, second))
                samples.boxes.append(box)
                samples.labels.append(set())
                samples.person_ids.append(person)
            if action is not None:
                samples.labels[where[key]].add(index_of[action])
    return samples


def read_proposals(path: str | Path) -> dict[tuple[str, int], np.ndarray]:
    """Person detections {(video_id, timestamp): (N, 5) x1, y1, x2, y2, score}."""
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise ReadError(f"{path}: expected a dict of '<video>,<timestamp>' -> (N, 5) arrays")
    out = {}
    for key, boxes in data.items():
        video, _, second = str(key).rpartition(",")
        try:
            kind = np.asarray(boxes).dtype.kind  # before a cast: True would become 1.0
        except (TypeError, ValueError):  # ragged rows
            kind = "O"
        if kind not in "iuf":
            raise ReadError(f"{path}: entry {key!r} holds no numeric (N, 5) array (dtype kind "
                            f"{kind!r}: bool, text or objects)")  # fmt: skip
        boxes = np.asarray(boxes, dtype=np.float32)
        if not video or not second.isdigit() or boxes.ndim != 2 or boxes.shape[1] != 5:
            raise ReadError(f"{path}: entry {key!r} is not '<video>,<timestamp>' -> (N, 5), "
                            f"got shape {boxes.shape}")  # fmt: skip
        out[(video, int(second))] = boxes
    return out


@dataclass
class Proposals:
    """Detected person boxes kept for evaluation, one entry per (video, timestamp, box)."""

    keys: list[tuple[str, int]] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # 3 decimals
    scores: list[float] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> boxes


def select_proposals(proposals: dict[tuple[str, int], np.ndarray], videos: set[str],
                     excluded: set[tuple[str, int]] = frozenset(),
                     min_score: float = 0.0) -> Proposals:  # fmt: skip
    """The detections to evaluate on: those of ``videos`` (the split's movies), at annotated
    seconds that are not excluded, scoring at least ``min_score``, with a non-empty box inside
    [0, 1] once rounded to 3 decimals (the precision of AVA's CSVs and of the sample ids);
    two boxes of a keyframe that round to the same are one. Everything else is counted."""
    out, seen = Proposals(), set()
    for (video, second), rows in sorted(proposals.items()):
        if video not in videos:
            out.skipped["another split's video"] += len(rows)
            continue
        if (video, second) in excluded:
            out.skipped["excluded timestamp"] += len(rows)
            continue
        if not FIRST_SECOND <= second <= LAST_SECOND:
            out.skipped[f"timestamp outside {FIRST_SECOND}-{LAST_SECOND}"] += len(rows)
            continue
        for row in rows:
            box = tuple(round(float(v), 3) for v in row[:4])
            x1, y1, x2, y2 = box
            if not float(row[4]) >= min_score:  # NaN scores fail too
                out.skipped["score below proposal_min_score"] += 1
            elif not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
                out.skipped["empty box or box outside [0, 1]"] += 1
            elif (video, second, box) in seen:
                out.skipped["same box twice in a keyframe"] += 1
            else:
                seen.add((video, second, box))
                out.keys.append((video, second))
                out.boxes.append(box)
                out.scores.append(float(row[4]))
    return out
