"""Learned late fusion: fit to convergence on the held-out rows, recovers planted answers."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

import jmrn.fusion
from jmrn.fusion import apply_fusion, check_settings, fit_fusion, run_fusion
from jmrn.logits_file import write_logits

# the presets' defaults (params.yaml), no learning-rate tricks
DEFAULTS = {"l2_penalty": 1e-3, "l2_normalize": True, "per_class_weights": False}


def fit(logits, targets, multi_label=False, **overrides):
    settings = {**DEFAULTS, **overrides}
    return fit_fusion(logits, targets, multi_label=multi_label,
                      per_class=settings["per_class_weights"],
                      l2_normalize=settings["l2_normalize"],
                      l2_penalty=settings["l2_penalty"])  # fmt: skip


def modalities(rng, n, k, scales, noise_scale=3.0):
    """A pure-noise modality first, then one informative modality per scale (logits peak at
    the true class by that much)."""
    labels = rng.integers(0, k, n)
    onehot = np.eye(k, dtype=np.float32)[labels]
    noise = noise_scale * rng.normal(0, 1, (n, k))
    good = [s * onehot + rng.normal(0, 1, (n, k)) for s in scales]
    return [x.astype(np.float32) for x in (noise, *good)], onehot, labels


@pytest.mark.parametrize("l2_normalize", [True, False])
def test_fusion_zeroes_a_useless_modality_and_favours_the_best(l2_normalize):
    rng = np.random.default_rng(0)
    train, targets, _ = modalities(rng, 1000, 6, [3.0, 1.5])
    test, _, test_labels = modalities(rng, 1000, 6, [3.0, 1.5])
    result = fit(train, targets, l2_normalize=l2_normalize)
    w = result.weights
    assert result.converged and result.max_abs_gradient <= jmrn.fusion.GRADIENT_TOLERANCE
    assert w.shape == (3,) and w.argmax() == 1 and w[1] > 1.5 * w[2] > 0
    assert abs(w[0]) < 0.05 * w[1]  # the noise modality: ~0
    fused = apply_fusion(test, w, l2_normalize).argmax(1)
    average = apply_fusion(test, np.full(3, 1 / 3, np.float32), l2_normalize).argmax(1)
    accuracy = {name: (pred == test_labels).mean()
                for name, pred in (("fused", fused), ("average", average),
                                   ("best", test[1].argmax(1)))}  # fmt: skip
    assert accuracy["fused"] >= accuracy["best"] - 0.01
    assert accuracy["fused"] > accuracy["average"] + 0.1


def test_the_weights_leave_the_plain_average_far_behind():
    """The old failure mode: 100 Adam steps at lr 1e-3 kept the weights within 1/M +- 0.1."""
    rng = np.random.default_rng(1)
    x, targets, _ = modalities(rng, 1000, 6, [3.0])
    result = fit(x, targets)
    noise, good = result.weights
    assert abs(noise - 0.5) > 0.45 and abs(noise) < 0.05 * good
    assert good - 0.5 > 1.0
    assert 0 < result.iterations < jmrn.fusion.MAX_ITERATIONS


def test_per_class_weights_single_label():
    rng = np.random.default_rng(2)
    x, targets, _ = modalities(rng, 8000, 4, [3.0, 1.5])
    w = fit(x, targets, per_class_weights=True).weights
    assert w.shape == (3, 4)
    assert (w.argmax(0) == 1).all() and (w[1] > w[2]).all()
    assert (np.abs(w[0]) < 0.05 * w[1]).all()


@pytest.mark.parametrize("l2_normalize", [True, False])
def test_per_class_weights_multi_label(l2_normalize):
    rng = np.random.default_rng(3)
    n, k = 8000, 4
    targets = (rng.random((n, k)) < 0.3).astype(np.float32)
    # modality 0 knows classes 0-1 and is noise on 2-3; modality 1 the other way round
    a = np.where(np.arange(k) < 2, 4 * targets - 2 + rng.normal(0, 1, (n, k)),
                 3 * rng.normal(0, 1, (n, k)))  # fmt: skip
    b = np.where(np.arange(k) >= 2, 4 * targets - 2 + rng.normal(0, 1, (n, k)),
                 3 * rng.normal(0, 1, (n, k)))  # fmt: skip
    result = fit([a, b], targets, multi_label=True, per_class_weights=True,
                 l2_normalize=l2_normalize)  # fmt: skip
    w = result.weights
    assert result.converged and w.shape == (2, 4)
    assert (np.abs(w[1, :2]) < 0.05 * w[0, :2]).all()
    assert (np.abs(w[0, 2:]) < 0.05 * w[1, 2:]).all()


def test_the_fit_is_deterministic():
    rng = np.random.default_rng(4)
    x, targets, _ = modalities(rng, 500, 5, [2.0, 1.0])
    first, second = fit(x, targets), fit(x, targets)
    assert np.array_equal(first.weights, second.weights)
    assert first.iterations == second.iterations
    per_class = [fit(x, targets, per_class_weights=True).weights for _ in range(2)]
    assert np.array_equal(*per_class)


def test_a_fit_stopped_by_the_iteration_cap_is_not_converged():
    rng = np.random.default_rng(5)
    x, targets, _ = modalities(rng, 300, 4, [3.0])
    result = fit_fusion(x, targets, multi_label=False, per_class=False, l2_normalize=True,
                        l2_penalty=1e-3, max_iterations=1)  # fmt: skip
    assert result.iterations == 1 and not result.converged
    assert result.max_abs_gradient > jmrn.fusion.GRADIENT_TOLERANCE


def test_mismatched_modalities_are_an_error():
    with pytest.raises(ValueError, match="disagree on the logits shape"):
        fit([np.zeros((3, 2)), np.zeros((4, 2))], np.zeros((3, 2)))


@pytest.mark.parametrize(("settings", "message"), [
    ({**DEFAULTS, "lr": 1e-3}, "fusion.lr is no longer a setting"),
    ({**DEFAULTS, "epochs": 100}, "fusion.epochs is no longer a setting"),
    ({"l2_normalize": True, "per_class_weights": False}, r"missing \['l2_penalty'\]"),
    ({**DEFAULTS, "momentum": 0.9}, r"unknown \['momentum'\]"),
    ({**DEFAULTS, "l2_penalty": -1.0}, "fusion.l2_penalty must be a finite number >= 0"),
    ({**DEFAULTS, "l2_penalty": "1e-3"}, "fusion.l2_penalty must be"),
    ({**DEFAULTS, "l2_penalty": float("nan")}, "fusion.l2_penalty must be"),
    ({**DEFAULTS, "l2_normalize": "yes"}, "fusion.l2_normalize must be true or false"),
    ({**DEFAULTS, "per_class_weights": 1}, "fusion.per_class_weights must be true or false"),
])  # fmt: skip
def test_fusion_settings_are_validated(settings, message):
    with pytest.raises(ValueError, match=message):
        check_settings(settings)


def test_valid_settings_pass():
    assert check_settings({**DEFAULTS, "l2_penalty": 0}) == {**DEFAULTS, "l2_penalty": 0}


# --- run_fusion on logits files ---------------------------------------------------------------

CLASSES = ["a", "b", "c"]


def split_rows(n):
    """First half train (its last 40 % held out for validation: model_selection), second
    half test."""
    half = n // 2
    return {"train": np.arange(half), "model_selection": np.arange(int(0.6 * half), half),
            "test": np.arange(half, n)}  # fmt: skip


def write_modality(path, ids, labels, scale, seed, model=None, logits=None, **kw):
    rng = np.random.default_rng(seed)
    onehot = np.eye(3, dtype=bool)[labels]
    if logits is None:
        logits = scale * onehot + rng.normal(0, 1, onehot.shape)
    write_logits(path, dataset="t", model=model or path.stem, params_hash="h",
                 class_names=CLASSES, multi_label=False, video_ids=ids, logits=logits,
                 features=None, labels=onehot,
                 splits=kw.pop("splits", split_rows(len(ids))), **kw)  # fmt: skip


@pytest.fixture
def pose_files(tmp_path):
    rng = np.random.default_rng(3)
    ids = [f"v{i}" for i in range(200)]
    labels = rng.integers(0, 3, 200)
    write_modality(tmp_path / "jmrn.h5", ids, labels, 1.0, 0)
    write_modality(tmp_path / "potion.h5", ids, labels, 0.5, 1)
    return tmp_path, ids, labels


def fuse_files(paths, **kw):
    kw = {"train_split": "train", "test_split": "test", "settings": DEFAULTS, **kw}
    return run_fusion(paths, **kw)


def test_run_fusion_fits_on_the_held_out_rows_not_the_training_rows(tmp_path):
    """On the training rows the models trained on, JMRN is perfect and PoTion noise; on the
    held-out (model_selection) and test rows it is the other way round: the weights must
    follow the held-out rows."""
    rng = np.random.default_rng(7)
    n = 2000
    ids, labels = [f"v{i}" for i in range(n)], rng.integers(0, 3, n)
    splits = {"train": np.arange(1000), "model_selection": np.arange(600, 1000),
              "test": np.arange(1000, n)}  # fmt: skip
    onehot = np.eye(3)[labels]
    informative = 4 * onehot + rng.normal(0, 1, (n, 3))
    noise = 3 * rng.normal(0, 1, (n, 3))
    fitted = np.arange(n) < 600  # rows the models trained on
    write_modality(tmp_path / "jmrn.h5", ids, labels, 0, 0, splits=splits,
                   logits=np.where(fitted[:, None], informative, noise))  # fmt: skip
    write_modality(tmp_path / "potion.h5", ids, labels, 0, 0, splits=splits,
                   logits=np.where(fitted[:, None], noise, informative))  # fmt: skip
    result = fuse_files([tmp_path / "jmrn.h5", tmp_path / "potion.h5"], trained_here=2)
    metrics = result["metrics"]
    w = metrics["weights"]
    assert w["potion"] > 1.0 and abs(w["jmrn"]) < 0.05 * w["potion"]
    assert metrics["fit_on"] == {"split": "model_selection", "videos": 400}
    assert metrics["splits"] == {"train": "train", "test": "test"}
    assert metrics["videos"] == {"fit": 400, "test": 1000}
    assert metrics["fit"]["converged"] and 0 < metrics["fit"]["iterations"] < 1000
    assert metrics["best_single"] == "potion"
    assert metrics["test"]["fused"]["top1"] >= metrics["test"]["potion"]["top1"] - 0.01


def test_run_fusion_finds_the_strong_external_modality(pose_files):
    root, ids, labels = pose_files
    # written by hand with the README's required fields only, ids in another order
    with h5py.File(root / "rgb.h5", "w") as f:
        f.attrs.update(format_version=1, class_names=CLASSES)
        f["video_id"] = np.array(ids[::-1], dtype="S")
        f["logits"] = 4.0 * np.eye(3)[labels[::-1]] + np.random.default_rng(5).normal(
            0, 1, (200, 3))
    result = fuse_files([root / "jmrn.h5", root / "potion.h5", root / "rgb.h5"],
                        trained_here=2)  # fmt: skip
    metrics = result["metrics"]
    assert metrics["modalities"] == ["jmrn", "potion", "rgb"] and metrics["best_single"] == "rgb"
    weights = metrics["weights"]
    assert weights["rgb"] > 2 * max(weights["jmrn"], weights["potion"])
    assert metrics["test"]["fused"]["top1"] >= metrics["test"]["rgb"]["top1"] - 0.02
    assert metrics["test"]["fused"]["top1"] > metrics["test"]["average"]["top1"]
    assert metrics["fit_on"] == {"split": "model_selection", "videos": 40}
    assert {row["class"] for row in result["per_class"]} == {"a", "b", "c"}


def test_run_fusion_needs_the_held_out_rows_everywhere(pose_files):
    root, ids, labels = pose_files
    paths = [root / "jmrn.h5", root / "potion.h5"]
    # PoTion's file predates the model_selection split
    splits = split_rows(200)
    del splits["model_selection"]
    write_modality(root / "potion.h5", ids, labels, 0.5, 1, splits=splits)
    with pytest.raises(ValueError, match="potion.h5: no split 'model_selection'"):
        fuse_files(paths, trained_here=2)
    # PoTion held out other videos (another seed)
    write_modality(root / "potion.h5", ids, labels, 0.5, 1,
                   splits={**splits, "model_selection": np.arange(50, 90)})  # fmt: skip
    message = (r"potion.h5 and .*jmrn.h5 held out different videos for validation \(split "
               r"'model_selection': 10 only in jmrn.h5, 10 only in potion.h5; first: 'v90'\)")
    with pytest.raises(ValueError, match=message):
        fuse_files(paths, trained_here=2)
    # ... which does not matter for a file that is not one of this pipeline's models
    fuse_files(paths, trained_here=1)
    # an external modality without logits for some held-out videos
    keep = [i for i in range(200) if i != 75]
    write_modality(root / "rgb.h5", [ids[i] for i in keep], labels[keep], 3.0, 2, splits={})
    with pytest.raises(ValueError, match=r"rgb.h5: no logits for 1 of the 40 videos of split "
                                         r"'model_selection' \(first: 'v75'\)"):  # fmt: skip
        fuse_files([paths[0], root / "rgb.h5"])
    # ... or for some test videos
    keep = [i for i in range(200) if i != 150]
    write_modality(root / "rgb.h5", [ids[i] for i in keep], labels[keep], 3.0, 2, splits={})
    with pytest.raises(ValueError, match=r"rgb.h5: no logits for 1 of the 100 videos of split "
                                         r"'test' \(first: 'v150'\)"):  # fmt: skip
        fuse_files([paths[0], root / "rgb.h5"])


def test_run_fusion_rejects_held_out_rows_outside_the_training_split(pose_files):
    root, ids, labels = pose_files
    for rows, message in ((np.arange(90, 110), "10 of the 20 'model_selection' videos are not "
                                               "in the training split 'train'"),
                          (np.arange(0, 0), "split 'model_selection' is empty")):  # fmt: skip
        write_modality(root / "jmrn.h5", ids, labels, 1.0, 0,
                       splits={**split_rows(200), "model_selection": rows})  # fmt: skip
        with pytest.raises(ValueError, match=message):
            fuse_files([root / "jmrn.h5"])
    overlapping = {"train": np.arange(120), "model_selection": np.arange(90, 120),
                   "test": np.arange(100, 200)}  # fmt: skip
    write_modality(root / "jmrn.h5", ids, labels, 1.0, 0, splits=overlapping)
    with pytest.raises(ValueError, match="20 'model_selection' videos are in the test split"):
        fuse_files([root / "jmrn.h5"])


def test_run_fusion_validates_its_settings(pose_files):
    root, _, _ = pose_files
    with pytest.raises(ValueError, match="fusion.lr is no longer a setting"):
        fuse_files([root / "jmrn.h5"], settings={**DEFAULTS, "lr": 0.05, "epochs": 200})
    settings = {k: v for k, v in DEFAULTS.items() if k != "per_class_weights"}
    with pytest.raises(ValueError, match=r"missing \['per_class_weights'\]"):
        fuse_files([root / "jmrn.h5"], settings=settings)


def test_run_fusion_refuses_a_fit_that_did_not_converge(pose_files, monkeypatch):
    root, _, _ = pose_files
    monkeypatch.setattr(jmrn.fusion, "MAX_ITERATIONS", 1)
    with pytest.raises(ValueError, match="L-BFGS did not converge in 1 iterations on the 40 "
                                         "'model_selection' videos"):  # fmt: skip
        fuse_files([root / "jmrn.h5", root / "potion.h5"])


def test_run_fusion_rejects_unknown_ids_but_counts_ingest_skips(pose_files):
    root, ids, labels = pose_files
    extra = [*ids, "skipped_by_ingest"]
    write_modality(root / "rgb.h5", extra, np.r_[labels, 0], 3.0, 2,
                   splits={})  # fmt: skip
    paths = [root / "jmrn.h5", root / "potion.h5", root / "rgb.h5"]
    with pytest.raises(ValueError, match="1 video ids are not in the dataset.*skipped_by_ingest"):
        fuse_files(paths)
    result = fuse_files(paths, skipped_by_ingest={"skipped_by_ingest"})
    assert result["metrics"]["dropped_skipped_by_ingest"]["rgb"] == 1


def test_run_fusion_rejects_disagreeing_labels_and_unknown_splits(pose_files):
    root, ids, labels = pose_files
    write_modality(root / "rgb.h5", ids, (labels + 1) % 3, 3.0, 2)
    paths = [root / "jmrn.h5", root / "rgb.h5"]
    with pytest.raises(ValueError, match="rgb.h5: its labels disagree"):
        fuse_files(paths)
    with pytest.raises(ValueError, match="no split 'test2'"):
        fuse_files(paths[:1], test_split="test2")


def test_run_fusion_hands_back_the_scores_of_extra_splits(pose_files):
    """AVA's detected boxes: scored by every modality that covers them, fused when all do."""
    root, ids, labels = pose_files
    splits = {"train": np.arange(100), "model_selection": np.arange(60, 100),
              "test": np.arange(100, 180), "detected": np.arange(180, 200)}  # fmt: skip
    for name, seed in (("jmrn", 0), ("potion", 1)):
        write_modality(root / f"{name}.h5", ids, labels, 1.0, seed, splits=splits)
    write_modality(root / "rgb.h5", ids[:180], labels[:180], 3.0, 2, splits={})
    paths = [root / "jmrn.h5", root / "potion.h5"]
    result = fuse_files(paths, trained_here=2, score_splits=("detected", "absent"))
    scores = result["scores"]["detected"]
    assert list(result["scores"]) == ["detected"]
    assert scores["video_ids"] == ids[180:]
    assert set(scores) == {"video_ids", "jmrn", "potion", "average", "fused"}
    weights = np.array([result["metrics"]["weights"][m] for m in ("jmrn", "potion")], np.float32)
    x = [scores["jmrn"], scores["potion"]]
    assert np.allclose(scores["fused"], apply_fusion(x, weights, l2_normalize=True), atol=1e-6)
    result = fuse_files([*paths, root / "rgb.h5"], trained_here=2, score_splits=("detected",))
    assert set(result["scores"]["detected"]) == {"video_ids", "jmrn", "potion"}  # rgb lacks them


