"""The AVA reader: one sample per (keyframe, person box), its actor chosen by the box, the
other people as context, detected boxes as an unlabelled split; on the real sample files of
../shared/data and on written fixtures, malformed ones included."""

from __future__ import annotations

import json
import pickle
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jmrn.ava_annotations import select_proposals
from jmrn.ingest import _reason_kind
from jmrn.readers import ava
from jmrn.records import ReadError, Skipped, Video

HEIGHT, WIDTH = 100, 200  # image_size [H, W]
OPTIONS = {"image_size": [HEIGHT, WIDTH], "fps": 10, "start_second": 900, "clip_seconds": 0.2}
ACTIONS = 'item {\n  name: "stand"\n  id: 12\n}\nitem {\n  name: "talk"\n  id: 79\n}\n'


def person_at(x: float, y: float, conf: float = 0.9) -> dict:
    """An 18-joint OpenPose person whose joints all lie within 5 px of (x, y)."""
    offsets = np.linspace(-5, 5, 18)
    values = np.stack([x + offsets, y + offsets[::-1], np.full(18, conf)], 1)
    return {"person_id": [-1], "pose_keypoints_2d": values.ravel().round(2).tolist()}


def write_frames(raw: Path, video: str, frames: dict[int, list[dict]]) -> None:
    folder = raw / "openpose" / video
    folder.mkdir(parents=True, exist_ok=True)
    for number, people in frames.items():
        (folder / f"{video}_{number:012d}_keypoints.json").write_text(
            json.dumps({"version": 1.3, "people": people}))


def fixture(raw: Path, val_rows: str, train_rows: str = "") -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "ava_action_list_v2.2_for_activitynet_2019.pbtxt").write_text(ACTIONS)
    (raw / "ava_train_v2.2.csv").write_text(train_rows)
    (raw / "ava_val_v2.2.csv").write_text(val_rows)
    return raw


def by_id(index) -> dict[str, dict]:
    return {e["video_id"]: e for e in index.entries}


def test_each_person_box_of_a_keyframe_is_its_own_sample_with_the_others_as_context(tmp_path):
    # Second 902 = frame 20 (fps 10, start 900); the clip is frames 19..21. Two people: A at
    # x = 40 px (box x 0.1-0.3), B at x = 150 px (box x 0.65-0.85); B is annotated twice.
    raw = fixture(tmp_path / "raw", "mv,0902,0.100,0.2,0.300,0.8,12,0\n"
                                    "mv,0902,0.650,0.2,0.850,0.8,12,1\n"
                                    "mv,0902,0.650,0.2,0.850,0.8,79,1\n")  # fmt: skip
    frames = {n: [person_at(150, 50), person_at(40, 50)] for n in (19, 20, 21)}
    write_frames(raw, "mv", frames)
    index = ava.index(raw, OPTIONS)
    assert index.multi_label and index.class_names == ["stand", "talk"]
    assert index.splits["val"] == ["mv,0902,0.100,0.200,0.300,0.800",
                                   "mv,0902,0.650,0.200,0.850,0.800"]  # fmt: skip
    a, b = (ava.load(by_id(index)[i]) for i in index.splits["val"])
    assert isinstance(a, Video) and isinstance(b, Video)
    assert a.labels == (0,) and b.labels == (0, 1)
    assert a.keypoints.shape == b.keypoints.shape == (3, 3, 18, 3)  # 3 frames, 2 people + 1
    # slot 0 is the box's own person, slot 1 the other one (context)
    assert np.allclose(a.keypoints[:, 0, :, 0].mean(1), 40)
    assert np.allclose(a.keypoints[:, 1, :, 0].mean(1), 150)
    assert np.allclose(b.keypoints[:, 0, :, 0].mean(1), 150)
    assert np.allclose(b.keypoints[:, 1, :, 0].mean(1), 40)
    assert np.allclose(a.boxes[:, 0], [20, 20, 60, 80]) and np.isnan(a.boxes[:, 1:]).all()


def test_frames_without_the_actor_keep_an_empty_actor_slot(tmp_path):
    raw = fixture(tmp_path / "raw", "mv,0902,0.100,0.2,0.300,0.8,12,0\n")
    write_frames(raw, "mv", {19: [person_at(40, 50)], 20: [person_at(150, 50)],
                             21: [person_at(40, 50), person_at(150, 50)]})  # fmt: skip
    video = ava.load(ava.index(raw, OPTIONS).entries[0])
    assert isinstance(video, Video)
    assert (video.keypoints[1, 0] == 0).all()  # frame 20: nobody in the box
    assert np.allclose(video.keypoints[1, 1, :, 0].mean(), 150)  # ... the other is context
    assert np.allclose(video.keypoints[[0, 2], 0, :, 0].mean(1), 40)


