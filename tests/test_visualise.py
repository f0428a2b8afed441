"""The pictures that are not training curves: plots/<ds>/ingest.png (per-joint confidence,
missing and out-of-frame shares) and plots/<ds>/clips/salient/ (the ranker's and the oracle's
clips of a few test videos), each checked through the numbers it draws."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from jmrn import visualise
from jmrn.clip_selection import Ranker
from jmrn.heatmaps import Grid
from jmrn.heatmaps_file import HeatmapsFile, build_heatmaps
from jmrn.ingest import CONFIDENCE_QUANTILES, histogram_quantiles, ingest, joint_confidence
from jmrn.keypoints_file import KeypointsWriter
from jmrn.layouts import LAYOUTS, Layout, get_layout
from jmrn.logits_file import Logits, write_logits
from jmrn.records import Video

COCO = get_layout("coco17")
RED_NAME_PIXELS = 3  # anti-aliased red text pixels that mark a flagged joint's name


def annotation(name: str, label: int, frames: int = 12, seed: int = 0) -> dict:
    """A PYSKL annotation of one person inside a 320x240 frame."""
    rng = np.random.default_rng(seed)
    return {"frame_dir": name, "label": label, "img_shape": (240, 320),
            "keypoint": rng.uniform(20, 220, (1, frames, 17, 2)).astype(np.float32),
            "keypoint_score": rng.uniform(0.6, 1, (1, frames, 17)).astype(np.float32)}  # fmt: skip


@pytest.fixture
def planted_report(tmp_path):
    """Six videos in which left_ear is never detected, right_wrist lies far right of the frame
    in 3 of 12 frames (missing in fewer than half: flagged for being outside only), nose has
    confidence 0.3 throughout and left_hip confidences spread evenly over [0.1, 0.9]. Video
    v0 has a second person, in frames 0-5 only and without a left hip: 6 more person-frames."""
    anns = [annotation(f"v{i}", i % 2, seed=i) for i in range(6)]
    second = annotation("v0", 0, seed=9)
    anns[0]["keypoint"] = np.concatenate([anns[0]["keypoint"], second["keypoint"]])
    anns[0]["keypoint_score"] = np.concatenate([anns[0]["keypoint_score"],
                                                second["keypoint_score"]])  # fmt: skip
    for ann in anns:
        ann["keypoint_score"][:, :, COCO.index("left_ear")] = 0
        ann["keypoint"][0, :3, COCO.index("right_wrist"), 0] = 5000
        ann["keypoint_score"][:, :, COCO.index("nose")] = 0.3
    spread = np.linspace(0.1, 0.9, 6 * 12, dtype=np.float32).reshape(6, 12)
    for ann, row in zip(anns, spread, strict=True):
        ann["keypoint_score"][0, :, COCO.index("left_hip")] = row
    anns[0]["keypoint_score"][1, 6:] = 0  # the second person leaves after frame 5
    anns[0]["keypoint_score"][1, :, COCO.index("left_hip")] = 0
    raw = tmp_path / "raw"
    raw.mkdir()
    split = {"train": ["v0", "v1", "v2", "v3"], "test": ["v4", "v5"]}
    (raw / "d.pkl").write_bytes(pickle.dumps({"split": split, "annotations": anns}))
    (raw / "classes.txt").write_text("a\nb\n")
    return ingest("pyskl", raw, tmp_path / "k.h5", dataset="planted", layout="coco17_neck",
                  options={"class_names": raw / "classes.txt"}, n_jobs=1)  # fmt: skip


def test_per_joint_numbers_name_the_missing_and_the_out_of_frame_joint(planted_report):
    report = planted_report
    joints = report["per_joint"]
    assert list(joints) == list(get_layout("coco17_neck").joints)
    assert report["kept"] == 6 and report["person_frames"] == 6 * 12 + 6
    ear, wrist = joints["left_ear"], joints["right_wrist"]
    assert ear == {"detected": 0, "missing_fraction": 1.0, "confidence_quantiles": None,
                   "outside": 0, "outside_fraction": 0.0}  # fmt: skip
    assert wrist["outside"] == 18 and wrist["detected"] == 6 * 9 + 6
    assert wrist["outside_fraction"] == 18 / 78 and wrist["missing_fraction"] == 18 / 78
    assert joints["left_hip"]["missing_fraction"] == 6 / 78
    flagged = {name for name, j in joints.items()
               if j["missing_fraction"] >= visualise.MISSING_FLAG
               or j["outside_fraction"] >= visualise.OUTSIDE_FLAG}  # fmt: skip
    assert flagged == {"left_ear", "right_wrist"}
    # the per-joint counts add up to ingest's total (no derived joint is outside here)
    assert sum(j["outside"] for j in joints.values()) == report["joints_outside_frame"]["outside"]
    assert joints["nose"]["confidence_quantiles"] == {f"p{round(q * 100):02d}": 0.3
                                                      for q in CONFIDENCE_QUANTILES}  # fmt: skip
    hip = joints["left_hip"]["confidence_quantiles"]
    assert hip["p05"] == pytest.approx(0.14, abs=0.011)
    assert hip["p50"] == pytest.approx(0.5, abs=0.011)
    assert hip["p95"] == pytest.approx(0.86, abs=0.011)
    others = [j for name, j in joints.items() if name not in ("left_ear", "right_wrist",
                                                              "left_hip")]  # fmt: skip
    assert all(j["missing_fraction"] == 0 and j["outside"] == 0 for j in others)


def test_ingest_png_draws_the_flagged_joints_in_red(planted_report, tmp_path):
    out = tmp_path / "plots" / "ingest.png"
    visualise.write_ingest_png(out, planted_report)
    image = cv2.imread(str(out))
    assert image is not None and out.stat().st_size > 1000
    names = list(planted_report["per_joint"])
    height = visualise.INGEST_HEADER + len(names) * visualise.INGEST_ROW + visualise.INGEST_FOOTER
    assert image.shape == (height, visualise.INGEST_WIDTH, 3)
    b, g, r = (image[..., c].astype(int) for c in range(3))
    red = (r > 150) & (g < 110) & (b < 110)
    red_names = set()
    for j, name in enumerate(names):
        top = visualise.INGEST_HEADER + j * visualise.INGEST_ROW
        if red[top:top + visualise.INGEST_ROW, :visualise._CONF_X].sum() >= RED_NAME_PIXELS:
            red_names.add(name)
    assert red_names == {"left_ear", "right_wrist"}


def test_histogram_quantiles_match_numpy_to_a_bin():
    rng = np.random.default_rng(0)
    kp = np.zeros((4000, 1, 3, 3), np.float32)
    kp[..., 0, 2] = rng.uniform(0.2, 0.9, (4000, 1))
    kp[..., 1, 2] = rng.beta(5, 2, (4000, 1))
    kp[:100, :, 1, 2] = 0  # missing in 100 of 4000 frames
    stats = joint_confidence(kp)
    assert stats["person_frames"] == 4000
    assert stats["joint_missing"].tolist() == [0, 100, 4000]
    got = histogram_quantiles(stats["confidence_hist"], CONFIDENCE_QUANTILES,
                              stats["confidence_min"], stats["confidence_max"])  # fmt: skip
    for j in (0, 1):
        conf = kp[:, 0, j, 2]
        expected = np.quantile(conf[conf > 0], CONFIDENCE_QUANTILES)
        assert np.abs(got[j] - expected).max() < 0.01
    assert np.isnan(got[2]).all()  # never detected


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_built_in_skeletons_connect_every_joint(name):
    layout = LAYOUTS[name]
    edges = visualise.skeleton_edges(layout)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                       shape=(layout.num_joints,) * 2)  # fmt: skip
    assert connected_components(graph, directed=False)[0] == 1


def test_skeleton_edges_of_a_user_layout_follow_its_groups():
    layout = Layout("mine", ("head_top", "l_sho", "l_elb", "l_hand", "left_knee", "left_ankle",
                             "tail"),
                    {"head": ("head_top",), "left_arm": ("l_sho", "l_elb", "l_hand")})  # fmt: skip
    edges = visualise.skeleton_edges(layout).tolist()
    assert edges == [[4, 5], [1, 2], [2, 3]]  # the named knee-ankle bone, then the arm chain
    coco = visualise.skeleton_edges(COCO).tolist()
    assert [COCO.index("left_elbow"), COCO.index("left_wrist")] in coco
    assert [COCO.index("left_ear"), COCO.index("left_shoulder")] in coco  # no neck in COCO-17


FRAMES, CLIP_LEN, STRIDE, K = 40, 16, 8, 2  # 4 clips per video, starting at 0, 8, 16, 24
VIDEO_CLASSES = {"tr0": 0, "tr1": 1, "a_first": 0, "b_first": 1, "a_second": 0}
TEST = ("a_first", "b_first", "a_second")


@pytest.fixture
def clip_files(tmp_path):
    """keypoints.h5, clip heatmaps and clip logits of five videos; in the test videos the
    classifier's true-class logits and the ranker's feature 0 plant known top-2 clips."""
    layout = get_layout("coco17_neck")
    writer = KeypointsWriter(tmp_path / "k.h5", dataset="t", source_format="test",
                             layout=layout, class_names=["a", "b"],
                             multi_label=False)  # fmt: skip
    rng = np.random.default_rng(0)
    for i, (video, label) in enumerate(VIDEO_CLASSES.items()):
        kp = np.ones((FRAMES, 1, layout.num_joints, 3), np.float32)
        kp[..., :2] = rng.uniform(20, 200, (FRAMES, 1, layout.num_joints, 2))
        writer.add(Video(video, kp, (240, 320), (label,), f"src{i}"))
    writer.close({"train": [0, 1], "test": [2, 3, 4]})
    build_heatmaps(tmp_path / "k.h5", tmp_path / "clips.h5", Grid(height=8, width=10),
                   clips=(CLIP_LEN, STRIDE), n_jobs=1)  # fmt: skip
    with HeatmapsFile(tmp_path / "clips.h5") as hf:
        ids, labels, splits = hf.video_ids, hf.labels, hf.splits
    parents = [i.rsplit("#", 1)[0] for i in ids]
    logits, features = np.zeros((len(ids), 2), np.float32), np.zeros((len(ids), 3), np.float32)
    planted_logit = {"a_first": (3, 0, 5, -1), "b_first": (0, 0, 0, 9), "a_second": (9, 9, 0, 0)}
    planted_feature = {"a_first": (0, 4, 1, 2), "b_first": (3, 0, 1, 0), "a_second": (0, 0, 1, 1)}
    for video, values in planted_logit.items():
        rows = [r for r, p in enumerate(parents) if p == video]
        logits[rows, VIDEO_CLASSES[video]] = values
        features[rows, 0] = planted_feature[video]
    write_logits(tmp_path / "logits.h5", dataset="t", model="jmrn", params_hash="",
                 class_names=["a", "b"], multi_label=False, video_ids=ids, logits=logits,
                 features=features, labels=labels, splits=splits,
                 parent_ids=parents)  # fmt: skip
    return tmp_path


def feature_zero_ranker() -> Ranker:
    """A ranker whose score is feature 0 (non-negative here): its picks are known."""
    ranker = Ranker(3, hidden=1, dropout=0.0)
    with torch.no_grad():
        ranker.mlp[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        ranker.mlp[0].bias.zero_()
        ranker.mlp[3].weight.fill_(1.0)
        ranker.mlp[3].bias.zero_()
    return ranker.eval()


def write(root, ranker, skipped=None) -> dict:
    return visualise.write_salient_clips(
        root / "salient", root / "salient.json", clip_heatmaps_path=root / "clips.h5",
        keypoints_path=root / "k.h5", clip_logits=Logits(root / "logits.h5"),
        classifier=Logits(root / "logits.h5"), ranker=ranker, test_split="test", k=K,
        ranker_skipped=skipped)  # fmt: skip


def strips_height(strips: int) -> int:
    return (visualise._TITLE_H + 2 * visualise._GROUP_H
            + strips * (visualise._PANEL + visualise._GAP))  # fmt: skip


def test_salient_clips_list_the_planted_ranker_and_oracle_clips(clip_files):
    (clip_files / "salient").mkdir()
    (clip_files / "salient" / "stale.png").write_bytes(b"from an earlier run")
    index = write(clip_files, feature_zero_ranker())
    assert index["ranker_trained"] and index["k"] == K
    videos = index["videos"]
    assert [v["video_id"] for v in videos] == ["a_first", "b_first"]  # first test video a class
    assert [v["true_classes"] for v in videos] == [["a"], ["b"]]
    first, second = videos
    assert first["ranker_top_k"] == [1, 3] and first["oracle_top_k"] == [2, 0]
    assert second["ranker_top_k"] == [0, 2] and second["oracle_top_k"] == [3, 0]  # tie: earlier
    assert [c["start"] for c in first["clips"]] == [0, 8, 16, 24]
    assert all(c["frames"] == CLIP_LEN for v in videos for c in v["clips"])
    assert [c["oracle"] for c in first["clips"]] == [True, False, True, False]
    assert [c["ranker_pick"] for c in first["clips"]] == [False, True, False, True]
    assert [c["ranker_score"] for c in first["clips"]] == [0.0, 4.0, 1.0, 2.0]
    softmax = np.exp(5) / (np.exp(5) + 1)  # clip 2: logits (5, 0)
    assert first["clips"][2]["true_class_prob"] == pytest.approx(softmax, abs=1e-6)
    pngs = sorted(p.name for p in (clip_files / "salient").iterdir())
    assert pngs == sorted(v["png"] for v in videos) == ["00_a_first.png", "01_b_first.png"]
    for v in videos:
        image = cv2.imread(str(clip_files / "salient" / v["png"]))
        assert image is not None
        assert image.shape[0] == strips_height(2 * K)
        left = np.array(visualise._SIDE_COLOURS["left"])
        assert (np.abs(image.astype(int) - left).sum(axis=-1) < 30).sum() > 50  # bones drawn
    assert json.loads((clip_files / "salient.json").read_text()) == index


def test_salient_clips_without_a_ranker_draw_the_oracle(clip_files):
    index = write(clip_files, None, skipped="no training video has more than K = 2 clips")
    assert not index["ranker_trained"]
    assert index["ranker_skipped"] == "no training video has more than K = 2 clips"
    first = index["videos"][0]
    assert first["ranker_top_k"] == [] and first["oracle_top_k"] == [2, 0]
    assert all(c["ranker_score"] is None and not c["ranker_pick"] for c in first["clips"])
    image = cv2.imread(str(clip_files / "salient" / first["png"]))
    assert image is not None and image.shape[0] == strips_height(K) + 8 + 14  # one note line
