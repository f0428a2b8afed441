"""AVA frame mAP: hand-worked VOC AP cases, the official matching rules one by one, and random
cases against a line-by-line transcription of the official evaluator (get_ava_performance.py's
read_csv heap + TF OD API per-image evaluation + metrics), run with distinct scores so that its
unspecified tie order plays no part."""

from __future__ import annotations

import heapq
import json
from collections import defaultdict

import numpy as np
import pytest

from jmrn.ava_metrics import _cap_per_image, box_map, frame_map, iou_matrix, voc_average_precision

UNIT = (0.0, 0.0, 1.0, 1.0)


def gt(vid: str, ts: int, box: tuple, cls: int) -> tuple:
    return (vid, ts, *box, cls)


def det(vid: str, ts: int, box: tuple, cls: int, score: float) -> tuple:
    return (vid, ts, *box, cls, score)


# ------------------------------------------------------------------ VOC AP, by hand


def test_voc_ap_perfect_ranking():
    assert voc_average_precision([0.9, 0.8, 0.1], [True, True, False], 2) == 1.0


def test_voc_ap_false_positive_ranked_first():
    # ranks: fp, tp, tp; 2 positives. precision [0, 1/2, 2/3], recall [0, 1/2, 1].
    # Envelope (max to the right) [2/3, 2/3, 2/3]; recall rises by 1/2 at ranks 2 and 3:
    # AP = 1/2 * 2/3 + 1/2 * 2/3 = 2/3.
    assert voc_average_precision([0.9, 0.8, 0.7], [False, True, True], 2) == pytest.approx(2 / 3)


def test_voc_ap_missed_ground_truth():
    # ranks: tp, fp, tp; 4 positives (two never detected). precision [1, 1/2, 2/3], recall
    # [1/4, 1/4, 1/2]; envelope [1, 2/3, 2/3]; recall rises at ranks 1 and 3:
    # AP = 1/4 * 1 + 1/4 * 2/3 = 5/12 (recall stops at 1/2, the rest contributes 0).
    ap = voc_average_precision([0.9, 0.8, 0.7], [True, False, True], 4)
    assert ap == pytest.approx(5 / 12)
    # input order does not matter, only the scores
    assert voc_average_precision([0.7, 0.9, 0.8], [True, True, False], 4) == pytest.approx(5 / 12)


def test_voc_ap_undefined_and_zero():
    assert voc_average_precision([0.9], [False], 0) is None  # no positive: undefined
    assert voc_average_precision([], [], 3) == 0.0  # positives, nothing detected
    assert voc_average_precision([0.9, 0.1], [False, False], 3) == 0.0
    with pytest.raises(ValueError):
        voc_average_precision([0.9, 0.8], [True, True], 1)


def test_voc_ap_ties_keep_input_order():
    # Tie rule: equal scores rank in the order given (stable sort).
    assert voc_average_precision([0.5, 0.5], [True, False], 1) == 1.0  # p = [1, 1/2]
    assert voc_average_precision([0.5, 0.5], [False, True], 1) == 0.5  # p = [0, 1/2]


# ------------------------------------------------------------------ IoU


def test_iou_matrix_tf_formula():
    a = np.array([[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.49, 1.0], [2.0, 2.0, 3.0, 3.0]])
    out = iou_matrix(a, np.array([UNIT, (0.5, 0.0, 1.5, 1.0)]))
    assert out.shape == (3, 2)
    assert out[0, 0] == 0.5  # inter 0.5, union 1 (no +1 pixel convention)
    assert out[1, 0] == pytest.approx(0.49)
    assert out[0, 1] == 0.0  # touching edges: zero intersection
    assert out[2].tolist() == [0.0, 0.0]


# ------------------------------------------------------------------ frame_map: matching rules


def test_duplicate_detection_is_false_positive():
    g = [gt("v", 1, UNIT, 1), gt("v", 2, UNIT, 1)]
    d = [det("v", 1, UNIT, 1, 0.9), det("v", 1, (0, 0, 1, 0.9), 1, 0.8),  # dup of the same box
         det("v", 2, UNIT, 1, 0.7)]
    # tp, fp, tp with 2 positives: p [1, 1/2, 2/3], r [1/2, 1/2, 1] -> 1/2 + 1/2 * 2/3 = 5/6
    out = frame_map(g, d, [1])
    assert out["per_class_ap"][1] == pytest.approx(5 / 6)
    assert out["num_ground_truth"] == 2 and out["num_detections"] == 3


