"""Pose-guided clip selection (JMRN, WACV 2022, supplementary §6).

A clip classifier f scores every 16-frame clip of a video. "Dense" aggregates f over all
clips; the selection methods keep K clips per video and aggregate f over those only. The
oracle keeps the K clips on which f is most confident in the video's true class; a small
"saliency ranker" on per-clip features is trained to mimic it with a pairwise (RankNet) loss
on (oracle, non-oracle) clip pairs of the same video, so it can pick clips without labels.

Conventions: ``clip_video`` (N,) gives each clip's video index; clips of one video are
contiguous and in temporal order, videos in increasing (not necessarily consecutive) order.
``probs`` (N, K) are f's per-clip class probabilities; ``video_labels`` (V, K) bool multi-hot
is indexed by the video index. Everything is vectorised over clips with numpy group ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jmrn.logits_file import Logits
from jmrn.metrics import multi_label_metrics, single_label_metrics
from jmrn.progress import announce_total

CONSENSUS = ("average", "max")


def video_groups(clip_video: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(videos, starts, counts) of the contiguous per-video clip groups.

    Validated because every group op below (reduceat, rank = position - start) silently gives
    wrong answers on interleaved or unordered videos.
    """
    cv = np.asarray(clip_video)
    if cv.ndim != 1 or cv.size == 0 or not np.issubdtype(cv.dtype, np.integer):
        raise ValueError(f"clip_video must be a non-empty 1-D integer array, got {cv.dtype}"
                         f" {cv.shape}")  # fmt: skip
    if cv.min() < 0:
        raise ValueError("clip_video must hold non-negative video indices")
    starts = np.flatnonzero(np.r_[True, cv[1:] != cv[:-1]])
    videos = cv[starts]
    uniq, runs = np.unique(videos, return_counts=True)
    if np.any(runs > 1):
        raise ValueError("clip_video: the clips of a video must be contiguous, but video(s) "
                         f"{uniq[runs > 1].tolist()} appear in separate runs")  # fmt: skip
    if np.any(np.diff(videos) < 0):
        raise ValueError("clip_video: videos must appear in increasing order")
    return videos, starts, np.diff(np.r_[starts, len(cv)])


