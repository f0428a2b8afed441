"""Per-video (or per-clip) logits and features of one model or modality: the input of late
fusion and of clip selection.

Schema, format version 1 (N rows, K classes, F feature dimensions):

    attrs   format_version=1                           required
            class_names (K strings)                    required, the dataset's, in its order
            kind="jmrn.logits"                         optional (checked when present)
            model (a name: "jmrn", "i3d_rgb", ...)     optional, default: the file's stem
            multi_label (bool)                         optional, default: the pose model's
            dataset, params_hash (what produced it)    optional, free text
    video_id   (N,)     str      required: video ids as in keypoints.h5 (clip files: clip ids
                                 "<video id>#<k>", k = 0, 1, ... the clip's position)
    logits     (N, K)   float    required: raw class scores (before softmax / sigmoid)
    features   (N, F)   float    optional: pooled features (JMRN / PoTion: the classifier input)
    labels     (N, K)   bool     optional: multi-hot targets (checked against the pose model's)
    parent_id  (N,)     str      clip files written by jmrn: the video id of each clip
    splits/<name> (n,)  int64    optional: sorted row indices of the videos in that split

Logits of any other model (RGB, optical flow, ...) in this schema can be fused with the pose
model: drop one file per modality into ``external/<dataset>/`` (``write_logits`` writes
one; so does a few lines of h5py); a clip model's file goes into ``external/<dataset>/clips/``
(``external_files``). Modalities are aligned by video id; a video missing from a
modality, an unknown id, or a class list that differs is an error, never a silent drop
(``align``).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from jmrn.cli import show_value
from jmrn.io import atomic_path

FORMAT_VERSION = 1
KIND = "jmrn.logits"
EXTERNAL_ROOT = Path("external")


def external_files(dataset: str, clips: bool = False, root: Path = EXTERNAL_ROOT) -> list[Path]:
    """The other modalities' logits files of a dataset: ``external/<dataset>/*.h5`` (video
    level) or ``external/<dataset>/clips/*.h5`` (clip level), sorted by name.

    The drop-in folder is ``external/``, a folder git tracks, not ``data/<dataset>/``: the fusion
    and clip_select stages depend on it, and a dependency must exist in every checkout (a fresh
    clone, the temporary workspace of a queued ``dvc exp run``) even when no stage has run
    there. Files left in the old ``data/<dataset>/external*`` folders are an error, not
    silently ignored.
    """
    for old in (Path("data") / dataset / "external", Path("data") / dataset / "external_clips"):
        if any(old.glob("*.h5")):
            new = root / dataset / ("clips" if old.name == "external_clips" else "")
            raise ValueError(f"{old}/ holds logits files, but other modalities' logits now go in "
                             f"{new}/ (git tracks external/, so every checkout has it): move them")
    folder = root / dataset / "clips" if clips else root / dataset
    return sorted(folder.glob("*.h5"))


def write_logits(path: str | Path, *, dataset: str, model: str, params_hash: str,
                 class_names: list[str], multi_label: bool, video_ids: list[str],
                 logits: np.ndarray, features: np.ndarray | None, labels: np.ndarray,
                 splits: dict[str, np.ndarray],
                 parent_ids: list[str] | None = None) -> None:  # fmt: skip
    n, k = np.shape(logits)
    if len(video_ids) != n or np.shape(labels) != (n, k) or len(class_names) != k:
        raise ValueError(f"{path}: {len(video_ids)} ids, logits {np.shape(logits)}, labels "
                         f"{np.shape(labels)} and {len(class_names)} classes disagree")  # fmt: skip
    features = np.zeros((n, 0), np.float32) if features is None else features
    strings = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(format_version=FORMAT_VERSION, kind=KIND, dataset=dataset, model=model,
                       params_hash=params_hash, class_names=list(class_names),
                       multi_label=bool(multi_label))  # fmt: skip
        f.create_dataset("video_id", data=np.array(video_ids, dtype=object), dtype=strings)
        f.create_dataset("logits", data=np.asarray(logits, np.float32))
        f.create_dataset("features", data=np.asarray(features, np.float32))
        f.create_dataset("labels", data=np.asarray(labels, bool))
        if parent_ids is not None:
            f.create_dataset("parent_id", data=np.array(parent_ids, dtype=object), dtype=strings)
        for name, indices in splits.items():
            f.create_dataset(f"splits/{name}", data=np.sort(np.asarray(indices, np.int64)))


def _strings(values: np.ndarray) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in values]


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
            if attrs.get("kind", KIND) != KIND or attrs.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{self.path}: not a jmrn logits file of format version "
                                 f"{FORMAT_VERSION} (kind={attrs.get('kind')!r}, format_version="
                                 f"{attrs.get('format_version')!r}); see docs/files.md, "
                                 "'Logits files'")  # fmt: skip
            missing = [k for k in ("video_id", "logits") if k not in f]
            missing += [f"attribute {k}" for k in ("class_names",) if k not in attrs]
            if missing:
                raise ValueError(f"{self.path}: missing {', '.join(missing)}")
            self.model = str(attrs.get("model", self.path.stem))
            self.class_names = _strings(attrs["class_names"])
            multi = attrs.get("multi_label")
            self.multi_label: bool | None = None if multi is None else bool(multi)
            self.params_hash = str(attrs.get("params_hash", ""))
            self.video_ids = _strings(f["video_id"][:])
            self.logits = self._real(f, "logits")
            n = len(self.video_ids)
            self.features = (self._real(f, "features") if "features" in f
                             else np.zeros((n, 0), np.float32))  # fmt: skip
            self.labels = self._labels(f) if "labels" in f else None
            self.parent_ids = _strings(f["parent_id"][:]) if "parent_id" in f else None
            self.splits = {name: self._rows(ds, f"splits/{name}", n)
                           for name, ds in f.get("splits", {}).items()}  # fmt: skip
        k = len(self.class_names)
        # each problem on its own: a file without features must not read as "features (n, 0)"
        if self.logits.ndim != 2:
            raise ValueError(f"{self.path}: logits has shape {self.logits.shape}; it must be "
                             f"(videos, classes) = ({n}, {k})")  # fmt: skip
        if self.logits.shape[1] != k:
            raise ValueError(f"{self.path}: the logits have {self.logits.shape[1]} columns where "
                             f"the dataset has {k} classes (its class_names attribute): one "
                             "column per class, in that order")  # fmt: skip
        if len(self.logits) != n:
            raise ValueError(f"{self.path}: the logits have {len(self.logits)} rows where "
                             f"video_id has {n} ids: one row per video")  # fmt: skip
        if self.features.ndim != 2 or len(self.features) != n:
            raise ValueError(f"{self.path}: features has shape {self.features.shape}; it must be "
                             f"(videos, feature dimensions) with {n} rows")  # fmt: skip
        if self.labels is not None and self.labels.shape != (n, k):
            raise ValueError(f"{self.path}: labels {self.labels.shape}, expected {(n, k)}")
        if not np.isfinite(self.logits).all():
            raise ValueError(f"{self.path}: logits contain NaN or infinity")
        if len(set(self.video_ids)) != n:
            raise ValueError(f"{self.path}: a video id appears twice")

    def _real(self, f: h5py.File, name: str) -> np.ndarray:
        """A float32 copy of a real-valued dataset; bool, complex or text values are an error
        (a cast would silently turn True into 1.0 or drop an imaginary part)."""
        kind = f[name].dtype.kind
        if kind not in "fiu":
            raise ValueError(f"{self.path}: {name} has dtype {f[name].dtype}; it must hold real "
                             "numbers (float or int), not bool, complex or text")  # fmt: skip
        return np.asarray(f[name][:], np.float32)

    def _labels(self, f: h5py.File) -> np.ndarray:
        """Multi-hot labels: bool, or integers that are all 0 or 1."""
        labels = f["labels"][:]
        if labels.dtype.kind not in "biu" or (labels.dtype.kind != "b" and
                                              not np.isin(labels, (0, 1)).all()):  # fmt: skip
            raise ValueError(f"{self.path}: labels must be multi-hot (bool, or 0/1 integers), "
                             f"got dtype {labels.dtype}")  # fmt: skip
        return labels.astype(bool)

    def _rows(self, ds: h5py.Dataset, name: str, n: int) -> np.ndarray:
        """A split's row indices: integers in [0, n), each once."""
        rows = ds[:]
        if rows.ndim != 1 or rows.dtype.kind not in "iu":
            raise ValueError(f"{self.path}: {name} must be a 1-D array of row indices, got "
                             f"{rows.dtype} {rows.shape}")  # fmt: skip
        if len(rows) and (rows.min() < 0 or rows.max() >= n or len(np.unique(rows)) != len(rows)):
            raise ValueError(f"{self.path}: {name} has row indices outside [0, {n}) or twice")
        return rows

    def rows(self, video_ids: list[str]) -> np.ndarray:
        """Row indices of ``video_ids``; an id this file lacks is an error naming it."""
        row = {v: i for i, v in enumerate(self.video_ids)}
        missing = [v for v in video_ids if v not in row]
        if missing:
            raise ValueError(f"{self.path} has no logits for {len(missing)} of the "
                             f"{len(video_ids)} videos (first: {missing[0]!r})")  # fmt: skip
        return np.array([row[v] for v in video_ids], dtype=np.int64)


def _class_difference(theirs: list[str], dataset: list[str]) -> str:
    """How a modality's class list differs from the dataset's, for an error message."""
    if len(theirs) != len(dataset):
        return (f"its logits have {len(theirs)} columns (class_names lists {len(theirs)}) "
                f"where the dataset has {len(dataset)} classes")
    i = next(i for i, (a, b) in enumerate(zip(theirs, dataset, strict=True)) if a != b)
    return f"class {i} is {show_value(theirs[i])} where the dataset's is {show_value(dataset[i])}"


def align(modalities: list[Logits], video_ids: list[str]) -> list[np.ndarray]:
    """Each modality's logits for ``video_ids``, in that order; any mismatch is an error."""
    reference = modalities[0]
    out = []
    for m in modalities:
        if m.class_names != reference.class_names:
            raise ValueError(f"{m.path}: {_class_difference(m.class_names, reference.class_names)}"
                             f" ({reference.path}): its class list differs")  # fmt: skip
        out.append(m.logits[m.rows(video_ids)])
    return out
