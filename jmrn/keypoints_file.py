"""keypoints.h5: the canonical keypoints of one dataset (format version 1).

Schema (N videos, R = sum over videos of frames x persons, V joints, K classes):

    attrs   format_version=1, kind="jmrn.keypoints", dataset, source_format,
            layout (name), layout_spec (the layout as JSON: joints, flip pairs, PAA groups),
            joint_names (V strings), class_names (K strings), multi_label (bool)
    video_id     (N,)       str      unique id of each video
    source       (N,)       str      file (and entry) the video was read from
    num_frames   (N,)       int32    T of each video
    num_persons  (N,)       int32    M of each video (persons padded within a video only)
    offset       (N,)       int64    first row of the video in `keypoints`
    image_size   (N, 2)     int32    (height, width) of the frames, source pixels
    label        (N,)       int32    the class of a single-label video (-1 if multi-label)
    labels       (N, K)     bool     multi-hot targets (single-label: one-hot)
    keypoints    (R, V, 3)  float32  x, y (source pixels), confidence in [0, 1], 0 = missing;
                                     rows of a video are frame-major: row = offset + t*M + m
    boxes        (R, 4)     float32  optional: person boxes x1, y1, x2, y2, NaN where unknown
    splits/<name> (n,)      int64    sorted indices of the videos in that split

Videos are stored without padding to the longest one, so the file grows with the data, not
with its worst case. The writer streams: memory holds one buffer of rows at a time.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from jmrn.h5file import ValidatedH5
from jmrn.layouts import Layout
from jmrn.records import Video

FORMAT_VERSION = 1
KIND = "jmrn.keypoints"
_STR = h5py.string_dtype("utf-8")
_REQUIRED = ("video_id", "source", "num_frames", "num_persons", "offset", "image_size",
             "label", "labels", "keypoints")  # fmt: skip


class KeypointsWriter:
    """Append videos one by one to an open HDF5 file, then ``close`` with the splits."""

    def __init__(self, path: Path, *, dataset: str, source_format: str, layout: Layout,
                 class_names: list[str], multi_label: bool,
                 flush_rows: int = 1 << 18) -> None:  # fmt: skip
        self.file = h5py.File(path, "w")
        self.file.attrs.update(
            format_version=FORMAT_VERSION, kind=KIND, dataset=dataset,
            source_format=source_format, layout=layout.name, layout_spec=layout.to_json(),
            joint_names=list(layout.joints), class_names=list(class_names),
            multi_label=bool(multi_label),
        )  # fmt: skip
        num_joints = layout.num_joints
        self.num_classes = len(class_names)
        self.keypoints = self.file.create_dataset(
            "keypoints", shape=(0, num_joints, 3), maxshape=(None, num_joints, 3),
            dtype="float32", chunks=(4096, num_joints, 3),
        )  # fmt: skip
        self.boxes: h5py.Dataset | None = None
        self.flush_rows = flush_rows
        self._kp_buffer: list[np.ndarray] = []
        self._box_buffer: list[np.ndarray] = []
        self._buffered = 0
        self.rows = 0
        self.meta: dict[str, list] = {k: [] for k in
                                      ("video_id", "source", "num_frames", "num_persons",
                                       "offset", "image_size", "labels")}  # fmt: skip

    def add(self, video: Video) -> None:
        if video.boxes is not None and self.boxes is None:
            self._create_boxes()  # flushes what came before, whose boxes are unknown (NaN)
        frames, persons = video.keypoints.shape[:2]
        self.meta["video_id"].append(video.video_id)
        self.meta["source"].append(video.source)
        self.meta["num_frames"].append(frames)
        self.meta["num_persons"].append(persons)
        self.meta["offset"].append(self.rows + self._buffered)
        self.meta["image_size"].append(video.image_size)
        self.meta["labels"].append(video.labels)
        self._kp_buffer.append(video.keypoints.reshape(frames * persons, -1, 3))
        boxes = video.boxes if video.boxes is not None else np.full((frames, persons, 4), np.nan)
        self._box_buffer.append(np.asarray(boxes, np.float32).reshape(frames * persons, 4))
        self._buffered += frames * persons
        if self._buffered >= self.flush_rows:
            self._flush()

    def _create_boxes(self) -> None:
        self._flush()
        self.boxes = self.file.create_dataset(
            "boxes", shape=(self.rows, 4), maxshape=(None, 4), dtype="float32",
            chunks=(4096, 4), fillvalue=np.nan,
        )  # fmt: skip

    def _flush(self) -> None:
        if not self._buffered:
            return
        start, stop = self.rows, self.rows + self._buffered
        self.keypoints.resize(stop, axis=0)
        self.keypoints[start:stop] = np.concatenate(self._kp_buffer)
        if self.boxes is not None:
            self.boxes.resize(stop, axis=0)
            self.boxes[start:stop] = np.concatenate(self._box_buffer)
        self.rows = stop
        self._kp_buffer, self._box_buffer, self._buffered = [], [], 0

    def close(self, splits: dict[str, list[int]]) -> None:
        self._flush()
        meta, f = self.meta, self.file
        n = len(meta["video_id"])
        f.create_dataset("video_id", data=np.array(meta["video_id"], dtype=object), dtype=_STR)
        f.create_dataset("source", data=np.array(meta["source"], dtype=object), dtype=_STR)
        for key in ("num_frames", "num_persons"):
            f.create_dataset(key, data=np.array(meta[key], dtype=np.int32).reshape(n))
        f.create_dataset("offset", data=np.array(meta["offset"], dtype=np.int64).reshape(n))
        f.create_dataset("image_size",
                         data=np.array(meta["image_size"], dtype=np.int32).reshape(n, 2))
        # one index array, not a loop over videos (an attribute read in that loop cost
        # 0.15 ms a video: most of this method on Kinetics-size data)
        counts = np.fromiter(map(len, meta["labels"]), dtype=np.int64, count=n)
        rows = np.repeat(np.arange(n), counts)
        columns = np.fromiter((k for labels in meta["labels"] for k in labels), dtype=np.int64,
                              count=int(counts.sum()))  # fmt: skip
        multi_hot = np.zeros((n, self.num_classes), dtype=bool)
        multi_hot[rows, columns] = True
        single = np.full(n, -1, dtype=np.int32)
        if not f.attrs["multi_label"]:  # every kept video has exactly one label
            single[:] = columns
        f.create_dataset("label", data=single)
        f.create_dataset("labels", data=multi_hot)
        group = f.create_group("splits")
        for name, indices in splits.items():
            group.create_dataset(name, data=np.sort(np.asarray(indices, dtype=np.int64)))
        f.close()


class KeypointsFile(ValidatedH5):
    """Read-only access to a keypoints.h5, validated against the schema above."""

    KIND, FORMAT_VERSION, REQUIRED, STAGE = KIND, FORMAT_VERSION, _REQUIRED, "ingest"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.num_persons = self.file["num_persons"][:]
        self.offset = self.file["offset"][:]
        self.image_size = self.file["image_size"][:]
        if self.file["keypoints"].shape[1] != len(self.joint_names):
            self.close()
            raise ValueError(f"{self.path}: keypoints have {self.file['keypoints'].shape[1]} "
                             f"joints, the layout {self.layout!r} has {len(self.joint_names)}")

    def boxes(self, i: int) -> np.ndarray | None:
        """(T, M, 4) person boxes of video i (NaN where unknown), or None if the file has none."""
        if "boxes" not in self.file:
            return None
        frames, persons = int(self.num_frames[i]), int(self.num_persons[i])
        start = int(self.offset[i])
        return self.file["boxes"][start:start + frames * persons].reshape(frames, persons, 4)

    def keypoints(self, i: int) -> np.ndarray:
        """(T, M, V, 3) keypoints of video i."""
        frames, persons = int(self.num_frames[i]), int(self.num_persons[i])
        start = int(self.offset[i])
        rows = self.file["keypoints"][start:start + frames * persons]
        return rows.reshape(frames, persons, len(self.joint_names), 3)
