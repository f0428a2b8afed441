"""Clip selection: group ops against slow per-video loops, the oracle on hand-built probs,
the ranker on planted salient clips, and Table-6 evaluation on a constructed case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jmrn.clip_selection import (
    Ranker,
    consensus,
    empirical_scores,
    evaluate_selection,
    oracle_labels,
    random_k,
    ranker_scores,
    top_k_per_video,
    train_ranker,
    true_class_scores,
    uniform_k,
    video_groups,
)
from jmrn.metrics import multi_label_metrics

# ---------------------------------------------------------------- slow references


def ref_top_k(scores: np.ndarray, clip_video: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(scores), dtype=bool)
    for v in np.unique(clip_video):
        idx = np.flatnonzero(clip_video == v)
        ranked = sorted(range(len(idx)), key=lambda i: (-scores[idx[i]], i))
        out[idx[ranked[:k]]] = True
    return out


def ref_oracle(probs, clip_video, video_labels, k):
    out = np.zeros(len(probs), dtype=bool)
    for v in np.unique(clip_video):
        idx = np.flatnonzero(clip_video == v)
        classes = np.flatnonzero(video_labels[v])
        if len(classes) == 0:
            continue
        s = [probs[i, classes].mean() for i in idx]
        ranked = sorted(range(len(idx)), key=lambda i: (-s[i], i))
        out[idx[ranked[:k]]] = True
    return out


def random_layout(rng, n_videos, max_clips=9):
    counts = rng.integers(1, max_clips + 1, size=n_videos)
    ids = np.sort(rng.choice(3 * n_videos, size=n_videos, replace=False))
    return np.repeat(ids, counts).astype(np.int64), ids, counts


# ---------------------------------------------------------------- oracle / true-class scores


def test_oracle_hand_case_with_short_video_and_tie():
    # video 3 (label 0): 4 clips; video 7 (label 1): 2 clips (< k); video 9 (label 2): 5 clips
    # whose clips 1 and 3 tie on the true class, so the earlier one (1) wins the second slot.
    clip_video = np.array([3, 3, 3, 3, 7, 7, 9, 9, 9, 9, 9])
    probs = np.array([
        [0.2, 0.5, 0.3], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1],
        [0.3, 0.3, 0.4], [0.9, 0.05, 0.05],
        [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.0, 0.9, 0.1], [0.1, 0.3, 0.6], [0.4, 0.4, 0.2],
    ])  # fmt: skip
    labels = np.zeros((10, 3), dtype=bool)
    labels[3, 0] = labels[7, 1] = labels[9, 2] = True
    got = oracle_labels(probs, clip_video, labels, multi_label=False, k=2)
    expected = np.array([0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, ref_oracle(probs, clip_video, labels, 2))
    np.testing.assert_allclose(true_class_scores(probs, clip_video, labels, False)[:4],
                               [0.2, 0.7, 0.1, 0.6])  # fmt: skip


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_oracle_matches_reference_on_random_data(multi_label, k):
    rng = np.random.default_rng(k + 10 * multi_label)
    clip_video, ids, _ = random_layout(rng, 25)
    n_classes = 5
    # Rounded probs make ties common, exercising the tie rule.
    probs = np.round(rng.random((len(clip_video), n_classes)), 1)
    labels = np.zeros((ids.max() + 1, n_classes), dtype=bool)
    if multi_label:
        labels[ids] = rng.random((len(ids), n_classes)) < 0.4
        labels[ids[0]] = False  # an unlabelled video: all False, never NaN
    else:
        labels[ids, rng.integers(0, n_classes, len(ids))] = True
    got = oracle_labels(probs, clip_video, labels, multi_label, k)
    np.testing.assert_array_equal(got, ref_oracle(probs, clip_video, labels, k))
    scores = true_class_scores(probs, clip_video, labels, multi_label)
    assert not np.isnan(scores).any()
    if multi_label:
        assert not got[clip_video == ids[0]].any()
        assert np.all(scores[clip_video == ids[0]] == -np.inf)


def test_true_class_scores_multi_label_mean():
    probs = np.array([[0.2, 0.4, 0.9], [0.6, 0.0, 0.3]])
    labels = np.array([[True, False, True]])
    got = true_class_scores(probs, np.array([0, 0]), labels, multi_label=True)
    np.testing.assert_allclose(got, [0.55, 0.45])


def test_single_label_requires_one_label_per_video():
    labels = np.array([[True, True]])
    with pytest.raises(ValueError, match="exactly one"):
        true_class_scores(np.full((2, 2), 0.5), np.array([0, 0]), labels, multi_label=False)


# ---------------------------------------------------------------- selections


def test_top_k_matches_reference_and_counts():
    rng = np.random.default_rng(0)
    clip_video, _, counts = random_layout(rng, 40)
    scores = np.round(rng.random(len(clip_video)), 1)
    for k in (1, 2, 4):
        got = top_k_per_video(scores, clip_video, k)
        np.testing.assert_array_equal(got, ref_top_k(scores, clip_video, k))
        _, starts, _ = video_groups(clip_video)
        np.testing.assert_array_equal(np.add.reduceat(got.astype(int), starts),
                                      np.minimum(counts, k))  # fmt: skip


def test_uniform_k_positions():
    clip_video = np.repeat([0, 4, 5, 6], [10, 3, 7, 1])
    got = uniform_k(clip_video, 3)
    assert np.flatnonzero(got[:10]).tolist() == [1, 5, 8]  # floor(0.5*10/3), floor(1.5*10/3)...
    assert got[10:13].all()  # n == k: all
    assert np.flatnonzero(got[13:20]).tolist() == [1, 3, 5]
    assert got[20]
    rng = np.random.default_rng(1)
    clip_video, _, counts = random_layout(rng, 30, max_clips=40)
    for k in (1, 4, 16):
        got = uniform_k(clip_video, k)
        start = 0
        for n in counts:
            pos = np.arange(n) if n <= k else np.floor((np.arange(k) + 0.5) * n / k).astype(int)
            assert np.flatnonzero(got[start : start + n]).tolist() == sorted(pos.tolist())
            start += n


def test_random_k_counts_and_reproducibility():
    rng = np.random.default_rng(2)
    clip_video, _, counts = random_layout(rng, 50, max_clips=12)
    _, starts, _ = video_groups(clip_video)
    a = random_k(clip_video, 3, np.random.default_rng(7))
    b = random_k(clip_video, 3, np.random.default_rng(7))
    c = random_k(clip_video, 3, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.add.reduceat(a.astype(int), starts), np.minimum(counts, 3))
    # Uniform over positions: every position of a 12-clip video gets picked about k/n of runs.
    cv = np.zeros(12, dtype=np.int64)
    freq = np.mean([random_k(cv, 3, np.random.default_rng(s)) for s in range(2000)], axis=0)
    np.testing.assert_allclose(freq, 0.25, atol=0.05)


def test_empirical_scores_is_max_prob():
    probs = np.array([[0.1, 0.7, 0.2], [0.4, 0.3, 0.3]])
    np.testing.assert_allclose(empirical_scores(probs), [0.7, 0.4])


def test_consensus_by_hand():
    clip_video = np.array([2, 2, 2, 5, 5])
    probs = np.array([[0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5], [0.8, 0.2]])
    selected = np.array([True, False, True, False, True])
    videos, avg = consensus(probs, clip_video, selected, "average")
    assert videos.tolist() == [2, 5]
    np.testing.assert_allclose(avg, [[0.2, 0.8], [0.8, 0.2]])
    _, mx = consensus(probs, clip_video, np.ones(5, dtype=bool), "max")
    np.testing.assert_allclose(mx, [[0.6, 0.9], [0.8, 0.5]])
    with pytest.raises(ValueError, match="consensus"):
        consensus(probs, clip_video, selected, "median")
    with pytest.raises(ValueError, match=r"\[5\]"):
        consensus(probs, clip_video, np.array([True, False, False, False, False]), "max")


def test_clip_video_validation():
    videos, starts, counts = video_groups(np.array([3, 3, 3, 7, 7, 9]))
    assert (videos.tolist(), starts.tolist(), counts.tolist()) == ([3, 7, 9], [0, 3, 5], [3, 2, 1])
    with pytest.raises(ValueError, match=r"contiguous.*\[3\]"):
        video_groups(np.array([3, 3, 7, 3]))
    with pytest.raises(ValueError, match="increasing"):
        video_groups(np.array([7, 7, 3]))
    with pytest.raises(ValueError, match="integer"):
        video_groups(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="contiguous"):
        top_k_per_video(np.zeros(3), np.array([0, 1, 0]), 1)


# ---------------------------------------------------------------- ranker


def planted(rng, n_videos, n_clips=8, n_features=16, shift=4.0):
    """Noise features; one clip per video shifted along a fixed direction (the oracle).

    With the shift 4 noise-sigmas, the best possible ranker picks the planted clip of 8 in
    about 98.7% of videos (2.5 sigmas would cap it near 84%).
    """
    direction = np.linspace(-1.0, 1.0, n_features)
    direction /= np.linalg.norm(direction)
    x = rng.normal(size=(n_videos * n_clips, n_features)) + 5.0  # non-zero mean: standardised
    salient = np.arange(n_videos) * n_clips + rng.integers(0, n_clips, n_videos)
    x[salient] += shift * direction
    oracle = np.zeros(len(x), dtype=bool)
    oracle[salient] = True
    return x, np.repeat(np.arange(n_videos), n_clips), oracle


def test_ranker_learns_planted_salient_clip():
    x, cv, oracle = planted(np.random.default_rng(0), 150)
    kw = dict(hidden=32, dropout=0.1, lr=3e-3, weight_decay=1e-4, epochs=40, batch_pairs=32)
    ranker, losses = train_ranker(x, cv, oracle, seed=0, **kw)
    assert len(losses) == 40 and all(isinstance(v, float) for v in losses)
    assert losses[-1] < 0.5 * losses[0]
    assert not ranker.training
    x_test, cv_test, oracle_test = planted(np.random.default_rng(1), 200)
    s = ranker_scores(ranker, x_test, batch=100)
    assert s.shape == (len(x_test),)
    picked = top_k_per_video(s, cv_test, 1)
    hit = (picked & oracle_test).sum() / 200
    assert hit >= 0.95
    # Deterministic from the seed; another seed gives another ranker.
    again, losses_again = train_ranker(x, cv, oracle, seed=0, **kw)
    assert losses_again == losses
    np.testing.assert_array_equal(ranker_scores(again, x_test), s)
    _, losses_other = train_ranker(x, cv, oracle, seed=1, **kw)
    assert losses_other != losses


def test_ranker_standardises_and_needs_eligible_videos():
    ranker = Ranker(3, hidden=4, dropout=0.0, mean=np.array([1.0, 2.0, 3.0]),
                    std=np.array([2.0, 0.0, 1.0]))  # fmt: skip
    assert ranker.std.tolist() == pytest.approx([2.0, 1e-6, 1.0])
    assert set(dict(ranker.named_buffers())) == {"mean", "std"}
    cv = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="no video"):
        train_ranker(np.zeros((4, 3)), cv, np.array([True, True, False, False]), hidden=4,
                     dropout=0.0, lr=1e-3, weight_decay=0.0, epochs=1, batch_pairs=4,
                     seed=0)  # fmt: skip


# ---------------------------------------------------------------- evaluation (Table 6)


def active_idle_case(rng, n_videos=30, n_clips=10, n_classes=4, n_active=2):
    """Idle clips: uniform probs; active clips: confident in the video's class."""
    cv = np.repeat(np.arange(n_videos), n_clips)
    y = rng.integers(0, n_classes, n_videos)
    probs = np.full((len(cv), n_classes), 1.0 / n_classes)
    active = np.zeros(len(cv), dtype=bool)
    for v in range(n_videos):  # test set-up only
        active[v * n_clips + rng.choice(n_clips, n_active, replace=False)] = True
    probs[active] = 0.1 / (n_classes - 1)
    probs[active, y[cv[active]]] = 0.9
    labels = np.zeros((n_videos, n_classes), dtype=bool)
    labels[np.arange(n_videos), y] = True
    return probs, cv, labels, active


