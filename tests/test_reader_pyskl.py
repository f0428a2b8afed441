"""PYSKL / MMAction2 pickles: real files, written fixtures, malformed and malicious ones."""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest
import yaml
from conftest import write_real_subset

from jmrn.ingest import ingest, ingest_metrics, missing_videos_warning
from jmrn.keypoints_file import KeypointsFile
from jmrn.layouts import get_layout
from jmrn.readers import pyskl
from jmrn.records import ReadError, Skipped, Video, check_video
from jmrn.safe_pickle import load_pickle


def annotation(name, label, frames=12, persons=1, joints=17, rng=None):
    rng = rng or np.random.default_rng(0)
    return {
        "frame_dir": name, "label": label, "img_shape": (240, 320),
        "original_shape": (240, 320), "total_frames": frames,
        "keypoint": rng.uniform(0, 240, (persons, frames, joints, 2)).astype(np.float32),
        "keypoint_score": rng.uniform(0.1, 1, (persons, frames, joints)).astype(np.float32),
    }  # fmt: skip


def write(path, obj, protocol=4):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def load_all(raw_dir, options=None):
    index = pyskl.index(raw_dir, options or {})
    return index, [pyskl.load(e) for e in index.entries]


def test_real_jhmdb_gt_pickle(shared_data):
    options = {"class_names": shared_data / "jhmdb14_gt" / "jhmdb14_gt_split1_classes.txt"}
    index, videos = load_all(shared_data / "jhmdb14_gt", options)
    assert index.layout == "jhmdb15"
    assert len(index.class_names) == 14 and index.class_names[1] == "clap"
    assert {k: len(v) for k, v in index.splits.items()} == {"train1": 433, "test1": 176}
    assert len(videos) == 609 and all(isinstance(v, Video) for v in videos)
    first = videos[0]
    assert first.video_id == "jhmdb14_s1_train_0000_clap" and first.labels == (1,)
    assert first.keypoints.shape == (39, 1, 15, 3) and first.image_size == (240, 320)
    assert (first.keypoints[..., 2] == 1).all()
    checked = [check_video(v, 15, 14, False) for v in videos]
    # The release's fixed pos_world -> pixel map puts the heads of three "jump" videos far
    # above the frame: more than max_outside_fraction (0.2) of their joints are outside.
    skipped = {v.video_id: v.reason for v in checked if isinstance(v, Skipped)}
    assert sorted(skipped) == [f"jhmdb14_s1_train_{i:04d}_jump" for i in (257, 260, 264)]
    assert all("detected joints outside the 320x240 frame" in r for r in skipped.values())
    lenient = [check_video(v, 15, 14, False, max_outside_fraction=0.4) for v in videos]
    assert all(isinstance(v, Video) for v in lenient)
    outside = sum(v.stats["outside"] for v in lenient)
    assert outside / sum(v.stats["detected"] for v in lenient) < 0.01  # README: 99.3% inside
    assert min(v.keypoints.shape[0] for v in videos) >= 15


def test_real_pickle_without_keypoints_is_rejected(shared_data):
    with pytest.raises(ReadError, match="no annotation has 'keypoint'"):
        pyskl.index(shared_data / "formats" / "mmaction2", {"file": "k400_meta_sample.pkl"})


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_written_fixture_roundtrip(tmp_path, protocol):
    anns = [annotation("a", 0, persons=2), annotation("b", 2, frames=5)]
    write(tmp_path / "x.pkl", {"split": {"train": ["a"], "test": ["b"]}, "annotations": anns},
          protocol)  # fmt: skip
    index, videos = load_all(tmp_path)
    assert index.layout == "coco17" and index.class_names == ["class_0", "class_1", "class_2"]
    a = videos[0]
    assert a.keypoints.shape == (12, 2, 17, 3)
    # (M, T, V, 2) + (M, T, V) -> (T, M, V, 3)
    np.testing.assert_array_equal(a.keypoints[3, 1, 5, :2], anns[0]["keypoint"][1, 3, 5])
    assert a.keypoints[3, 1, 5, 2] == anns[0]["keypoint_score"][1, 3, 5]
    assert index.splits == {"train": ["a"], "test": ["b"]}


