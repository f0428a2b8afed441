"""Metrics: hand-worked single-label cases; Charades mAP = the precision-recall definition of
non-interpolated AP (sklearn's ``average_precision_score``) computed naively, per class."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jmrn.metrics import average_precision_per_class, multi_label_metrics, single_label_metrics

# ---------------------------------------------------------------- single-label


def scores_for(pred: list[int], k: int) -> np.ndarray:
    s = np.zeros((len(pred), k))
    s[np.arange(len(pred)), pred] = 1.0
    return s


def test_single_label_hand_case_imbalanced():
    names = ["a", "b", "c", "d"]  # "d" has no test sample
    labels = np.array([0, 0, 0, 0, 1, 2])
    pred = [0, 0, 0, 1, 1, 0]
    out = single_label_metrics(scores_for(pred, 4), labels, names)
    assert out["num_samples"] == 6
    assert out["top1"] == pytest.approx(4 / 6)
    # a: 3/4, b: 1/1, c: 0/1; d ignored
    assert out["per_class_accuracy"] == {"a": 0.75, "b": 1.0, "c": 0.0, "d": None}
    assert out["mean_class_accuracy"] == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    assert out["confusion"] == [[3, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert "top5" not in out
    assert json.loads(json.dumps(out)) == out


def test_single_label_accepts_one_hot_labels():
    labels = np.array([2, 0, 1])
    s = np.random.default_rng(0).normal(size=(3, 3))
    a = single_label_metrics(s, labels, ["x", "y", "z"])
    b = single_label_metrics(s, np.eye(3)[labels], ["x", "y", "z"])
    assert a == b


def test_single_label_top5():
    names = [str(i) for i in range(6)]
    s = np.array(
        [
            [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 4: rank 5 -> in top 5
            [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 5: rank 6 -> not
            [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # label 1: top-1
        ]
    )
    out = single_label_metrics(s, np.array([4, 5, 1]), names)
    assert out["top1"] == pytest.approx(1 / 3)
    assert out["top5"] == pytest.approx(2 / 3)
    assert isinstance(out["top5"], float)


def test_single_label_rejects_bad_input():
    with pytest.raises(ValueError):
        single_label_metrics(np.zeros((2, 3)), np.array([0, 3]), ["a", "b", "c"])
    with pytest.raises(ValueError):
        single_label_metrics(np.zeros((2, 3)), np.array([0, 1]), ["a", "b"])


# ---------------------------------------------------------------- multi-label


def naive_ap(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """AP = sum_n (R_n - R_{n-1}) P_n over the thresholds (sklearn's definition)."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        return None
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        predicted = scores >= t
        tp = int((predicted & positive).sum())
        precision, recall = tp / int(predicted.sum()), tp / n_pos
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def naive_charades(scores: np.ndarray, targets: np.ndarray) -> list[float | None]:
    scores = scores.copy()
    for v in range(len(scores)):
        if not targets[v].any():
            scores[v, :] = -np.inf
    return [naive_ap(scores[:, c], targets[:, c] > 0) for c in range(scores.shape[1])]


def test_ap_hand_case():
    # Class 0 ranked 1, 2, 3, 4 with positives at ranks 1 and 3; class 1 labels every video
    # (so none is an unlabelled video, which would be sent to the bottom with score -inf).
    s = np.array([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.6, 0.0]])
    t = np.array([[1, 1], [0, 1], [1, 1], [0, 1]])
    ap = average_precision_per_class(s, t)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert ap[1] == pytest.approx(1.0)


def test_map_matches_naive_definition():
    rng = np.random.default_rng(0)
    n, k = 40, 8
    scores = rng.normal(size=(n, k))
    targets = (rng.random((n, k)) < 0.2).astype(np.float32)
    targets[:, 3] = 0  # a class without positives
    targets[[5, 17, 30]] = 0  # videos without labels
    scores[[5, 17]] += 10  # ... scoring high: they must not count as false positives
    names = [f"c{i}" for i in range(k)]
    out = multi_label_metrics(scores, targets, names)
    want = naive_charades(scores, targets)
    assert out["per_class_ap"]["c3"] is None
    for c in range(k):
        if want[c] is None:
            assert out["per_class_ap"][names[c]] is None
        else:
            assert out["per_class_ap"][names[c]] == pytest.approx(want[c])
    valid = [a for a in want if a is not None]
    assert out["mAP"] == pytest.approx(sum(valid) / len(valid))
    assert out["num_classes_evaluated"] == len(valid)
    assert json.loads(json.dumps(out)) == out


def test_videos_without_labels_do_not_change_map():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(20, 5))
    targets = (rng.random((20, 5)) < 0.3).astype(np.float32)
    targets[:, 0] = 0
    targets[0, 0] = 1
    base = multi_label_metrics(scores, targets, list("abcde"))
    more_s = np.vstack([scores, np.full((3, 5), 100.0)])
    more_t = np.vstack([targets, np.zeros((3, 5))])
    more = multi_label_metrics(more_s, more_t, list("abcde"))
    assert more["mAP"] == pytest.approx(base["mAP"])
    assert more["per_class_ap"] == pytest.approx(base["per_class_ap"])
    assert more["top1"] == pytest.approx(base["top1"])


def test_multi_label_top1_and_degenerate_cases():
    s = np.array([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.1, 0.2, 0.8], [0.9, 0.0, 0.0]])
    t = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])  # last: no label, not counted
    out = multi_label_metrics(s, t, ["x", "y", "z"])
    assert out["top1"] == pytest.approx(2 / 3)
    empty = multi_label_metrics(s, np.zeros_like(t), ["x", "y", "z"])
    assert empty["mAP"] is None and empty["top1"] is None
    assert empty["per_class_ap"] == {"x": None, "y": None, "z": None}