def test_iou_threshold_is_inclusive():
    g = [gt("v", 1, UNIT, 1)]
    assert frame_map(g, [det("v", 1, (0, 0, 0.49, 1), 1, 0.9)], [1])["mAP"] == 0.0
    assert frame_map(g, [det("v", 1, (0, 0, 0.5, 1), 1, 0.9)], [1])["mAP"] == 1.0  # IoU == 0.5


def test_detection_matches_only_its_best_ground_truth():
    # g1, g2 overlap. d2's best box is g1 (IoU 0.905), already taken by d1, so d2 is a false
    # positive even though its IoU with the free g2 is 0.739 (TF argmax rule, no re-matching).
    g1, g2 = (0.0, 0.0, 1.0, 1.0), (0.2, 0.0, 1.2, 1.0)
    g = [gt("v", 1, g1, 1), gt("v", 1, g2, 1)]
    d = [det("v", 1, g1, 1, 0.9), det("v", 1, (0.05, 0.0, 1.05, 1.0), 1, 0.8)]
    assert frame_map(g, d, [1])["mAP"] == pytest.approx(0.5)  # p [1, 1/2], r [1/2, 1/2]


def test_excluded_timestamp_dropped_from_both():
    g = [gt("v", 1, UNIT, 1), gt("v", 2, UNIT, 1)]
    d = [det("v", 2, (0.5, 0.5, 0.6, 0.6), 1, 0.99), det("v", 1, UNIT, 1, 0.5)]
    # fp then tp, 2 positives: p [0, 1/2], r [0, 1/2] -> AP = 1/2 * 1/2
    assert frame_map(g, d, [1])["mAP"] == pytest.approx(0.25)
    out = frame_map(g, d, [1], excluded={("v", 2)})
    assert out["mAP"] == 1.0
    assert out["num_ground_truth"] == 1 and out["num_detections"] == 1


def test_non_evaluated_class_ignored():
    g = [gt("v", 1, UNIT, 1), gt("v", 1, UNIT, 5)]
    d = [det("v", 1, UNIT, 5, 0.99), det("v", 1, UNIT, 1, 0.5)]
    out = frame_map(g, d, [1, 3])
    assert out["per_class_ap"] == {1: 1.0, 3: None}
    assert out["num_ground_truth"] == 1 and out["num_detections"] == 1


def test_detection_in_another_image_never_matches():
    g = [gt("v", 1, UNIT, 1)]
    d = [det("v", 2, UNIT, 1, 0.9), det("w", 1, UNIT, 1, 0.8)]
    assert frame_map(g, d, [1])["per_class_ap"] == {1: 0.0}


def test_class_without_ground_truth_is_none_and_not_averaged():
    g = [gt("v", 1, UNIT, 1), gt("v", 1, UNIT, 2)]
    d = [det("v", 1, UNIT, 1, 0.9), det("v", 1, UNIT, 3, 0.9)]  # class 2: GT, no detection
    out = frame_map(g, d, [1, 2, 3])
    assert out["per_class_ap"] == {1: 1.0, 2: 0.0, 3: None}
    assert out["mAP"] == 0.5 and out["num_classes_evaluated"] == 2
    json.dumps(out, allow_nan=False)
    assert frame_map([], d, [1])["mAP"] is None


def test_invalid_detection_boxes_dropped():
    g = [gt("v", 1, UNIT, 1)]
    d = [det("v", 1, (0.5, 0, 0.5, 1), 1, 0.9), det("v", 1, UNIT, 1, 0.5)]  # x1 == x2
    out = frame_map(g, d, [1])
    assert out["mAP"] == 1.0 and out["num_detections"] == 1


def test_fifty_detections_per_image_cap():
    g = [gt("v", 1, UNIT, 1)]
    d = [det("v", 1, UNIT, 2, 0.9 - i / 1000) for i in range(50)] + [det("v", 1, UNIT, 1, 0.1)]
    assert frame_map(g, d, [1, 2])["per_class_ap"][1] == 0.0  # the tp fell off the cap
    assert frame_map(g, d, [1, 2], max_detections_per_image=None)["per_class_ap"][1] == 1.0
    assert frame_map(g, d, [1])["per_class_ap"][1] == 1.0  # class 2 filtered before the cap