def test_bare_list_and_score_in_keypoint(tmp_path):
    ann = annotation("a", 0)
    ann["keypoint"] = np.concatenate([ann["keypoint"], ann.pop("keypoint_score")[..., None]], -1)
    write(tmp_path / "x.pkl", [ann])
    index, (video,) = load_all(tmp_path)
    assert index.splits == {} and video.keypoints.shape == (12, 1, 17, 3)


def test_malformed_annotations_are_skipped_with_reasons(tmp_path):
    bad_shape = annotation("bad_shape", 0)
    bad_shape["keypoint"] = bad_shape["keypoint"][0]
    no_label = annotation("no_label", 0)
    del no_label["label"]
    bad_score = annotation("bad_score", 0)
    bad_score["keypoint_score"] = bad_score["keypoint_score"][:, :3]
    nan = annotation("nan", 0)
    nan["keypoint"][0, 2, 4] = np.nan
    wrong_joints = annotation("wrong_joints", 0, joints=13)
    unknown = annotation("unknown_label", 9)
    anns = [annotation("ok", 0), bad_shape, no_label, bad_score, nan, wrong_joints, unknown]
    write(tmp_path / "x.pkl", {"split": {}, "annotations": anns})
    index, videos = load_all(tmp_path, {"class_names": write_classes(tmp_path, 3)})
    results = {v.video_id: check_video(v, 17, 3, False) if isinstance(v, Video) else v
               for v in videos}  # fmt: skip
    assert isinstance(results["ok"], Video)
    reasons = {k: v.reason for k, v in results.items() if isinstance(v, Skipped)}
    assert "expected (M, T, V, 2)" in reasons["bad_shape"]
    assert "no 'label'" in reasons["no_label"]
    assert "keypoint_score has shape" in reasons["bad_score"]
    assert "non-finite coordinates" in reasons["nan"]
    assert "13 joints" in reasons["wrong_joints"]
    assert "unknown label" in reasons["unknown_label"]


def write_classes(tmp_path, n):
    path = tmp_path / "classes.txt"
    path.write_text("\n".join(f"c{i}" for i in range(n)) + "\n")
    return path


def test_truncated_pickle_names_the_file(tmp_path):
    data = pickle.dumps({"split": {}, "annotations": [annotation("a", 0)]})
    (tmp_path / "x.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match=r"x\.pkl: .*truncated"):
        pyskl.index(tmp_path, {})


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_malicious_pickle_does_not_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "x.pkl", {"split": {}, "annotations": [Exploit()]})
    with pytest.raises(ReadError, match="refusing to load (posix|os).system"):
        load_pickle(tmp_path / "x.pkl")
    assert not (tmp_path / "pwned.txt").exists()


def test_wrong_structure_and_missing_file(tmp_path):
    write(tmp_path / "x.pkl", {"something": 1})
    with pytest.raises(ReadError, match="expected a dict with 'annotations'"):
        pyskl.index(tmp_path, {})
    with pytest.raises(ReadError, match="does not exist"):
        pyskl.index(tmp_path, {"file": "nope.pkl"})
    write(tmp_path / "y.pkl", [annotation("a", 0)])
    with pytest.raises(ReadError, match="exactly one"):
        pyskl.index(tmp_path, {})