def test_a_box_no_pose_matches_and_a_missing_clip_are_counted_skips(tmp_path):
    raw = fixture(tmp_path / "raw", "mv,0902,0.100,0.2,0.300,0.8,12,0\n"
                                    "mv,1500,0.100,0.2,0.300,0.8,12,0\n"
                                    "other,0902,0.100,0.2,0.300,0.8,12,0\n")  # fmt: skip
    write_frames(raw, "mv", {n: [person_at(150, 50)] for n in (19, 20, 21)})
    results = [ava.load(e) for e in ava.index(raw, OPTIONS).entries]
    assert all(isinstance(r, Skipped) for r in results)
    reasons = [r.reason for r in results]
    assert reasons[0] == "no pose matches the box in the clip"
    assert reasons[1].startswith("no OpenPose frame in the clip (frames 5999..6001 around "
                                 "second 1500")  # fmt: skip
    assert reasons[2] == "no OpenPose frame files for this video"


def test_skips_of_the_same_kind_in_different_clips_and_files_group(tmp_path):
    """ingest counts skips by the text before the first " (", ":" or "[": the frame numbers,
    seconds and file names of each box come after it."""
    raw = fixture(tmp_path / "raw", "mv,1500,0.100,0.2,0.300,0.8,12,0\n"
                                    "mv,1600,0.100,0.2,0.300,0.8,12,0\n"
                                    "mv2,0902,0.100,0.2,0.300,0.8,12,0\n"
                                    "mv3,0902,0.100,0.2,0.300,0.8,12,0\n")  # fmt: skip
    for video in ("mv", "mv2", "mv3"):
        write_frames(raw, video, {n: [person_at(40, 50)] for n in (19, 20, 21)})
    index = ava.index(raw, OPTIONS)
    (raw / "openpose/mv2/mv2_000000000020_keypoints.json").write_text("{")
    (raw / "openpose/mv3/mv3_000000000021_keypoints.json").write_text("{")
    reasons = [ava.load(e).reason for e in index.entries]
    kinds = ["no OpenPose frame in the clip", "cannot parse a frame file"]
    assert Counter(_reason_kind(r) for r in reasons) == {_reason_kind(k): 2 for k in kinds}


def test_frame_sizes_map_each_movies_boxes_to_its_own_pixels(tmp_path):
    # The same normalised box (x 0.1-0.3, y 0.2-0.8) in movie "small" (100 x 200, the
    # default) and in "big" (200 x 400, from the table): 20..60 x 20..80 px and 40..120 x
    # 40..160 px. big's person stands at (80, 100): inside its box only at big's own size.
    raw = fixture(tmp_path / "raw", "small,0902,0.100,0.2,0.300,0.8,12,0\n"
                                    "big,0902,0.100,0.2,0.300,0.8,12,0\n")  # fmt: skip
    write_frames(raw, "small", {n: [person_at(40, 50)] for n in (19, 20, 21)})
    write_frames(raw, "big", {n: [person_at(150, 50), person_at(80, 100)] for n in (19, 20, 21)})
    (raw / "frame_sizes.csv").write_text("video_id,width,height\nbig,400,200\n"
                                         "not_annotated,640,360\n")  # fmt: skip
    index = ava.index(raw, {**OPTIONS, "frame_sizes": "frame_sizes.csv"})
    assert index.left_out["frame_sizes rows matching no video"] == 1
    small, big = (ava.load(e) for e in index.entries)
    assert isinstance(small, Video) and isinstance(big, Video), (small, big)
    assert small.video_id.startswith("small,") and big.video_id.startswith("big,")
    assert small.image_size == (100, 200) and big.image_size == (200, 400)
    assert np.allclose(small.boxes[:, 0], [20, 20, 60, 80])
    assert np.allclose(big.boxes[:, 0], [40, 40, 120, 160])
    assert np.allclose(big.keypoints[:, 0, :, 0].mean(1), 80)  # the actor: the one in the box
    assert np.allclose(big.keypoints[:, 1, :, 0].mean(1), 150)
    # one size for both, as before source.frame_sizes: big's box misses its person
    wrong = ava.load(ava.index(raw, OPTIONS).entries[1])
    assert isinstance(wrong, Skipped) and wrong.reason == "no pose matches the box in the clip"
    # no default: the movie absent from the table is a counted skip, the other is read
    options = {k: v for k, v in OPTIONS.items() if k != "image_size"}
    small, big = (ava.load(e) for e in
                  ava.index(raw, {**options, "frame_sizes": "frame_sizes.csv"}).entries)
    assert isinstance(big, Video) and big.image_size == (200, 400)
    assert isinstance(small, Skipped) and small.reason == (
        "no frame size for this video: not in frame_sizes.csv and no source.image_size")
    (raw / "frame_sizes.csv").write_text("video_id,width,height\nbig,400,200\nbig,400,200\n")
    with pytest.raises(ReadError, match="frame_sizes.csv, line 3: video 'big' appears twice"):
        ava.index(raw, {**options, "frame_sizes": "frame_sizes.csv"})


