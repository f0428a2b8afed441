"""OpenPose ``--write_json`` reader: the real COCO-18 folder, and small datasets in tmp."""

from __future__ import annotations

import json
import pickle
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jmrn.ingest import _reason_kind, ingest
from jmrn.keypoints_file import KeypointsFile
from jmrn.readers import get_reader, openpose
from jmrn.readers.common import read_frame_sizes
from jmrn.records import ReadError, Skipped, Video, check_video

SIZE = {"image_size": [256, 340]}


def person(num_joints: int, conf: float, base: float = 10.0) -> list[float]:
    """Flat [x, y, c] * V with x = base + j, y = base + 100 + j (j = joint)."""
    xyc = np.stack([base + np.arange(num_joints), base + 100 + np.arange(num_joints),
                    np.full(num_joints, conf)], axis=1)  # fmt: skip
    return [round(float(v), 4) for v in xyc.ravel()]


def write_frame(video_dir: Path, frame: int, people: list[list[float]], prefix: str = "") -> Path:
    video_dir.mkdir(parents=True, exist_ok=True)
    path = video_dir / f"{prefix or video_dir.name}_{frame:012d}_keypoints.json"
    data = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p,
                                        "face_keypoints_2d": []} for p in people]}  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def make_dataset(raw: Path) -> Path:
    """Class ``lift``: a COCO-18 video with gaps, an empty frame and two persons, and a clean
    one; class ``run``: a BODY_25 video, a truncated file, no files, mixed lengths."""
    gap = raw / "lift" / "gap"
    write_frame(gap, 0, [person(18, 0.9)])
    write_frame(gap, 1, [])  # OpenPose writes a file with no people
    write_frame(gap, 3, [person(18, 0.3, base=50), person(18, 0.8, base=70)])  # 2 missing
    clean = raw / "lift" / "clean"
    for t in range(4):
        write_frame(clean, t, [person(18, 0.5 + t / 10, base=t)])
    write_frame(raw / "run" / "body25", 0, [person(25, 0.7)])
    truncated = raw / "run" / "truncated"
    write_frame(truncated, 0, [person(18, 0.9)])
    text = write_frame(truncated, 1, [person(18, 0.9)]).read_text()
    (truncated / f"truncated_{1:012d}_keypoints.json").write_text(text[: len(text) // 2])
    (raw / "run" / "nofiles").mkdir(parents=True)
    write_frame(raw / "run" / "mixed", 0, [person(18, 0.9)])
    write_frame(raw / "run" / "mixed", 1, [person(25, 0.9)])
    (raw / "splits").mkdir()
    (raw / "splits" / "train.txt").write_text("gap\nbody25\ntruncated\n")
    (raw / "splits" / "test.txt").write_text("clean\nnofiles\nmixed\nnot_on_disk\n\n")
    return raw


def load_all(index) -> dict[str, Video | Skipped]:
    return {e["video_id"]: openpose.load(pickle.loads(pickle.dumps(e))) for e in index.entries}


def reference(video_dir: Path) -> np.ndarray:
    """Plain-loop parse of a single-person, contiguous, 0-based COCO-18 folder."""
    files = sorted(video_dir.glob("*_keypoints.json"))
    out = np.zeros((len(files), 1, 18, 3))
    for t, path in enumerate(files):
        assert path.name.endswith(f"_{t:012d}_keypoints.json")
        people = json.loads(path.read_text())["people"]
        assert len(people) <= 1
        for p in people:
            out[t, 0] = np.reshape(p["pose_keypoints_2d"], (18, 3))
    return out


def test_dispatch():
    assert get_reader("openpose_json") is openpose


def test_real_clean_and_jerk(shared_data: Path, tmp_path: Path):
    real = shared_data / "formats" / "openpose_coco18" / "clean_and_jerk"
    (tmp_path / "weightlifting").mkdir()
    (tmp_path / "weightlifting" / "clean_and_jerk").symlink_to(real, target_is_directory=True)
    index = openpose.index(tmp_path, SIZE)
    assert index.layout == "openpose18" and index.class_names == ["weightlifting"]
    assert index.splits == {"all": ["clean_and_jerk"]} and index.multi_label is False
    (video,) = load_all(index).values()
    assert isinstance(video, Video), video
    assert video.keypoints.shape == (300, 1, 18, 3) and video.keypoints.dtype == np.float32
    np.testing.assert_allclose(video.keypoints[0, 0, 0], (173.482, 86.6174, 0.897493), rtol=1e-6)
    np.testing.assert_allclose(video.keypoints, reference(real), rtol=1e-6)
    assert video.image_size == (256, 340) and video.labels == (0,) and video.boxes is None
    assert video.source == str(tmp_path / "weightlifting" / "clean_and_jerk")
    assert isinstance(check_video(video, 18, 1, False), Video)


def test_dataset_index(tmp_path: Path):
    index = openpose.index(make_dataset(tmp_path), SIZE)
    assert index.layout == "openpose18"  # from the first frame of the first video (lift/clean)
    assert index.class_names == ["lift", "run"]
    assert index.splits == {"train": ["gap", "body25", "truncated"],
                            "test": ["clean", "nofiles", "mixed", "not_on_disk"]}  # fmt: skip
    assert sorted(e["video_id"] for e in index.entries) == [
        "body25", "clean", "gap", "mixed", "nofiles", "truncated"]  # fmt: skip


def test_gaps_empty_frames_and_person_order(tmp_path: Path):
    videos = load_all(openpose.index(make_dataset(tmp_path), SIZE))
    gap = videos["gap"]
    assert isinstance(gap, Video) and gap.labels == (0,) and gap.image_size == (256, 340)
    kp = gap.keypoints
    assert kp.shape == (4, 2, 18, 3)  # frames 0..3 (2 has no file), at most 2 persons
    assert (kp[1:3] == 0).all()  # the empty-people frame and the missing frame
    assert (kp[0, 1] == 0).all()  # frame 0 has one person: the second slot is empty
    np.testing.assert_allclose(kp[0, 0, 4], (14, 114, 0.9), rtol=1e-6)
    # frame 3: the more confident person (written second) comes first
    np.testing.assert_allclose(kp[3, :, 0], [(70, 170, 0.8), (50, 150, 0.3)], rtol=1e-6)
    clean = videos["clean"]
    assert clean.keypoints.shape == (4, 1, 18, 3)
    np.testing.assert_allclose(clean.keypoints[:, 0, 2, 2], [0.5, 0.6, 0.7, 0.8], rtol=1e-6)


def test_bad_videos_skipped(tmp_path: Path):
    videos = load_all(openpose.index(make_dataset(tmp_path), SIZE))
    reasons = {vid: v.reason for vid, v in videos.items() if isinstance(v, Skipped)}
    assert sorted(reasons) == ["body25", "mixed", "nofiles", "truncated"]
    assert "75 values" in reasons["body25"] and "openpose_body25" in reasons["body25"]
    assert "truncated_000000000001_keypoints.json" in reasons["truncated"]
    assert "no *_keypoints.json" in reasons["nofiles"]
    assert "mixed_000000000001_keypoints.json, person 0 has 75 values" in reasons["mixed"]
    assert videos["truncated"].source == str(tmp_path / "run" / "truncated")


def test_body25_dataset(tmp_path: Path):
    write_frame(tmp_path / "run" / "v", 0, [person(25, 0.7)])
    write_frame(tmp_path / "run" / "v", 2, [person(25, 0.6)])
    write_frame(tmp_path / "run" / "w", 0, [person(18, 0.6)])
    index = openpose.index(tmp_path, SIZE)
    assert index.layout == "openpose_body25" and index.splits == {"all": ["v", "w"]}
    videos = load_all(index)
    assert videos["v"].keypoints.shape == (3, 1, 25, 3)
    assert isinstance(videos["w"], Skipped) and "54 values" in videos["w"].reason


def test_layout_option(tmp_path: Path):
    index = openpose.index(make_dataset(tmp_path), {**SIZE, "layout": "openpose_body25"})
    assert index.layout == "openpose_body25"
    videos = load_all(index)
    assert isinstance(videos["body25"], Video) and isinstance(videos["clean"], Skipped)
    with pytest.raises(ReadError, match="unknown skeleton layout 'smpl24'"):
        openpose.index(tmp_path, {**SIZE, "layout": "smpl24"})
    # another model's joints: a built-in or YAML layout; videos of other lengths are skipped
    index = openpose.index(tmp_path, {**SIZE, "layout": "coco17"})
    assert all(isinstance(v, Skipped) for v in load_all(index).values())


def test_layout_detected_past_empty_frames(tmp_path: Path):
    for t in range(3):
        write_frame(tmp_path / "a" / "v", t, [])
    write_frame(tmp_path / "a" / "v", 3, [person(25, 0.5)])
    assert openpose.index(tmp_path, SIZE).layout == "openpose_body25"


def test_no_person_anywhere(tmp_path: Path):
    write_frame(tmp_path / "a" / "v", 0, [])
    with pytest.raises(ReadError, match="source.layout"):
        openpose.index(tmp_path, SIZE)
    video = openpose.load(openpose.index(tmp_path, {**SIZE, "layout": "openpose18"}).entries[0])
    assert isinstance(video, Video) and video.keypoints.shape == (1, 0, 18, 3)
    assert isinstance(check_video(video, 18, 1, False), Skipped)


def test_frame_number_is_last_digit_run(tmp_path: Path):
    video_dir = tmp_path / "a" / "cam2_take7"
    write_frame(video_dir, 5, [person(18, 0.5, base=5)], prefix="cam2_take7")
    write_frame(video_dir, 6, [person(18, 0.5, base=6)], prefix="cam2_take7")
    video = load_all(openpose.index(tmp_path, SIZE))["cam2_take7"]
    assert video.keypoints.shape == (2, 1, 18, 3)  # frames 5..6, not 2 or 7
    np.testing.assert_allclose(video.keypoints[:, 0, 0, 0], [5, 6])
    (video_dir / "extra_keypoints.json").write_text('{"people": []}')
    skipped = load_all(openpose.index(tmp_path, SIZE))["cam2_take7"]
    assert isinstance(skipped, Skipped) and "frame number" in skipped.reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"version": 1.3}', "no 'people'"),
        ('{"people": [{"face_keypoints_2d": []}]}', "no pose_keypoints_2d"),
        ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', "3 values"),
        ("[1, 2]", "no 'people'"),
        ("", "cannot parse"),
    ],
)
def test_malformed_frame_skipped(tmp_path: Path, content: str, reason: str):
    write_frame(tmp_path / "a" / "v", 0, [person(18, 0.5)])
    write_frame(tmp_path / "a" / "w", 0, [person(18, 0.5)])
    (tmp_path / "a" / "w" / f"w_{1:012d}_keypoints.json").write_text(content)
    videos = load_all(openpose.index(tmp_path, SIZE))
    assert isinstance(videos["v"], Video)
    assert isinstance(videos["w"], Skipped) and reason in videos["w"].reason


