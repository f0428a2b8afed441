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

import numpy as np
import torch

from jmrn.losses import classification_loss


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