def test_cap_tie_follows_official_heap():
    # cap 2, rows (0.5, c1), (0.5, c2), (0.9, c3): the heap holds both 0.5s, then 0.9 evicts
    # its smallest tuple (0.5, c1); a stable "first rows win" cut would keep c1 instead.
    g = [gt("v", 1, UNIT, c) for c in (1, 2, 3)]
    d = [det("v", 1, UNIT, 1, 0.5), det("v", 1, UNIT, 2, 0.5), det("v", 1, UNIT, 3, 0.9)]
    out = frame_map(g, d, [1, 2, 3], max_detections_per_image=2)
    assert out["per_class_ap"] == {1: 0.0, 2: 1.0, 3: 1.0}
    # an equal score arriving at a full heap is rejected: (0.9, c3), (0.5, c2), (0.5, c1)
    out = frame_map(g, d[::-1], [1, 2, 3], max_detections_per_image=2)
    assert out["per_class_ap"] == {1: 0.0, 2: 1.0, 3: 1.0}


def test_cap_equals_literal_heap_with_many_ties():
    # 1-decimal scores: most images have a tie at the cut, so the heap replay is exercised.
    rng = np.random.default_rng(0)
    n, cap = 3000, 10
    img, score = rng.integers(0, 60, n), np.round(rng.random(n), 1)
    tie_key = np.column_stack([rng.integers(1, 6, n), rng.random((n, 4))])
    heaps: dict = defaultdict(list)
    for r in range(n):  # read_csv, row by row
        h, item = heaps[img[r]], (score[r], *tie_key[r].tolist(), r)
        if len(h) < cap:
            heapq.heappush(h, item)
        elif item[0] > h[0][0]:
            heapq.heapreplace(h, item)
    expected = np.zeros(n, dtype=bool)
    expected[[item[-1] for h in heaps.values() for item in h]] = True
    np.testing.assert_array_equal(_cap_per_image(img, score, tie_key, cap), expected)


def test_tied_scores_rank_in_row_order():
    g = [gt("v", 1, UNIT, 1)]
    hit, miss = det("v", 1, UNIT, 1, 0.5), det("v", 2, UNIT, 1, 0.5)
    assert frame_map(g, [hit, miss], [1])["mAP"] == 1.0
    assert frame_map(g, [miss, hit], [1])["mAP"] == 0.5


# ------------------------------------------------------------------ official transcription


def official_map(g_rows, d_rows, class_ids, excluded, cap, thr=0.5):
    """get_ava_performance.run_evaluation + PascalDetectionEvaluator, transcribed."""
    wl, excl = set(class_ids), {f"{v},{t:04d}" for v, t in excluded}

    def read(rows, capacity):
        entries = defaultdict(list)
        for r in rows:
            key, (x1, y1, x2, y2), a = f"{r[0]},{int(r[1]):04d}", r[2:6], r[6]
            if a not in wl:
                continue
            s = r[7] if len(r) == 8 else 1.0
            if capacity < 1 or len(entries[key]) < capacity:
                heapq.heappush(entries[key], (s, a, y1, x1, y2, x2))
            elif s > entries[key][0][0]:
                heapq.heapreplace(entries[key], (s, a, y1, x1, y2, x2))
        return {k: sorted(v, key=lambda t: -t[0]) for k, v in entries.items() if k not in excl}

    gts, dets = read(g_rows, 0), read(d_rows, cap)
    num_gt = defaultdict(int)
    for e in gts.values():
        for t in e:
            num_gt[t[1]] += 1
    scores, tps = defaultdict(list), defaultdict(list)
    for key, e in dets.items():
        e = [t for t in e if t[2] < t[4] and t[3] < t[5]]  # _remove_invalid_boxes
        for c in class_ids:
            dc = [t for t in e if t[1] == c]
            gc = np.array([t[2:] for t in gts.get(key, []) if t[1] == c]).reshape(-1, 4)
            tp = np.zeros(len(dc), dtype=bool)
            if dc and len(gc):
                db = np.array([t[2:] for t in dc])
                inter = np.maximum(0, np.minimum(db[:, None, 2], gc[None, :, 2])
                                   - np.maximum(db[:, None, 0], gc[None, :, 0])) * np.maximum(
                    0, np.minimum(db[:, None, 3], gc[None, :, 3])
                    - np.maximum(db[:, None, 1], gc[None, :, 1]))
                area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
                iou = inter / (area(db)[:, None] + area(gc)[None, :] - inter)
                best, taken = iou.argmax(axis=1), np.zeros(len(gc), dtype=bool)
                for i, j in enumerate(best):
                    if iou[i, j] >= thr and not taken[j]:
                        tp[i] = taken[j] = True
            scores[c] += [t[0] for t in dc]
            tps[c] += tp.tolist()
    ap = {}
    for c in class_ids:
        if num_gt[c] == 0:
            ap[c] = None
            continue
        s, t = np.array(scores[c], dtype=float), np.array(tps[c], dtype=bool)
        t = t[np.argsort(s)[::-1]]
        if t.size == 0:
            ap[c] = 0.0
            continue
        prec = np.concatenate([[0], np.cumsum(t) / np.arange(1, t.size + 1), [0]])
        rec = np.concatenate([[0], np.cumsum(t) / num_gt[c], [1]])
        for i in range(len(prec) - 2, -1, -1):
            prec[i] = max(prec[i], prec[i + 1])
        idx = np.where(rec[1:] != rec[:-1])[0] + 1
        ap[c] = float(np.sum((rec[idx] - rec[idx - 1]) * prec[idx]))
    valid = [a for a in ap.values() if a is not None]
    return ap, (float(np.mean(valid)) if valid else None)


