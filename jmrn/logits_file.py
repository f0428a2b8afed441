"""Per-video logits (and features) of one model or modality: the input of late fusion.

Schema, format version 1 (N videos, K classes, F feature dimensions, F may be 0):

    attrs   format_version=1, kind="jmrn.logits", dataset, model (a name: "jmrn", "potion",
            "i3d_rgb", ...), params_hash (what produced it; free text for external models),
            class_names (K strings), multi_label (bool)
    video_id   (N,)     str      ids as in keypoints.h5 (the key used to align modalities)
    logits     (N, K)   float32  raw class scores (before softmax / sigmoid)
    features   (N, F)   float32  pooled features (JMRN / PoTion: the 512-d classifier input)
    labels     (N, K)   bool     multi-hot targets
    splits/<name> (n,)  int64    sorted row indices of the videos in that split

Logits of any other model (RGB, optical flow, ...) in this schema can be fused with the pose
model: write one file per modality with ``write_logits``. Modalities are aligned by video id;
a video missing from one modality, or a class list that differs, is an error, never a silent
drop (``align``).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from jmrn.io import atomic_path

FORMAT_VERSION = 1
KIND = "jmrn.logits"


def write_logits(path: str | Path, *, dataset: str, model: str, params_hash: str,
                 class_names: list[str], multi_label: bool, video_ids: list[str],
                 logits: np.ndarray, features: np.ndarray | None, labels: np.ndarray,
                 splits: dict[str, np.ndarray]) -> None:  # fmt: skip
    n, k = np.shape(logits)
    if len(video_ids) != n or np.shape(labels) != (n, k) or len(class_names) != k:
        raise ValueError(f"{path}: {len(video_ids)} ids, logits {np.shape(logits)}, labels "
                         f"{np.shape(labels)} and {len(class_names)} classes disagree")  # fmt: skip
    features = np.zeros((n, 0), np.float32) if features is None else features
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(format_version=FORMAT_VERSION, kind=KIND, dataset=dataset, model=model,
                       params_hash=params_hash, class_names=list(class_names),
                       multi_label=bool(multi_label))  # fmt: skip
        f.create_dataset("video_id", data=np.array(video_ids, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))  # fmt: skip
        f.create_dataset("logits", data=np.asarray(logits, np.float32))
        f.create_dataset("features", data=np.asarray(features, np.float32))
        f.create_dataset("labels", data=np.asarray(labels, bool))
        for name, indices in splits.items():
            f.create_dataset(f"splits/{name}", data=np.sort(np.asarray(indices, np.int64)))


class Logits:
    """A logits file read into memory and validated (they are small: N x K)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            f = h5py.File(self.path, "r")
        except OSError as err:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({err})") from err
        with f:
            attrs = f.attrs
            if attrs.get("kind") != KIND or attrs.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{self.path}: not a jmrn logits file of format version "
                                 f"{FORMAT_VERSION} (kind={attrs.get('kind')!r}, version="
                                 f"{attrs.get('format_version')!r}); see jmrn/logits_file.py")
            missing = [k for k in ("video_id", "logits", "features", "labels") if k not in f]
            if missing:
                raise ValueError(f"{self.path}: missing datasets {missing}")
            self.model = str(attrs.get("model", self.path.stem))
            self.class_names = [str(s) for s in attrs["class_names"]]
            self.multi_label = bool(attrs["multi_label"])
            self.video_ids = [s.decode() if isinstance(s, bytes) else s for s in f["video_id"][:]]
            self.logits = f["logits"][:]
            self.features = f["features"][:]
            self.labels = f["labels"][:]
            self.splits = {name: ds[:] for name, ds in f.get("splits", {}).items()}
        n, k = len(self.video_ids), len(self.class_names)
        if self.logits.shape != (n, k) or self.labels.shape != (n, k) or len(self.features) != n:
            raise ValueError(f"{self.path}: {n} ids and {k} classes, but logits "
                             f"{self.logits.shape}, labels {self.labels.shape}, features "
                             f"{self.features.shape}")  # fmt: skip
        if len(set(self.video_ids)) != n:
            raise ValueError(f"{self.path}: a video id appears twice")


def align(modalities: list[Logits], video_ids: list[str]) -> list[np.ndarray]:
    """Each modality's logits for ``video_ids``, in that order; any mismatch is an error."""
    reference = modalities[0]
    out = []
    for m in modalities:
        if m.class_names != reference.class_names:
            raise ValueError(f"{m.path}: class list differs from {reference.path}'s")
        row = {v: i for i, v in enumerate(m.video_ids)}
        missing = [v for v in video_ids if v not in row]
        if missing:
            raise ValueError(f"{m.path} has no logits for {len(missing)} of the "
                             f"{len(video_ids)} videos (first: {missing[0]!r})")  # fmt: skip
        out.append(m.logits[[row[v] for v in video_ids]])
    return out
