"""AVA scored as the official evaluator scores it: the frame-mAP at IoU 0.5 of ActivityNet's
``get_ava_performance.py`` (``jmrn.ava_metrics.frame_map``) of a model's per-box scores
against the annotated boxes of the raw val CSV.

Two sets of boxes are scored: the annotated boxes themselves (split ``val``: each is a
sample) and, where a person-detection pickle was ingested, the detected boxes (split
``val_detected``, ``jmrn.readers.ava``). Every box is scored for every class: its row of
logits through a sigmoid, at most 50 rows per keyframe kept (the official cap). The ground
truth is read from the raw files with the reader's rules (action list, excluded timestamps,
counted bad rows), including the annotated boxes that ingest skipped for want of a pose: a
box the pipeline cannot see counts as a miss, as it would for the official evaluator. So on
the annotated boxes this is at most the training metric (per-class AP over the boxes ingest
kept, no cap), and equal to it when nothing was skipped and the cap removes nothing.

    python -m jmrn.ava_eval jmrn [--split val|val_detected] [--csv detections.csv]

prints the frame-mAP of ``data/<dataset>/logits/jmrn.h5`` and writes its detections in the
official CSV form (``video_id, timestamp, x1, y1, x2, y2, action_id, score``), the input of
the official evaluator.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from jmrn.ava_metrics import OFFICIAL_MAX_DETECTIONS, frame_map_arrays
from jmrn.config import dataset_block, load_params
from jmrn.io import atomic_path
from jmrn.logits_file import Logits
from jmrn.readers import ava


def parse_boxes(sample_ids: list[str]) -> tuple[list[tuple[str, int]], np.ndarray]:
    """(video, timestamp) and the (N, 4) normalised box of every sample id."""
    parsed = [ava.parse_sample_id(s) for s in sample_ids]
    boxes = np.array([box for *_, box in parsed], np.float64).reshape(-1, 4)
    return [(video, second) for video, second, _ in parsed], boxes


def box_scores(logits: np.ndarray, num_boxes: int, num_classes: int) -> np.ndarray:
    """(N, K) class scores of the boxes: their logits through a sigmoid."""
    logits = np.asarray(logits, np.float64)
    if logits.shape != (num_boxes, num_classes):
        raise ValueError(f"logits {logits.shape} for {num_boxes} boxes and {num_classes} "
                         "classes")  # fmt: skip
    return 1.0 / (1.0 + np.exp(-logits))


def evaluate(sample_ids: list[str], scores_by_name: dict[str, np.ndarray],
             raw_dir: str | Path, options: dict, *, iou_threshold: float = 0.5,
             max_detections_per_image: int | None = OFFICIAL_MAX_DETECTIONS) -> dict:  # fmt: skip
    """Frame-mAP of the boxes ``sample_ids`` (annotated or detected) under each named (N, K)
    logits array, against the val annotations of ``raw_dir`` (read with the dataset's
    ``source`` ``options``).

    Returns, per name, the :func:`jmrn.ava_metrics.frame_map` summary with ``per_class_ap``
    keyed by class name, the IoU threshold and the number of boxes scored.
    """
    actions = ava.action_list(Path(raw_dir), options)
    truth, excluded = ava.annotations(Path(raw_dir), actions, "val")
    action_ids = [a for a, _ in actions]
    codes: dict[tuple[str, int], int] = {}
    labels_per_box = [sorted(labels) for labels in truth.labels]
    g_img = np.array([codes.setdefault(key, len(codes))
                      for key, labels in zip(truth.keys, labels_per_box, strict=True)
                      for _ in labels], np.int64)  # fmt: skip
    counts = [len(labels) for labels in labels_per_box]
    g_box = np.repeat(np.array(truth.boxes, np.float64).reshape(-1, 4), counts, 0)
    g_cls = np.array([action_ids[k] for labels in labels_per_box for k in labels], np.int64)
    # every box is a detection row for every class; only the scores differ between models
    keys, boxes = parse_boxes(sample_ids)
    k = len(action_ids)
    d_img = np.repeat(np.array([codes.setdefault(key, len(codes)) for key in keys], np.int64), k)
    d_box, d_cls = np.repeat(boxes, k, 0), np.tile(np.asarray(action_ids, np.int64), len(keys))
    e_img = np.array([codes[key] for key in excluded if key in codes], np.int64)
    names, out = dict(actions), {}
    for name, logits in scores_by_name.items():
        scores = box_scores(logits, len(keys), k)
        result = frame_map_arrays(g_img, g_box, g_cls, d_img, d_box, d_cls, scores.ravel(),
                                  action_ids, excluded_images=e_img,
                                  iou_threshold=iou_threshold,
                                  max_detections_per_image=max_detections_per_image)  # fmt: skip
        result["per_class_ap"] = {names[a]: ap for a, ap in result["per_class_ap"].items()}
        out[name] = {**result, "scored_boxes": len(sample_ids), "iou_threshold": iou_threshold}
    return out


def write_detections_csv(path: str | Path, sample_ids: list[str], logits: np.ndarray,
                         action_ids: list[int]) -> None:  # fmt: skip
    """The official detections CSV of scored boxes (atomically)."""
    keys, boxes = parse_boxes(sample_ids)
    scores = box_scores(logits, len(keys), len(action_ids))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        for (video, second), box, row in zip(keys, boxes, scores, strict=True):
            prefix = [video, f"{second:04d}", *(f"{v:.3f}" for v in box)]
            writer.writerows([*prefix, a, f"{p:.6f}"] for a, p in zip(action_ids, row,
                                                                      strict=True))  # fmt: skip


def official_frame_map(scores: dict[str, dict], roles: dict[str, str | None],
                       raw_dir: str | Path, options: dict) -> tuple[dict, dict]:  # fmt: skip
    """The fusion stage's AVA evaluation: for each role (``annotated_boxes``,
    ``detected_boxes``) whose split was scored (``scores[split]`` = {"video_ids": ids,
    model: logits, ...}, as ``jmrn.fusion.run_fusion`` returns it), the frame-mAP of every
    model. Returns ({role: {model: mAP}}, {role: {model: full summary}})."""
    metrics, details = {}, {}
    for role, split in roles.items():
        if split is None or split not in scores:
            continue
        named = dict(scores[split])
        details[role] = evaluate(named.pop("video_ids"), named, raw_dir, options)
        metrics[role] = {m: r["mAP"] for m, r in details[role].items()}
    return metrics, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a logits file's model name (jmrn, potion) or its path")
    parser.add_argument("--split", default=None, help=f"the boxes to score: val (annotated) or "
                        f"{ava.DETECTED_SPLIT} (detected; the default when the file has it)")
    parser.add_argument("--csv", help="also write the scored boxes in the official CSV form")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    block = dataset_block(params)
    path = Path(args.model)
    if not path.suffix:
        path = Path(f"data/{params['dataset']}/logits/{args.model}.h5")
    logits = Logits(path)
    split = args.split or (ava.DETECTED_SPLIT if ava.DETECTED_SPLIT in logits.splits else "val")
    if split not in logits.splits:
        hint = (": put a person-detection pickle in the raw folder (source.proposals) and "
                "re-run ingest" if split == ava.DETECTED_SPLIT else "")
        raise SystemExit(f"{path} has no split {split!r}{hint}")
    rows = logits.splits[split]
    ids = [logits.video_ids[i] for i in rows]
    source = block.get("source") or {}
    result = evaluate(ids, {logits.model: logits.logits[rows]}, block["raw_dir"],
                      source)[logits.model]  # fmt: skip
    value = "undefined" if result["mAP"] is None else f"{result['mAP']:.4f}"
    print(f"{path} {split}: frame-mAP@{result['iou_threshold']} {value} over "
          f"{result['num_classes_evaluated']} classes, {result['scored_boxes']} boxes, "
          f"{result['num_ground_truth']} ground-truth rows")  # fmt: skip
    if args.csv:
        actions = ava.action_list(Path(block["raw_dir"]), source)
        write_detections_csv(args.csv, ids, logits.logits[rows], [a for a, _ in actions])
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
