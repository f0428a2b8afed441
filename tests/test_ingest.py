"""ingest -> keypoints.h5 -> heatmaps.h5 on written fixtures: counts, schema, bad input."""

from __future__ import annotations

import pickle
import re

import h5py
import numpy as np
import pytest

from jmrn import heatmaps_file
from jmrn.heatmaps import Grid, aggregate, temporal_weights
from jmrn.heatmaps_file import HeatmapsFile, build_heatmaps
from jmrn.ingest import (
    _duplicate,
    _load_checked,
    _reason_kind,
    disjoint_splits_from_params,
    empty_classes_warning,
    ingest,
    ingest_metrics,
    joint_statistics,
)
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
    dup = annotation("v0", 0)  # the same id and label, other data
    split = {"train": ["v0", "v1", "v2", "v3", "v4", "short"], "test": ["v5", "v6", "v7", "nan"]}
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "d.pkl").write_bytes(pickle.dumps({"split": split, "annotations":
                                              anns + [short, nan, unknown, dup]}))  # fmt: skip
    (raw / "classes.txt").write_text("a\nb\nc\n")
    return raw


def write_raw(tmp_path, anns, split=None, classes="a\nb\nc\n"):
    raw = tmp_path / "raw"
    raw.mkdir(parents=True)
    split = split if split is not None else {"train": [a["frame_dir"] for a in anns]}
    (raw / "d.pkl").write_bytes(pickle.dumps({"split": split, "annotations": anns}))
    (raw / "classes.txt").write_text(classes)
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
    assert reasons["v0"] == f"duplicate video id (first read from {raw_dir / 'd.pkl'}[0])"
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


def test_too_many_skips_list_each_reason_with_an_example(raw_dir, tmp_path):
    with pytest.raises(ReadError) as error:
        run_ingest(raw_dir, tmp_path / "k.h5", max_skipped_fraction=0.2)
    message = str(error.value)
    assert "see the reasons above" not in message
    assert re.search(r"1x 'too short', e\.g\. video 'short' \(.*d\.pkl\[8\]\): too short "
                     r"\(2 frames, min_frames is 3\)", message)  # fmt: skip
    assert re.search(r"1x 'unknown label\(s\)', e\.g\. video 'unknown' \(.*d\.pkl\[10\]\): "
                     r"unknown label\(s\) \[7\]", message)  # fmt: skip
    assert "1x 'duplicate video id', e.g. video 'v0'" in message
    assert "1x 'non-finite coordinates', e.g. video 'nan'" in message


def test_failure_message_groups_reasons_by_kind_with_counts(tmp_path):
    anns = [annotation("good", 0)]
    for i, label in enumerate([1.7, "3", None]):
        anns.append(annotation(f"label{i}", label))
    for i, conf in enumerate([50, 7.5]):
        ann = annotation(f"conf{i}", 0, seed=i)
        ann["keypoint_score"][0, 1, 2] = conf
        anns.append(ann)
    raw = write_raw(tmp_path, anns)
    with pytest.raises(ReadError) as error:
        run_ingest(raw, tmp_path / "k.h5")
    message = str(error.value)
    assert "5 of 6 videos skipped" in message
    assert ("3x 'label is not an integer', e.g. video 'label0' "
            f"({raw / 'd.pkl'}[1]): label is not an integer: 1.7") in message
    assert ("2x 'confidence N above N', e.g. video 'conf0' "
            f"({raw / 'd.pkl'}[4]): confidence 50 above 1.2: not a probability") in message
    only_bad = write_raw(tmp_path / "bad", anns[1:])
    with pytest.raises(ReadError, match=r"no usable video among 5; Skip reasons:\n  "
                                        r"3x 'label is not an integer'"):  # fmt: skip
        run_ingest(only_bad, tmp_path / "k.h5")


@pytest.mark.parametrize("reason, kind", [
    ("too short (2 frames, min_frames is 3)", "too short"),
    ("412 of 5883 detected joints outside the 340x256 frame (tolerance 10%): wrong "
     "source.image_size?", "N of N detected joints outside the N frame"),
    ("confidence 3e+38 above 1.2: not a probability", "confidence N above N"),
    ("label is not an integer: '3'", "label is not an integer"),
    ("negative confidence -0.5", "negative confidence N"),
    ("unknown label(s) [7] (the class list has 3 classes)", "unknown label(s)"),
    ("MATLAB v7.3 (HDF5) file", "MATLAB v7.3"),
    ("non-finite values after the layout conversion (coco17 to coco17_neck)",
     "non-finite values after the layout conversion"),
])  # fmt: skip
def test_reason_kinds_hold_no_per_video_numbers(reason, kind):
    assert _reason_kind(reason) == kind