def test_evaluate_selection_single_label():
    probs, cv, labels, active = active_idle_case(np.random.default_rng(0))
    names = ["a", "b", "c", "d"]
    out = evaluate_selection(probs, cv, labels, False, names, 2, active.astype(float),
                             random_repeats=5, seed=0)  # fmt: skip
    assert json.loads(json.dumps(out)) == out
    assert (out["k"], out["videos"], out["clips"], out["metric"]) == (2, 30, 300, "top1")
    m = out["methods"]
    assert set(m) == {"dense", "random", "uniform", "empirical", "ranker", "oracle"}
    assert m["dense"]["clips_used"] == 1.0 and m["dense"]["mean_clips_per_video"] == 10.0
    for name in ("random", "uniform", "empirical", "ranker", "oracle"):
        assert m[name]["clips_used"] == pytest.approx(0.2)
        assert m[name]["mean_clips_per_video"] == 2.0
    for how in ("average", "max"):
        assert set(m["random"][how]) == {"top1", "top1_std", "mean_class_accuracy",
                                         "mean_class_accuracy_std"}  # fmt: skip
        assert m["ranker"][how]["top1"] == 1.0
        assert m["ranker"][how]["top1"] > m["random"][how]["top1"]
        assert m["oracle"][how]["top1"] >= m["dense"][how]["top1"]
        assert m["empirical"][how]["top1"] == 1.0
        assert m["random"][how]["top1_std"] > 0.0
    # Random clips hit an active clip with probability 1 - C(8,2)/C(10,2) = 0.378; otherwise the
    # uniform probs predict class 0 (first argmax).
    y = labels.argmax(axis=1)
    p_hit = 1 - 28 / 45
    assert m["random"]["average"]["top1"] == pytest.approx(
        p_hit + (1 - p_hit) * np.mean(y == 0), abs=0.15)  # fmt: skip
    again = evaluate_selection(probs, cv, labels, False, names, 2, active.astype(float),
                               random_repeats=5, seed=0)  # fmt: skip
    assert again == out


