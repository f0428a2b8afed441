"""ST-GCN Kinetics-skeleton JSON reader: the real files (cross-checked against the same video's
OpenPose output), and small datasets in tmp."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from jmrn.ingest import ingest
from jmrn.readers import get_reader, openpose, stgcn
from jmrn.records import ReadError, Skipped, Video, check_video


def skeleton(num_joints: int, conf: float, base: float = 0.1) -> dict:
    """pose x = base + j/100, y = base + 0.5 + j/100 (normalised); score = conf."""
    j = np.arange(num_joints) / 100
    pose = np.stack([base + j, base + 0.5 + j], axis=1).ravel()
    return {"pose": [round(float(v), 6) for v in pose], "score": [conf] * num_joints}


def write_video(path: Path, frames: dict[int, list[dict]], label: str = "jump",
                label_index: int = 0) -> Path:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [{"frame_index": i, "skeleton": s} for i, s in frames.items()]
    path.write_text(json.dumps({"data": data, "label": label, "label_index": label_index}))
    return path


def write_labels(path: Path, labels: dict[str, tuple[str, int]]) -> None:
    path.write_text(json.dumps({vid: {"has_skeleton": True, "label": name, "label_index": k}
                                for vid, (name, k) in labels.items()}))  # fmt: skip


def make_dataset(raw: Path) -> Path:
    """Splits ``train`` and ``val`` with label files; classes 0 = jump, 1 = run."""
    write_video(raw / "train" / "gaps.json",
                {1: [skeleton(18, 0.9)], 2: [], 4: [skeleton(18, 0.8)]})  # fmt: skip
    write_video(raw / "train" / "two.json",
                {0: [skeleton(18, 0.2, base=0.3), skeleton(18, 0.7, base=0.2)],
                 1: [skeleton(18, 0.6)]}, "run", 1)  # fmt: skip
    write_video(raw / "val" / "clean.json", {0: [skeleton(18, 0.5)]}, "jump", 0)
    write_video(raw / "val" / "own_label.json", {0: [skeleton(18, 0.5)]}, "run", 1)
    write_labels(raw / "train_label.json", {"gaps": ("jump", 0), "two": ("run", 1)})
    write_labels(raw / "val_label.json", {"clean": ("jump", 0), "not_on_disk": ("run", 1)})
    return raw


def load_all(index) -> dict[str, Video | Skipped]:
    return {e["video_id"]: stgcn.load(pickle.loads(pickle.dumps(e))) for e in index.entries}


def real_dataset(shared_data: Path, raw: Path, label_file: bool) -> Path:
    (raw / "val").mkdir(parents=True)
    for name in ("clean_and_jerk", "ta_chi"):
        (raw / "val" / f"{name}.json").symlink_to(shared_data / "formats" / "stgcn_json" /
                                                  f"{name}.json")  # fmt: skip
    if label_file:
        write_labels(raw / "val_label.json", {"clean_and_jerk": ("clean and jerk", 59)})
    return raw


def test_dispatch():
    assert get_reader("stgcn_json") is stgcn


def test_real_matches_openpose_output(shared_data: Path, tmp_path: Path):
    kinetics = shared_data / "label_maps" / "kinetics400_label_name.txt"
    raw = real_dataset(shared_data, tmp_path / "stgcn", label_file=True)
    index = stgcn.index(raw, {"class_names": str(kinetics)})
    assert index.layout == "openpose18" and len(index.class_names) == 400
    assert index.splits == {"val": ["clean_and_jerk", "ta_chi"]}
    videos = load_all(index)
    video = videos["clean_and_jerk"]
    assert isinstance(video, Video), video
    assert video.labels == (59,) and index.class_names[59] == "clean and jerk"
    assert video.image_size == (256, 340) and video.keypoints.shape == (300, 1, 18, 3)
    assert isinstance(check_video(video, 18, 400, False), Video)

    op_raw = tmp_path / "openpose"
    (op_raw / "weightlifting").mkdir(parents=True)
    (op_raw / "weightlifting" / "clean_and_jerk").symlink_to(
        shared_data / "formats" / "openpose_coco18" / "clean_and_jerk", target_is_directory=True
    )
    (op_video,) = load_all_openpose(openpose.index(op_raw, {"image_size": [256, 340]}))
    assert op_video.keypoints.shape == video.keypoints.shape
    np.testing.assert_allclose(video.keypoints[..., :2], op_video.keypoints[..., :2], atol=1e-3)
    np.testing.assert_allclose(video.keypoints[..., 2], op_video.keypoints[..., 2], rtol=1e-6)
    np.testing.assert_allclose(video.keypoints[0, 0, 0], (173.482, 86.6174, 0.897493), rtol=1e-5)


def load_all_openpose(index) -> list:
    return [openpose.load(entry) for entry in index.entries]


def test_real_empty_sequence_and_own_unknown_label(shared_data: Path, tmp_path: Path):
    kinetics = shared_data / "label_maps" / "kinetics400_label_name.txt"
    raw = real_dataset(shared_data, tmp_path, label_file=False)
    videos = load_all(stgcn.index(raw, {"class_names": str(kinetics)}))
    assert isinstance(videos["ta_chi"], Skipped) and "empty sequence" in videos["ta_chi"].reason
    assert videos["ta_chi"].source == str(raw / "val" / "ta_chi.json")
    # clean_and_jerk.json's own label_index is -1
    skipped = videos["clean_and_jerk"]
    assert isinstance(skipped, Skipped) and "unknown label" in skipped.reason


def test_real_no_usable_labels(shared_data: Path, tmp_path: Path):
    raw = real_dataset(shared_data, tmp_path, label_file=False)
    with pytest.raises(ReadError, match="class_names"):  # both real files have label_index -1
        stgcn.index(raw, {})


def test_class_list_with_gaps_refused(shared_data: Path, tmp_path: Path):
    raw = real_dataset(shared_data, tmp_path, label_file=True)
    with pytest.raises(ReadError, match=r"label_index \[0, 1, 2"):  # only 59 is named
        stgcn.index(raw, {})


def test_dataset(tmp_path: Path):
    index = stgcn.index(make_dataset(tmp_path), {})
    assert index.layout == "openpose18" and index.multi_label is False and index.parallel
    assert index.class_names == ["jump", "run"]
    assert index.splits == {"train": ["gaps", "two"], "val": ["clean", "not_on_disk", "own_label"]}
    videos = load_all(index)
    assert sorted(videos) == ["clean", "gaps", "own_label", "two"]
    assert all(isinstance(v, Video) for v in videos.values()), videos
    assert [videos[v].labels for v in ("gaps", "two", "clean", "own_label")] == [
        (0,), (1,), (0,), (1,)]  # fmt: skip


def test_frame_gaps_and_pixels(tmp_path: Path):
    gaps = load_all(stgcn.index(make_dataset(tmp_path), {}))["gaps"]
    kp = gaps.keypoints
    assert kp.shape == (4, 1, 18, 3)  # frame_index 1..4, 1-based
    assert (kp[1:3] == 0).all()  # 2 has no skeleton, 3 is absent
    # joint 5 of frame 1: x = (0.1 + 0.05) * 340, y = (0.6 + 0.05) * 256
    np.testing.assert_allclose(kp[0, 0, 5], (0.15 * 340, 0.65 * 256, 0.9), rtol=1e-6)
    np.testing.assert_allclose(kp[3, 0, :, 2], 0.8, rtol=1e-6)


def test_two_persons_ordered_by_confidence(tmp_path: Path):
    two = load_all(stgcn.index(make_dataset(tmp_path), {"image_size": [100, 200]}))["two"]
    assert two.image_size == (100, 200) and two.keypoints.shape == (2, 2, 18, 3)
    kp = two.keypoints
    np.testing.assert_allclose(kp[0, :, 0], [(0.2 * 200, 0.7 * 100, 0.7),
                                             (0.3 * 200, 0.8 * 100, 0.2)], rtol=1e-6)  # fmt: skip
    assert (kp[1, 1] == 0).all()  # one person in frame 1


def test_missing_joint(tmp_path: Path):
    s = skeleton(18, 0.5)
    s["score"][3] = 0.0
    write_video(tmp_path / "val" / "v.json", {0: [s]})
    video = load_all(stgcn.index(tmp_path, {}))["v"]
    assert (video.keypoints[0, 0, 3] == 0).all() and video.keypoints[0, 0, 4, 0] > 0


def test_label_file_takes_precedence(tmp_path: Path):
    raw = make_dataset(tmp_path)
    write_video(raw / "train" / "two.json", {0: [skeleton(18, 0.5)]}, "jump", 0)
    assert load_all(stgcn.index(raw, {}))["two"].labels == (1,)
    write_labels(raw / "train_label.json", {"gaps": ("jump", 0), "two": ("unknown", -1)})
    skipped = load_all(stgcn.index(raw, {}))["two"]
    assert isinstance(skipped, Skipped) and "unknown label" in skipped.reason


def test_labels_from_video_files_without_label_files(tmp_path: Path):
    raw = make_dataset(tmp_path)
    for path in raw.glob("*_label.json"):
        path.unlink()
    index = stgcn.index(raw, {})
    assert index.class_names == ["jump", "run"]
    assert index.splits == {"train": ["gaps", "two"], "val": ["clean", "own_label"]}
    assert load_all(index)["two"].labels == (1,)


def test_class_names_option(tmp_path: Path):
    names = tmp_path / "classes.txt"
    names.write_text("Jump\nrun\nswim\n")  # case differs from the label files: same class
    index = stgcn.index(make_dataset(tmp_path / "raw"), {"class_names": str(names)})
    assert index.class_names == ["Jump", "run", "swim"]
    names.write_text("run\njump\n")
    with pytest.raises(ReadError, match="line 1 of the class list"):
        stgcn.index(tmp_path / "raw", {"class_names": str(names)})
    names.write_text("jump\n")
    with pytest.raises(ReadError, match="has 1 classes"):
        stgcn.index(tmp_path / "raw", {"class_names": str(names)})


def test_blank_line_inside_a_class_or_subset_list_is_an_error(tmp_path: Path):
    raw = make_dataset(tmp_path / "raw")
    names = tmp_path / "classes.txt"
    names.write_text("jump\n\nrun\n")  # would make run class 1 -> 2 if skipped
    with pytest.raises(ReadError, match="line 2: blank line before the class on line 3"):
        stgcn.index(raw, {"class_names": str(names)})
    subset = tmp_path / "subset.txt"
    subset.write_text("run\n \n\njump\n\n")  # variant: subset_classes, two blank lines
    with pytest.raises(ReadError, match=r"subset.txt, line 2: blank line before the class on "
                                        r"line 4 \('jump'\)"):  # fmt: skip
        stgcn.index(raw, {"subset_classes": str(subset)})
    subset.write_text("run\njump\n\n")
    assert stgcn.index(raw, {"subset_classes": str(subset)}).class_names == ["run", "jump"]


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (
            {"gaps": ("jump", 0), "two": ("run", 0)},
            r"label_index 0 is 'run', but 'jump' in .*"
            r"train_label.json \['gaps'\]",
        ),
        ({"gaps": ("jump", 0), "two": ("jump", 1)}, "two label indices"),
    ],
)
def test_inconsistent_label_files(tmp_path: Path, labels: dict, match: str):
    raw = make_dataset(tmp_path)
    write_labels(raw / "train_label.json", labels)
    write_labels(raw / "val_label.json", {"clean": ("jump", 0)})
    with pytest.raises(ReadError, match=match):
        stgcn.index(raw, {})


def test_body25_layout(tmp_path: Path):
    write_video(tmp_path / "val" / "a.json", {0: [skeleton(25, 0.5)]})
    write_video(tmp_path / "val" / "b.json", {0: [skeleton(18, 0.5)]})
    index = stgcn.index(tmp_path, {})
    assert index.layout == "openpose_body25"
    videos = load_all(index)
    assert videos["a"].keypoints.shape == (1, 1, 25, 3)
    assert isinstance(videos["b"], Skipped) and "36 values (openpose18)" in videos["b"].reason
    assert stgcn.index(tmp_path, {"layout": "openpose18"}).layout == "openpose18"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            '{"data": [{"frame_index": 0, "skeleton": [{"pose": [0.1, 0.2], "score": [1]}]}], '
            '"label_index": 0}',
            "pose has 2 values",
        ),
        (
            '{"data": [{"frame_index": 0, "skeleton": []}, {"frame_index": 0, "skeleton": []}], '
            '"label_index": 0}',
            "appears twice",
        ),
        ('{"data": [{"skeleton": []}], "label_index": 0}', "frame_index"),
        ('{"data": [{"frame_index": 0}], "label_index": 0}', "'skeleton'"),
        (
            '{"data": [{"frame_index": 0, "skeleton": [{"pose": []}]}], "label_index": 0}',
            "pose/score",
        ),
        ('{"label_index": 0}', "no 'data'"),
        ('{"data": [{"frame_index": 0, "skeleton": []}]}', "unknown label"),
    ],
)
def test_malformed_video_skipped(tmp_path: Path, content: str, reason: str):
    raw = make_dataset(tmp_path)
    (raw / "val" / "own_label.json").write_text(content)
    skipped = load_all(stgcn.index(raw, {}))["own_label"]
    assert isinstance(skipped, Skipped) and reason in skipped.reason


def test_truncated_json_skipped(tmp_path: Path):
    raw = make_dataset(tmp_path)
    path = raw / "train" / "two.json"
    path.write_text(path.read_text()[:100])
    videos = load_all(stgcn.index(raw, {}))
    assert isinstance(videos["two"], Skipped) and "cannot parse" in videos["two"].reason
    assert videos["two"].source == str(path) and isinstance(videos["gaps"], Video)


def test_dataset_level_errors(tmp_path: Path):
    with pytest.raises(ReadError, match="does not exist"):
        stgcn.index(tmp_path / "nowhere", {})
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(ReadError, match="no <split>/<video_id>.json"):
        stgcn.index(tmp_path / "empty", {})
    raw = make_dataset(tmp_path / "raw")
    (raw / "val_label.json").write_text('{"clean": ')
    with pytest.raises(ReadError, match="val_label.json"):
        stgcn.index(raw, {})
    (raw / "val_label.json").write_text('{"clean": 3}')
    with pytest.raises(ReadError, match="val_label.json"):
        stgcn.index(raw, {})
    raw = make_dataset(tmp_path / "dup")
    write_video(raw / "val" / "gaps.json", {0: [skeleton(18, 0.5)]})
    with pytest.raises(ReadError, match="'gaps' appears twice"):
        stgcn.index(raw, {})
    with pytest.raises(ReadError, match="image_size"):
        stgcn.index(make_dataset(tmp_path / "size"), {"image_size": [1, 2, 3]})


def test_non_integer_label_index_in_label_file(tmp_path: Path):
    raw = make_dataset(tmp_path)
    (raw / "train_label.json").write_text(json.dumps(
        {"gaps": {"label": "jump", "label_index": 0}, "two": {"label": "run", "label_index": "1"}}
    ))  # fmt: skip
    skipped = load_all(stgcn.index(raw, {}))["two"]
    assert isinstance(skipped, Skipped)
    assert "unknown label (label_index '1' in its label file entry)" in skipped.reason


def test_frames_without_skeletons_and_absurd_span(tmp_path: Path):
    write_video(tmp_path / "val" / "a.json", {0: [skeleton(18, 0.5)]})
    write_video(tmp_path / "val" / "none.json", {0: [], 1: []})
    write_video(tmp_path / "val" / "far.json", {0: [skeleton(18, 0.5)], 10**9: []})
    videos = load_all(stgcn.index(tmp_path, {}))
    assert videos["none"].keypoints.shape == (2, 0, 18, 3)  # check_video: "no person"
    assert isinstance(videos["far"], Skipped) and "spans more than" in videos["far"].reason


def test_ingest_sets_joints_beyond_the_normalised_frame_missing(tmp_path: Path):
    """ST-GCN poses are fractions of the frame: a joint at x = 1.5 is outside it (beyond the
    10% tolerance) and is set missing and counted; a video with mostly such joints is a skip."""
    raw = make_dataset(tmp_path / "raw")
    beyond = skeleton(18, 0.9)
    beyond["pose"][0] = 1.5  # joint 0 x, 1.5 widths
    beyond["pose"][3] = -0.2  # joint 1 y, -0.2 heights
    write_video(raw / "train" / "beyond.json", {0: [beyond], 1: [skeleton(18, 0.9)]})
    wide = skeleton(18, 0.9)
    wide["pose"][0:36:2] = [2.0] * 18  # every x beyond the frame
    write_video(raw / "train" / "wide.json", {0: [wide], 1: [wide]})
    report = ingest("stgcn_json", raw, tmp_path / "k.h5", dataset="t", n_jobs=1, min_frames=1,
                    max_skipped_fraction=0.5)  # fmt: skip
    assert report["joints_outside_frame"]["outside"] == 2
    assert report["videos_with_joints_outside"]["listed"] == [
        {"video_id": "beyond", "outside": 2, "detected": 36}]  # fmt: skip
    reasons = {s["video_id"]: s["reason"] for s in report["skipped_videos"]}
    assert reasons["wide"] == ("36 of 36 detected joints outside the 340x256 frame (tolerance "
                               "10%): wrong source.image_size?")  # fmt: skip


@pytest.mark.parametrize(("field", "value"), [("pose", "true"), ("pose", "null"),
                                              ("score", "false"), ("pose", '"0.51"')])
def test_real_video_with_json_non_numbers_is_skipped(shared_data: Path, tmp_path: Path,
                                                     field: str, value: str):  # fmt: skip
    """true/false were taken as 1.0/0.0 coordinates or scores (null as NaN, a quoted number
    as the number): skipped as non-numeric, naming the frame_index and the field."""
    data = json.loads((shared_data / "formats" / "stgcn_json" / "clean_and_jerk.json")
                      .read_text())  # fmt: skip
    data["data"], data["label"], data["label_index"] = data["data"][:30], "lift", 0
    data["data"][7]["skeleton"][0][field][3] = json.loads(value)
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "bad.json").write_text(json.dumps(data))
    data["data"][7]["skeleton"][0][field][3] = 0.5
    (tmp_path / "val" / "good.json").write_text(json.dumps(data))
    videos = load_all(stgcn.index(tmp_path, {}))
    assert isinstance(videos["good"], Video)
    frame = data["data"][7]["frame_index"]
    assert videos["bad"].reason == (f"non-numeric pose or score values (frame_index {frame}, "
                                    f"{field}: {value} is not a JSON number)")  # fmt: skip


def test_real_video_with_stray_or_negative_frame_index(shared_data: Path, tmp_path: Path):
    """A frame_index of 50000 in a real 30-frame video stretched it to T = 50,000; a negative
    one inserted empty frames before it. Now: a counted skip naming the gap, and a counted
    skip for the negative index; a short gap is kept with its empty frames counted."""
    data = json.loads((shared_data / "formats" / "stgcn_json" / "clean_and_jerk.json")
                      .read_text())  # fmt: skip
    data["label"], data["label_index"] = "lift", 0
    frames = data["data"][:30]
    assert [f["frame_index"] for f in frames] == list(range(30))
    (tmp_path / "val").mkdir()

    def write(name, indices):
        changed = [{**f, "frame_index": i} for f, i in zip(frames, indices, strict=True)]
        (tmp_path / "val" / f"{name}.json").write_text(json.dumps({**data, "data": changed}))

    write("stray", [*range(29), 50000])
    write("negative", [-5, *range(1, 30)])
    write("sparse", [*range(0, 60, 2)])  # every other frame: half empty, kept
    write("gap", [*range(25), *range(30, 35)])  # 5 empty frames, kept
    report = ingest("stgcn_json", tmp_path, tmp_path / "k.h5", dataset="t", n_jobs=1,
                    max_skipped_fraction=1.0)  # fmt: skip
    reasons = {s["video_id"]: s["reason"] for s in report["skipped_videos"]}
    assert reasons == {
        "stray": "a gap of 49971 empty frames longer than its 30 frames with a pose (frames "
                 "29..49999 of 50001: a stray frame number?)",
        "negative": "negative frame_index (-5)"}  # fmt: skip
    assert report["kept"] == 2 and report["empty_frames"] == 29 + 5
    assert report["frames"] == 59 + 35


def test_a_video_in_two_label_files_with_different_labels_is_an_error(tmp_path: Path):
    raw = make_dataset(tmp_path)
    write_labels(raw / "val_label.json", {"clean": ("jump", 0), "gaps": ("run", 1)})
    with pytest.raises(ReadError, match=r"video 'gaps' appears twice with different labels: "
                                        r"label_index 0 in .*train_label.json and 1 in "
                                        r".*val_label.json"):  # fmt: skip
        stgcn.index(raw, {})
