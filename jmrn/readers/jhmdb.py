"""JHMDB ground-truth puppet annotations (``joint_positions.mat``), 15 joints, one person.

On disk (the layout of the official JHMDB release)::

    raw_dir/joint_positions/<class>/<video>/joint_positions.mat
    raw_dir/splits/<class>_test_split<k>.txt      lines "<video>.avi 1" (train) or "... 2" (test)

Each ``.mat`` is a MATLAB 5 file whose ``pos_img`` is float64 ``(2, 15, T)`` = (x/y, joint,
frame) in pixels of the 320x240 frame. Other variables (``pos_world``, ``scale``,
``viewpoint``) are absent from some copies and the variable order varies, so only ``pos_img``
is read. Ground truth has no confidence: every joint gets 1. MATLAB v7.3 (HDF5) files are
skipped with a reason (re-save them with ``save(..., '-v7')``).

The video id is the video directory name (JHMDB names are unique across classes); its label is
the index of its class directory. Each split number ``k`` found in ``splits/`` gives two
splits, ``train<k>`` and ``test<k>``. A split line marked ``0`` (HMDB51's "not used") is in
neither. A video listed in a split file but absent on disk stays in the split (ingest counts it
as missing).

Options: ``class_names`` (text file, one class per line, index = line; default: the sorted
class directory names; videos of a class directory absent from the file are skipped),
``image_size`` ([H, W] of the frames, default [240, 320]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jmrn.readers.common import class_folder_videos, image_size_option, read_test_split_files
from jmrn.records import ReadError, Skipped, SourceIndex, Video

LAYOUT = "jhmdb15"
DEFAULT_IMAGE_SIZE = (240, 320)
MAT_NAME = "joint_positions.mat"
def index(raw_dir: Path, options: dict) -> SourceIndex:
    """Class folders, video folders and split files only: no .mat is opened here."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ReadError(f"raw directory {raw_dir} does not exist")
    pose_dir = raw_dir / "joint_positions"
    if not pose_dir.is_dir():
        raise ReadError(f"{pose_dir} does not exist (expected joint_positions/<class>/<video>/)")
    image_size = image_size_option(options, DEFAULT_IMAGE_SIZE)
    class_names, entries = class_folder_videos(pose_dir, options)
    for entry in entries:
        entry["path"] = str(Path(entry["dir"]) / MAT_NAME)
        entry["image_size"] = image_size
    class_dirs = sorted({entry["class_name"] for entry in entries})
    splits = read_test_split_files(raw_dir / "splits", class_dirs)
    return SourceIndex(LAYOUT, class_names, False, splits, entries, parallel=True)


def load(entry: dict) -> Video | Skipped:
    """One video's pos_img as (T, 1, 15, 3) with confidence 1, or why it cannot be used."""
    video_id, source = entry["video_id"], entry["path"]

    def skip(reason: str) -> Skipped:
        return Skipped(video_id, source, reason)

    if entry["label"] is None:
        return skip(f"unknown label: class directory {entry['class_name']!r} is not in the "
                    "class list")  # fmt: skip
    if not Path(source).is_file():
        return skip(f"no {MAT_NAME} in the video directory")
    import scipy.io  # here, not at the top: 0.25 s that every reader's worker process paid

    try:
        # variable_names: read only pos_img, whatever else the file holds and in whatever order.
        mat = scipy.io.loadmat(source, variable_names=["pos_img"])
    except NotImplementedError:
        return skip("MATLAB v7.3 (HDF5) file; re-save it with save(..., '-v7')")
    except Exception as error:  # scipy raises many types for damaged files
        return skip(f"cannot read the .mat file ({type(error).__name__}: {error})")
    if "pos_img" not in mat:
        # A truncated compressed file reads this way too: scipy stops at the damaged variable.
        return skip("the .mat file has no 'pos_img' variable (or is truncated before it)")
    if mat["pos_img"].dtype.kind not in "iuf":  # a logical array would read as 1.0 / 0.0
        return skip(f"pos_img is not numeric (dtype {mat['pos_img'].dtype})")
    pos = np.asarray(mat["pos_img"], dtype=np.float32)
    if pos.ndim != 3 or pos.shape[0] != 2:
        return skip(f"pos_img has shape {pos.shape}, expected (2, joints, frames)")
    xy = pos.transpose(2, 1, 0)  # (T, V, 2)
    conf = np.ones(xy.shape[:2] + (1,), dtype=np.float32)
    keypoints = np.concatenate([xy, conf], axis=-1)[:, None]  # (T, 1, V, 3)
    return Video(video_id, keypoints, tuple(entry["image_size"]), (entry["label"],), source)
