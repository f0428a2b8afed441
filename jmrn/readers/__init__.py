"""One module per raw format. Each has ``index(raw_dir, options) -> SourceIndex`` (cheap:
lists the videos, classes and splits) and ``load(entry) -> Video | Skipped`` (one video)."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from types import ModuleType

from jmrn.readers import ava, charades, jhmdb, openpose, pyskl, stgcn
from jmrn.records import ReadError

READERS: dict[str, ModuleType] = {
    "pyskl": pyskl,
    "jhmdb_mat": jhmdb,
    "stgcn_json": stgcn,
    "openpose_json": openpose,
    "charades_csv": charades,
    "ava_csv": ava,
}
# Formats of datasets that a later release will read; selecting one fails with this message.
NOT_BUILT: dict[str, str] = {}


def detect_format(raw_dir: Path) -> str:
    """The format of a raw folder, for datasets released in several (``format: auto``): a
    ``joint_positions/`` folder is JHMDB, a ``.pkl`` a PYSKL pickle, ``<split>_label.json``
    files ST-GCN's Kinetics-skeleton, ``<class>/<video>/*_keypoints.json`` OpenPose,
    ``Charades_v1_train.csv`` Charades, ``ava_train_v2.x.csv`` AVA."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ReadError(f"raw directory {raw_dir} does not exist")
    if (raw_dir / "joint_positions").is_dir():
        return "jhmdb_mat"
    if (raw_dir / charades.CSV_FILES["train"]).is_file():
        return "charades_csv"
    if any(raw_dir.glob("ava_train_v2*.csv")):
        return "ava_csv"
    if any(raw_dir.glob("*.pkl")):
        return "pyskl"
    if any(raw_dir.glob("*_label.json")):
        return "stgcn_json"
    for class_dir in islice((p for p in sorted(raw_dir.iterdir()) if p.is_dir()), 5):
        for video_dir in islice((p for p in class_dir.iterdir() if p.is_dir()), 5):
            if next(video_dir.glob("*" + openpose.FRAME_SUFFIX), None) is not None:
                return "openpose_json"
    raise ReadError(f"cannot tell the format of {raw_dir}: expected a PYSKL .pkl, OpenPose "
                    "<class>/<video>/*_keypoints.json folders, ST-GCN <split>_label.json files, "
                    "a JHMDB joint_positions/ folder, Charades_v1_train.csv or "
                    "ava_train_v2.x.csv; or set the dataset's format")


def get_reader(fmt: str) -> ModuleType:
    if fmt in READERS:
        return READERS[fmt]
    if fmt in NOT_BUILT:
        raise NotImplementedError(
            f"format {fmt!r} ({NOT_BUILT[fmt]}) has no reader in this version of jmrn; "
            f"supported formats: {sorted(READERS)}"
        )
    raise ValueError(f"unknown raw format {fmt!r}; supported formats: {sorted(READERS)}")