def test_evaluate_selection_multi_label():
    rng = np.random.default_rng(3)
    probs, cv, labels, active = active_idle_case(rng, n_videos=40)
    labels[:, 0] |= rng.random(40) < 0.3  # some videos get a second label
    labels[5] = False  # a video without labels
    names = ["a", "b", "c", "d"]
    out = evaluate_selection(probs, cv, labels, True, names, 3, None, random_repeats=3, seed=1)
    assert out["metric"] == "mAP" and "ranker" not in out["methods"]
    m = out["methods"]
    _, dense_avg = consensus(probs, cv, np.ones(len(cv), dtype=bool), "average")
    assert m["dense"]["average"]["mAP"] == pytest.approx(
        multi_label_metrics(dense_avg, labels, names)["mAP"])  # fmt: skip
    assert set(m["random"]["max"]) == {"mAP", "mAP_std"}
    for how in ("average", "max"):
        assert 0.0 < m["random"][how]["mAP"] <= m["oracle"][how]["mAP"]
        assert m["oracle"][how]["mAP"] >= m["dense"][how]["mAP"]


def _clip_files(tmp_path, videos=60, clips=6, classes=3):
    """A clip logits file where one clip per video is salient: f is confident and right on it
    and its features are shifted; the other clips have flat logits and noise features."""
    from jmrn.logits_file import write_logits

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, videos)
    salient = rng.integers(0, clips, videos)
    n = videos * clips
    video = np.repeat(np.arange(videos), clips)
    is_salient = np.arange(clips)[None].repeat(videos, 0).ravel() == salient[video]
    logits = rng.normal(0, 0.3, (n, classes))
    logits[is_salient, labels[video[is_salient]]] += 4.0
    features = rng.normal(0, 1, (n, 8))
    features[is_salient, 0] += 4.0
    ids = [f"v{v}#{k}" for v in range(videos) for k in range(clips)]
    onehot = np.eye(classes, dtype=bool)[labels[video]]
    half = n // 2
    common = dict(dataset="t", params_hash="h", class_names=list("abc")[:classes],
                  multi_label=False, labels=onehot)  # fmt: skip
    write_logits(tmp_path / "clips.h5", model="jmrn", video_ids=ids, logits=logits,
                 features=features, splits={"train": np.arange(half), "test": np.arange(half, n)},
                 parent_ids=[i.rsplit("#", 1)[0] for i in ids], **common)  # fmt: skip
    order = rng.permutation(n)
    write_logits(tmp_path / "rgb.h5", model="rgb", video_ids=[ids[i] for i in order],
                 logits=logits[order], features=None, splits={}, **common)  # fmt: skip
    return tmp_path / "clips.h5", tmp_path / "rgb.h5"