def test_old_pose_keypoints_key_and_missing_joint(tmp_path: Path):
    values = person(18, 0.5)
    values[3:6] = [0, 0, 0]  # joint 1 not detected
    path = tmp_path / "a" / "v" / f"v_{0:012d}_keypoints.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1.0, "people": [{"pose_keypoints": values}]}))
    video = load_all(openpose.index(tmp_path, SIZE))["v"]
    assert (video.keypoints[0, 0, 1] == 0).all() and video.keypoints[0, 0, 0, 2] == 0.5


def test_confidence_above_one_left_for_check_video(tmp_path: Path):
    write_frame(tmp_path / "a" / "v", 0, [person(18, 1.02)])
    video = load_all(openpose.index(tmp_path, SIZE))["v"]
    assert video.keypoints[..., 2].max() == pytest.approx(1.02)
    assert check_video(video, 18, 1, False).keypoints[..., 2].max() == 1.0


def test_class_names_option(tmp_path: Path):
    raw = make_dataset(tmp_path)
    names = tmp_path / "classes.txt"
    names.write_text("swim\nlift\n")
    index = openpose.index(raw, {**SIZE, "class_names": str(names)})
    assert index.class_names == ["swim", "lift"]
    videos = load_all(index)
    assert videos["clean"].labels == (1,)
    assert isinstance(videos["nofiles"], Skipped) and "'run'" in videos["nofiles"].reason