def _positions(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Position of every clip within its video (0 = first clip)."""
    return np.arange(counts.sum()) - np.repeat(starts, counts)


def true_class_scores(
    probs: np.ndarray, clip_video: np.ndarray, video_labels: np.ndarray, multi_label: bool
) -> np.ndarray:
    """f's probability of the clip's true class (N,); multi-label: mean over the true classes.

    A video without labels gets -inf (never NaN), so it sorts last and never looks salient.
    """
    videos, _, _ = video_groups(clip_video)
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(video_labels, dtype=bool)
    if probs.shape != (len(clip_video), labels.shape[1]) or labels.shape[0] <= videos[-1]:
        raise ValueError(f"probs {probs.shape}, clip_video ({len(clip_video)},) and "
                         f"video_labels {labels.shape} do not match")  # fmt: skip
    n_true = labels.sum(axis=1)
    if not multi_label and np.any(n_true[videos] != 1):
        raise ValueError("single-label video_labels need exactly one True per video")
    clip_labels = labels[clip_video]
    total = (probs * clip_labels).sum(axis=1)
    n = n_true[clip_video]
    return np.where(n > 0, total / np.maximum(n, 1), -np.inf)


def top_k_per_video(scores: np.ndarray, clip_video: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: the k highest-scoring clips of every video; ties go to the earlier clip."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _, starts, counts = video_groups(clip_video)
    scores = np.asarray(scores, dtype=np.float64)
    # Stable sort by (video, -score): video groups keep their slots, so rank = index - start.
    order = np.lexsort((-scores, clip_video))
    selected = np.zeros(len(scores), dtype=bool)
    selected[order] = _positions(starts, counts) < k
    return selected


def oracle_labels(
    probs: np.ndarray, clip_video: np.ndarray, video_labels: np.ndarray, multi_label: bool, k: int
) -> np.ndarray:
    """(N,) bool: the top-k clips by true-class probability; unlabelled videos all False."""
    scores = true_class_scores(probs, clip_video, video_labels, multi_label)
    return top_k_per_video(scores, clip_video, k) & np.isfinite(scores)


def empirical_scores(probs: np.ndarray) -> np.ndarray:
    """"Empirical" saliency (N,): f's confidence in its own prediction, i.e. the clip's max
    class probability. Uses no label, so it is a fair label-free baseline for the ranker."""
    return np.asarray(probs, dtype=np.float64).max(axis=1)


def uniform_k(clip_video: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: k evenly spaced clips per video, TSN segment centres floor((i + 0.5) n / k)."""
    _, starts, counts = video_groups(clip_video)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    selected = np.repeat(counts <= k, counts)  # short videos: every clip
    long = counts > k
    i = np.arange(k)
    pos = ((2 * i[None, :] + 1) * counts[long, None]) // (2 * k)  # exact integer floor
    selected[(starts[long, None] + pos).ravel()] = True
    return selected


def random_k(clip_video: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(N,) bool: k clips per video drawn uniformly without replacement (all if n <= k)."""
    return top_k_per_video(rng.random(len(clip_video)), clip_video, k)


def consensus(
    probs: np.ndarray, clip_video: np.ndarray, selected: np.ndarray, how: str
) -> tuple[np.ndarray, np.ndarray]:
    """(videos (G,), scores (G, K)): "average" or "max" of probs over each video's selection."""
    if how not in CONSENSUS:
        raise ValueError(f"consensus must be one of {CONSENSUS}, got {how!r}")
    videos, starts, _ = video_groups(clip_video)
    selected = np.asarray(selected, dtype=bool)
    n_sel = np.add.reduceat(selected.astype(np.int64), starts)
    if np.any(n_sel == 0):
        raise ValueError(f"videos {videos[n_sel == 0].tolist()} have no selected clip")
    sub = np.asarray(probs, dtype=np.float64)[selected]
    sub_starts = np.r_[0, np.cumsum(n_sel)[:-1]]
    if how == "max":
        return videos, np.maximum.reduceat(sub, sub_starts, axis=0)
    return videos, np.add.reduceat(sub, sub_starts, axis=0) / n_sel[:, None]


class Ranker(nn.Module):
    """Saliency ranker: an MLP scoring one clip from its feature vector.

    Standardisation statistics are buffers so they travel with the state dict: a saved ranker
    scores raw features exactly as it did during training.
    """

    def __init__(
        self, n_features: int, hidden: int, dropout: float,
        mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        mean = torch.zeros(n_features) if mean is None else mean
        std = torch.ones(n_features) if std is None else std
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))
        self.mlp = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, 1))  # fmt: skip

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp((features - self.mean) / self.std).squeeze(-1)