@pytest.mark.parametrize("key, value", [
    ("frame_tolerance", -0.1), ("frame_tolerance", 1.5), ("frame_tolerance", "0.1"),
    ("frame_tolerance", True), ("frame_tolerance", None), ("max_outside_fraction", 2),
    ("max_outside_fraction", float("nan")), ("max_skipped_fraction", -1),
    ("placeholder_xy", [1]), ("placeholder_xy", [1, float("inf")]), ("placeholder_xy", "1,1"),
    ("min_frames", 0), ("min_frames", 2.5),
])  # fmt: skip
def test_ingest_settings_are_validated_before_reading(raw_dir, tmp_path, key, value):
    with pytest.raises(ValueError, match=rf"ingest\.{key} must be"):
        run_ingest(raw_dir, tmp_path / "k.h5", **{key: value})
    assert not (tmp_path / "k.h5").exists()


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


def test_writer_stores_each_videos_own_single_label(tmp_path):
    """Labels are written as one index array at close: each row keeps its own video's
    label, in the order the videos were added."""
    path = tmp_path / "k.h5"
    writer = KeypointsWriter(path, dataset="t", source_format="x", layout=get_layout("coco17"),
                             class_names=["a", "b", "c"], multi_label=False)  # fmt: skip
    labels = [2, 0, 1, 2, 1]
    for i, label in enumerate(labels):
        writer.add(Video(f"v{i}", np.ones((3, 1, 17, 3), np.float32), (240, 320), (label,), "s"))
    writer.close({"all": list(range(len(labels)))})
    with KeypointsFile(path) as kf:
        assert not kf.multi_label and kf.label.tolist() == labels
        assert kf.labels.tolist() == [[k == label for k in range(3)] for label in labels]


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


def test_joints_outside_the_frame_never_reach_the_file(tmp_path):
    huge = annotation("huge", 0, seed=1)
    huge["keypoint"][0, 2, 5, 0] = 1e30  # left shoulder: the neck is derived from it
    huge["keypoint"][0, 4, 6, 1] = 3e38  # right shoulder; their midpoint would be inf
    far = annotation("far", 1, seed=2)  # 30 of 204 joints (14.7%) far right: kept
    far["keypoint"][0, :10, :3, 0] = 5000
    wrong = [annotation(f"wrong{i}", 2, seed=3 + i) for i in range(2)]
    wrong[0]["keypoint"][0, :, :6, 0] = 900  # 72 of 204 outside: skipped
    wrong[1]["keypoint"][0, :, :9, 1] = -200  # 108 of 204 outside: skipped
    anns = [annotation(f"ok{i}", i % 3, seed=10 + i) for i in range(6)] + [huge, far, *wrong]
    raw = write_raw(tmp_path, anns)
    out = tmp_path / "k.h5"
    report = run_ingest(raw, out)
    assert report["kept"] == 8 and report["skipped"] == 2
    reasons = {s["video_id"]: s["reason"] for s in report["skipped_videos"]}
    assert reasons == {
        "wrong0": "72 of 204 detected joints outside the 320x240 frame (tolerance 10%): "
                  "wrong source.image_size?",
        "wrong1": "108 of 204 detected joints outside the 320x240 frame (tolerance 10%): "
                  "wrong source.image_size?",
    }  # fmt: skip
    assert report["skipped_by_reason"] == {"N of N detected joints outside the N frame": 2}
    assert report["joints_outside_frame"] == {"outside": 32, "detected": 8 * 204,
                                              "fraction": 32 / (8 * 204)}  # fmt: skip
    assert report["videos_with_joints_outside"] == {"count": 2, "listed": [
        {"video_id": "far", "outside": 30, "detected": 204},
        {"video_id": "huge", "outside": 2, "detected": 204}]}  # fmt: skip
    assert ingest_metrics(report)["joints_outside_frame"] == report["joints_outside_frame"]
    with KeypointsFile(out) as kf:
        kp = kf.file["keypoints"][:]
        assert np.isfinite(kp).all() and np.abs(kp[..., :2]).max() <= 320 * 1.1
        neck = kf.keypoints(kf.video_ids.index("huge"))[:, 0, 17]
        assert neck[2, 2] == 0 and neck[4, 2] == 0 and (neck[[0, 1, 3, 5], 2] > 0).all()
    kept = run_ingest(raw, tmp_path / "k2.h5", max_outside_fraction=0.6)
    assert kept["kept"] == 10 and kept["joints_outside_frame"]["outside"] == 32 + 72 + 108


