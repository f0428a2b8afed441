"""Learned late fusion of per-video logits from several modalities (supplementary §3, Eq. 1).

    fused = sum_m alpha_m * logits_m            (single-label: one scalar per modality)
    fused = sum_m alpha_{m,k} * logits_{m,k}    (multi-label: one weight per modality and class)

Decisions (method.md §8.1):
* The weights start at 1/M (the plain average) and are trained with Adam on the training
  split's logits with the classification loss (cross-entropy or BCE), full batch, on the CPU.
* ``l2_normalize`` divides every video's logit vector by its L2 norm first (the paper does this
  for JHMDB and HMDB, whose modalities have very different logit scales).
* Training is deterministic: full-batch gradient descent from a fixed start, no sampling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jmrn.logits_file import Logits, align
from jmrn.losses import classification_loss
from jmrn.metrics import multi_label_metrics, single_label_metrics


def prepare(logits: list[np.ndarray], l2_normalize: bool) -> torch.Tensor:
    """Stack M modalities' (N, K) logits into an (M, N, K) float32 tensor."""
    shapes = {np.shape(x) for x in logits}
    if len(shapes) != 1:
        raise ValueError(f"modalities disagree on the logits shape: {sorted(shapes)}")
    stacked = torch.as_tensor(np.stack(logits), dtype=torch.float32)
    if l2_normalize:
        stacked = stacked / stacked.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return stacked