def test_malformed_fields_are_counted_skips_next_to_good_videos(tmp_path):
    """Every malformed annotation is a skip naming its video and field, never an exception,
    in index() (layout and class count inference) as in load()."""
    good = [annotation(f"good{i}", i % 2, rng=np.random.default_rng(i)) for i in range(4)]
    bad = {}

    def plant(name, **fields):
        ann = annotation(name, 0)
        ann.update(fields)
        bad[name] = ann

    plant("label_none", label=None)
    plant("label_str", label="3")
    plant("label_float", label=1.7)
    plant("label_bool", label=True)
    plant("shape_int", img_shape=240)
    plant("shape_3", img_shape=(240, 320, 3))
    plant("shape_zero", img_shape=(0, 320))
    plant("shape_negative", img_shape=(-240, 320))
    plant("kp_str", keypoint="not an array")
    plant("kp_ragged", keypoint=[[[[1.0, 2.0]] * 17] * 3, [[[1.0, 2.0]] * 17] * 2])
    plant("kp_dict", keypoint={"x": 1})
    plant("score_shape", keypoint_score=np.ones((1, 12, 5), np.float32))
    plant("score_str", keypoint_score="high")
    frame_dir_int = annotation(7, 0)
    anns = good + list(bad.values()) + [frame_dir_int, ["not", "a", "dict"]]
    path = write(tmp_path / "x.pkl", {"split": {"train": [a["frame_dir"] for a in good]},
                                      "annotations": anns})  # fmt: skip
    index = pyskl.index(tmp_path, {})  # class count from the integer labels only
    assert index.layout == "coco17" and index.class_names == ["class_0", "class_1"]
    n = len(good) + len(bad)
    expected = {
        "label_none": "label is not an integer: None",
        "label_str": "label is not an integer: '3'",
        "label_float": "label is not an integer: 1.7",
        "label_bool": "label is not an integer: True",
        "shape_int": "invalid image size: img_shape is 240, expected (height, width)",
        "shape_3": "invalid image size: img_shape has 3 values (240, 320, 3), expected "
                   "(height, width)",
        "shape_zero": "invalid image size: img_shape is (0, 320), expected two positive "
                      "integers",
        "shape_negative": "invalid image size: img_shape is (-240, 320), expected two positive "
                          "integers",
        "kp_str": "keypoint is a str, not a numeric array",
        "kp_dict": "keypoint is a dict, not a numeric array",
        "score_shape": "keypoint_score has shape (1, 12, 5), expected (1, 12, 17)",
        "score_str": "keypoint_score is a str, not a numeric array",
        f"{path}[{n}]": "frame_dir is not a string: 7",
        f"{path}[{n + 1}]": "annotation is a list, not a dict",
    }  # fmt: skip
    report = ingest("pyskl", tmp_path, tmp_path / "k.h5", dataset="t", n_jobs=1,
                    max_skipped_fraction=1.0)  # fmt: skip
    reasons = {s["video_id"]: s["reason"] for s in report["skipped_videos"]}
    assert reasons.pop("kp_ragged").startswith("keypoint is not a numeric array (ValueError: ")
    assert reasons == expected
    assert report["kept"] == 4 and report["splits"] == {"train": 4}
    sources = {s["video_id"]: s["source"] for s in report["skipped_videos"]}
    assert sources["label_none"] == f"{path}[4]"
    assert report["skipped_by_reason"]["label is not an integer"] == 4
    assert report["skipped_by_reason"]["invalid image size"] == 4


def test_an_annotation_list_without_any_dict_is_a_dataset_error(tmp_path):
    write(tmp_path / "x.pkl", {"split": {}, "annotations": [["a"], 3]})
    with pytest.raises(ReadError, match="'annotations' must be a non-empty list of dicts"):
        pyskl.index(tmp_path, {})


def test_frame_sizes_is_an_error_for_a_pickle(tmp_path):
    # the hmdb preset (format auto) with a table meant for OpenPose folders: not silently ignored
    (tmp_path / "data.pkl").write_bytes(b"not read")
    with pytest.raises(ReadError, match="source.frame_sizes is for OpenPose"):
        pyskl.index(tmp_path, {"frame_sizes": "sizes.csv"})


