"""What keypoints.h5 and heatmaps.h5 readers share: open, check kind and version, and the
dataset-level fields both files carry (layout, classes, labels, splits)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


class ValidatedH5:
    """Open a jmrn HDF5 file read-only and check it against its schema's kind and version."""

    KIND = ""
    FORMAT_VERSION = 0
    REQUIRED: tuple[str, ...] = ()
    STAGE = ""  # the stage that writes it, named in the "re-run" hint

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as err:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({err})") from err
        try:
            self._check()
        except ValueError:
            self.file.close()
            raise
        attrs = self.file.attrs
        self.layout = str(attrs["layout"])
        self.joint_names = [str(s) for s in attrs["joint_names"]]
        self.class_names = [str(s) for s in attrs["class_names"]]
        self.multi_label = bool(attrs["multi_label"])
        self.video_ids = [s.decode() if isinstance(s, bytes) else s
                          for s in self.file["video_id"][:]]  # fmt: skip
        self.num_frames = self.file["num_frames"][:]
        self.label = self.file["label"][:]
        self.labels = self.file["labels"][:]
        self.splits: dict[str, np.ndarray] = {
            name: ds[:] for name, ds in self.file.get("splits", {}).items()
        }

    def _check(self) -> None:
        attrs, what = self.file.attrs, self.KIND.removeprefix("jmrn.")
        if attrs.get("kind") != self.KIND:
            raise ValueError(f"{self.path}: not a jmrn {what} file (kind={attrs.get('kind')!r})")
        if attrs.get("format_version") != self.FORMAT_VERSION:
            raise ValueError(f"{self.path}: {what} format_version {attrs.get('format_version')}, "
                             f"this jmrn reads version {self.FORMAT_VERSION}; re-run the "
                             f"{self.STAGE} stage")  # fmt: skip
        missing = [k for k in self.REQUIRED if k not in self.file]
        missing += [k for k in ("layout", "joint_names", "class_names", "multi_label")
                    if k not in attrs]  # fmt: skip
        if missing:
            raise ValueError(f"{self.path}: missing {missing}")

    def __len__(self) -> int:
        return len(self.video_ids)

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