def test_dataset_level_errors(tmp_path: Path):
    with pytest.raises(ReadError, match="image_size"):
        openpose.index(make_dataset(tmp_path / "a"), {})
    with pytest.raises(ReadError, match="does not exist"):
        openpose.index(tmp_path / "nowhere", SIZE)
    (tmp_path / "b" / "lift").mkdir(parents=True)
    with pytest.raises(ReadError, match="no video"):
        openpose.index(tmp_path / "b", SIZE)
    raw = make_dataset(tmp_path / "c")
    (raw / "splits" / "val.txt").write_text("\n")
    with pytest.raises(ReadError, match="val.txt"):
        openpose.index(raw, SIZE)
    for path in (raw / "splits").iterdir():
        path.unlink()
    with pytest.raises(ReadError, match="splits"):
        openpose.index(raw, SIZE)
    write_frame(raw / "run" / "gap", 0, [person(18, 0.5)])
    with pytest.raises(ReadError, match="'gap' appears twice"):
        openpose.index(raw, SIZE)


def test_absurd_frame_span_skipped(tmp_path: Path):
    write_frame(tmp_path / "a" / "v", 0, [person(18, 0.5)])
    write_frame(tmp_path / "a" / "v", 10**9, [person(18, 0.5)])
    skipped = load_all(openpose.index(tmp_path, SIZE))["v"]
    assert isinstance(skipped, Skipped) and "span more than" in skipped.reason