def train_ranker(
    features: np.ndarray, clip_video: np.ndarray, oracle: np.ndarray, *, hidden: int,
    dropout: float, lr: float, weight_decay: float, epochs: int, batch_pairs: int, seed: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[Ranker, list[float]]:  # fmt: skip
    """Train a Ranker with RankNet loss softplus(-(s_oracle - s_other)); returns (eval-mode
    ranker, mean loss per epoch). ``progress`` (e.g. a ``jmrn.progress.StageBar``) is told
    the number of epochs, then called once per epoch.

    Each epoch draws one oracle and one non-oracle clip of every eligible video (one with both),
    so every batch is balanced between the two and no long video dominates. Randomness comes
    from ``seed`` only; the global torch RNG is forked so callers' RNG state is untouched.
    """
    _, starts, counts = video_groups(clip_video)
    oracle = np.asarray(oracle, dtype=bool)
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim != 2 or len(x) != len(oracle) or len(oracle) != len(clip_video):
        raise ValueError("features (N, F), clip_video (N,) and oracle (N,) do not match")
    n_pos = np.add.reduceat(oracle.astype(np.int64), starts)
    eligible = (n_pos > 0) & (n_pos < counts)
    if not eligible.any():
        raise ValueError("no video has both an oracle and a non-oracle clip")
    first, last = starts[eligible], (starts + counts - 1)[eligible]
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # initial weights and dropout masks
        ranker = Ranker(x.shape[1], hidden, dropout, x.mean(0), x.std(0, unbiased=False))
        opt = torch.optim.Adam(ranker.parameters(), lr=lr, weight_decay=weight_decay)
        ranker.train()
        announce_total(progress, epochs)
        for _ in range(epochs):
            # Sorting by (video, oracle, random key) puts a random non-oracle clip first and a
            # random oracle clip last in every video's slots.
            order = np.lexsort((rng.random(len(oracle)), oracle, clip_video))
            pairs = np.stack([order[last], order[first]], axis=1)[rng.permutation(len(first))]
            pairs_t = torch.as_tensor(pairs)
            total = 0.0
            for b in range(0, len(pairs_t), batch_pairs):
                batch = pairs_t[b : b + batch_pairs]
                s = ranker(x[batch.T.reshape(-1)]).view(2, -1)
                loss = F.softplus(-(s[0] - s[1])).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(batch)
            losses.append(total / len(pairs_t))
            if progress is not None:
                progress(1)
    return ranker.eval(), losses


@torch.no_grad()
def ranker_scores(ranker: Ranker, features: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Saliency score (N,) of every clip, computed in eval mode (no dropout)."""
    was_training = ranker.training
    ranker.eval()
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    out = torch.cat([ranker(x[i : i + batch]) for i in range(0, len(x), batch)])
    ranker.train(was_training)
    return out.numpy().astype(np.float64)


def evaluate_selection(
    probs: np.ndarray, clip_video: np.ndarray, video_labels: np.ndarray, multi_label: bool,
    class_names: Sequence[str], k: int, saliency: np.ndarray | None, *,
    random_repeats: int, seed: int, ap: str = "charades",
) -> dict:  # fmt: skip
    """Video-level metric of every selection method and consensus (the paper's Table 6).

    Methods: dense, random (mean and std over ``random_repeats`` draws), uniform, empirical,
    ranker (top-k by ``saliency``, the ranker's scores; skipped if None) and oracle (uses the
    labels: an upper bound; in multi-label data unlabelled videos keep their first k clips,
    which cannot change mAP as the metric ranks them last). Plain JSON-serialisable output.
    """
    if random_repeats < 1:
        raise ValueError(f"random_repeats must be >= 1, got {random_repeats}")
    videos, _, counts = video_groups(clip_video)
    labels = np.asarray(video_labels, dtype=bool)
    true_scores = true_class_scores(probs, clip_video, labels, multi_label)
    keys = ("mAP",) if multi_label else ("top1", "mean_class_accuracy")

    def metrics(selected: np.ndarray, how: str) -> dict:
        _, scores = consensus(probs, clip_video, selected, how)
        if multi_label:
            out = multi_label_metrics(scores, labels[videos], class_names, ap)
        else:
            out = single_label_metrics(scores, labels[videos].argmax(axis=1), class_names)
        return {key: out[key] for key in keys}

    rng = np.random.default_rng(seed)
    selections = {
        "dense": [np.ones(len(clip_video), dtype=bool)],
        "random": [random_k(clip_video, k, rng) for _ in range(random_repeats)],
        "uniform": [uniform_k(clip_video, k)],
        "empirical": [top_k_per_video(empirical_scores(probs), clip_video, k)],
        "oracle": [top_k_per_video(true_scores, clip_video, k)],
    }
    if saliency is not None:
        selections["ranker"] = [top_k_per_video(saliency, clip_video, k)]
    methods: dict[str, dict] = {}
    for name, draws in selections.items():
        used = int(draws[0].sum())
        entry: dict = {"clips_used": used / len(clip_video),
                       "mean_clips_per_video": used / len(videos)}  # fmt: skip
        for how in CONSENSUS:
            runs = [metrics(sel, how) for sel in draws]
            entry[how] = {}
            for key in keys:
                vals = [r[key] for r in runs]
                ok = all(v is not None for v in vals)
                entry[how][key] = float(np.mean(vals)) if ok else None
                if name == "random":
                    entry[how][f"{key}_std"] = float(np.std(vals)) if ok else None
        methods[name] = entry
    return {"k": int(k), "videos": int(len(videos)), "clips": int(counts.sum()),
            "metric": keys[0], "methods": methods}  # fmt: skip


def clip_probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """f's per-clip class probabilities: softmax, or sigmoid for multi-label data."""
    x = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    return (torch.sigmoid(x) if multi_label else torch.softmax(x, dim=1)).numpy()


def run_clip_selection(clip_logits: Logits, classifier: Logits, *, train_split: str,
                       test_split: str, k: int, ranker_settings: dict, ap: str = "charades",
                       progress: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """The clips stage: oracle on the training videos, ranker, Table-6 evaluation on test.

    ``clip_logits`` is JMRN's clip file (features for the ranker, clip-to-video map, labels,
    splits); ``classifier`` is f: the same file, or an external clip model's logits, aligned
    by clip id. Returns the metrics, the ranker and its loss per epoch. When no training
    video has more than K clips the ranker is skipped (None, ``ranker_trained`` false in the
    metrics, the reason in ``ranker_skipped``): every K-selection then keeps all clips.
    ``progress`` follows the ranker's epochs (``train_ranker``).
    """
    if clip_logits.parent_ids is None or clip_logits.labels is None:
        raise ValueError(f"{clip_logits.path}: not a clip logits file (no parent_id / labels)")
    if classifier.class_names != clip_logits.class_names:
        raise ValueError(f"{classifier.path}: class list differs from {clip_logits.path}'s")
    for split in (train_split, test_split):
        if split not in clip_logits.splits:
            raise ValueError(f"{clip_logits.path}: no split {split!r}")
    multi_label = bool(clip_logits.multi_label)
    index: dict[str, int] = {}
    clip_video = np.array([index.setdefault(p, len(index)) for p in clip_logits.parent_ids])
    first_clip = np.unique(clip_video, return_index=True)[1]
    video_labels = clip_logits.labels[first_clip]
    logits = classifier.logits[classifier.rows(clip_logits.video_ids)]
    probs = clip_probabilities(logits, multi_label)

    train = clip_logits.splits[train_split]
    oracle = oracle_labels(probs[train], clip_video[train], video_labels, multi_label, k)
    test = clip_logits.splits[test_split]
    longer = {name: int((np.bincount(clip_video[rows]) > k).sum())
              for name, rows in (("train", train), ("test", test))}  # fmt: skip
    s = ranker_settings
    ranker, losses, saliency = None, [], None
    if longer["train"]:
        ranker, losses = train_ranker(clip_logits.features[train], clip_video[train], oracle,
                                      hidden=s["hidden"], dropout=s["dropout"], lr=s["lr"],
                                      weight_decay=s["weight_decay"], epochs=s["epochs"],
                                      batch_pairs=s["batch_pairs"], seed=s["seed"],
                                      progress=progress)  # fmt: skip
        saliency = ranker_scores(ranker, clip_logits.features[test])
    table = evaluate_selection(probs[test], clip_video[test], video_labels, multi_label,
                               clip_logits.class_names, k, saliency,
                               random_repeats=s["random_repeats"], seed=s["seed"],
                               ap=ap)  # fmt: skip
    skipped = None
    table["ranker_trained"] = ranker is not None
    if ranker is None:  # a documented skip, not an error: the rest of the table is defined
        skipped = (f"no training video has more than K = {k} clips, so the ranker has no "
                   "(oracle, non-oracle) pair to learn from; lower clips.k, clips.clip_len or "
                   "clips.stride")  # fmt: skip
        table["ranker_oracle_overlap"] = None
    else:
        # How often the ranker's K clips are the oracle's (test videos): what it was trained
        # for.
        test_oracle = oracle_labels(probs[test], clip_video[test], video_labels, multi_label, k)
        picked = top_k_per_video(saliency, clip_video[test], k)
        table["ranker_oracle_overlap"] = float((picked & test_oracle).sum() / picked.sum())
    table["train"] = {"videos": int(len(np.unique(clip_video[train]))),
                      "clips": int(len(train)), "oracle_clips": int(oracle.sum())}  # fmt: skip
    table["videos_with_more_than_k_clips"] = longer
    return {"metrics": table, "ranker": ranker, "losses": losses, "ranker_skipped": skipped}
