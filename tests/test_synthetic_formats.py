"""The synthetic data written in each raw format reads back, through the real readers, as the
keypoints it was generated from (converted to that format's layout), with the right splits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from jmrn import synthetic
from jmrn import synthetic_formats as sf
from jmrn.ingest import ingest
from jmrn.keypoints_file import KeypointsFile
from jmrn.layouts import COCO17, OPENPOSE18, OPENPOSE_BODY25, convert
from jmrn.readers import openpose, pyskl, stgcn
from jmrn.records import Skipped, Video, check_video
from jmrn.safe_pickle import load_pickle


@pytest.fixture(scope="module")
def data() -> dict:
    """30 videos (3 per class), 9 of them with a second person."""
    return synthetic.generate(seed=0, videos_per_class=3)


def source_xyc(ann: dict) -> np.ndarray:
    return np.concatenate([ann["keypoint"], ann["keypoint_score"][..., None]], axis=-1)


def reader_order(kp: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(M, T, V, 3) -> (T, M', V, 3) as the readers pack untracked persons: in each frame the
    present ones, most confident (mean over joints) first; M' = most present in any frame."""
    frames = kp.shape[1]
    out = np.zeros((frames, int(present.sum(axis=0).max()), *kp.shape[2:]))
    for t in range(frames):
        persons = np.flatnonzero(present[:, t])
        mean = kp[persons, t, :, 2].mean(axis=-1)
        for slot, m in enumerate(persons[np.argsort(-mean, kind="stable")]):
            out[t, slot] = kp[m, t]
    return out


def assert_keypoints(got: np.ndarray, want: np.ndarray, atol: float) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got[..., 2], want[..., 2], atol=1e-6)
    confident = want[..., 2] > 0
    np.testing.assert_allclose(got[..., :2][confident], want[..., :2][confident], atol=atol)
    assert not got[..., :2][~confident].any()


def by_id(data: dict) -> dict[str, dict]:
    return {a["frame_dir"]: a for a in data["annotations"]}


def test_pyskl_multisplit_reads_back_with_three_stratified_splits(data, tmp_path):
    info = sf.write_pyskl_multisplit(data, tmp_path, splits=3)
    index = pyskl.index(tmp_path, {"class_names": info["classes"]})
    assert index.layout == "coco17" and index.class_names == synthetic.CLASS_NAMES
    assert sorted(index.splits) == ["test1", "test2", "test3", "train1", "train2", "train3"]
    anns = by_id(data)
    label_of = {vid: a["label"] for vid, a in anns.items()}
    for k in (1, 2, 3):
        train, test = set(index.splits[f"train{k}"]), set(index.splits[f"test{k}"])
        assert not train & test and train | test == set(anns)
        for part in (train, test):
            assert {label_of[v] for v in part} == set(range(len(synthetic.CLASS_NAMES)))
        assert len(test) == 10  # round(0.3 * 3) = 1 test video per class
    assert len({tuple(sorted(index.splits[f"test{k}"])) for k in (1, 2, 3)}) > 1
    for entry in index.entries:
        video = pyskl.load(entry)
        ann = anns[video.video_id]
        assert isinstance(video, Video) and video.labels == (ann["label"],)
        np.testing.assert_array_equal(video.keypoints, source_xyc(ann).transpose(1, 0, 2, 3))
    assert "active_frames" not in index.entries[0]  # only the keys of the PYSKL release

    report = ingest("pyskl", tmp_path, tmp_path / "kp.h5", dataset="t", layout="coco17_neck",
                    options={"class_names": info["classes"]}, n_jobs=1)  # fmt: skip
    assert report["kept"] == 30 and report["splits"]["test2"] == 10


