"""The Charades reader on hand-written files in the official layout: the real CSV header
(quoted cells with commas), multi-hot targets, videos without actions, OpenPose folders per
video id, and every malformed case the module docstring promises to catch."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jmrn.ingest import _reason_kind
from jmrn.readers import charades
from jmrn.records import ReadError, Skipped, Video

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,length,actions"
CLASSES = "c000 Holding some clothes\nc001 Putting clothes somewhere\nc002 Taking a laptop\n"


def row(video: str, actions: str) -> str:
    return (f'{video},HR43,Kitchen,6,7,Yes,"A person opens a door, then sits.",'
            f'door;chair,"Person walks, sits.",30.12,"{actions}"')


def write_video(raw: Path, video: str, frames: int = 4) -> None:
    folder = raw / "openpose" / video
    folder.mkdir(parents=True)
    pose = np.stack([np.linspace(10, 100, 18), np.linspace(20, 200, 18), np.full(18, 0.9)], 1)
    for t in range(frames):
        people = [{"pose_keypoints_2d": (pose + t).ravel().round(2).tolist()}]
        (folder / f"{video}_{t:012d}_keypoints.json").write_text(json.dumps({"people": people}))


def fixture(tmp_path: Path, train: list[str], test: list[str]) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Charades_v1_classes.txt").write_text(CLASSES)
    (raw / "Charades_v1_train.csv").write_text("\n".join([HEADER, *train]) + "\n")
    (raw / "Charades_v1_test.csv").write_text("\n".join([HEADER, *test]) + "\n")
    return raw


OPTIONS = {"image_size": [480, 640]}


def test_targets_are_the_multi_hot_set_of_the_actions(tmp_path):
    raw = fixture(tmp_path, [row("46GP8", "c002 11.90 21.20;c000 0.00 12.60;c002 25.0 30.0"),
                             row("N11GT", "")],  # fmt: skip
                  [row("0IH69", "c001 1 2")])
    for video in ("46GP8", "N11GT", "0IH69", "EXTRA"):
        write_video(raw, video)
    index = charades.index(raw, OPTIONS)
    assert index.multi_label and index.class_names == ["Holding some clothes",
                                                       "Putting clothes somewhere",
                                                       "Taking a laptop"]  # fmt: skip
    assert index.splits == {"train": ["46GP8", "N11GT"], "test": ["0IH69"]}
    assert index.left_out == {"video in neither Charades CSV": 1}  # EXTRA: keypoints, no row
    videos = {e["_video"]: charades.load(e) for e in index.entries}
    assert all(isinstance(v, Video) for v in videos.values())
    assert videos["46GP8"].labels == (0, 2)  # c002 twice is one label
    assert videos["N11GT"].labels == ()  # no action: kept, all-zero target
    assert videos["0IH69"].labels == (1,)
    assert videos["46GP8"].keypoints.shape == (4, 1, 18, 3)
    assert videos["46GP8"].image_size == (480, 640)


def test_unusable_action_cells_skip_their_video_with_the_reason(tmp_path):
    raw = fixture(tmp_path, [row("AAAAA", "c157 0.0 1.0"), row("BBBBB", "c001 5.00 1.00"),
                             row("CCCCC", "c001 one two"), row("DDDDD", "c001 0 1")],
                  [])  # fmt: skip
    for video in ("AAAAA", "BBBBB", "CCCCC", "DDDDD"):
        write_video(raw, video)
    loaded = {e["_video"]: charades.load(e) for e in charades.index(raw, OPTIONS).entries}
    reasons = {v: r.reason for v, r in loaded.items() if isinstance(r, Skipped)}
    assert reasons == {
        "AAAAA": "action class not in the class list ('c157' is not in Charades_v1_classes.txt; "
                 "Charades_v1_train.csv, line 2)",
        "BBBBB": "action ends before it starts ('c001 5.00 1.00'; Charades_v1_train.csv, line 3)",
        "CCCCC": "malformed action ('c001 one two' is not 'c<3 digits> <start> <end>'; "
                 "Charades_v1_train.csv, line 4)",
    }  # fmt: skip
    assert loaded["AAAAA"].source == str(raw / "Charades_v1_train.csv")
    assert isinstance(loaded["DDDDD"], Video)


def test_skips_of_the_same_kind_on_different_lines_group(tmp_path):
    """ingest counts skips by the text before the first " (", ":" or "["; the CSV line of
    each bad row comes after it, so each kind of bad cell is one bucket."""
    raw = fixture(tmp_path, [row("AAAAA", "c157 0.0 1.0"), row("BBBBB", "c001 5.00 1.00"),
                             row("CCCCC", "c001 one two")],
                  [row("DDDDD", "c200 0.0 1.0"), row("EEEEE", "c002 9 8"),
                   row("FFFFF", "c001")])  # fmt: skip
    for video in ("AAAAA", "BBBBB", "CCCCC", "DDDDD", "EEEEE", "FFFFF"):
        write_video(raw, video)
    reasons = [charades.load(e).reason for e in charades.index(raw, OPTIONS).entries]
    kinds = ["action class not in the class list", "action ends before it starts",
             "malformed action"]  # fmt: skip
    assert Counter(_reason_kind(r) for r in reasons) == {_reason_kind(k): 2 for k in kinds}


def test_frame_sizes_give_each_video_its_own_size(tmp_path):
    raw = fixture(tmp_path, [row("AAAAA", "c000 0 1"), row("BBBBB", "c001 0 1")],
                  [row("CCCCC", "c002 0 1")])  # fmt: skip
    for video in ("AAAAA", "BBBBB", "CCCCC", "EXTRA"):
        write_video(raw, video)
    # AAAAA 480 x 640, BBBBB 360 x 480 (Charades' resolutions vary); CCCCC absent; ZZZZZ and
    # EXTRA (keypoints but no CSV row) have rows: only ZZZZZ matches no video
    (raw / "sizes.json").write_text(json.dumps({"AAAAA": [480, 640],
                                                "BBBBB": {"height": 360, "width": 480},
                                                "EXTRA": [480, 640], "ZZZZZ": [480, 640]}))
    index = charades.index(raw, {"image_size": [720, 1280], "frame_sizes": "sizes.json"})
    assert index.left_out == {"video in neither Charades CSV": 1,
                              "frame_sizes rows matching no video": 1}  # fmt: skip
    videos = {e["_video"]: charades.load(e) for e in index.entries}
    assert videos["AAAAA"].image_size == (480, 640)
    assert videos["BBBBB"].image_size == (360, 480)
    assert videos["CCCCC"].image_size == (720, 1280)  # source.image_size
    index = charades.index(raw, {"frame_sizes": "sizes.json"})
    videos = {e["_video"]: charades.load(e) for e in index.entries}
    assert videos["BBBBB"].image_size == (360, 480)
    assert isinstance(videos["CCCCC"], Skipped)
    assert videos["CCCCC"].reason == ("no frame size for this video: not in sizes.json and no "
                                      "source.image_size")  # fmt: skip
    (raw / "sizes.json").write_text('{"AAAAA": [480, 640], "BBBBB": [360]}')
    with pytest.raises(ReadError, match="sizes.json, video 'BBBBB': expected"):
        charades.index(raw, {"frame_sizes": "sizes.json"})
    with pytest.raises(ReadError, match="source.frame_sizes is for OpenPose keypoints"):
        charades.index(raw, {"keypoints": "pyskl", "frame_sizes": "sizes.json"})


def test_dataset_level_problems_are_errors_naming_the_file(tmp_path):
    raw = fixture(tmp_path, [row("AAAAA", "c000 0 1")], [row("AAAAA", "c001 0 1")])
    write_video(raw, "AAAAA")
    with pytest.raises(ReadError, match="Charades_v1_test.csv: video 'AAAAA' is also in"):
        charades.index(raw, OPTIONS)
    (raw / "Charades_v1_test.csv").write_text(HEADER + "\n" + row("BBBBB", "")[:40] + "\n")
    with pytest.raises(ReadError, match="test.csv, line 2: malformed or truncated row"):
        charades.index(raw, OPTIONS)
    (raw / "Charades_v1_test.csv").write_text(
        "\n".join([HEADER, row("BBBBB", ""), row("BBBBB", "")]) + "\n")
    with pytest.raises(ReadError, match="test.csv, line 3: video 'BBBBB' appears twice"):
        charades.index(raw, OPTIONS)
    (raw / "Charades_v1_test.csv").write_text(HEADER + "\n")
    (raw / "Charades_v1_classes.txt").write_text(CLASSES + "Taking a laptop\n")
    with pytest.raises(ReadError, match="classes.txt, line 4: expected a new 'c<3 digits>"):
        charades.index(raw, OPTIONS)
    (raw / "Charades_v1_classes.txt").write_text(CLASSES + "c001 again\n")
    with pytest.raises(ReadError, match="classes.txt, line 4"):
        charades.index(raw, OPTIONS)
    (raw / "Charades_v1_classes.txt").write_text(CLASSES)
    with pytest.raises(ReadError, match="image_size"):
        charades.index(raw, {})
    with pytest.raises(ReadError, match="source.keypoints must be auto, pyskl or openpose"):
        charades.index(raw, {**OPTIONS, "keypoints": "mmpose"})
    (raw / "Charades_v1_test.csv").unlink()
    with pytest.raises(ReadError, match="Charades_v1_test.csv does not exist"):
        charades.index(raw, OPTIONS)


def test_pickle_annotations_without_an_id_are_counted_skips(tmp_path):
    """With a PYSKL pickle, an annotation without frame_dir (or an empty one) is a skip with
    the reason, not a video 'None' left out as in neither CSV."""
    import pickle

    raw = fixture(tmp_path, [row("AAAAA", "c001 0 1"), row("BBBBB", "c002 0 1")], [])
    rng = np.random.default_rng(0)

    def ann(video):
        return {"frame_dir": video, "img_shape": (240, 320),
                "keypoint": rng.uniform(10, 200, (1, 5, 17, 2)).astype(np.float32),
                "keypoint_score": np.full((1, 5, 17), 0.9, np.float32)}  # fmt: skip

    no_id, empty = ann("x"), ann("")
    del no_id["frame_dir"]
    (raw / "pose.pkl").write_bytes(pickle.dumps({"split": {}, "annotations":
                                                 [ann("AAAAA"), ann("BBBBB"), no_id, empty]}))
    index = charades.index(raw, {})
    assert index.left_out == {"video in neither Charades CSV": 0}
    loaded = [charades.load(e) for e in index.entries]
    reasons = sorted(v.reason for v in loaded if isinstance(v, Skipped))
    assert reasons == ["annotation has no 'frame_dir' (the video id)",
                       "empty frame_dir (the video id: '')"]  # fmt: skip
    assert sorted(v.video_id for v in loaded if isinstance(v, Video)) == ["AAAAA", "BBBBB"]