def test_skip_reasons_of_the_same_kind_group_whatever_the_file(tmp_path: Path):
    """ingest counts skips by the text before the first " (", ":" or "[": two videos
    skipped for the same reason in differently named files are one bucket, not two."""
    for video in ("a1", "a2"):  # a truncated frame file
        write_frame(tmp_path / "x" / video, 0, [person(18, 0.5)])
        (tmp_path / "x" / video / f"{video}_{1:012d}_keypoints.json").write_text('{"peo')
    for video in ("b1", "b2"):  # no 'people' list
        (tmp_path / "x" / video).mkdir(parents=True)
        (tmp_path / "x" / video / f"{video}_{0:012d}_keypoints.json").write_text("{}")
    for video in ("c1", "c2"):  # a BODY_25 person in a COCO-18 dataset
        write_frame(tmp_path / "x" / video, 7, [person(25, 0.5)])
    for video in ("d1", "d2"):  # a person without keypoints
        write_frame(tmp_path / "x" / video, 0, [person(18, 0.5)])
        (tmp_path / "x" / video / f"{video}_{3:012d}_keypoints.json").write_text(
            '{"people": [{"face_keypoints_2d": []}]}')
    for video in ("e1", "e2"):  # non-numeric values
        write_frame(tmp_path / "x" / video, 0, [["a"] * 54])
    for video, name in (("f1", "last"), ("f2", "final")):  # a frame file without a number
        write_frame(tmp_path / "x" / video, 0, [person(18, 0.5)])
        (tmp_path / "x" / video / f"{name}_keypoints.json").write_text('{"people": []}')
    for n, video in enumerate(("g1", "g2")):  # the same frame number twice
        write_frame(tmp_path / "x" / video, n, [person(18, 0.5)])
        write_frame(tmp_path / "x" / video, n, [person(18, 0.5)], prefix="copy")
    for n, video in enumerate(("h1", "h2")):  # an absurd frame span
        write_frame(tmp_path / "x" / video, 0, [person(18, 0.5)])
        write_frame(tmp_path / "x" / video, 10**9 + n, [person(18, 0.5)])
    index = openpose.index(tmp_path, {**SIZE, "layout": "openpose18"})
    videos = load_all(index)
    assert [v for v, item in videos.items() if not isinstance(item, Skipped)] == []
    reasons = [item.reason for item in videos.values()]
    kinds = ["cannot parse a frame file", "no 'people' list in a frame file",
             "person with another layout's number of values",
             "no pose_keypoints_2d list for a person", "non-numeric keypoint values",
             "frame file name without a frame number",
             "two frame files have the same frame number",
             "frame numbers span more than 108000 frames"]  # fmt: skip
    assert Counter(_reason_kind(r) for r in reasons) == {_reason_kind(k): 2 for k in kinds}
    # the detail is still there, after the kind
    assert any("a2_000000000001_keypoints.json" in r for r in reasons)
    assert any("1 in copy_000000000001_keypoints.json and g2_000000000001" in r for r in reasons)
    assert any("0..1000000001" in r for r in reasons)


def sized_dataset(raw: Path) -> Path:
    """Class ``a``: videos ``small`` (a 240 x 320 clip, joints at x = 300..317) and ``wide``
    (240 x 426, joints at x = 400..417: outside a 320 px wide frame), y = 100..117; and
    ``other``, which the frame size tables of the tests leave out."""
    for video, x in (("small", 300), ("wide", 400), ("other", 10)):
        values = np.array(person(18, 0.9)).reshape(18, 3)
        values[:, :2] += (x - 10, -10)
        write_frame(raw / "a" / video, 0, [values.ravel().tolist()])
    return raw