def random_case(rng: np.random.Generator, n_images: int = 12):
    classes = [1, 3, 4, 7, 9]
    g, d = [], []
    images = [(f"vid{i % 3}", 900 + i) for i in range(n_images)]
    for vid, ts in images:
        for _ in range(rng.integers(0, 4)):
            xy = rng.uniform(0, 0.6, 2)
            box = (*xy, *(xy + rng.uniform(0.1, 0.4, 2)))
            labels = [int(c) for c in rng.choice(classes, rng.integers(1, 3), replace=False)]
            g += [gt(vid, ts, box, c) for c in labels]
            for _ in range(rng.integers(1, 4)):  # jittered copies, mostly of a true class
                jb = tuple(np.asarray(box) + rng.normal(0, 0.05, 4))
                c = rng.choice(labels) if rng.random() < 0.7 else rng.choice(classes + [2])
                d.append(det(vid, ts, jb, int(c), float(rng.random())))
        for _ in range(rng.integers(0, 3)):  # clutter, sometimes an invalid box
            xy = rng.uniform(0, 1, 4)
            d.append(det(vid, ts, tuple(xy), int(rng.choice(classes)), float(rng.random())))
    perm = rng.permutation(len(d))
    excluded = {images[i] for i in rng.choice(n_images, 2, replace=False)}
    return g, [d[i] for i in perm], classes, excluded


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("cap", [4, 50])
def test_matches_official_transcription(seed, cap):
    g, d, classes, excluded = random_case(np.random.default_rng(seed))
    ref_ap, ref_map = official_map(g, d, classes, excluded, cap)
    out = frame_map(g, d, classes, excluded=excluded, max_detections_per_image=cap)
    assert out["per_class_ap"].keys() == ref_ap.keys()
    for c, a in ref_ap.items():
        assert out["per_class_ap"][c] == (None if a is None else pytest.approx(a, abs=1e-12))
    assert out["mAP"] == (None if ref_map is None else pytest.approx(ref_map, abs=1e-12))


# ------------------------------------------------------------------ box_map


def test_box_map_equals_frame_map_on_ground_truth_boxes():
    rng = np.random.default_rng(3)
    k, rows_s, rows_t, g, d = 6, [], [], [], []
    for f in range(15):
        for b in range(rng.integers(1, 4)):  # disjoint cells: no two boxes of a frame overlap
            box = (b / 3, 0.1, b / 3 + 0.3, 0.9)
            s, t = rng.random(k), rng.random(k) < 0.3
            t[5] = False  # a class without any positive
            rows_s.append(s)
            rows_t.append(t)
            g += [gt("v", f, box, c + 1) for c in np.flatnonzero(t)]
            d += [det("v", f, box, c + 1, float(s[c])) for c in range(k)]
    scores, targets = np.array(rows_s), np.array(rows_t)
    a = box_map(scores, targets)
    b = frame_map(g, d, list(range(1, k + 1)))
    assert a["per_class_ap"][5] is None
    assert a["per_class_ap"] == pytest.approx({c - 1: v for c, v in b["per_class_ap"].items()})
    assert a["mAP"] == pytest.approx(b["mAP"])
    for key in ("num_classes_evaluated", "num_ground_truth", "num_detections"):
        assert a[key] == b[key]
    json.dumps(a, allow_nan=False)