def test_damaged_frame_files_skip_the_box_with_the_openpose_readers_reasons(tmp_path):
    raw = fixture(tmp_path / "raw", "mv,0902,0.100,0.2,0.300,0.8,12,0\n"
                                    "mv2,0902,0.100,0.2,0.300,0.8,12,0\n")  # fmt: skip
    write_frames(raw, "mv", {n: [person_at(40, 50)] for n in (19, 20, 21)})
    write_frames(raw, "mv2", {n: [person_at(40, 50)] for n in (19, 20, 21)})
    index = ava.index(raw, OPTIONS)
    (raw / "openpose/mv/mv_000000000020_keypoints.json").write_text("[]")  # not an object
    (raw / "openpose/mv2/copy_20_keypoints.json").write_text('{"people": []}')  # frame 20 twice
    reasons = [ava.load(e).reason for e in index.entries]
    assert reasons == ["no 'people' list in a frame file (mv_000000000020_keypoints.json)",
                       "two frame files have the same frame number (20 in "
                       "copy_20_keypoints.json and mv2_000000000020_keypoints.json)"]  # fmt: skip


def test_malformed_annotations_are_errors_or_counted_rows(tmp_path):
    rows = ("mv,0902,0.300,0.2,0.100,0.8,12,0\n"   # x2 < x1: counted
            "mv,0902,0.100,0.2,0.300,0.8,55,0\n"   # an action id outside the list: counted
            "mv,0100,0.100,0.2,0.300,0.8,12,0\n"   # a timestamp outside 902-1798: counted
            "mv,0902,0.100,0.2,0.300,0.8,12,0\n")  # fmt: skip
    raw = fixture(tmp_path / "raw", rows)
    options = {**OPTIONS, "layout": "openpose18"}  # no frames to detect it from
    index = ava.index(raw, options)
    assert len(index.splits["val"]) == 1
    assert index.left_out == {"val rows: empty box or box outside [0, 1]": 1,
                              "val rows: action id not in the action list": 1,
                              "val rows: timestamp outside 902-1798": 1}  # fmt: skip
    (raw / "ava_val_v2.2.csv").write_text(rows + "mv,0903,0.1,0.2\n")
    with pytest.raises(ReadError, match=r"ava_val_v2.2.csv, line 5: 4 columns"):
        ava.index(raw, options)
    (raw / "ava_val_v2.2.csv").write_text(rows)
    with pytest.raises(ReadError, match="image_size"):
        ava.index(raw, {k: v for k, v in options.items() if k != "image_size"})
    (raw / "ava_train_v2.2.csv").write_text("mv,0902,0.100,0.2,0.300,0.8,12,0\n")
    with pytest.raises(ReadError, match="both the train and val CSVs"):
        ava.index(raw, options)
    (raw / "ava_train_v2.2.csv").unlink()
    with pytest.raises(ReadError, match="expected one ava_train_v2.x.csv"):
        ava.index(raw, options)


def test_real_sample_files(tmp_path, shared_data):
    """The mmaction2 sample CSV, action list, excluded timestamps and proposals, with poses
    written where the sample's boxes are (frame size 100 x 200)."""
    folder = shared_data / "formats/mmaction2"
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(folder / "ava_sample.csv", raw / "ava_val_v2.2.csv")
    shutil.copy(folder / "ava_excluded_timestamps_sample.csv",
                raw / "ava_val_excluded_timestamps_v2.2.csv")  # fmt: skip
    shutil.copy(folder / "ava_action_list_sample.pbtxt", raw / "ava_action_list.pbtxt")
    shutil.copy(folder / "ava_proposals_sample.pkl", raw / "ava_dense_proposals_val.pkl")
    (raw / "ava_train_v2.2.csv").write_text("")
    # the sample's one kept box, 0f39OWEqJ24 at 902: x 0.031-0.670, y 0.162-0.995
    write_frames(raw, "0f39OWEqJ24", {n: [person_at(70, 60)] for n in (19, 20, 21)})
    index = ava.index(raw, OPTIONS)
    assert index.splits["val"] == ["0f39OWEqJ24,0902,0.031,0.162,0.670,0.995"]
    # proposals: 0f39OWEqJ24 902 (0.998) kept; 903 and _-Z6wFjXtGQ 902 are excluded keyframes
    assert index.splits["val_detected"] == ["0f39OWEqJ24,0902,0.011,0.157,0.655,0.983,det"]
    assert index.left_out["proposals: excluded timestamp"] == 4
    assert index.left_out["val rows: excluded timestamp"] == 5
    videos = {e["video_id"]: ava.load(e) for e in index.entries}
    labels = {i: v.labels for i, v in videos.items()}
    assert labels == {index.splits["val"][0]: (0, 1, 2), index.splits["val_detected"][0]: ()}