def test_frame_sizes_table_gives_each_video_its_own_size(tmp_path: Path):
    raw = sized_dataset(tmp_path / "raw")
    # columns in any order, extra columns ignored, a row matching no video (counted)
    (raw / "sizes.csv").write_text("width,codec,video_id,height\n320,h264,small,240\n"
                                   "426,h264,wide,240\n640,h264,gone,480\n")  # fmt: skip
    index = openpose.index(raw, {"image_size": [480, 640], "frame_sizes": "sizes.csv"})
    assert index.left_out == {"frame_sizes rows matching no video": 1}
    videos = load_all(index)
    assert videos["small"].image_size == (240, 320)
    assert videos["wide"].image_size == (240, 426)
    assert videos["other"].image_size == (480, 640)  # not in the table: source.image_size
    # the JSON forms give the same sizes
    (raw / "sizes.json").write_text(json.dumps({"small": [240, 320],
                                                "wide": {"height": 240, "width": 426}}))
    index = openpose.index(raw, {"image_size": [480, 640], "frame_sizes": "sizes.json"})
    assert {v: e["image_size"] for v, e in ((e["video_id"], e) for e in index.entries)} == {
        "small": (240, 320), "wide": (240, 426), "other": (480, 640)}
    assert index.left_out == {"frame_sizes rows matching no video": 0}
    # without a table nothing is reported
    assert openpose.index(raw, SIZE).left_out == {}


def test_a_video_without_a_frame_size_is_a_counted_skip(tmp_path: Path):
    raw = sized_dataset(tmp_path / "raw")
    (raw / "sizes.csv").write_text("video_id,height,width\nsmall,240,320\nwide,240,426\n")
    index = openpose.index(raw, {"frame_sizes": "sizes.csv"})  # no image_size
    videos = load_all(index)
    assert videos["wide"].image_size == (240, 426)
    assert isinstance(videos["other"], Skipped)
    assert videos["other"].reason == ("no frame size for this video: not in sizes.csv and no "
                                      "source.image_size")  # fmt: skip
    report = ingest("openpose_json", raw, tmp_path / "kp.h5", dataset="t",
                    options={"frame_sizes": "sizes.csv"}, max_skipped_fraction=0.5, min_frames=1,
                    n_jobs=1)  # fmt: skip
    assert report["skipped_by_reason"] == {"no frame size for this video": 1}
    assert report["left_out"] == {"frame_sizes rows matching no video": 0}
    with KeypointsFile(tmp_path / "kp.h5") as kf:
        sizes = dict(zip(kf.video_ids, kf.image_size.tolist(), strict=True))
    assert sizes == {"small": [240, 320], "wide": [240, 426]}


