"""The built-in synthetic dataset: deterministic, readable by the PYSKL reader, realistic enough
(idle stretches, distractors, dropped joints) and with classes that differ by which joints move."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest

from jmrn import synthetic
from jmrn.layouts import COCO17
from jmrn.readers import pyskl
from jmrn.records import Video, check_video

NUM_CLASSES = len(synthetic.CLASS_NAMES)
FLIP = COCO17.flip_permutation()
LEFT = [j for j, name in enumerate(COCO17.joints) if name.startswith("left_")]
RIGHT = [j for j, name in enumerate(COCO17.joints) if name.startswith("right_")]


@pytest.fixture(scope="module")
def small() -> dict:
    return synthetic.generate(seed=3, videos_per_class=3)


@pytest.fixture(scope="module")
def large() -> dict:
    """Enough videos per class for stable class statistics (generation takes ~0.1 s)."""
    return synthetic.generate(seed=11, videos_per_class=16)


def _person_height(kp: np.ndarray, present: np.ndarray) -> float:
    """Median over frames of the vertical extent of the detected joints (a scale reference)."""
    y = np.where(present, kp[..., 1], np.nan)
    full = present.sum(axis=1) >= 12
    return float(np.nanmedian(np.nanmax(y[full], axis=1) - np.nanmin(y[full], axis=1)))


def _motion(ann: dict, lag: int = 3, mirror: bool = False) -> np.ndarray:
    """(17, 2) mean |x|, |y| speed of each joint of person 0, in person heights per frame.

    Measured over the middle 60% of the action (``active_frames``), away from the ramps in and
    out of it (raising the arms to start waving is not waving). Displacements over ``lag``
    frames divided by ``lag`` keep the keypoint noise small next to the motion. ``mirror``
    applies the flip augmentation first (x -> W - x, left <-> right).
    """
    kp = ann["keypoint"][0].astype(np.float64)
    present = ann["keypoint_score"][0] > 0
    height = _person_height(kp, present)
    first, end = ann["active_frames"]
    first, end = first + (end - first) // 5, end - (end - first) // 5
    kp, present = kp[first:end], present[first:end]
    if mirror:
        kp = kp[:, FLIP]
        present = present[:, FLIP]
        kp[..., 0] = np.where(present, ann["img_shape"][1] - kp[..., 0], 0.0)
    both = present[lag:] & present[:-lag]
    step = np.abs(kp[lag:] - kp[:-lag]) / lag * both[..., None]
    speed = step.sum(axis=0) / np.maximum(both.sum(axis=0), 1)[:, None]
    return speed / height


def _folded(motion: np.ndarray) -> np.ndarray:
    """Side-free features: the side whose limbs move more is put in the ``left_*`` slots."""
    if motion[RIGHT].sum() > motion[LEFT].sum():
        motion = motion[FLIP]
    return motion.ravel()


def _features(data: dict, fold: bool = True, mirror: bool = False):
    feats = [_motion(a, mirror=mirror) for a in data["annotations"]]
    feats = np.stack([_folded(f) if fold else f.ravel() for f in feats])
    return feats, np.array([a["label"] for a in data["annotations"]])


def _log(feats: np.ndarray) -> np.ndarray:
    """Log speeds, with joints that barely move (noise level, ~0.004) all counted as 0.01."""
    return np.log(np.maximum(feats, 0.01))


def _centroids(feats: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.stack([feats[labels == c].mean(axis=0) for c in range(NUM_CLASSES)])


def _nearest(feats: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.linalg.norm(feats[:, None] - centroids[None], axis=-1).argmin(axis=1)


def test_class_list():
    assert len(synthetic.CLASS_NAMES) == 10
    assert len(set(synthetic.CLASS_NAMES)) == NUM_CLASSES
    assert set(synthetic.ONE_SIDED) <= set(synthetic.CLASS_NAMES)
    # no class is the mirror image of another (flip augmentation would merge them)
    assert not any("left" in n or "right" in n for n in synthetic.CLASS_NAMES)


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(small, tmp_path):
    again = synthetic.generate(seed=3, videos_per_class=3)
    assert pickle.dumps(small, protocol=4) == pickle.dumps(again, protocol=4)
    synthetic.write(tmp_path / "a.pkl", small)
    synthetic.write(tmp_path / "b.pkl", again)
    assert (tmp_path / "a.pkl").read_bytes() == (tmp_path / "b.pkl").read_bytes()
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing left behind

    other = synthetic.generate(seed=4, videos_per_class=3)
    differ = [
        a["keypoint"].shape != b["keypoint"].shape
        or not np.array_equal(a["keypoint"], b["keypoint"])
        for a, b in zip(small["annotations"], other["annotations"], strict=True)
    ]
    assert all(differ)


def test_videos_do_not_depend_on_videos_per_class(small):
    fewer = synthetic.generate(seed=3, videos_per_class=2)
    by_name = {a["frame_dir"]: a for a in small["annotations"]}
    for ann in fewer["annotations"]:
        assert np.array_equal(ann["keypoint"], by_name[ann["frame_dir"]]["keypoint"])


def test_annotation_structure(small):
    names = [a["frame_dir"] for a in small["annotations"]]
    assert len(names) == len(set(names)) == 3 * NUM_CLASSES
    for ann in small["annotations"]:
        frames = ann["total_frames"]
        persons = ann["keypoint"].shape[0]
        assert type(ann["label"]) is int and type(frames) is int
        assert ann["img_shape"] == ann["original_shape"] == (240, 320)
        assert ann["keypoint"].dtype == np.float32 and ann["keypoint_score"].dtype == np.float32
        assert ann["keypoint"].shape == (persons, frames, 17, 2)
        assert ann["keypoint_score"].shape == (persons, frames, 17)
        assert persons in (1, 2)
        first, end = ann["active_frames"]
        assert 0 <= first < end <= frames


def test_reads_back_through_the_pyskl_reader(small, tmp_path):
    synthetic.write(tmp_path / "synthetic.pkl", small)
    index = pyskl.index(tmp_path, {})
    assert index.layout == "coco17"
    assert index.splits == small["split"]
    assert len(index.entries) == len(small["annotations"])
    for entry, ann in zip(index.entries, small["annotations"], strict=True):
        video = pyskl.load(entry)
        assert isinstance(video, Video), video
        checked = check_video(video, 17, NUM_CLASSES, False)
        assert isinstance(checked, Video), checked
        assert checked.labels == (ann["label"],)
        assert checked.image_size == (240, 320)
        assert checked.keypoints.shape == (ann["total_frames"], ann["keypoint"].shape[0], 17, 3)
        assert np.array_equal(checked.keypoints, video.keypoints)  # nothing needed tidying


def test_lengths_span_20_to_120_frames(large):
    lengths = np.array([a["total_frames"] for a in large["annotations"]])
    assert lengths.min() >= 20 and lengths.max() <= 120
    assert lengths.min() < 40 and lengths.max() > 100  # the range is actually used


def test_some_videos_have_a_second_person(large):
    persons = np.array([a["keypoint"].shape[0] for a in large["annotations"]])
    assert 0.1 < (persons == 2).mean() < 0.55
    # the distractor is present only part of the time in some videos (score 0, x = y = 0)
    absent = [
        (a["keypoint_score"][1] == 0).all(axis=1) for a in large["annotations"]
        if a["keypoint"].shape[0] == 2
    ]  # fmt: skip
    assert any(frames.any() for frames in absent)
    assert all(not frames.all() for frames in absent)


def test_dropped_joints_have_zero_score_and_zero_coordinates(large):
    actor_scores = np.concatenate([a["keypoint_score"][0].ravel() for a in large["annotations"]])
    assert 0.005 < (actor_scores == 0).mean() < 0.08
    for ann in large["annotations"]:
        score, kp = ann["keypoint_score"], ann["keypoint"]
        assert (kp[score == 0] == 0).all()
        assert ((score == 0) | ((score >= 0.4) & (score <= 1.0))).all()


def test_split_is_stratified(large):
    split = large["split"]
    assert set(split) == {"train", "test"}
    train, test = set(split["train"]), set(split["test"])
    assert not train & test
    assert train | test == {a["frame_dir"] for a in large["annotations"]}
    label = {a["frame_dir"]: a["label"] for a in large["annotations"]}
    assert Counter(label[v] for v in test) == dict.fromkeys(range(NUM_CLASSES), 4)  # 25% of 16
    assert Counter(label[v] for v in train) == dict.fromkeys(range(NUM_CLASSES), 12)
    tiny = synthetic.generate(seed=0, videos_per_class=2)  # still every class in both splits
    tiny_label = {a["frame_dir"]: a["label"] for a in tiny["annotations"]}
    for part in ("train", "test"):
        assert {tiny_label[v] for v in tiny["split"][part]} == set(range(NUM_CLASSES))


def _most_moving_joint(kp: np.ndarray, present: np.ndarray, lag: int = 4) -> float:
    """Mean displacement over ``lag`` frames of the joint that moves most (pixels)."""
    ok = present[:-lag] & present[lag:]
    dist = np.linalg.norm(kp[lag:] - kp[:-lag], axis=-1) * ok
    return float((dist.sum(axis=0) / np.maximum(ok.sum(axis=0), 1)).max())


def test_idle_stretches_around_an_action_placed_anywhere(large):
    """The longest idle stretch moves much less than the middle of the action, and the action
    is not always in the same place (clip selection needs an active part to find, and must
    not be able to guess it from the position)."""
    ratios, centres = [], []
    for ann in large["annotations"]:
        frames = ann["total_frames"]
        first, end = ann["active_frames"]
        assert 0.3 * frames <= end - first <= 0.7 * frames
        centres.append((first + end) / 2 / frames)
        idle = (0, first) if first >= frames - end else (end, frames)
        if idle[1] - idle[0] < 12 or end - first < 12:  # too few frames to measure
            continue
        kp, present = ann["keypoint"][0].astype(np.float64), ann["keypoint_score"][0] > 0
        edge = slice(idle[0], idle[1])
        mid = slice(first + (end - first) // 5, end - (end - first) // 5)
        ratios.append(_most_moving_joint(kp[edge], present[edge])
                      / _most_moving_joint(kp[mid], present[mid]))  # fmt: skip
    ratios, centres = np.array(ratios), np.array(centres)
    assert len(ratios) > 40
    assert np.median(ratios) < 0.3
    assert (ratios < 0.7).mean() > 0.9
    assert (centres < 0.4).mean() > 0.15 and (centres > 0.6).mean() > 0.15


def test_classes_differ_by_which_joints_move(large):
    """Every pair of classes has a joint (and direction) that one moves clearly more than the
    other: at least 2.5 times as fast, and fast compared with the pair's fastest joint."""
    feats, labels = _features(large)
    centroids = _centroids(feats, labels)
    for a in range(NUM_CLASSES):
        for b in range(a + 1, NUM_CLASSES):
            ca, cb = centroids[a], centroids[b]
            strong = np.maximum(ca, cb) >= 0.25 * max(ca.max(), cb.max())
            ratio = np.maximum(ca, cb) / np.maximum(np.minimum(ca, cb), 1e-9)
            names = synthetic.CLASS_NAMES[a], synthetic.CLASS_NAMES[b]
            assert (ratio[strong] >= 2.5).any(), names


