"""AVA v2.x frame-level mAP at IoU 0.5, reproducing the official evaluator.

The official number comes from ActivityNet's ``Evaluation/get_ava_performance.py``, which reads
the CSVs and feeds the TF Object Detection API's ``PascalDetectionEvaluator`` (copied into
``Evaluation/ava/``). We reproduce it rather than use a generic detection mAP because small
rules change the number:

* Rows of actions outside ``class_ids`` are dropped on reading; then ``read_csv`` keeps at most
  50 detections per image (video, timestamp), the highest scoring, via a min-heap that replaces
  its smallest entry only for a strictly higher score (ground truth is not capped). Ties at the
  cut are resolved by replaying that heap, so the kept set is the official one.
* Images on the excluded timestamps are dropped from ground truth and detections.
* Detections with ``x1 >= x2`` or ``y1 >= y2`` are dropped (``_remove_invalid_boxes``) after
  the cap, so they still took a place in it. IoU = intersection / union, areas
  ``(x2 - x1) * (y2 - y1)`` (no +1, normalised boxes).
* Per image and class (``_compute_tp_fp_for_single_class``): every detection takes the ground
  truth box of highest IoU (first one on equal IoU); walking detections by descending score, it
  is a true positive if that IoU >= threshold and the box is not taken yet, which takes it.
* Per class, VOC AP over all images (``metrics.compute_average_precision``); a class without
  ground truth has no AP (None) and is left out of the mean (``np.nanmean``); a class with
  ground truth and no detection has AP 0.

Ties: the official ranking ``np.argsort(scores)[::-1]`` leaves tied scores in an unspecified
order. Here tied detections rank in the order their rows were given (stable sort), so equal
scores with mixed tp/fp give a definite, documented AP. Ground-truth boxes with equal IoU to a
detection are taken in row order (the official order is ``read_csv``'s heap order).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import numpy as np

OFFICIAL_MAX_DETECTIONS = 50  # get_ava_performance.py: read_csv(detections, whitelist, 50)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcastable (..., 4) x1, y1, x2, y2 boxes, with the TF formula."""
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0)
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    inter = ih * iw
    area_a = (a[..., 3] - a[..., 1]) * (a[..., 2] - a[..., 0])
    area_b = (b[..., 3] - b[..., 1]) * (b[..., 2] - b[..., 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a + area_b - inter)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (n, m) of boxes ``a`` (n, 4) and ``b`` (m, 4), rows x1, y1, x2, y2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return _iou(a[:, None, :], b[None, :, :])


def voc_average_precision(
    scores: np.ndarray, is_tp: np.ndarray, num_positives: int
) -> float | None:
    """PASCAL VOC AP (TF ``compute_average_precision``) of detections ranked by score.

    Precision is made non-increasing from the right, then summed over the ranks where recall
    grows. None when there is no positive (AP undefined); 0 when nothing was detected. Ties
    keep the given order (stable sort).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_tp = np.asarray(is_tp, dtype=bool).ravel()
    if scores.shape != is_tp.shape:
        raise ValueError(f"scores {scores.shape} and is_tp {is_tp.shape} differ in shape")
    if is_tp.sum() > num_positives:
        raise ValueError("more true positives than positives")
    if num_positives <= 0:
        return None
    if scores.size == 0:
        return 0.0
    tp = is_tp[np.argsort(-scores, kind="stable")]
    cum = np.cumsum(tp)
    precision = cum / np.arange(1, tp.size + 1)
    recall = cum / num_positives
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    rise = np.diff(recall, prepend=0.0)
    return float(np.sum(rise[tp] * envelope[tp]))


def _columns(rows: Iterable[Sequence], n: int, vid_codes: dict) -> list[np.ndarray]:
    """The first ``n`` fields of ``rows`` as columns; video ids coded by ``vid_codes``.

    Video ids become integers through a shared dict (much faster than sorting strings).
    """
    cols = list(zip(*rows, strict=False))  # extra fields (e.g. a person id) are ignored
    if not cols:
        return [np.empty(0, dtype=np.int64)] * n
    if len(cols) < n:
        raise ValueError(f"rows need {n} fields, got {len(cols)}")
    vid = np.fromiter((vid_codes.setdefault(v, len(vid_codes)) for v in cols[0]), np.int64)
    return [vid] + [np.asarray(c) for c in cols[1:n]]


def _cap_per_image(
    img: np.ndarray, score: np.ndarray, tie_key: np.ndarray, cap: int
) -> np.ndarray:
    """Mask of the rows ``read_csv`` keeps: the ``cap`` best per image, ties by its heap.

    Without a tie at the cut the heap keeps exactly the ``cap`` highest scores (vectorised);
    only images with a tie at the cut are replayed through the heap, in row order.
    """
    order = np.lexsort((-score, img))
    img_s = img[order]
    starts = np.flatnonzero(np.r_[True, img_s[1:] != img_s[:-1]])
    counts = np.diff(np.r_[starts, img_s.size])
    rank = np.arange(img_s.size) - np.repeat(starts, counts)
    keep = np.zeros(img.size, dtype=bool)
    keep[order[rank < cap]] = True
    over = np.flatnonzero(counts > cap)
    tied = over[score[order[starts[over] + cap - 1]] == score[order[starts[over] + cap]]]
    for start, count in zip(starts[tied], counts[tied], strict=True):
        rows = np.sort(order[start : start + count])  # this image's rows, in row order
        heap: list[tuple] = []
        for r in rows:  # read_csv's heap on (score, action_id, y1, x1, y2, x2), row order
            item = (score[r], *tie_key[r].tolist(), r)
            if len(heap) < cap:
                heapq.heappush(heap, item)
            elif item[0] > heap[0][0]:
                heapq.heapreplace(heap, item)
        keep[rows] = False
        keep[[item[-1] for item in heap]] = True
    return keep


def _summary(ap: dict, num_gt: int, num_det: int) -> dict:
    valid = [a for a in ap.values() if a is not None]
    return {
        "mAP": float(np.mean(valid)) if valid else None,
        "per_class_ap": ap,
        "num_classes_evaluated": len(valid),
        "num_ground_truth": int(num_gt),
        "num_detections": int(num_det),
    }


def frame_map(
    ground_truth: Iterable[Sequence],
    detections: Iterable[Sequence],
    class_ids: Sequence[int],
    *,
    excluded: Iterable[tuple[str, int]] = frozenset(),
    iou_threshold: float = 0.5,
    max_detections_per_image: int | None = OFFICIAL_MAX_DETECTIONS,
) -> dict:
    """Official AVA frame mAP of ``detections`` against ``ground_truth`` (module docstring).

    Rows: ground truth (video_id, timestamp, x1, y1, x2, y2, action_id[, ...]) and detections
    (..., action_id, score), normalised boxes, integer-second timestamps. ``excluded``:
    (video_id, timestamp) pairs. ``max_detections_per_image`` None (or < 1) disables the cap.
    Returns ``mAP`` (None if no class has ground truth), ``per_class_ap`` {class_id: AP or
    None}, ``num_classes_evaluated``, and the numbers of ground-truth boxes and of detections
    that were evaluated (after class filter, exclusions, cap and invalid boxes).
    """
    codes: dict = {}
    g_vid, g_ts, *g_rest = _columns(ground_truth, 7, codes)
    d_vid, d_ts, *d_rest = _columns(detections, 8, codes)
    e_vid, e_ts = _columns(excluded, 2, codes)
    vid = np.concatenate([g_vid, d_vid, e_vid])
    ts = np.concatenate([t.astype(np.int64) for t in (g_ts, d_ts, e_ts)])
    key = vid * (ts.max(initial=0) + 1) + ts  # one int per image (video, timestamp)
    n_g, n_d = g_vid.size, d_vid.size
    g_box = np.stack(g_rest[:4], axis=1).astype(np.float64) if n_g else np.empty((0, 4))
    d_box = np.stack(d_rest[:4], axis=1).astype(np.float64) if n_d else np.empty((0, 4))
    return frame_map_arrays(
        key[:n_g], g_box, g_rest[4], key[n_g : n_g + n_d], d_box, d_rest[4], d_rest[5],
        class_ids, excluded_images=key[n_g + n_d :], iou_threshold=iou_threshold,
        max_detections_per_image=max_detections_per_image,
    )


def frame_map_arrays(
    g_img: np.ndarray,
    g_box: np.ndarray,
    g_cls: np.ndarray,
    d_img: np.ndarray,
    d_box: np.ndarray,
    d_cls: np.ndarray,
    d_score: np.ndarray,
    class_ids: Sequence[int],
    *,
    excluded_images: np.ndarray | None = None,
    iou_threshold: float = 0.5,
    max_detections_per_image: int | None = OFFICIAL_MAX_DETECTIONS,
) -> dict:
    """:func:`frame_map` on columns: one integer per image (video, timestamp) in ``*_img``,
    (n, 4) boxes, action ids and detection scores. For many detections (every box scored for
    every class) building row tuples would cost more memory than the evaluation itself."""
    class_ids = list(dict.fromkeys(int(c) for c in class_ids))
    g_img, d_img = np.asarray(g_img, np.int64), np.asarray(d_img, np.int64)
    e_img = np.asarray(() if excluded_images is None else excluded_images, np.int64)
    g_box = np.asarray(g_box, np.float64).reshape(-1, 4)
    d_box = np.asarray(d_box, np.float64).reshape(-1, 4)
    g_cls, d_cls = np.asarray(g_cls).astype(np.int64), np.asarray(d_cls).astype(np.int64)
    d_score = np.asarray(d_score).astype(np.float64)
    if not (len(g_img) == len(g_box) == len(g_cls)) or \
            not (len(d_img) == len(d_box) == len(d_cls) == len(d_score)):  # fmt: skip
        raise ValueError("ground-truth or detection columns differ in length")

    g_ok = np.isin(g_cls, class_ids) & ~np.isin(g_img, e_img)
    d_ok = np.isin(d_cls, class_ids)
    if (max_detections_per_image or 0) > 0 and d_ok.any():  # read_csv: capacity < 1 = no cap
        idx = np.flatnonzero(d_ok)
        tie_key = np.column_stack([d_cls[idx], d_box[idx][:, [1, 0, 3, 2]]])
        d_ok[idx] = _cap_per_image(d_img[idx], d_score[idx], tie_key, max_detections_per_image)
    d_ok &= ~np.isin(d_img, e_img) & (d_box[:, 0] < d_box[:, 2]) & (d_box[:, 1] < d_box[:, 3])
    g_img, g_cls, g_box = g_img[g_ok], g_cls[g_ok], g_box[g_ok]
    d_img, d_cls, d_box, d_score = d_img[d_ok], d_cls[d_ok], d_box[d_ok], d_score[d_ok]

    # Candidate (detection, ground truth) pairs: same image and class.
    n_cls = max(class_ids, default=0) + 1
    g_key, d_key = g_img * n_cls + g_cls, d_img * n_cls + d_cls
    g_order = np.argsort(g_key, kind="stable")  # row order within an image and class
    lo = np.searchsorted(g_key[g_order], d_key, side="left")
    cnt = np.searchsorted(g_key[g_order], d_key, side="right") - lo
    pair_d = np.repeat(np.arange(d_key.size), cnt)
    pair_g = g_order[np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())]
    pair_iou = _iou(d_box[pair_d], g_box[pair_g])
    # Each detection's best ground truth: highest IoU, first box on ties (np.argmax).
    best = np.lexsort((-pair_iou, pair_d))
    first = best[np.r_[True, pair_d[best][1:] != pair_d[best][:-1]]] if best.size else best
    best_gt = np.full(d_key.size, -1)
    best_iou = np.full(d_key.size, -np.inf)
    best_gt[pair_d[first]], best_iou[pair_d[first]] = pair_g[first], pair_iou[first]
    # Greedy walk by score == the first candidate (IoU >= threshold) of each box takes it.
    by_score = np.argsort(-d_score, kind="stable")
    cand = by_score[best_iou[by_score] >= iou_threshold]
    is_tp = np.zeros(d_key.size, dtype=bool)
    is_tp[cand[np.unique(best_gt[cand], return_index=True)[1]]] = True

    num_gt = np.bincount(g_cls, minlength=n_cls)
    by_cls = np.argsort(d_cls, kind="stable")  # keeps row order inside a class (tie rule)
    lo_c = np.searchsorted(d_cls[by_cls], class_ids, side="left")
    hi_c = np.searchsorted(d_cls[by_cls], class_ids, side="right")
    ap = {}
    for c, a, b in zip(class_ids, lo_c, hi_c, strict=True):
        sel = by_cls[a:b]
        ap[c] = voc_average_precision(d_score[sel], is_tp[sel], int(num_gt[c]))
    return _summary(ap, g_cls.size, d_cls.size)


def box_map(scores: np.ndarray, targets: np.ndarray) -> dict:
    """VOC mAP when the detections are the ground-truth boxes, each scored for every class.

    ``scores``, ``targets`` (N, K): box n is a true positive for class k iff it has label k,
    so no IoU matching is needed. Equals :func:`frame_map` on the same boxes as rows when no
    two boxes of a frame overlap at IoU >= 0.5 and the 50-per-frame cap removes nothing.
    Keys of ``per_class_ap`` are class indices.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(targets) > 0
    if scores.ndim != 2 or positive.shape != scores.shape:
        raise ValueError(f"scores {scores.shape} and targets {positive.shape} must be (N, K)")
    ap = {
        k: voc_average_precision(scores[:, k], positive[:, k], int(positive[:, k].sum()))
        for k in range(scores.shape[1])
    }
    return _summary(ap, positive.sum(), scores.size)
