"""One module per raw format. Each has ``index(raw_dir, options) -> SourceIndex`` (cheap:
lists the videos, classes and splits) and ``load(entry) -> Video | Skipped`` (one video)."""

from __future__ import annotations

from types import ModuleType

from jmrn.readers import jhmdb, openpose, pyskl, stgcn

READERS: dict[str, ModuleType] = {
    "pyskl": pyskl,
    "jhmdb_mat": jhmdb,
    "stgcn_json": stgcn,
    "openpose_json": openpose,
}
# Formats of datasets that a later release will read; selecting one fails with this message.
NOT_BUILT = {
    "charades_csv": "Charades (multi-label CSV + per-frame poses)",
    "ava_csv": "AVA (per-person boxes CSV + keypoints)",
}


def get_reader(fmt: str) -> ModuleType:
    if fmt in READERS:
        return READERS[fmt]
    if fmt in NOT_BUILT:
        raise NotImplementedError(
            f"format {fmt!r} ({NOT_BUILT[fmt]}) has no reader in this version of jmrn; "
            f"supported formats: {sorted(READERS)}"
        )
    raise ValueError(f"unknown raw format {fmt!r}; supported formats: {sorted(READERS)}")