def test_nearest_centroid_on_joint_speeds_is_far_above_chance(large):
    train_feats, train_labels = _features(large)
    test_feats, test_labels = _features(synthetic.generate(seed=12, videos_per_class=6))
    predicted = _nearest(_log(test_feats), _centroids(_log(train_feats), train_labels))
    accuracy = (predicted == test_labels).mean()
    assert accuracy > 0.7, accuracy  # chance: 0.1


def test_one_sided_classes_are_flip_invariant(large):
    """The flip augmentation (x -> W - x, left <-> right) turns a wave into a wave: with per-side
    joint features, a mirrored left-handed wave looks like the right-handed waves of the class,
    not like another class (likewise for kicks)."""
    feats, labels = _features(large, fold=False)
    feats = _log(feats)
    mirrored = _log(_features(large, fold=False, mirror=True)[0])
    centroids = _centroids(feats, labels)
    for name in synthetic.ONE_SIDED:
        label = synthetic.CLASS_NAMES.index(name)
        rows = labels == label
        per_joint = _features(large, fold=False)[0][rows].reshape(-1, 17, 2).sum(axis=2)
        left_leads = per_joint[:, LEFT].sum(axis=1) > per_joint[:, RIGHT].sum(axis=1)
        assert 0 < left_leads.sum() < rows.sum(), "the side is chosen at random per video"
        # references: the other classes, then this class's left-led and right-led videos
        refs = np.concatenate([np.delete(centroids, label, axis=0),
                               feats[rows][left_leads].mean(axis=0, keepdims=True),
                               feats[rows][~left_leads].mean(axis=0, keepdims=True)])  # fmt: skip
        left_ref, right_ref = len(refs) - 2, len(refs) - 1
        expected = np.where(left_leads, right_ref, left_ref)  # mirrored: the other side's group
        hits = _nearest(mirrored[rows], refs) == expected
        assert hits.mean() >= 0.7, (name, hits.mean())


def test_image_size_scales_the_people():
    data = synthetic.generate(seed=5, videos_per_class=1, image_size=(480, 640))
    assert data["split"]["test"] == []  # one video per class: all in train
    heights = []
    for ann in data["annotations"]:
        assert ann["img_shape"] == (480, 640)
        present = ann["keypoint_score"][0] > 0
        heights.append(_person_height(ann["keypoint"][0], present))
    assert 480 / 3 * 0.7 < np.median(heights) < 480 * 5 / 6 * 1.2
