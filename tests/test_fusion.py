"""Learned late fusion recovers a planted best modality and beats the plain average."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jmrn.fusion import apply_fusion, fit_fusion, run_fusion
from jmrn.logits_file import write_logits


def modalities(rng, n, k, informative_scale, noise_scales):
    """One informative modality (logits peak at the true class) and pure-noise ones."""
    labels = rng.integers(0, k, n)
    onehot = np.eye(k, dtype=np.float32)[labels]
    good = informative_scale * onehot + rng.normal(0, 1, (n, k)).astype(np.float32)
    noise = [s * rng.normal(0, 1, (n, k)).astype(np.float32) for s in noise_scales]
    return [noise[0], good, *noise[1:]], onehot, labels


def test_fusion_recovers_the_planted_best_modality():
    rng = np.random.default_rng(0)
    train, targets, _ = modalities(rng, 400, 6, 3.0, [3.0, 3.0])
    test, _, test_labels = modalities(rng, 400, 6, 3.0, [3.0, 3.0])
    weights = fit_fusion(train, targets, multi_label=False, per_class=False,
                         l2_normalize=False, lr=0.05, epochs=300)  # fmt: skip
    assert weights.shape == (3,) and weights.argmax() == 1
    assert weights[1] > 3 * np.abs(weights[[0, 2]]).max()
    fused = apply_fusion(test, weights, l2_normalize=False).argmax(1)
    average = np.mean(test, axis=0).argmax(1)
    best_single = test[1].argmax(1)
    accuracy = {name: (pred == test_labels).mean()
                for name, pred in (("fused", fused), ("average", average),
                                   ("best", best_single))}  # fmt: skip
    assert accuracy["fused"] >= accuracy["best"] - 0.01
    assert accuracy["fused"] > accuracy["average"] + 0.1


def test_per_class_weights_for_multi_label_and_l2_normalisation():
    rng = np.random.default_rng(1)
    n, k = 300, 4
    targets = (rng.random((n, k)) < 0.3).astype(np.float32)
    # modality 0 knows classes 0-1, modality 1 knows classes 2-3
    a = np.where(np.arange(k) < 2, 4 * targets - 2, 0) + rng.normal(0, 1, (n, k))
    b = np.where(np.arange(k) >= 2, 4 * targets - 2, 0) + rng.normal(0, 1, (n, k))
    weights = fit_fusion([a.astype(np.float32), b.astype(np.float32)], targets,
                         multi_label=True, per_class=True, l2_normalize=True, lr=0.05,
                         epochs=300)  # fmt: skip
    assert weights.shape == (2, 4)
    assert (weights[0, :2] > weights[1, :2]).all() and (weights[1, 2:] > weights[0, 2:]).all()


def test_mismatched_modalities_are_an_error():
    with pytest.raises(ValueError, match="disagree on the logits shape"):
        fit_fusion([np.zeros((3, 2)), np.zeros((4, 2))], np.zeros((3, 2)), multi_label=False,
                   per_class=False, l2_normalize=False, lr=0.1, epochs=1)  # fmt: skip


def write_modality(path, ids, labels, scale, seed, model=None, **kw):
    rng = np.random.default_rng(seed)
    onehot = np.eye(3, dtype=bool)[labels]
    logits = scale * onehot + rng.normal(0, 1, onehot.shape)
    n = len(ids)
    write_logits(path, dataset="t", model=model or path.stem, params_hash="h",
                 class_names=["a", "b", "c"], multi_label=False, video_ids=ids, logits=logits,
                 features=None, labels=onehot,
                 splits=kw.pop("splits", {"train": np.arange(n // 2),
                                          "test": np.arange(n // 2, n)}), **kw)  # fmt: skip


@pytest.fixture
def pose_files(tmp_path):
    rng = np.random.default_rng(3)
    ids = [f"v{i}" for i in range(200)]
    labels = rng.integers(0, 3, 200)
    write_modality(tmp_path / "jmrn.h5", ids, labels, 1.0, 0)
    write_modality(tmp_path / "potion.h5", ids, labels, 0.5, 1)
    return tmp_path, ids, labels


SETTINGS = {"lr": 0.05, "epochs": 200, "l2_normalize": True, "per_class_weights": False}


def test_run_fusion_finds_the_strong_external_modality(pose_files):
    root, ids, labels = pose_files
    # written by hand with the README's required fields only, ids in another order
    with h5py.File(root / "rgb.h5", "w") as f:
        f.attrs.update(format_version=1, class_names=["a", "b", "c"])
        f["video_id"] = np.array(ids[::-1], dtype="S")
        f["logits"] = 4.0 * np.eye(3)[labels[::-1]] + np.random.default_rng(5).normal(
            0, 1, (200, 3))
    result = run_fusion([root / "jmrn.h5", root / "potion.h5", root / "rgb.h5"],
                        train_split="train", test_split="test", settings=SETTINGS)
    metrics = result["metrics"]
    assert metrics["modalities"] == ["jmrn", "potion", "rgb"] and metrics["best_single"] == "rgb"
    weights = metrics["weights"]
    assert weights["rgb"] > 2 * max(weights["jmrn"], weights["potion"])
    assert metrics["test"]["fused"]["top1"] >= metrics["test"]["rgb"]["top1"] - 0.02
    assert metrics["test"]["fused"]["top1"] > metrics["test"]["average"]["top1"]
    assert {row["class"] for row in result["per_class"]} == {"a", "b", "c"}


def test_run_fusion_rejects_unknown_ids_but_counts_ingest_skips(pose_files):
    root, ids, labels = pose_files
    extra = [*ids, "skipped_by_ingest"]
    write_modality(root / "rgb.h5", extra, np.r_[labels, 0], 3.0, 2,
                   splits={})  # fmt: skip
    paths = [root / "jmrn.h5", root / "potion.h5", root / "rgb.h5"]
    with pytest.raises(ValueError, match="1 video ids are not in the dataset.*skipped_by_ingest"):
        run_fusion(paths, train_split="train", test_split="test", settings=SETTINGS)
    result = run_fusion(paths, train_split="train", test_split="test", settings=SETTINGS,
                        skipped_by_ingest={"skipped_by_ingest"})  # fmt: skip
    assert result["metrics"]["dropped_skipped_by_ingest"]["rgb"] == 1


def test_run_fusion_rejects_disagreeing_labels_and_unknown_splits(pose_files):
    root, ids, labels = pose_files
    write_modality(root / "rgb.h5", ids, (labels + 1) % 3, 3.0, 2)
    paths = [root / "jmrn.h5", root / "rgb.h5"]
    with pytest.raises(ValueError, match="rgb.h5: its labels disagree"):
        run_fusion(paths, train_split="train", test_split="test", settings=SETTINGS)
    with pytest.raises(ValueError, match="no split 'test2'"):
        run_fusion(paths[:1], train_split="train", test_split="test2", settings=SETTINGS)


def test_run_fusion_hands_back_the_scores_of_extra_splits(pose_files):
    """AVA's detected boxes: scored by every modality that covers them, fused when all do."""
    root, ids, labels = pose_files
    splits = {"train": np.arange(100), "test": np.arange(100, 180), "detected": np.arange(180, 200)}
    for name, seed in (("jmrn", 0), ("potion", 1)):
        write_modality(root / f"{name}.h5", ids, labels, 1.0, seed, splits=splits)
    write_modality(root / "rgb.h5", ids[:180], labels[:180], 3.0, 2, splits={})
    paths = [root / "jmrn.h5", root / "potion.h5"]
    result = run_fusion(paths, train_split="train", test_split="test", settings=SETTINGS,
                        score_splits=("detected", "absent"))  # fmt: skip
    scores = result["scores"]["detected"]
    assert list(result["scores"]) == ["detected"]
    assert scores["video_ids"] == ids[180:]
    assert set(scores) == {"video_ids", "jmrn", "potion", "average", "fused"}
    weights = np.array([result["metrics"]["weights"][m] for m in ("jmrn", "potion")], np.float32)
    x = [scores["jmrn"], scores["potion"]]
    assert np.allclose(scores["fused"], apply_fusion(x, weights, l2_normalize=True), atol=1e-6)
    result = run_fusion([*paths, root / "rgb.h5"], train_split="train", test_split="test",
                        settings=SETTINGS, score_splits=("detected",))  # fmt: skip
    assert set(result["scores"]["detected"]) == {"video_ids", "jmrn", "potion"}  # rgb lacks them