def fuse(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(M, N, K) logits and (M,) or (M, K) weights -> (N, K) fused logits."""
    if weights.dim() == 1:
        return torch.einsum("mnk,m->nk", logits, weights)
    return torch.einsum("mnk,mk->nk", logits, weights)


def fit_fusion(
    logits: list[np.ndarray],
    targets: np.ndarray,
    *,
    multi_label: bool,
    per_class: bool,
    l2_normalize: bool,
    lr: float,
    epochs: int,
) -> np.ndarray:
    """Learn the fusion weights on training logits; returns (M,) or (M, K) weights."""
    x = prepare(logits, l2_normalize)
    t = torch.as_tensor(targets, dtype=torch.float32)
    m, _, k = x.shape
    weights = torch.full((m, k) if per_class else (m,), 1.0 / m, requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=lr)
    for _ in range(epochs):
        optimizer.zero_grad()
        classification_loss(fuse(x, weights), t, multi_label).backward()
        optimizer.step()
    return weights.detach().numpy()


def apply_fusion(logits: list[np.ndarray], weights: np.ndarray, l2_normalize: bool) -> np.ndarray:
    """Fused (N, K) scores of M modalities' logits with learned weights."""
    return fuse(prepare(logits, l2_normalize), torch.as_tensor(weights)).numpy()


def _video_metrics(scores: np.ndarray, labels: np.ndarray, multi_label: bool,
                   class_names: list[str], ap: str = "charades") -> tuple[float, dict]:  # fmt: skip
    """(the dataset's main metric, its per-class values): top-1 and per-class accuracy, or
    mAP (Charades-style or VOC, ``ap``) and per-class AP."""
    if multi_label:
        m = multi_label_metrics(scores, labels, class_names, ap)
        return m["mAP"] or 0.0, m["per_class_ap"]
    m = single_label_metrics(scores, labels.argmax(1), class_names)
    return m["top1"], m["per_class_accuracy"]


def run_fusion(modality_paths: list[Path], *, train_split: str, test_split: str,
               settings: dict, skipped_by_ingest: set[str] = frozenset(),
               score_splits: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """Learn the fusion weights on ``train_split`` and score everything on ``test_split``.

    The first path is the pose model (JMRN): its file defines the videos, labels and splits.
    Every other modality must have logits for all of them, and nothing else except videos
    that ingest skipped (counted in the result). Returns the metrics (each modality alone,
    the plain average, the learned fusion, the weights) and the per-class differences
    fused minus pose; and, for each of ``score_splits`` the pose model's file has, the
    scores of that split to evaluate elsewhere (AVA's detected boxes): ``video_ids`` and the
    logits of every modality that covers the split, with ``average`` and ``fused`` when all
    do.
    """
    modalities = [Logits(p) for p in modality_paths]
    pose = modalities[0]
    names = [m.model for m in modalities]
    if len(set(names)) != len(names):
        raise ValueError(f"two modalities have the same model name: {names} ({modality_paths})")
    if pose.labels is None or pose.multi_label is None:
        raise ValueError(f"{pose.path}: the pose model's logits must carry labels")
    multi_label = pose.multi_label
    for split in (train_split, test_split):
        if split not in pose.splits:
            raise ValueError(f"{pose.path}: no split {split!r}; it has {sorted(pose.splits)}")
    known, dropped = set(pose.video_ids), {}
    for m in modalities[1:]:
        if m.multi_label is not None and m.multi_label != multi_label:
            raise ValueError(f"{m.path}: multi_label={m.multi_label}, the pose model's is "
                             f"{multi_label}")  # fmt: skip
        extra = [v for v in m.video_ids if v not in known]
        unknown = [v for v in extra if v not in skipped_by_ingest]
        if unknown:
            raise ValueError(f"{m.path}: {len(unknown)} video ids are not in the dataset "
                             f"(first: {unknown[0]!r}); ids must be those of keypoints.h5")
        dropped[m.model] = len(extra)
    ids = {s: [pose.video_ids[i] for i in pose.splits[s]] for s in (train_split, test_split)}
    logits = {s: align(modalities, ids[s]) for s in ids}
    for m in modalities[1:]:
        if m.labels is not None:
            rows = m.rows(ids[train_split] + ids[test_split])
            order = pose.rows(ids[train_split] + ids[test_split])
            if (m.labels[rows] != pose.labels[order]).any():
                raise ValueError(f"{m.path}: its labels disagree with the dataset's")
    targets = {s: pose.labels[pose.splits[s]] for s in ids}
    weights = fit_fusion(logits[train_split], targets[train_split], multi_label=multi_label,
                         per_class=settings["per_class_weights"],
                         l2_normalize=settings["l2_normalize"], lr=settings["lr"],
                         epochs=settings["epochs"])  # fmt: skip
    test, classes, ap = logits[test_split], pose.class_names, settings.get("ap", "charades")
    scored = {name: _video_metrics(x, targets[test_split], multi_label, classes, ap)
              for name, x in zip(names, test, strict=True)}  # fmt: skip
    m = len(modalities)
    average = apply_fusion(test, np.full(m, 1.0 / m, np.float32), settings["l2_normalize"])
    fused = apply_fusion(test, weights, settings["l2_normalize"])
    scored["average"] = _video_metrics(average, targets[test_split], multi_label, classes, ap)
    scored["fused"] = _video_metrics(fused, targets[test_split], multi_label, classes, ap)
    key = "mAP" if multi_label else "top1"
    best_single = max(names, key=lambda n: scored[n][0])
    metrics = {
        "metric": key,
        "modalities": names,
        "test": {name: {key: value} for name, (value, _) in scored.items()},
        "best_single": best_single,
        "fused_minus_best_single": scored["fused"][0] - scored[best_single][0],
        "weights": {name: (w.tolist() if np.ndim(w) else float(w))
                    for name, w in zip(names, weights, strict=True)},  # fmt: skip
        "videos": {"train": len(ids[train_split]), "test": len(ids[test_split])},
        "dropped_skipped_by_ingest": dropped,
    }
    # Supplementary Figs. 2-3: which classes the other modalities help (classes without test
    # videos, or without positives, have no value and are left out).
    fused_pc, pose_pc = scored["fused"][1], scored[names[0]][1]
    per_class = [{"class": c, "fused_minus_pose": fused_pc[c] - pose_pc[c]}
                 for c in classes if fused_pc[c] is not None and pose_pc[c] is not None]
    scores = {}
    for split in score_splits:
        if split not in pose.splits:
            continue
        split_ids = [pose.video_ids[i] for i in pose.splits[split]]
        covering = [mod for mod in modalities if set(split_ids) <= set(mod.video_ids)]
        x = align(covering, split_ids)
        scores[split] = {"video_ids": split_ids}
        scores[split].update((mod.model, v) for mod, v in zip(covering, x, strict=True))
        if len(covering) == m:  # m: the number of modalities
            scores[split]["average"] = apply_fusion(x, np.full(m, 1.0 / m, np.float32),
                                                    settings["l2_normalize"])  # fmt: skip
            scores[split]["fused"] = apply_fusion(x, weights, settings["l2_normalize"])
    return {"metrics": metrics, "per_class": per_class, "scores": scores}
