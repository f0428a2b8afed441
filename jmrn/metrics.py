"""Evaluation metrics (method.md §6.3): numpy in, plain Python floats / lists / dicts out.

Every result is JSON-serialisable; an undefined value (a class without test samples or
without positives) is ``None``, never NaN.

* Single-label (JHMDB, HMDB): top-1 accuracy (the reported number), mean per-class accuracy
  over the classes that have test samples, per-class accuracy, confusion matrix, top-5.
* Multi-label (Charades): the approximate Charades mAP of the authors' code (method.md §6.3,
  §10.29; the official number comes from the Charades Matlab script). Videos without any
  label get score -inf for every class; per class the videos are ranked by score and the
  precision at the rank of every positive is averaged (non-interpolated AP); classes without
  positives are ignored (nanmean). Ties are broken by video order (stable sort), where the
  authors' ``np.argsort`` leaves the order of ties unspecified. Also the "top-1 accuracy" the
  authors log: the argmax class is one of the video's labels, over the videos with a label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_scores(scores: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, K), got shape {scores.shape}")
    if scores.shape[0] == 0:
        raise ValueError("no samples to evaluate")
    if scores.shape[1] != len(class_names):
        raise ValueError(f"scores have {scores.shape[1]} classes, class_names {len(class_names)}")
    return scores


def _as_indices(labels: np.ndarray, n: int, k: int) -> np.ndarray:
    """Class indices (N,) from indices (N,) or one-hot targets (N, K)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        if labels.shape != (n, k) or not np.all((labels > 0).sum(axis=1) == 1):
            raise ValueError("2-D labels must be (N, K) one-hot targets")
        labels = labels.argmax(axis=1)
    if labels.shape != (n,):
        raise ValueError(f"labels must be (N,) class indices, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise ValueError("labels must be integer class indices")
        labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must lie in [0, {k})")
    return labels


def single_label_metrics(
    scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> dict:
    """Metrics of ``scores`` (N, K) (logits or probabilities) against ``labels``.

    ``labels``: (N,) class indices, or (N, K) one-hot targets. Returns ``num_samples``,
    ``top1``, ``mean_class_accuracy`` (mean over the classes with test samples),
    ``per_class_accuracy`` {name: accuracy or None}, ``confusion`` (K x K ints, rows = true
    class, columns = predicted class) and, when K >= 5, ``top5``. The prediction is the first
    argmax; top-5 takes the five highest scores, ties broken by class order.
    """
    scores = _check_scores(scores, class_names)
    n, k = scores.shape
    labels = _as_indices(labels, n, k)
    pred = scores.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    support = confusion.sum(axis=1)
    correct = np.diag(confusion)
    has = support > 0
    per_class = np.where(has, correct / np.maximum(support, 1), np.nan)
    out = {
        "num_samples": int(n),
        "top1": float(correct.sum() / n),
        "mean_class_accuracy": float(per_class[has].mean()),
        "per_class_accuracy": {
            str(name): (float(acc) if ok else None)
            for name, acc, ok in zip(class_names, per_class, has, strict=True)
        },
        "confusion": confusion.tolist(),
    }
    if k >= 5:
        top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
        out["top5"] = float((top5 == labels[:, None]).any(axis=1).mean())
    return out


def average_precision_per_class(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Charades-style non-interpolated AP of every class, (K,) float, NaN where no positive.

    ``targets`` (N, K): a class is a label of a video where its target is > 0. Videos with no
    label get score -inf for every class (they rank last, below every positive).
    """
    scores = np.array(scores, dtype=np.float64)  # a copy: modified below
    positive = np.asarray(targets) > 0
    if positive.shape != scores.shape:
        raise ValueError(f"targets {positive.shape} and scores {scores.shape} differ in shape")
    scores[~positive.any(axis=1)] = -np.inf
    order = np.argsort(-scores, axis=0, kind="stable")  # (N, K) videos by decreasing score
    tp = np.take_along_axis(positive, order, axis=0)
    ranks = np.arange(1, scores.shape[0] + 1, dtype=np.float64)[:, None]
    precision = np.cumsum(tp, axis=0) / ranks  # precision at every rank
    n_pos = tp.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision * tp).sum(axis=0) / n_pos
    return np.where(n_pos > 0, ap, np.nan)


def multi_label_metrics(
    scores: np.ndarray, targets: np.ndarray, class_names: Sequence[str], ap: str = "charades"
) -> dict:
    """Charades-style metrics of ``scores`` (N, K) against multi-hot ``targets`` (N, K).

    Returns ``num_samples``, ``mAP`` (mean AP over the classes with at least one positive;
    None if none has), ``num_classes_evaluated``, ``per_class_ap`` {name: AP or None} and
    ``top1`` (fraction of the videos with at least one label whose argmax class is one of
    their labels; None if no video has a label).
    """
    scores = _check_scores(scores, class_names)
    positive = np.asarray(targets) > 0
    if ap == "charades":
        ap = average_precision_per_class(scores, positive)
    elif ap == "voc":  # AVA: PASCAL VOC AP of the ground-truth boxes ranked by score
        from jmrn.ava_metrics import box_map

        per_class = box_map(scores, positive)["per_class_ap"]
        ap = np.array([np.nan if per_class[k] is None else per_class[k]
                       for k in range(scores.shape[1])])  # fmt: skip
    else:
        raise ValueError(f"unknown average precision {ap!r} (charades | voc)")
    valid = ~np.isnan(ap)
    labelled = positive.any(axis=1)
    pred = scores.argmax(axis=1)
    hit = positive[np.arange(len(pred)), pred]
    return {
        "num_samples": int(scores.shape[0]),
        "mAP": float(ap[valid].mean()) if valid.any() else None,
        "num_classes_evaluated": int(valid.sum()),
        "per_class_ap": {
            str(name): (float(a) if ok else None)
            for name, a, ok in zip(class_names, ap, valid, strict=True)
        },
        "top1": float(hit[labelled].mean()) if labelled.any() else None,
    }