def external_file(path, ids, columns, class_names=CLASSES):
    """An external modality written with a few lines of h5py, as docs/fusion_and_clips.md
    tells a provider to: ids, logits and class_names, no features."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=1, class_names=list(class_names), model="rgb")
        f["video_id"] = np.array(ids, dtype="S")
        f["logits"] = np.random.default_rng(0).normal(size=(len(ids), columns))


def test_external_logits_with_the_wrong_number_of_columns_name_the_columns(pose_files):
    """It was reported as a mismatch with "features" the file never had; now the message
    says what is wrong with the logits: N columns where the dataset has K classes."""
    tmp_path, ids, _ = pose_files
    rgb = tmp_path / "rgb.h5"
    external_file(rgb, ids, 5)  # the dataset's 3 class names, but 5 columns
    with pytest.raises(ValueError) as caught:
        fuse_files([tmp_path / "jmrn.h5", tmp_path / "potion.h5", rgb], trained_here=2)
    assert str(caught.value) == (f"{rgb}: the logits have 5 columns where the dataset has 3 "
                                 "classes (its class_names attribute): one column per class, "
                                 "in that order")  # fmt: skip
    assert "features" not in str(caught.value)
    # variant: 5 columns and a class list of its own (another model's 5 classes)
    external_file(rgb, ids, 5, class_names=[*CLASSES, "d", "e"])
    with pytest.raises(ValueError, match=re.escape(
            f"{rgb}: its logits have 5 columns (class_names lists 5) where the dataset has 3 "
            f"classes ({tmp_path / 'jmrn.h5'}): its class list differs")):  # fmt: skip
        fuse_files([tmp_path / "jmrn.h5", tmp_path / "potion.h5", rgb], trained_here=2)
    # variant: one column short, and a class renamed
    external_file(rgb, ids, 2)
    with pytest.raises(ValueError, match="the logits have 2 columns where the dataset has 3"):
        fuse_files([tmp_path / "jmrn.h5", rgb])
    external_file(rgb, ids, 3, class_names=["a", "B", "c"])
    with pytest.raises(ValueError, match="rgb.h5: class 1 is 'B' where the dataset's is 'b'"):
        fuse_files([tmp_path / "jmrn.h5", rgb])
    external_file(rgb, ids, 3)  # and a correct one fuses
    assert fuse_files([tmp_path / "jmrn.h5", rgb])["metrics"]["modalities"][-1] == "rgb"
