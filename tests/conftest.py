"""Shared test fixtures. Real public data lives in ../shared/data (never in this repo); tests
that need it skip cleanly where it is absent, as in a user's clone."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_jhmdb() -> dict:
    """The real JHMDB-14 ground-truth pickle: {"split": ..., "annotations": [...]}, for tests
    that corrupt a few real videos one way at a time (copy what you change)."""
    from jmrn.safe_pickle import load_pickle

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return load_pickle(SHARED_DATA / "jhmdb14_gt" / "jhmdb14_gt_split1.pkl")


def write_real_subset(real: dict, raw: Path, videos: int = 6,
                      annotations: list | None = None) -> Path:  # fmt: skip
    """``raw``/jhmdb.pkl with the first ``videos`` real JHMDB-14 annotations (or
    ``annotations``), every one in split ``train``, and ``raw``/classes.txt (14 classes)."""
    import pickle

    anns = annotations if annotations is not None else \
        [dict(a) for a in real["annotations"][:videos]]  # fmt: skip
    raw.mkdir(parents=True, exist_ok=True)
    ids = list(dict.fromkeys(a["frame_dir"] for a in anns
                             if isinstance(a, dict) and "frame_dir" in a))  # fmt: skip
    (raw / "jhmdb.pkl").write_bytes(pickle.dumps({"split": {"train": ids},
                                                  "annotations": anns}))  # fmt: skip
    classes = SHARED_DATA / "jhmdb14_gt" / "jhmdb14_gt_split1_classes.txt"
    (raw / "classes.txt").write_text(classes.read_text())
    return raw


TINY_SETTINGS = {
    "model": {"name": "jmrn", "c_dim": 4, "widths": [8, 16], "head_width": 16, "dropout": 0.0,
              "selector": "sigmoid", "gumbel_tau": 1.0, "embedding": "r", "projection": "mlp"},
    "paa": {"type": "global_and_groupwise", "beta": 2, "gamma": 1, "flip_p": 0.5,
            "rotation_degrees": 0, "group_rotation_degrees": 0, "cutmix_joints": 0},
    "contrastive": {"variant": "proposed", "lambda": 0.1, "tau": 0.3, "start_epoch": 0,
                    "ramp_epochs": 1},
    "train": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0,
              "batch_size": 8, "epochs": 3, "normalize": "area", "crop": [16, 20],
              "schedule": "plateau", "lr_patience": 2, "lr_factor": 0.1, "eval_every": 1,
              "val_fraction": 0.2, "seed": 0},
    "splits": {"train": "train", "test": "test"},
}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_heatmaps(tmp_path_factory) -> Path:
    """A small real pipeline output: 30 synthetic videos on a 16x22 grid."""
    from jmrn import synthetic
    from jmrn.heatmaps import Grid
    from jmrn.heatmaps_file import build_heatmaps
    from jmrn.ingest import ingest

    root = tmp_path_factory.mktemp("tiny")
    raw = root / "raw"
    synthetic.write(raw / "synthetic.pkl", synthetic.generate(seed=1, videos_per_class=3))
    (raw / "classes.txt").write_text("\n".join(synthetic.CLASS_NAMES) + "\n")
    ingest("pyskl", raw, root / "keypoints.h5", dataset="tiny", layout="coco17_neck",
           options={"class_names": raw / "classes.txt"}, n_jobs=1)  # fmt: skip
    build_heatmaps(root / "keypoints.h5", root / "heatmaps.h5", Grid(height=16, width=22),
                   n_jobs=1)  # fmt: skip
    return root / "heatmaps.h5"


@pytest.fixture(scope="session")
def tiny_clip_heatmaps(tiny_heatmaps) -> Path:
    """The same 30 videos as 16-frame clips at stride 8."""
    from jmrn.heatmaps import Grid
    from jmrn.heatmaps_file import build_heatmaps

    out = tiny_heatmaps.parent / "clips.h5"
    build_heatmaps(tiny_heatmaps.parent / "keypoints.h5", out, Grid(height=16, width=22),
                   clips=(16, 8), n_jobs=1)  # fmt: skip
    return out
