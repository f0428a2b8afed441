"""AVA annotation files: the real samples in ../shared/data, and malformed rows."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from jmrn.ava_annotations import read_action_list, read_boxes, read_excluded, read_proposals
from jmrn.records import ReadError


def test_real_sample_files(shared_data):
    folder = shared_data / "formats/mmaction2"
    actions = read_action_list(folder / "ava_action_list_sample.pbtxt")
    assert [a for a, _ in actions] == [12, 17, 79, 80]
    excluded = read_excluded(folder / "ava_excluded_timestamps_sample.csv")
    assert excluded == {("0f39OWEqJ24", 903), ("_-Z6wFjXtGQ", 902)}
    samples = read_boxes(folder / "ava_sample.csv", [a for a, _ in actions], excluded)
    # three rows of one box at 0902 are one sample with three actions; the rest is excluded
    assert samples.keys == [("0f39OWEqJ24", 902)] and samples.labels == [{0, 1, 2}]
    assert samples.boxes == [(0.031, 0.162, 0.670, 0.995)] and samples.person_ids == [0]
    assert samples.skipped_rows == {"excluded timestamp": 5}
    proposals = read_proposals(folder / "ava_proposals_sample.pkl")
    assert proposals[("0f39OWEqJ24", 902)].shape == (1, 5)
    name = "ava_action_list_v2.1_for_activitynet_2018.pbtxt"
    official = read_action_list(shared_data / "label_maps" / name)
    assert len(official) == 60 and official[0] == (1, "bend/bow (at the waist)")


ROWS = """vid,0902,0.1,0.1,0.5,0.9,1,0
vid,0902,0.1,0.1,0.5,0.9,3,0
vid,0902,0.6,0.2,0.9,0.8,1,1
vid,0903,0.5,0.1,0.4,0.9,1,0
vid,0904,0.1,0.1,0.5,0.9,2,0
vid,0500,0.1,0.1,0.5,0.9,1,0
vid,0905,0.1,0.1,0.5,1.2,1,0
"""


def test_bad_rows_are_counted_skips_and_truncation_is_an_error(tmp_path):
    path = tmp_path / "ava_train_v2.2.csv"
    path.write_text(ROWS)
    samples = read_boxes(path, [1, 3])
    assert samples.keys == [("vid", 902), ("vid", 902)]
    assert samples.labels == [{0, 1}, {0}] and samples.person_ids == [0, 1]
    assert samples.skipped_rows == {"empty box or box outside [0, 1]": 2,
                                    "action id not in the action list": 1,
                                    "timestamp outside 902-1798": 1}  # fmt: skip
    path.write_text(ROWS + "vid,0906,0.1,0.1\n")
    with pytest.raises(ReadError, match=r"ava_train_v2.2.csv, line 8: 4 columns.*truncated"):
        read_boxes(path, [1, 3])
    path.write_text("vid,09x2,0.1,0.1,0.5,0.9,1,0\n")
    with pytest.raises(ReadError, match="line 1: a non-numeric value"):
        read_boxes(path, [1, 3])
    path.write_text("vid,0902,0.1,0.1,0.5,0.9\n")  # a test-set file: boxes without actions
    assert read_boxes(path, [1, 3]).labels == [set()]


def test_bad_action_lists_and_proposals(tmp_path):
    (tmp_path / "a.pbtxt").write_text('item { name: "x" id: 1 }\nitem { name: "y" id: 1 }\n')
    with pytest.raises(ReadError, match="an id appears twice"):
        read_action_list(tmp_path / "a.pbtxt")
    (tmp_path / "b.pbtxt").write_text('item { name: "x" }\n')
    with pytest.raises(ReadError, match="item 1 lacks a name or an id"):
        read_action_list(tmp_path / "b.pbtxt")
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"vid,0902": np.zeros((2, 4))}))
    with pytest.raises(ReadError, match=r"'vid,0902' is not .* shape \(2, 4\)"):
        read_proposals(tmp_path / "p.pkl")
    for boxes in (np.ones((2, 5), bool), [[0.1, 0.2, "0.3", 0.4, 0.9]], [[0.1] * 5, [0.2] * 4]):
        (tmp_path / "p.pkl").write_bytes(pickle.dumps({"vid,0902": boxes}))
        with pytest.raises(ReadError, match=r"'vid,0902' holds no numeric \(N, 5\) array"):
            read_proposals(tmp_path / "p.pkl")  # True was read as 1.0, "0.3" as 0.3