def test_non_finite_values_after_conversion_are_a_skip(monkeypatch):
    def overflowing_convert(keypoints, source, target):
        return np.full(keypoints.shape[:-2] + (target.num_joints, 3), np.inf, np.float32)

    monkeypatch.setattr("jmrn.ingest.convert", overflowing_convert)
    kp = np.full((5, 1, 17, 3), 0.5, np.float32)
    item = _load_checked({}, load=lambda e: Video("v", kp, (240, 320), (0,), "f"),
                         source=get_layout("coco17"), target=get_layout("coco17_neck"),
                         num_classes=1, multi_label=False, min_frames=3, frame_tolerance=0.1,
                         max_outside_fraction=0.2, placeholder_xy=None)  # fmt: skip
    assert item.reason == "non-finite values after the layout conversion (coco17 to coco17_neck)"


def test_a_kept_id_read_again_with_other_labels_is_an_error_whatever_the_reader():
    """Readers catch repeated ids where they can; ingest checks every copy it is handed."""
    kp = np.zeros((3, 1, 17, 3), np.float32)
    again = Video("v", kp, (240, 320), (2,), "b.json")
    with pytest.raises(ReadError, match=re.escape("video 'v' appears twice with different "
                                                  "labels: ['jump'] in a.json and ['run'] in "
                                                  "b.json")):  # fmt: skip
        _duplicate(again, (0,), "a.json", ["jump", "sit", "run"])
    multi = Video("v", kp, (240, 320), (0, 2), "b.json")
    with pytest.raises(ReadError, match=re.escape("['jump'] in a.json and ['jump', 'run']")):
        _duplicate(multi, (0,), "a.json", ["jump", "sit", "run"])
    same = _duplicate(Video("v", kp, (240, 320), (0,), "b.json"), (0,), "a.json", ["jump"])
    assert same.reason == "duplicate video id (first read from a.json)"


@pytest.mark.parametrize("video_id", ["", "   ", None])
def test_a_video_without_an_id_is_a_skip_whatever_the_reader(video_id):
    kp = np.full((5, 1, 17, 3), 0.5, np.float32)
    item = _load_checked({}, load=lambda e: Video(video_id, kp, (240, 320), (0,), "f.json"),
                         source=get_layout("coco17"), target=get_layout("coco17"),
                         num_classes=1, multi_label=False, min_frames=3, frame_tolerance=0.1,
                         max_outside_fraction=0.2, placeholder_xy=None)  # fmt: skip
    assert item.video_id == "f.json" and item.reason == f"empty video id (the video id: " \
        f"{video_id!r})"  # fmt: skip


def test_confidences_above_one_are_clipped_and_counted(tmp_path):
    over = annotation("over", 0)
    over["keypoint_score"][0, 0, :3] = [1.05, 1.1, 1.2]
    not_prob = annotation("not_prob", 1)
    not_prob["keypoint_score"][0, 5, 5] = 50
    raw = write_raw(tmp_path, [over, not_prob] + [annotation(f"v{i}", 2, seed=i)
                                                  for i in range(3)])  # fmt: skip
    report = run_ingest(raw, tmp_path / "k.h5")
    assert report["confidences_clipped"] == 3
    assert report["skipped_videos"] == [{"video_id": "not_prob", "source": f"{raw}/d.pkl[1]",
                                         "reason": "confidence 50 above 1.2: not a probability"}]
    with KeypointsFile(tmp_path / "k.h5") as kf:
        assert kf.keypoints(kf.video_ids.index("over"))[0, 0, :3, 2].tolist() == [1, 1, 1]
        assert kf.file["keypoints"][:, :, 2].max() == 1.0


def test_a_video_twice_in_one_split_is_an_error(tmp_path):
    anns = [annotation(f"v{i}", i % 3, seed=i) for i in range(4)]
    raw = write_raw(tmp_path, anns, {"train": ["v0", "v1", "v0"], "test": ["v2", "v3"]})
    with pytest.raises(ReadError, match="video 'v0' is listed twice in split 'train'"):
        run_ingest(raw, tmp_path / "k.h5")
    assert not (tmp_path / "k.h5").exists()


def test_a_video_in_two_disjoint_splits_is_an_error(tmp_path):
    anns = [annotation(f"v{i}", i % 3, seed=i) for i in range(4)]
    split = {"train": ["v0", "v1", "v2"], "test": ["v2", "v3"], "all": ["v0", "v1", "v2", "v3"]}
    raw = write_raw(tmp_path, anns, split)
    with pytest.raises(ReadError, match="video 'v2' is in split 'train' and in split 'test', "
                                        "which must be disjoint"):  # fmt: skip
        run_ingest(raw, tmp_path / "k.h5", disjoint_splits=[("train", "test")])
    # "all" overlaps both, but no group says it must not; absent names are ignored
    report = run_ingest(raw, tmp_path / "k.h5", disjoint_splits=[("train", "other")])
    assert report["splits"] == {"train": 3, "test": 2, "all": 4}


def params_with(splits: dict) -> dict:
    return {"dataset": "d", "split": None, "datasets": {"d": {"splits": splits}}}