@pytest.mark.parametrize("layout", ["openpose18", "openpose_body25"])
def test_openpose_folders_read_back(data, tmp_path, layout):
    info = sf.write_openpose_folders(data, tmp_path, layout, hmdb_splits=0)
    assert not (tmp_path / "splits").exists()
    index = openpose.index(tmp_path, {"image_size": [240, 320]})
    assert index.layout == layout and index.splits == {"all": sorted(by_id(data))}
    assert index.class_names == sorted(synthetic.CLASS_NAMES)
    anns = by_id(data)
    assert info["frame_files"] == sum(a["total_frames"] for a in anns.values())
    assert info["frame_files"] == len(list(tmp_path.glob("*/*/*_keypoints.json")))
    target = OPENPOSE18 if layout == "openpose18" else OPENPOSE_BODY25
    two_persons = 0
    for entry in index.entries:
        video = openpose.load(entry)
        assert isinstance(video, Video), video
        ann = anns[video.video_id]
        assert index.class_names[video.labels[0]] == synthetic.CLASS_NAMES[ann["label"]]
        assert video.image_size == (240, 320)
        coco = source_xyc(ann).astype(np.float64)
        want = np.zeros(coco.shape[:2] + (target.num_joints, 3))
        op18 = convert(coco, COCO17, OPENPOSE18)  # the joints both OpenPose models have
        want[..., [target.index(n) for n in OPENPOSE18.joints], :] = op18
        if target is OPENPOSE_BODY25:
            hips = coco[..., [COCO17.index("left_hip"), COCO17.index("right_hip")], :]
            both = (hips[..., 2] > 0).all(axis=-1)
            want[..., target.index("mid_hip"), :2] = np.where(both[..., None],
                                                              hips[..., :2].mean(-2), 0)
            want[..., target.index("mid_hip"), 2] = np.where(both, hips[..., 2].min(-1), 0)
            for side in ("left", "right"):
                ankle = coco[..., COCO17.index(f"{side}_ankle"), :]
                for part in sf.FEET:  # feet="ankle": copies of the ankle
                    want[..., target.index(f"{side}_{part}"), :] = ankle
        present = (ann["keypoint_score"] > 0).any(axis=-1)
        assert_keypoints(video.keypoints, reader_order(want, present), atol=0.01)
        two_persons += video.keypoints.shape[1] == 2
    assert two_persons > 0  # the person ordering was exercised


def test_openpose_folders_of_several_frame_sizes_read_back_with_frame_sizes(data, tmp_path):
    """Videos written at their own sizes (as HMDB's clips of different widths) come back, via
    source.frame_sizes (the writer's ffprobe-style frame_sizes.csv), in those pixels."""
    ids = sorted(by_id(data))
    own = {video: (240, 426) if k % 3 == 0 else (360, 480) for k, video in enumerate(ids[::2])}
    sf.write_openpose_folders(data, tmp_path / "raw", hmdb_splits=0, frame_sizes=own)
    assert (tmp_path / "raw/frame_sizes.csv").read_text().startswith("video_id,width,height\n")
    report = ingest("openpose_json", tmp_path / "raw", tmp_path / "kp.h5", dataset="t",
                    options={"image_size": [240, 320], "frame_sizes": "frame_sizes.csv"},
                    n_jobs=1)  # fmt: skip
    assert report["kept"] == 30 and report["skipped"] == 0
    assert report["left_out"] == {"frame_sizes rows matching no video": 0}
    anns = by_id(data)
    with KeypointsFile(tmp_path / "kp.h5") as kf:
        for i, video in enumerate(kf.video_ids):
            size = own.get(video, (240, 320))
            assert tuple(kf.image_size[i]) == size
            want = sf.openpose_keypoints(anns[video], "openpose18", size)
            present = (anns[video]["keypoint_score"] > 0).any(axis=-1)
            assert_keypoints(kf.keypoints(i), reader_order(want, present), atol=0.01)


def test_openpose_frame_file_format(data, tmp_path):
    sf.write_openpose_folders(data, tmp_path, "openpose_body25", hmdb_splits=0, feet="missing")
    ann = data["annotations"][0]
    name = synthetic.CLASS_NAMES[ann["label"]]
    files = sorted((tmp_path / name / ann["frame_dir"]).iterdir())
    assert [f.name for f in files] == [f"{ann['frame_dir']}_{t:012d}_keypoints.json"
                                       for t in range(ann["total_frames"])]  # fmt: skip
    text = files[0].read_text()
    assert text.startswith('{"version":1.3,"people":[{"person_id":[-1],"pose_keypoints_2d":[')
    values = np.reshape(json.loads(text)["people"][0]["pose_keypoints_2d"], (25, 3))
    feet = [OPENPOSE_BODY25.index(f"{s}_{p}") for s in ("left", "right") for p in sf.FEET]
    assert not values[feet].any() and values[OPENPOSE_BODY25.index("nose"), 2] > 0
    # The distractor of a video where it is absent for a while is left out of `people`.
    partial = next(a for a in data["annotations"] if len(a["keypoint"]) == 2
                   and not (a["keypoint_score"][1] > 0).any(axis=-1).all())  # fmt: skip
    absent = int(np.flatnonzero(~(partial["keypoint_score"][1] > 0).any(axis=-1))[0])
    path = (tmp_path / synthetic.CLASS_NAMES[partial["label"]] / partial["frame_dir"]
            / f"{partial['frame_dir']}_{absent:012d}_keypoints.json")  # fmt: skip
    assert len(json.loads(path.read_text())["people"]) == 1