def test_real_videos_with_a_layout_file_named_like_a_builtin(real_jhmdb, tmp_path):
    """Bring-your-own skeleton.yaml listing JHMDB's joints reversed (and the arrays stored
    reversed): under the name jhmdb15 it is refused, naming the file; under a name of its
    own it is converted by joint name, so keypoints.h5's columns are the built-in order."""
    anns = [dict(a) for a in real_jhmdb["annotations"][:4]]
    for a in anns:
        a["keypoint"] = a["keypoint"][..., ::-1, :].copy()
        a["keypoint_score"] = a["keypoint_score"][..., ::-1].copy()
    raw = write_real_subset(real_jhmdb, tmp_path / "raw", annotations=anns)
    jhmdb = get_layout("jhmdb15")
    skeleton = raw / "skeleton.yaml"
    groups = {g: list(v) for g, v in jhmdb.groups.items()}
    skeleton.write_text(yaml.safe_dump({"name": "jhmdb15", "joints": list(jhmdb.joints[::-1]),
                                        "flip_pairs": [list(p) for p in jhmdb.pairs],
                                        "groups": groups}))  # fmt: skip
    options = {"class_names": raw / "classes.txt", "layout": str(skeleton)}
    with pytest.raises(ReadError, match=re.escape(f"source.layout: {skeleton}: name 'jhmdb15' "
                                                  "is a built-in layout's")):  # fmt: skip
        ingest("pyskl", raw, tmp_path / "k.h5", dataset="t", layout="jhmdb15", n_jobs=1,
               options=options)  # fmt: skip
    skeleton.write_text(skeleton.read_text().replace("name: jhmdb15", "name: puppet_rev"))
    ingest("pyskl", raw, tmp_path / "k.h5", dataset="t", layout="jhmdb15", n_jobs=1,
           options=options)  # fmt: skip
    with KeypointsFile(tmp_path / "k.h5") as kf:
        assert kf.joint_names == list(jhmdb.joints)
        original = real_jhmdb["annotations"][0]
        np.testing.assert_array_equal(kf.keypoints(0)[:, 0, :, :2], original["keypoint"][0])


def test_real_class_list_with_a_blank_line_is_an_error_naming_the_line(real_jhmdb, tmp_path):
    """index = line: a blank line inside the list would shift every later class by one."""
    raw = write_real_subset(real_jhmdb, tmp_path / "raw")
    classes = raw / "classes.txt"
    names = classes.read_text().splitlines()
    classes.write_text("\n".join(names[:1] + [""] + names[1:]) + "\n")  # after "catch"
    run = {"dataset": "t", "n_jobs": 1, "options": {"class_names": classes}}
    with pytest.raises(ReadError, match=re.escape(f"class list {classes}, line 2: blank line "
                                                  "before the class on line 3 ('clap')")):
        ingest("pyskl", raw, tmp_path / "k.h5", **run)
    classes.write_text("  \t\n" + "\n".join(names) + "\n")  # variant: a first line of spaces
    with pytest.raises(ReadError, match=r"line 1: blank line before the class on line 2 "
                                        r"\('catch'\)"):  # fmt: skip
        ingest("pyskl", raw, tmp_path / "k.h5", **run)
    classes.write_text("\n".join(names) + "\n\n  \n")  # blank lines at the end: harmless
    report = ingest("pyskl", raw, tmp_path / "k.h5", **run)
    assert report["classes"] == 14 and report["videos_per_class"]["clap"] == 6


def test_real_videos_without_an_id_are_counted_skips(real_jhmdb, tmp_path):
    """A PYSKL annotation without frame_dir was kept under the made-up id '<file>[i]', in no
    split ("kept 10" while the splits held 9); an empty frame_dir was kept with id ''."""
    anns = [dict(a) for a in real_jhmdb["annotations"][:10]]
    del anns[3]["frame_dir"]
    anns[5]["frame_dir"] = ""
    anns[7]["frame_dir"] = " \t"  # variant: blank
    raw = write_real_subset(real_jhmdb, tmp_path / "raw", annotations=anns)
    report = ingest("pyskl", raw, tmp_path / "k.h5", dataset="t", n_jobs=1,
                    max_skipped_fraction=0.5,
                    options={"class_names": raw / "classes.txt"})  # fmt: skip
    assert report["kept"] == 7 and report["skipped"] == 3 and report["splits"] == {"train": 7}
    path = raw / "jhmdb.pkl"
    reasons = {s["video_id"]: s["reason"] for s in report["skipped_videos"]}
    assert reasons == {f"{path}[3]": "annotation has no 'frame_dir' (the video id)",
                       f"{path}[5]": "empty frame_dir (the video id: '')",
                       f"{path}[7]": "empty frame_dir (the video id: ' \\t')"}  # fmt: skip
    assert report["skipped_by_reason"] == {"annotation has no 'frame_dir'": 1,
                                           "empty frame_dir": 2}  # fmt: skip
    with KeypointsFile(tmp_path / "k.h5") as kf:
        assert "" not in kf.video_ids and len(kf.video_ids) == 7