def test_disjoint_split_groups_come_from_the_params():
    numbered = params_with({"train": "train{split}", "test": "test{split}", "split": 1,
                            "all": [1, 2, 3]})  # fmt: skip
    assert disjoint_splits_from_params(numbered) == [("train1", "test1"), ("train2", "test2"),
                                                     ("train3", "test3")]  # fmt: skip
    kinetics = params_with({"train": "kinetics_train", "test": "kinetics_val",
                            "also_test": ["mimetics"]})  # fmt: skip
    assert disjoint_splits_from_params(kinetics) == [("kinetics_train", "kinetics_val",
                                                      "mimetics")]  # fmt: skip
    ava = params_with({"train": "train", "test": "val", "detected": "val_detected"})
    assert disjoint_splits_from_params(ava) == [("train", "val", "val_detected")]


def test_classes_without_videos_are_reported_overall_and_per_split(tmp_path):
    anns = [annotation(f"v{i}", i % 3, seed=i) for i in range(6)]  # classes a, b, c
    split = {"train": ["v0", "v1", "v2", "v3"], "test": ["v4", "v0"]}  # test: b, a; no c
    raw = write_raw(tmp_path, anns, split, classes="a\nb\nc\nd\n")
    report = run_ingest(raw, tmp_path / "k.h5")
    assert report["empty_classes"] == ["d"]
    assert report["empty_classes_per_split"] == {"train": ["d"], "test": ["c", "d"]}
    assert empty_classes_warning(report) == ("warning: ingest t: no kept video of class(es) "
                                             "['d']; no video of ['c', 'd'] in split 'test'")
    metrics = ingest_metrics(report)
    assert metrics["empty_classes"] == 1
    assert metrics["empty_classes_per_split"] == {"train": 1, "test": 2}
    full = run_ingest(write_raw(tmp_path / "full", anns, {"train": ["v0", "v1", "v2"]}),
                      tmp_path / "k2.h5")  # fmt: skip
    assert full["empty_classes"] == [] and empty_classes_warning(full) is None


def test_joint_statistics_of_a_planted_video():
    kp = np.zeros((5, 1, 2, 3), np.float32)
    kp[..., 2] = 1
    kp[:3, 0, 0, :2] = 1.0  # joint 0 at (1, 1) in frames 0-2, at (2, 3) in frames 3-4
    kp[3:, 0, 0, :2] = (2.0, 3.0)
    kp[:, 0, 1, 0] = np.arange(5)  # joint 1 moves every frame
    kp[2, 0, 1, 2] = 0  # and is missing in frame 2
    stats = joint_statistics(kp)
    assert stats["joint_detected"].tolist() == [5, 4]
    assert stats["joint_pairs"].tolist() == [4, 2]
    assert stats["joint_static"].tolist() == [3, 0]
    assert stats["positions"].tolist() == [[0, 1, 1, 3], [0, 2, 3, 2]]


def test_placeholder_joints_are_found_and_removed(tmp_path, monkeypatch):
    anns = [annotation(f"v{i}", i % 3, seed=i) for i in range(6)]
    for ann in anns:
        ann["keypoint"][0, :6, 9] = 1.0  # left_wrist at (1, 1) in frames 0-5 of 12
        ann["keypoint_score"][0, :6, 9] = 1.0
    raw = write_raw(tmp_path, anns)
    report = run_ingest(raw, tmp_path / "k.h5")
    wrist = report["joint_positions"]["left_wrist"]
    assert wrist["detected"] == 6 * 12 and wrist["most_common_xy"] == [1.0, 1.0]
    assert wrist["most_common_fraction"] == 0.5
    assert wrist["static_fraction"] == 5 / 11  # pairs (0,1)..(4,5) of 11 per video
    others = [v for k, v in report["joint_positions"].items() if k != "left_wrist"]
    assert all(v["static_fraction"] == 0 and v["most_common_xy"] is None for v in others)
    assert report["suspected_placeholders"] == [{"joint": "left_wrist", "xy": [1.0, 1.0],
                                                 "fraction": 0.5}]  # fmt: skip
    assert report["placeholders_removed"] == 0
    monkeypatch.setattr("jmrn.ingest.POSITIONS_BUFFER", 0)  # merge and prune after each video
    assert run_ingest(raw, tmp_path / "k1.h5")["joint_positions"] == report["joint_positions"]
    removed = run_ingest(raw, tmp_path / "k2.h5", placeholder_xy=[1, 1])
    assert removed["placeholders_removed"] == 36 and removed["suspected_placeholders"] == []
    assert removed["joint_positions"]["left_wrist"]["detected"] == 36
    with KeypointsFile(tmp_path / "k2.h5") as kf:
        for i in range(len(kf)):
            wrist = kf.keypoints(i)[:, 0, 9]
            assert (wrist[:6] == 0).all() and (wrist[6:, 2] > 0).all()