def test_proposals_kept_and_counted(tmp_path):
    proposals = {
        ("mv", 902): np.array([[0.1, 0.2, 0.3, 0.8, 0.95],    # kept
                               [0.1, 0.2, 0.3, 0.8, 0.5],     # below the threshold
                               [0.3, 0.2, 0.1, 0.8, 0.99],    # x2 < x1
                               [0.1, 0.2, 1.3, 0.8, 0.99],    # outside [0, 1]
                               [0.1, 0.2, 0.3, 0.8, np.nan],  # no score
                               [0.1002, 0.2, 0.3, 0.8, 0.9]]),  # the first box, to 3 decimals
        ("mv", 903): np.array([[0.1, 0.2, 0.3, 0.8, 0.9]]),   # excluded
        ("mv", 100): np.array([[0.1, 0.2, 0.3, 0.8, 0.9]]),   # not an annotated second
        ("train_movie", 902): np.array([[0.1, 0.2, 0.3, 0.8, 0.9]] * 2),
    }  # fmt: skip
    kept = select_proposals(proposals, {"mv"}, {("mv", 903)}, min_score=0.8)
    assert kept.keys == [("mv", 902)] and kept.boxes == [(0.1, 0.2, 0.3, 0.8)]
    assert kept.scores == [pytest.approx(0.95)]
    assert kept.skipped == {"score below proposal_min_score": 2,
                            "empty box or box outside [0, 1]": 2,
                            "same box twice in a keyframe": 1, "excluded timestamp": 1,
                            "timestamp outside 902-1798": 1,
                            "another split's video": 2}  # fmt: skip


def test_which_proposals_file(tmp_path):
    raw = fixture(tmp_path / "raw", "mv,0902,0.100,0.2,0.300,0.8,12,0\n")
    write_frames(raw, "mv", {20: [person_at(40, 50)]})
    assert "val_detected" not in ava.index(raw, OPTIONS).splits  # none: no detected split
    data = {"mv,0902": np.array([[0.1, 0.2, 0.3, 0.8, 0.9]], np.float32)}
    for name in ("ava_dense_proposals_train.pkl", "ava_dense_proposals_val.pkl"):
        (raw / name).write_bytes(pickle.dumps(data))
    assert ava.find_proposals(raw, "auto").name == "ava_dense_proposals_val.pkl"
    assert ava.index(raw, OPTIONS).splits["val_detected"] == ["mv,0902,0.100,0.200,0.300,"
                                                              "0.800,det"]  # fmt: skip
    assert "val_detected" not in ava.index(raw, {**OPTIONS, "proposals": None}).splits
    (raw / "more_proposals_val.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(ReadError, match="several proposal pickles"):
        ava.index(raw, OPTIONS)
    with pytest.raises(ReadError, match="absent.pkl does not exist"):
        ava.index(raw, {**OPTIONS, "proposals": "absent.pkl"})
    (raw / "bad_proposals.pkl").write_bytes(pickle.dumps({"mv-0902": np.zeros((1, 4))}))
    with pytest.raises(ReadError, match="is not '<video>,<timestamp>' -> \\(N, 5\\)"):
        ava.index(raw, {**OPTIONS, "proposals": "bad_proposals.pkl"})


def test_sample_ids_round_trip():
    box = (0.1, 0.25, 0.5, 1.0)
    assert ava.parse_sample_id(ava.sample_id("-5KQ66BBWC4", 902, box)) == (
        "-5KQ66BBWC4", 902, box)
    assert ava.parse_sample_id(ava.sample_id("mv", 1798, box, detected=True)) == ("mv", 1798, box)
    with pytest.raises(ValueError, match="not an AVA sample id"):
        ava.parse_sample_id("mv,0902,0.1,0.2")