RANKER = {"hidden": 16, "dropout": 0.0, "lr": 1e-2, "weight_decay": 0.0, "epochs": 40,
          "batch_pairs": 16, "random_repeats": 5, "seed": 0}  # fmt: skip


def _select(clips_path, k: int, classifier_path=None) -> dict:
    from jmrn.clip_selection import run_clip_selection
    from jmrn.logits_file import Logits

    own = Logits(clips_path)
    classifier = Logits(classifier_path) if classifier_path else own
    return run_clip_selection(own, classifier, train_split="train", test_split="test", k=k,
                              ranker_settings=RANKER)  # fmt: skip


def test_run_clip_selection_ranker_finds_the_salient_clips(tmp_path):
    clips_path, external_path = _clip_files(tmp_path)
    table = _select(clips_path, k=1)["metrics"]
    assert table["ranker_oracle_overlap"] >= 0.9
    top1 = {m: v["average"]["top1"] for m, v in table["methods"].items()}
    assert top1["ranker"] >= 0.9 and top1["ranker"] > top1["random"] + 0.3
    assert table["train"] == {"videos": 30, "clips": 180, "oracle_clips": 30}
    # the same classifier as an external file, rows in another order: the same table
    assert _select(clips_path, k=1, classifier_path=external_path)["metrics"] == table


def test_videos_with_at_most_k_clips_skip_the_ranker_and_equal_dense(tmp_path):
    """Short videos (each of 6 clips, K = 6): nothing to select, nothing for the ranker to
    learn; the table is still defined, every method is Dense, and the skip says why."""
    clips_path, _ = _clip_files(tmp_path)
    result = _select(clips_path, k=6)
    table = result["metrics"]
    assert result["ranker"] is None and result["losses"] == []
    assert "no training video has more than K = 6 clips" in result["ranker_skipped"]
    assert table["ranker_trained"] is False
    assert table["videos_with_more_than_k_clips"] == {"train": 0, "test": 0}
    assert "ranker" not in table["methods"] and table["ranker_oracle_overlap"] is None
    dense = table["methods"]["dense"]["average"]["top1"]
    for method in ("random", "uniform", "empirical", "oracle"):
        assert table["methods"][method]["average"]["top1"] == dense
        assert table["methods"][method]["clips_used"] == 1.0
    trained = _select(clips_path, k=5)
    assert trained["ranker"] is not None and trained["ranker_skipped"] is None
    assert trained["metrics"]["ranker_trained"] is True
    assert trained["metrics"]["videos_with_more_than_k_clips"] == {"train": 30, "test": 30}
