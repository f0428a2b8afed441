"""The logits schema: round trip, validation, and alignment of modalities by video id."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jmrn.logits_file import Logits, align, write_logits


def write(path, ids, model="jmrn", classes=("a", "b", "c"), seed=0, features=8):
    rng = np.random.default_rng(seed)
    n = len(ids)
    logits = rng.normal(size=(n, len(classes))).astype(np.float32)
    labels = np.eye(len(classes), dtype=bool)[rng.integers(0, len(classes), n)]
    write_logits(path, dataset="t", model=model, params_hash="abc", class_names=list(classes),
                 multi_label=False, video_ids=list(ids), logits=logits,
                 features=rng.normal(size=(n, features)) if features else None, labels=labels,
                 splits={"train": np.arange(n)[::-1]})  # fmt: skip
    return logits


def test_round_trip(tmp_path):
    logits = write(tmp_path / "jmrn.h5", ["v1", "v2", "v3"])
    read = Logits(tmp_path / "jmrn.h5")
    assert read.model == "jmrn" and read.class_names == ["a", "b", "c"]
    assert read.video_ids == ["v1", "v2", "v3"] and read.features.shape == (3, 8)
    np.testing.assert_array_equal(read.logits, logits)
    assert read.splits["train"].tolist() == [0, 1, 2]
    write(tmp_path / "rgb.h5", ["v1"], model="i3d_rgb", features=0)
    assert Logits(tmp_path / "rgb.h5").features.shape == (1, 0)


def test_align_reorders_by_id_and_rejects_mismatches(tmp_path):
    a = write(tmp_path / "a.h5", ["v1", "v2", "v3"], seed=1)
    b = write(tmp_path / "b.h5", ["v3", "v1", "v2"], seed=2)
    aligned = align([Logits(tmp_path / "a.h5"), Logits(tmp_path / "b.h5")], ["v2", "v3"])
    np.testing.assert_array_equal(aligned[0], a[[1, 2]])
    np.testing.assert_array_equal(aligned[1], b[[2, 0]])
    write(tmp_path / "c.h5", ["v1", "v2"])
    with pytest.raises(ValueError, match="c.h5 has no logits for 1 of the 3 videos.*'v3'"):
        align([Logits(tmp_path / "a.h5"), Logits(tmp_path / "c.h5")], ["v1", "v2", "v3"])
    write(tmp_path / "d.h5", ["v1", "v2", "v3"], classes=("a", "b", "x"))
    with pytest.raises(ValueError, match="class list differs"):
        align([Logits(tmp_path / "a.h5"), Logits(tmp_path / "d.h5")], ["v1"])


def test_malformed_files_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="logits .* disagree"):
        write_logits(tmp_path / "x.h5", dataset="t", model="m", params_hash="", class_names=["a"],
                     multi_label=False, video_ids=["v1", "v2"], logits=np.zeros((3, 1)),
                     features=None, labels=np.zeros((3, 1)), splits={})  # fmt: skip
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["kind"] = "something"
    with pytest.raises(ValueError, match="not a jmrn logits file"):
        Logits(tmp_path / "other.h5")
    write(tmp_path / "dup.h5", ["v1", "v1"])
    with pytest.raises(ValueError, match="appears twice"):
        Logits(tmp_path / "dup.h5")


def test_non_finite_logits_and_missing_fields_are_rejected(tmp_path):
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f.attrs.update(format_version=1, class_names=["a", "b"])
        f["video_id"] = np.array(["v1"], dtype="S")
        f["logits"] = np.array([[0.0, np.nan]])
    with pytest.raises(ValueError, match="NaN"):
        Logits(tmp_path / "nan.h5")
    with h5py.File(tmp_path / "bare.h5", "w") as f:
        f.attrs.update(format_version=1)
        f["logits"] = np.zeros((1, 2))
    with pytest.raises(ValueError, match="missing video_id, attribute class_names"):
        Logits(tmp_path / "bare.h5")


def minimal(path, **datasets):
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=1, class_names=["a", "b"])
        f["video_id"] = np.array(["v1", "v2"], dtype="S")
        f["logits"] = np.array([[0.5, -1.0], [2.0, 0.0]])
        for name, value in datasets.items():
            if name in f:
                del f[name]
            f[name] = value
    return path


@pytest.mark.parametrize("name, value, message", [
    ("logits", np.array([[True, False], [False, True]]), "logits has dtype bool"),
    ("logits", np.array([[1 + 2j, 0], [0, 1j]]), "logits has dtype complex"),
    ("logits", np.array([["1", "2"], ["3", "4"]], dtype="S"), "logits has dtype"),
    ("features", np.array([[True], [False]]), "features has dtype bool"),
    ("labels", np.array([[2, 0], [0, 1]]), "labels must be multi-hot"),
    ("labels", np.array([[0.7, 0.0], [0.0, 1.0]]), "labels must be multi-hot"),
    ("splits/train", np.array([0, 2]), r"splits/train has row indices outside \[0, 2\)"),
    ("splits/train", np.array([1, 1]), "or twice"),
    ("splits/train", np.array([0.0, 1.0]), "1-D array of row indices"),
])  # fmt: skip
def test_values_of_the_wrong_kind_are_rejected_not_cast(tmp_path, name, value, message):
    # a cast would turn True into 1.0, drop an imaginary part, or round a soft label
    with pytest.raises(ValueError, match=message):
        Logits(minimal(tmp_path / "x.h5", **{name: value}))
    read = Logits(minimal(tmp_path / "ok.h5", labels=np.array([[1, 0], [0, 1]], np.uint8)))
    assert read.labels.dtype == bool and read.labels.sum() == 2


@pytest.mark.parametrize("name, value, message", [
    ("logits", np.zeros((2, 4)), r"the logits have 4 columns where the dataset has 2 classes "
                                 r"\(its class_names attribute\)"),
    ("logits", np.zeros((3, 2)), "the logits have 3 rows where video_id has 2 ids"),
    ("logits", np.zeros(2), r"logits has shape \(2,\); it must be \(videos, classes\) = "
                            r"\(2, 2\)"),
    ("features", np.zeros((3, 8)), r"features has shape \(3, 8\); it must be \(videos, "
                                   r"feature dimensions\) with 2 rows"),
])  # fmt: skip
def test_each_shape_problem_is_named_on_its_own(tmp_path, name, value, message):
    """A wrong logits width used to read "2 ids and 2 classes, but logits (2, 4) and features
    (2, 0)": features the file never had."""
    with pytest.raises(ValueError, match=message) as caught:
        Logits(minimal(tmp_path / "x.h5", **{name: value}))
    assert name == "features" or "features" not in str(caught.value)
