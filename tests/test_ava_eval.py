"""AVA as the official evaluator scores it: the frame-mAP of per-box logits against the raw
val CSV, on a case worked by hand, and the official detections CSV agreeing with it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import PROJECT_ROOT

from jmrn.ava_eval import evaluate, official_frame_map, write_detections_csv
from jmrn.ava_metrics import frame_map
from jmrn.logits_file import write_logits
from jmrn.readers.ava import sample_id

ACTIONS = 'item {\n  name: "stand"\n  id: 12\n}\nitem {\n  name: "talk"\n  id: 79\n}\n'
A, B, C = (0.1, 0.2, 0.3, 0.8), (0.65, 0.2, 0.85, 0.8), (0.4, 0.2, 0.6, 0.8)
# Ground truth: at 902 box A stands, box B stands and talks; at 903 box A talks (a box the
# pipeline never scores: a miss); 904 is excluded.
TRUTH = ("mv,0902,0.100,0.200,0.300,0.800,12,0\n"
         "mv,0902,0.650,0.200,0.850,0.800,12,1\n"
         "mv,0902,0.650,0.200,0.850,0.800,79,1\n"
         "mv,0903,0.100,0.200,0.300,0.800,79,0\n"
         "mv,0904,0.100,0.200,0.300,0.800,79,0\n")  # fmt: skip
# Detections at 902: d1 ~ A (IoU 0.95), d2 = B, d3 = C (nobody); d4 at the excluded 904.
IDS = [sample_id("mv", 902, (0.11, 0.2, 0.3, 0.8), True), sample_id("mv", 902, B, True),
       sample_id("mv", 902, C, True), sample_id("mv", 904, A, True)]  # fmt: skip
LOGITS = np.array([[2.0, 0.0], [1.0, -1.0], [1.5, 1.0], [9.0, 9.0]])
# stand (2 positives): d1 TP, d3 FP, d2 TP -> AP = 0.5 * 1 + 0.5 * 2/3 = 5/6
# talk (2 positives, B at 902 and A at 903): d3 FP, d1 FP, d2 TP -> AP = 0.5 * 1/3 = 1/6
EXPECTED = {"stand": 5 / 6, "talk": 1 / 6}


@pytest.fixture
def raw(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "ava_action_list_v2.2.pbtxt").write_text(ACTIONS)
    (raw / "ava_train_v2.2.csv").write_text("")
    (raw / "ava_val_v2.2.csv").write_text(TRUTH)
    (raw / "ava_val_excluded_timestamps_v2.2.csv").write_text("mv,0904\n")
    return raw


def test_frame_map_on_detected_boxes_by_hand(raw):
    result = evaluate(IDS, {"jmrn": LOGITS}, raw, {})["jmrn"]
    assert result["per_class_ap"] == pytest.approx(EXPECTED)
    assert result["mAP"] == pytest.approx(0.5)
    assert result["num_ground_truth"] == 4 and result["scored_boxes"] == 4
    assert result["num_detections"] == 6  # the excluded keyframe's rows are dropped
    # a looser IoU threshold changes nothing here; a stricter one loses d1 (IoU 0.95)
    strict = evaluate(IDS, {"m": LOGITS}, raw, {}, iou_threshold=0.96)["m"]
    assert strict["per_class_ap"]["stand"] == pytest.approx(0.5 / 3)  # d1 FP, d3 FP, d2 TP


def test_the_official_csv_gives_the_same_map(raw, tmp_path):
    path = tmp_path / "detections.csv"
    write_detections_csv(path, IDS, LOGITS, [12, 79])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["mv", "0902", "0.110", "0.200", "0.300", "0.800", "12", "0.880797"]
    assert len(rows) == 8
    detections = [(r[0], int(r[1]), *map(float, r[2:6]), int(r[6]), float(r[7])) for r in rows]
    truth = [(r[0], int(r[1]), *map(float, r[2:6]), int(r[6])) for r in csv.reader(TRUTH.split())]
    official = frame_map(truth, detections, [12, 79], excluded={("mv", 904)})
    assert official["mAP"] == pytest.approx(0.5)


def test_command_line(raw, tmp_path):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["dataset"] = "ava"
    params["datasets"]["ava"]["raw_dir"] = str(raw)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    write_logits(tmp_path / "data/ava/logits/jmrn.h5", dataset="ava", model="jmrn",
                 params_hash="h", class_names=["stand", "talk"], multi_label=True,
                 video_ids=IDS, logits=LOGITS, features=None, labels=np.zeros((4, 2), bool),
                 splits={"val_detected": np.arange(4)})  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "jmrn.ava_eval", "jmrn", "--csv", "d.csv"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = ("val_detected: frame-mAP@0.5 0.5000 over 2 classes, 4 boxes, 4 ground-truth "
                "rows")
    assert expected in proc.stdout
    assert len((tmp_path / "d.csv").read_text().splitlines()) == 8


def test_official_frame_map_per_role(raw):
    """The fusion stage's call: roles whose split was scored, every model of each."""
    scores = {"val_detected": {"video_ids": IDS, "jmrn": LOGITS, "fused": LOGITS * 2}}
    metrics, details = official_frame_map(
        scores, {"annotated_boxes": "val", "detected_boxes": "val_detected"}, raw, {})
    assert list(metrics) == ["detected_boxes"]  # "val" was not scored: left out
    assert metrics["detected_boxes"] == pytest.approx({"jmrn": 0.5, "fused": 0.5})
    assert details["detected_boxes"]["jmrn"]["per_class_ap"] == pytest.approx(EXPECTED)