HEADER = "video_id,height,width\n"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("s.csv", "video_id,height\nv,240\n", r"s.csv, line 1: the header must name"),
        ("s.csv", "video_id,height,width,height\nv,1,2,3\n", r"s.csv, line 1: the header"),
        ("s.csv", "", r"s.csv, line 1: the header must name"),
        ("s.csv", HEADER + "v,240\n", r"s.csv, line 2: 2 cells, the header has 3"),
        ("s.csv", HEADER + "v,240,320,7\n", r"s.csv, line 2: 4 cells, the header has 3"),
        ("s.csv", HEADER + "v,240,320\n\nw,2.4e2,320\n",
         r"s.csv, line 4 \(video 'w'\): height must be a positive integer, got '2.4e2'"),
        ("s.csv", HEADER + "v,240,x\n", r"s.csv, line 2 \(video 'v'\): width must be a posi"),
        ("s.csv", HEADER + "v,0,320\n", r"s.csv, line 2 \(video 'v'\): height must be a posi"),
        ("s.csv", HEADER + "v,-240,320\n", r"s.csv, line 2 .*height must be a positive"),
        ("s.csv", HEADER + "v,2_40,320\n", r"s.csv, line 2 .*height must be a positive"),
        ("s.csv", HEADER + ",240,320\n", r"s.csv, line 2: empty video_id"),
        ("s.csv", HEADER + "v,240,320\nw,240,320\nv,240,320\n",
         r"s.csv, line 4: video 'v' appears twice \(first on line 2\)"),
        ("s.csv", HEADER, r"s.csv lists no video"),
        ("s.csv", b"video_id,height,width\n\xff\xfe,1,2\n", r"cannot read .*s.csv"),
        ("s.json", '{"v": [240]}', r"s.json, video 'v': expected \[height, width\]"),
        ("s.json", '{"v": {"height": 240}}', r"s.json, video 'v': expected"),
        ("s.json", '{"v": [240, "320"]}', r"s.json, video 'v': height and width must be JSON"),
        ("s.json", '{"v": [240, 320.5]}', r"s.json, video 'v': width must be a positive"),
        ("s.json", '{"v": [0, 320]}', r"s.json, video 'v': height must be a positive"),
        ("s.json", '{"v": [true, 320]}', r"s.json, video 'v': height must be a positive"),
        ("s.json", '{"v": [240, 320], "v": [240, 320]}', r"s.json: .*'v' appears twice"),
        ("s.json", '[["v", 240, 320]]', r"s.json: expected an object"),
        ("s.json", '{"v": [240, 320]', r"cannot read .*s.json \(JSONDecodeError"),
        ("s.json", "{}", r"s.json lists no video"),
        ("s.txt", "v 240 320\n", r"s.txt: expected a .csv or .json file"),
    ],
)
def test_malformed_frame_sizes_table_is_an_error_naming_the_file(tmp_path: Path, name: str,
                                                                 content, message: str):
    raw = sized_dataset(tmp_path / "raw")
    path = raw / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ReadError, match=message):
        openpose.index(raw, {**SIZE, "frame_sizes": name})
    with pytest.raises(ReadError, match=message):
        read_frame_sizes(path)


def test_frame_sizes_option_errors(tmp_path: Path):
    raw = sized_dataset(tmp_path / "raw")
    with pytest.raises(ReadError, match="source.frame_sizes: .*absent.csv does not exist"):
        openpose.index(raw, {**SIZE, "frame_sizes": "absent.csv"})
    (tmp_path / "outside.csv").write_text(HEADER + "small,240,320\n")
    for name in ("../outside.csv", str(tmp_path / "outside.csv"), ["small", 240, 320]):
        with pytest.raises(ReadError, match="must be the name of a file inside raw_dir"):
            openpose.index(raw, {**SIZE, "frame_sizes": name})
    with pytest.raises(ReadError, match="image_size .* or source.frame_sizes"):
        openpose.index(raw, {"frame_sizes": None})
    (raw / "sizes.csv").write_text(HEADER + "small,240,320\n")
    with pytest.raises(ReadError, match="image_size must be"):  # a bad default still fails
        openpose.index(raw, {"image_size": [240], "frame_sizes": "sizes.csv"})


REAL_OPENPOSE = ("formats", "openpose_coco18", "clean_and_jerk")


def copy_real_frames(shared_data: Path, video_dir: Path, frames=range(20),
                     numbers=None) -> list[Path]:  # fmt: skip
    """Real OpenPose frame files ``frames`` of clean_and_jerk into ``video_dir`` (named with
    ``numbers`` instead, if given); returns the new paths."""
    real = shared_data.joinpath(*REAL_OPENPOSE)
    video_dir.mkdir(parents=True)
    paths = []
    for frame, number in zip(frames, numbers or frames, strict=True):
        text = (real / f"clean_and_jerk_{frame:012d}_keypoints.json").read_text()
        paths.append(video_dir / f"{video_dir.name}_{number:012d}_keypoints.json")
        paths[-1].write_text(text)
    return paths


@pytest.mark.parametrize("value", ["true", "false", "null", '"170.691"'])
def test_real_frames_with_json_non_numbers_are_skipped(shared_data: Path, tmp_path: Path,
                                                       value: str):  # fmt: skip
    """true/false were taken as 1.0/0.0 (null as NaN, a quoted number as the number): each is
    a non-numeric value, skipped with the file and person named."""
    paths = copy_real_frames(shared_data, tmp_path / "lift" / "bad")
    copy_real_frames(shared_data, tmp_path / "lift" / "good")
    text = paths[5].read_text()  # the first x of the person
    paths[5].write_text(re.sub(r'("pose_keypoints_2d":\[)[-\d.e]+', lambda m: m[1] + value,
                               text, count=1))  # fmt: skip
    videos = load_all(openpose.index(tmp_path, SIZE))
    assert isinstance(videos["good"], Video)
    assert videos["bad"].reason == (f"non-numeric keypoint values (bad_000000000005_keypoints."
                                    f"json, person 0: {value} is not a JSON number)")  # fmt: skip
    assert _reason_kind(videos["bad"].reason) == "non-numeric keypoint values"