def test_openpose_overshoot_is_clipped_by_ingest(data, tmp_path):
    raw = tmp_path / "raw"
    sf.write_openpose_folders(data, raw, overshoot=0.2, hmdb_splits=0)
    index = openpose.index(raw, {"image_size": [240, 320]})
    videos = [openpose.load(e) for e in index.entries]
    conf = np.concatenate([v.keypoints[..., 2].ravel() for v in videos])
    assert 1.0 < conf.max() <= 1.2 + 1e-6
    over = (conf > 1).sum() / (conf > 0).sum()
    assert 0.002 < over < 0.02  # some of the ~2% hit confidences above 1/1.2
    checked = check_video(videos[0], 18, 10, False)
    assert isinstance(checked, Video) and checked.keypoints[..., 2].max() <= 1.0
    ingest("openpose_json", raw, tmp_path / "kp.h5", dataset="t", layout="coco17_neck",
           options={"image_size": [240, 320]}, n_jobs=1)  # fmt: skip
    with KeypointsFile(tmp_path / "kp.h5") as kf:
        assert len(kf) == 30
        assert max(kf.keypoints(i)[..., 2].max() for i in range(len(kf))) == pytest.approx(1.0)
    plain = tmp_path / "plain"
    sf.write_openpose_folders(data, plain, hmdb_splits=0)
    index = openpose.index(plain, {"image_size": [240, 320]})
    assert max(openpose.load(e).keypoints[..., 2].max() for e in index.entries) <= 1.0


def test_hmdb_split_files(data, tmp_path):
    sf.write_openpose_folders(data, tmp_path, hmdb_splits=3)
    big = synthetic.generate(seed=1, videos_per_class=20)
    sf.write_hmdb_splits(big, tmp_path / "big", 3, unused_fraction=0.1)
    line = re.compile(r"^(\S+)\.avi ([012]) $")  # HMDB's lines end in a space
    for dataset, split_dir, n_test, n_unused in ((data, tmp_path / "splits", 1, 0),
                                                 (big, tmp_path / "big", 5, 2)):  # fmt: skip
        names = sorted(p.name for p in split_dir.iterdir())
        assert names == sorted(f"{c}_test_split{k}.txt"
                               for c in synthetic.CLASS_NAMES for k in (1, 2, 3))  # fmt: skip
        draws: set[tuple] = set()
        for label, name in enumerate(synthetic.CLASS_NAMES):
            videos = sorted(a["frame_dir"] for a in dataset["annotations"] if a["label"] == label)
            for k in (1, 2, 3):
                text = (split_dir / f"{name}_test_split{k}.txt").read_text()
                rows = [line.match(row) for row in text.splitlines()]
                assert all(rows), text
                assert [r[1] for r in rows] == videos  # every video of the class, sorted
                marks = [r[2] for r in rows]
                # 70/30 of the used videos (18 used of 20: 13 train, 5 test; 3: 2 and 1)
                assert marks.count("2") == n_test and marks.count("0") == n_unused
                draws.add((label, tuple(marks)))
        assert len(draws) >= 15  # the three splits are different draws (of 10 classes)