def test_real_videos_with_boolean_or_object_arrays_are_skipped(real_jhmdb, tmp_path):
    """A bool keypoint_score (or keypoint) was cast to 1.0/0.0; an object array of None to
    NaN: neither is numeric."""
    anns = [dict(a) for a in real_jhmdb["annotations"][:8]]
    anns[1]["keypoint_score"] = anns[1]["keypoint_score"] > 0.5
    anns[2]["keypoint"] = anns[2]["keypoint"] > 100
    anns[3]["keypoint"] = np.full(anns[3]["keypoint"].shape, None, dtype=object)
    raw = write_real_subset(real_jhmdb, tmp_path / "raw", annotations=anns)
    report = ingest("pyskl", raw, tmp_path / "k.h5", dataset="t", n_jobs=1,
                    max_skipped_fraction=0.5,
                    options={"class_names": raw / "classes.txt"})  # fmt: skip
    reasons = {s["video_id"]: s["reason"] for s in report["skipped_videos"]}
    ids = [a["frame_dir"] for a in anns]
    assert reasons == {ids[1]: "keypoint_score is not a numeric array (dtype bool)",
                       ids[2]: "keypoint is not a numeric array (dtype bool)",
                       ids[3]: "keypoint is not a numeric array (dtype object)"}  # fmt: skip
    assert report["kept"] == 5



def test_real_video_twice_with_different_labels_is_an_error_naming_both(real_jhmdb, tmp_path):
    """The first copy was kept and the conflict never mentioned; now it is named."""
    anns = [dict(a) for a in real_jhmdb["annotations"][:6]]
    video = anns[2]["frame_dir"]
    anns.append({**anns[2], "label": 2})  # the same clap video, labelled golf
    raw = write_real_subset(real_jhmdb, tmp_path / "raw", annotations=anns)
    run = {"dataset": "t", "n_jobs": 1, "options": {"class_names": raw / "classes.txt"}}
    message = (f"{raw / 'jhmdb.pkl'}: video {video!r} appears twice with different labels: "
               "1 ('clap') in annotation 2 and 2 ('golf') in annotation 6")
    with pytest.raises(ReadError, match=re.escape(message)):
        ingest("pyskl", raw, tmp_path / "k.h5", **run)
    # variant: the first copy is damaged (it would be skipped and the second kept silently)
    anns[2] = {**anns[2], "keypoint": np.full_like(anns[2]["keypoint"], np.nan)}
    write_real_subset(real_jhmdb, raw, annotations=anns)
    with pytest.raises(ReadError, match=re.escape(message)):
        ingest("pyskl", raw, tmp_path / "k.h5", **run)
    # an exact copy (same id, label and data) stays a counted duplicate
    anns[2] = dict(real_jhmdb["annotations"][2])
    anns[6] = dict(real_jhmdb["annotations"][2])
    write_real_subset(real_jhmdb, raw, annotations=anns)
    report = ingest("pyskl", raw, tmp_path / "k.h5", **run)
    assert report["kept"] == 6 and report["skipped_by_reason"] == {"duplicate video id": 1}
    assert report["skipped_videos"][0]["reason"] == (f"duplicate video id (first read from "
                                                     f"{raw / 'jhmdb.pkl'}[2])")  # fmt: skip


def write_real_splits(real_jhmdb, raw, anns, split) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "jhmdb.pkl").write_bytes(pickle.dumps({"split": split, "annotations": anns}))
    write_real_subset(real_jhmdb, raw / "unused")  # just for its classes.txt
    (raw / "classes.txt").write_text((raw / "unused" / "classes.txt").read_text())