def test_a_json_boolean_among_the_values_of_a_later_person(shared_data: Path, tmp_path: Path):
    paths = copy_real_frames(shared_data, tmp_path / "lift" / "bad", frames=range(3))
    data = json.loads(paths[1].read_text())
    second = list(data["people"][0]["pose_keypoints_2d"])
    second[-1] = False  # a confidence, in a second person
    data["people"].append({"pose_keypoints_2d": second})
    paths[1].write_text(json.dumps(data))
    (video,) = load_all(openpose.index(tmp_path, SIZE)).values()
    assert video.reason == ("non-numeric keypoint values (bad_000000000001_keypoints.json, "
                            "person 1: false is not a JSON number)")  # fmt: skip


def test_a_split_file_naming_a_video_not_on_disk_is_a_warning(tmp_path: Path):
    from jmrn.ingest import missing_videos_warning

    raw = make_dataset(tmp_path / "raw")
    report = ingest("openpose_json", raw, tmp_path / "k.h5", dataset="op", options=SIZE,
                    n_jobs=1, min_frames=1, max_skipped_fraction=1.0)  # fmt: skip
    # nofiles, mixed, body25 and truncated are on disk (skipped); not_on_disk is not
    assert report["split_entries_not_in_data"] == {"test": {"count": 1,
                                                            "example": "not_on_disk"}}
    assert missing_videos_warning(report) == ("warning: ingest op: 1 split entries name "
                                              "videos that are not in the data: 1 in split "
                                              "'test' (e.g. 'not_on_disk')")  # fmt: skip


def ingest_folders(raw: Path, out: Path, **kw) -> dict:
    return ingest("openpose_json", raw, out, dataset="op", options=SIZE, n_jobs=1,
                  max_skipped_fraction=1.0, **kw)  # fmt: skip


def test_one_stray_frame_number_is_a_counted_skip_not_a_stretched_video(shared_data: Path,
                                                                         tmp_path: Path):
    """Real frames 0-19 and one more file numbered 100000 gave T = 100,001 of which 21 had a
    pose; now a counted skip naming the gap. Variants: a stray number closer by (50), a
    video mostly of empty frames, and a short gap that is kept and counted."""
    raw = tmp_path / "raw"
    copy_real_frames(shared_data, raw / "lift" / "stray", range(21), [*range(20), 100000])
    copy_real_frames(shared_data, raw / "lift" / "near", range(21), [*range(20), 50])
    empty = copy_real_frames(shared_data, raw / "lift" / "empty", range(20))
    for path in empty[::2] + [empty[1]]:  # 11 of 20 frames without people, no long run
        path.write_text('{"version":1.3,"people":[]}')
    copy_real_frames(shared_data, raw / "lift" / "gap", range(20), [*range(15), *range(20, 25)])
    report = ingest_folders(raw, tmp_path / "k.h5")
    reasons = {s["video_id"]: s["reason"] for s in report["skipped_videos"]}
    assert reasons == {
        "stray": "a gap of 99980 empty frames longer than its 21 frames with a pose (frames "
                 "20..99999 of 100001: a stray frame number?)",
        "near": "a gap of 30 empty frames longer than its 21 frames with a pose (frames 20..49 "
                "of 51: a stray frame number?)",
        "empty": "mostly empty frames (11 of 20 frames have no detected joint; more than 0.5 "
                 "of them)"}  # fmt: skip
    assert report["skipped_by_reason"] == {
        "a gap of N empty frames longer than its N frames with a pose": 2,
        "mostly empty frames": 1}  # fmt: skip
    # the kept video's 5 missing frames are counted, and in every joint's missing fraction
    assert report["kept"] == 1 and report["frames"] == 25 and report["empty_frames"] == 5
    assert report["empty_frame_fraction"] == 5 / 25
    with KeypointsFile(tmp_path / "k.h5") as kf:
        assert kf.keypoints(0).shape[0] == 25 and (kf.keypoints(0)[15:20] == 0).all()
    nose = report["per_joint"]["nose"]
    assert report["person_frames"] == 20
    assert nose["missing_fraction"] == pytest.approx((20 - nose["detected"] + 5) / 25)