def test_stgcn_json_reads_back_and_skips_empty(data, tmp_path):
    info = sf.write_stgcn_json(data, tmp_path, empty_videos=2, no_skeleton=2,
                               first_frame_index=1)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kinetics_train", "kinetics_train_label.json", "kinetics_val", "kinetics_val_label.json"]
    index = stgcn.index(tmp_path, {"image_size": [256, 340]})
    assert index.layout == "openpose18" and index.class_names == synthetic.CLASS_NAMES
    assert index.splits == {"kinetics_train": sorted(data["split"]["train"]),
                            "kinetics_val": sorted(data["split"]["test"])}  # fmt: skip
    labels = {**json.loads((tmp_path / "kinetics_train_label.json").read_text()),
              **json.loads((tmp_path / "kinetics_val_label.json").read_text())}  # fmt: skip
    anns = by_id(data)
    assert len(set(info["empty"] + info["no_skeleton"])) == 4
    assert {v for v, x in labels.items() if not x["has_skeleton"]} == set(info["no_skeleton"])
    for vid in info["empty"]:
        split = "kinetics_val" if vid in data["split"]["test"] else "kinetics_train"
        assert json.loads((tmp_path / split / f"{vid}.json").read_text())["data"] == []
    for entry in index.entries:
        result = stgcn.load(entry)
        ann = anns[entry["video_id"]]
        if entry["video_id"] in info["empty"]:
            assert isinstance(result, Skipped) and "empty sequence" in result.reason
            continue
        if entry["video_id"] in info["no_skeleton"]:  # frames present, flag false
            assert isinstance(result, Skipped) and "has_skeleton is false" in result.reason
            continue
        assert isinstance(result, Video) and result.labels == (ann["label"],)
        assert result.image_size == (256, 340)
        coco = source_xyc(ann).astype(np.float64)
        coco[..., :2] *= (340 / 320, 256 / 240)
        present = (ann["keypoint_score"] > 0).any(axis=-1)
        want = reader_order(convert(coco, COCO17, OPENPOSE18), present)
        assert_keypoints(result.keypoints, want, atol=0.5)
    video = json.loads((tmp_path / "kinetics_train" / f"{data['split']['train'][0]}.json")
                       .read_text())  # fmt: skip
    frame = video["data"][0]
    assert frame["frame_index"] == 1 and len(frame["skeleton"][0]["pose"]) == 36
    assert all(round(v, 3) == v for v in frame["skeleton"][0]["pose"])


def test_stgcn_class_renaming(data, tmp_path):
    names = [f"kinetics class {k}" for k in range(12)]
    sf.write_stgcn_json(data, tmp_path, class_names=names, split_names={"train": "tr"})
    index = stgcn.index(tmp_path, {})
    assert sorted(index.splits) == ["test", "tr"]
    assert index.class_names == names[:10]  # built from the label files: labels 0..9
    with pytest.raises(ValueError, match="class_names has 5 names"):
        sf.write_stgcn_json(data, tmp_path / "x", class_names=names[:5])


def test_custom_layout_pickle(data, tmp_path):
    info = sf.write_custom_layout_pickle(data, tmp_path)
    loaded = load_pickle(info["pickle"])  # the restricted unpickler admits int32 arrays
    assert loaded["split"] == data["split"]
    spec = yaml.safe_load(info["skeleton"].read_text())
    joints = spec["joints"]
    assert spec["name"] == "synthetic13" and len(joints) == len(set(joints)) == 13
    for pair in spec["flip_pairs"]:
        assert len(pair) == 2 and set(pair) <= set(joints)
    assert set(spec["groups"]) == {"head", "left_arm", "right_arm", "left_lower_leg",
                                   "right_lower_leg"}  # fmt: skip
    assert all(set(group) <= set(joints) for group in spec["groups"].values())
    assert Path(info["classes"]).read_text().split() == synthetic.CLASS_NAMES
    for ann, src in zip(loaded["annotations"], data["annotations"], strict=True):
        kp, score = ann["keypoint"], ann["keypoint_score"]
        assert kp.dtype == np.int32 and kp.shape == src["keypoint"].shape[:2] + (13, 2)
        assert score.dtype == np.float32 and score.shape == kp.shape[:3]
        assert not kp[score == 0].any()
        hips = src["keypoint"][..., [COCO17.index("left_hip"), COCO17.index("right_hip")], :]
        pelvis = score[..., joints.index("pelvis")] > 0
        np.testing.assert_allclose(kp[..., joints.index("pelvis"), :][pelvis],
                                   hips.mean(axis=-2)[pelvis], atol=0.5)  # fmt: skip
        head = score[..., joints.index("head_top")] > 0
        above = kp[..., joints.index("head_top"), 1] < src["keypoint"][..., 0, 1]  # nose y
        assert above[head].mean() > 0.9  # above the nose unless bent far over