def test_real_split_entries_naming_absent_videos_are_a_warning(real_jhmdb, tmp_path):
    """They were only a number deep in the report; now a warning line with the count and an
    example, as for empty classes, and the report keeps both."""
    anns = [dict(a) for a in real_jhmdb["annotations"][:6]]
    ids = [a["frame_dir"] for a in anns]
    anns[5]["keypoint"] = np.full_like(anns[5]["keypoint"], np.nan)  # skipped: not "absent"
    split = {"train": ids[:4] + ["jhmdb14_s1_train_9999_clap", "typo"],
             "test": [ids[4], ids[5], ids[4].upper()]}  # fmt: skip
    raw = tmp_path / "raw"
    write_real_splits(real_jhmdb, raw, anns, split)
    report = ingest("pyskl", raw, tmp_path / "k.h5", dataset="t", n_jobs=1,
                    max_skipped_fraction=0.5,
                    options={"class_names": raw / "classes.txt"})  # fmt: skip
    assert report["split_entries_not_kept"] == {"train": 2, "test": 2}
    assert report["split_entries_not_in_data"] == {
        "train": {"count": 2, "example": "jhmdb14_s1_train_9999_clap"},
        "test": {"count": 1, "example": ids[4].upper()}}  # fmt: skip
    assert missing_videos_warning(report) == (
        "warning: ingest t: 3 split entries name videos that are not in the data: 2 in split "
        f"'train' (e.g. 'jhmdb14_s1_train_9999_clap'), 1 in split 'test' (e.g. "
        f"{ids[4].upper()!r})")  # fmt: skip
    assert ingest_metrics(report)["split_entries_not_in_data"] == {"train": 2, "test": 1}
    write_real_splits(real_jhmdb, raw, anns, {"train": ids[:5], "test": ids[5:]})
    clean = ingest("pyskl", raw, tmp_path / "k.h5", dataset="t", n_jobs=1,
                   max_skipped_fraction=0.5,
                   options={"class_names": raw / "classes.txt"})  # fmt: skip
    assert clean["split_entries_not_in_data"] == {} and missing_videos_warning(clean) is None


@pytest.mark.parametrize("case", ["all_skipped", "all_absent", "listed_empty"])
def test_real_empty_test_split_fails_ingest_naming_it(real_jhmdb, tmp_path, case):
    """An empty test split passed ingest silently and failed training after its first epoch
    ("need at least one array to concatenate")."""
    anns = [dict(a) for a in real_jhmdb["annotations"][:8]]
    ids = [a["frame_dir"] for a in anns]
    test = {"all_skipped": ids[6:], "all_absent": ["nope_1", "nope_2"], "listed_empty": []}
    if case == "all_skipped":
        for a in anns[6:]:
            a["keypoint"] = np.full_like(a["keypoint"], np.nan)
    raw = tmp_path / "raw"
    write_real_splits(real_jhmdb, raw, anns, {"train1": ids[:6], "test1": test[case]})
    message = {"all_skipped": "has no kept video: of its 2 entries, 2 were skipped and 0 name "
                              "no video of the data. Skip reasons:\n  2x 'non-finite "
                              "coordinates'",
               "all_absent": "has no kept video: of its 2 entries, 0 were skipped and 2 name no "
                             "video of the data (e.g. 'nope_1')",
               "listed_empty": "lists no video"}[case]  # fmt: skip
    with pytest.raises(ReadError, match=re.escape(f"{raw}: split 'test1', which params.yaml "
                                                  f"uses, {message}")):  # fmt: skip
        ingest("pyskl", raw, tmp_path / "k.h5", dataset="t", n_jobs=1,
               max_skipped_fraction=0.5, required_splits=("train1", "test1"),
               options={"class_names": raw / "classes.txt"})  # fmt: skip
    assert not (tmp_path / "k.h5").exists()
    # a split params.yaml does not use may be empty
    report = ingest("pyskl", raw, tmp_path / "k.h5", dataset="t", n_jobs=1,
                    max_skipped_fraction=0.5, required_splits=("train1",),
                    options={"class_names": raw / "classes.txt"})  # fmt: skip
    assert report["splits"] == {"train1": 6, "test1": 0}
