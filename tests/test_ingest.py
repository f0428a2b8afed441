"""ingest -> keypoints.h5 -> heatmaps.h5 on written fixtures: counts, schema, bad input."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from jmrn import heatmaps_file
from jmrn.heatmaps import Grid, aggregate, temporal_weights
from jmrn.heatmaps_file import HeatmapsFile, build_heatmaps
from jmrn.ingest import ingest
from jmrn.keypoints_file import KeypointsFile, KeypointsWriter
from jmrn.layouts import get_layout
from jmrn.readers import pyskl
from jmrn.records import ReadError, Video


def annotation(name, label, frames=12, persons=1, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "frame_dir": name, "label": label, "img_shape": (240, 320),
        "keypoint": rng.uniform(0, 240, (persons, frames, 17, 2)).astype(np.float32),
        "keypoint_score": rng.uniform(0.1, 1, (persons, frames, 17)).astype(np.float32),
    }  # fmt: skip


@pytest.fixture
def raw_dir(tmp_path):
    anns = [annotation(f"v{i}", i % 3, frames=5 + 7 * i, persons=1 + i % 2, seed=i)
            for i in range(8)]  # fmt: skip
    short = annotation("short", 0, frames=2)
    nan = annotation("nan", 1, seed=9)
    nan["keypoint"][0, 3, 2, 0] = np.inf
    unknown = annotation("unknown", 7)
    dup = annotation("v0", 1)
    split = {"train": ["v0", "v1", "v2", "v3", "v4", "short"], "test": ["v5", "v6", "v7", "nan"]}
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "d.pkl").write_bytes(pickle.dumps({"split": split, "annotations":
                                              anns + [short, nan, unknown, dup]}))  # fmt: skip
    (raw / "classes.txt").write_text("a\nb\nc\n")
    return raw


def run_ingest(raw_dir, out, **kw):
    kw.setdefault("max_skipped_fraction", 0.5)
    return ingest("pyskl", raw_dir, out, dataset="t", layout="coco17_neck", n_jobs=1,
                  options={"class_names": raw_dir / "classes.txt"}, **kw)  # fmt: skip


def test_ingest_counts_skips_and_schema(raw_dir, tmp_path):
    out = tmp_path / "keypoints.h5"
    report = run_ingest(raw_dir, out)
    assert report["videos_read"] == 12 and report["kept"] == 8 and report["skipped"] == 4
    reasons = {s["video_id"]: s["reason"] for s in report["skipped_videos"]}
    assert "too short" in reasons["short"]
    assert "non-finite coordinates" in reasons["nan"]
    assert "unknown label" in reasons["unknown"]
    assert reasons["v0"] == "duplicate video id"
    assert report["splits"] == {"train": 5, "test": 3}
    assert report["split_entries_not_kept"] == {"train": 1, "test": 1}
    assert report["videos_per_class"] == {"a": 3, "b": 3, "c": 2}
    with KeypointsFile(out) as kf:
        assert len(kf) == 8 and kf.layout == "coco17_neck" and len(kf.joint_names) == 18
        assert kf.class_names == ["a", "b", "c"] and not kf.multi_label
        i = kf.video_ids.index("v3")
        kp = kf.keypoints(i)
        assert kp.shape == (26, 2, 18, 3) and kp.dtype == np.float32
        src = annotation("v3", 0, frames=26, persons=2, seed=3)
        np.testing.assert_array_equal(kp[7, 1, :17, :2], src["keypoint"][1, 7])
        assert kf.label[i] == 0 and kf.labels[i].tolist() == [True, False, False]
        assert [kf.video_ids[j] for j in kf.splits["test"]] == ["v5", "v6", "v7"]
        assert kf.file.attrs["format_version"] == 1 and "boxes" not in kf.file


def test_too_many_skips_fail_loudly(raw_dir, tmp_path):
    with pytest.raises(ReadError, match="4 of 12 videos skipped"):
        run_ingest(raw_dir, tmp_path / "k.h5", max_skipped_fraction=0.2)
    assert not list(tmp_path.glob("k.h5*")) and not list(tmp_path.glob(".k.h5*"))


def test_too_many_skips_name_the_first_skipped_file(raw_dir, tmp_path):
    with pytest.raises(ReadError, match=r"first: .*d\.pkl\[8\]: too short"):
        run_ingest(raw_dir, tmp_path / "k.h5", max_skipped_fraction=0.2)


def test_a_split_the_data_lacks_is_caught_before_reading(raw_dir, tmp_path):
    with pytest.raises(ReadError, match=r"no split\(s\) \['train1'\] in the pyskl data, "
                                        r"which has \['test', 'train'\]"):
        run_ingest(raw_dir, tmp_path / "k.h5", required_splits=("train", "train1"))
    assert not (tmp_path / "k.h5").exists()
    report = run_ingest(raw_dir, tmp_path / "k.h5", required_splits=("train", "test"))
    assert report["left_out"] == {}


def test_unconvertible_layout_is_caught_before_reading(raw_dir, tmp_path):
    with pytest.raises(ReadError, match="'coco17' to 'jhmdb15'.*datasets.t.layout to null"):
        ingest("pyskl", raw_dir, tmp_path / "k.h5", dataset="t", layout="jhmdb15", n_jobs=1)
    assert not (tmp_path / "k.h5").exists()


def test_missing_raw_dir_and_unknown_format(tmp_path):
    with pytest.raises(ReadError, match="does not exist.*datasets.t.raw_dir"):
        ingest("pyskl", tmp_path / "nope", tmp_path / "k.h5", dataset="t")
    with pytest.raises(ValueError, match="unknown raw format 'kinect_xef'; supported formats"):
        ingest("kinect_xef", tmp_path, tmp_path / "k.h5", dataset="t")


def test_interrupted_ingest_leaves_no_output_and_keeps_old(raw_dir, tmp_path, monkeypatch):
    out = tmp_path / "keypoints.h5"
    out.write_bytes(b"previous complete output")
    calls = []

    def dying_load(entry):
        calls.append(entry)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_load(entry)

    real_load = pyskl.load
    monkeypatch.setattr(pyskl, "load", dying_load)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(raw_dir, out)
    assert out.read_bytes() == b"previous complete output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keypoints.h5", "raw"]


def test_heatmaps_file_matches_direct_rendering(raw_dir, tmp_path):
    kp_path, hm_path = tmp_path / "keypoints.h5", tmp_path / "heatmaps.h5"
    run_ingest(raw_dir, kp_path)
    grid = Grid(height=32, width=43)
    summary = build_heatmaps(kp_path, hm_path, grid, dtype="float32", n_jobs=2, chunk_videos=3)
    assert summary["videos"] == 8 and summary["shape"] == [3, 18, 32, 43]
    with KeypointsFile(kp_path) as kf, HeatmapsFile(hm_path) as hf:
        assert hf.video_ids == kf.video_ids and hf.heatmaps.shape == (8, 3, 18, 32, 43)
        assert hf.heatmaps.chunks == (1, 3, 18, 32, 43)
        for i in range(len(kf)):
            expected = aggregate(kf.keypoints(i), tuple(kf.image_size[i]), grid)
            np.testing.assert_allclose(hf.heatmaps[i], expected, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(hf.max_norm[i], expected.max(axis=(2, 3)), rtol=1e-6)
            np.testing.assert_allclose(hf.area_norm[i],
                                       temporal_weights(int(kf.num_frames[i])).sum(1))
        assert {k: v.tolist() for k, v in hf.splits.items()} == \
            {k: v.tolist() for k, v in kf.splits.items()}  # fmt: skip
        area = hf.heatmaps[:] / hf.area_norm[:, :, None, None, None]
        assert area.max() <= 1.0 + 1e-6 and area.min() >= 0


def test_interrupted_heatmaps_leave_no_output(raw_dir, tmp_path, monkeypatch):
    kp_path, hm_path = tmp_path / "keypoints.h5", tmp_path / "heatmaps.h5"
    run_ingest(raw_dir, kp_path)
    calls = []

    def dying_aggregate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return aggregate(*args, **kwargs)

    monkeypatch.setattr(heatmaps_file, "aggregate", dying_aggregate)
    with pytest.raises(KeyboardInterrupt):
        build_heatmaps(kp_path, hm_path, Grid(), n_jobs=1, chunk_videos=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keypoints.h5", "raw"]


def test_readers_reject_files_of_another_kind(raw_dir, tmp_path):
    kp_path = tmp_path / "keypoints.h5"
    run_ingest(raw_dir, kp_path)
    with pytest.raises(ValueError, match="not a jmrn heatmaps file"):
        HeatmapsFile(kp_path)
    with h5py.File(kp_path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ValueError, match="format_version 99"):
        KeypointsFile(kp_path)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="junk.h5: not a readable HDF5"):
        KeypointsFile(tmp_path / "junk.h5")


def test_writer_stores_optional_boxes_and_multi_labels(tmp_path):
    path = tmp_path / "k.h5"
    writer = KeypointsWriter(path, dataset="t", source_format="x", layout=get_layout("coco17"),
                             class_names=["a", "b", "c"], multi_label=True)  # fmt: skip
    kp = np.ones((4, 2, 17, 3), np.float32)
    boxes = np.arange(4 * 2 * 4, dtype=np.float32).reshape(4, 2, 4)
    writer.add(Video("no_boxes", kp[:3, :1], (240, 320), (0, 2), "s"))
    writer.add(Video("boxes", kp, (240, 320), (), "s", boxes=boxes))
    writer.close({"all": [1, 0]})
    with KeypointsFile(path) as kf:
        assert kf.multi_label and kf.label.tolist() == [-1, -1]
        assert kf.labels.tolist() == [[True, False, True], [False, False, False]]
        assert kf.splits["all"].tolist() == [0, 1]
        stored = kf.file["boxes"]
        assert stored.shape == (3 + 8, 4) and np.isnan(stored[:3]).all()
        np.testing.assert_array_equal(stored[3:].reshape(4, 2, 4), boxes)
