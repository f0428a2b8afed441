"""Training losses: classification loss and the joint-contrastive loss (method.md §5).

Total loss of one step (method.md §5.3), both views going through the classifier:

    L = classification_loss(logits of the 2B inputs, targets repeated for both views)
        + contrastive_weight(epoch, ...) * joint_contrastive_loss(z, targets, variant, tau)

Decisions (method.md §10):

* §10.18 — the joint-contrastive loss is standard supervised-contrastive loss (SupCon) computed
  for every joint separately and averaged over all V * 2B anchors, anchors without a positive
  counting as 0. The official code's transposed sums give exactly the same value (method.md
  §5.1), so the clean form is written here. No temperature / base-temperature factor.
* §10.19 — the warm-up keeps the authors' schedule exactly: s(start) = 0, so the released
  JHMDB (start 50, ramp 50, 100 epochs) and Charades (start 0, ramp 100, 75 epochs) runs never
  reach the full weight (peaks 0.98 and 0.74).
* §10.23 — the classification loss is taken over both views (batch 2B); the caller repeats the
  targets.
* Labels given to the contrastive loss are float (B, K) targets; a class counts as a label of
  a sample where its target is > 0. One-hot targets give "same class", multi-hot targets "at
  least one class in common"; a CutMix-mixed target counts as a label for every mixed class.
* Everything contrastive is computed in float32 with autocast disabled, so the loss is the
  same under bf16/fp16 autocast as without it (up to the rounding of the embeddings passed in).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

VARIANTS = ("proposed", "only_aug", "multi_label_weighted")
"""Positive-mask variants (method.md §5.2). Official code names: ``proposed`` = ``all``
(single-label) and ``all_charades_atleast_one`` (multi-label); ``only_aug`` = ``only_aug``;
``multi_label_weighted`` = ``all_charades_weighted``."""

_WEIGHTED_EPS = 1e-3  # the official code's epsilon in (#shared) / (max(n_i, n_k) + eps)


def classification_loss(
    logits: torch.Tensor, targets: torch.Tensor, multi_label: bool
) -> torch.Tensor:
    """Classification loss of ``logits`` (N, K) against float ``targets`` (N, K).

    Single-label: cross-entropy with (possibly soft, e.g. CutMix-mixed) target distributions,
    ``-sum_k t_nk log softmax(x_n)_k`` averaged over the N samples; with one-hot targets this
    is ``F.cross_entropy`` on the class indices. Multi-label: binary cross-entropy with logits
    averaged over all N * K entries (as the authors do for Charades). Computed in float32.
    """
    if logits.ndim != 2 or logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} "
                         "must both be (N, K)")  # fmt: skip
    logits = logits.float()
    targets = targets.to(device=logits.device, dtype=torch.float32)
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, targets)
    return F.cross_entropy(logits, targets)


def positive_mask(labels: torch.Tensor, variant: str) -> torch.Tensor:
    """Positive weights m (2B, 2B) for the two views stacked as [view 1 of all B; view 2 of all B].

    ``labels`` is (B, K) float, multi-hot (single-label: one-hot); a class is a label of a
    sample where its entry is > 0. The B x B sample-level mask is tiled over the two views and
    the diagonal (an embedding with itself) is set to 0. Variants (method.md §5.2):

    * ``proposed``: 1 where the two samples share at least one label (single-label: same
      class); this includes the other view of the same sample, provided it has a label.
    * ``only_aug``: 1 only between the two views of the same sample (labels unused).
    * ``multi_label_weighted``: #shared labels / (max(n_i, n_k) + 1e-3), n_i = number of
      labels of sample i.

    A sample without labels has no positive at all in the label-based variants, not even its
    own other view. The result is symmetric, float32, on ``labels``' device.
    """
    if labels.ndim != 2:
        raise ValueError(f"labels must be (B, K), got {tuple(labels.shape)}")
    b = labels.shape[0]
    if variant == "only_aug":
        m = torch.eye(b, device=labels.device, dtype=torch.float32)
    elif variant in ("proposed", "multi_label_weighted"):
        present = (labels > 0).to(torch.float32)
        shared = present @ present.T  # (B, B) number of labels in common
        if variant == "proposed":
            m = (shared > 0).to(torch.float32)
        else:
            n = present.sum(dim=1)
            m = shared / (torch.maximum(n[:, None], n[None, :]) + _WEIGHTED_EPS)
    else:
        raise ValueError(f"unknown contrastive variant {variant!r}; expected one of {VARIANTS}")
    m = m.repeat(2, 2)
    m.fill_diagonal_(0.0)
    return m


def joint_contrastive_loss(
    z: torch.Tensor, labels: torch.Tensor, variant: str, tau: float
) -> torch.Tensor:
    """Per-joint supervised-contrastive loss (method.md §5.1), a scalar float32 tensor.

    ``z`` is (2B, V, D): L2-normalised embeddings of every joint (rows 0..B-1 = view 1 of the
    B samples, rows B..2B-1 = view 2, in the same sample order); ``labels`` (B, K) as in
    :func:`positive_mask`. For joint j and anchor i (of the 2B embeddings of that joint):

        l_ij = -(1 / sum_p m_ip) sum_{p != i} m_ip log[ exp(z_i.z_p / tau)
                                                         / sum_{k != i} exp(z_i.z_k / tau) ]

    and the loss is the mean of l_ij over all V * 2B anchors; an anchor with no positive
    contributes 0 but still counts in the mean. Only the same joint is compared across
    embeddings; every other embedding of that joint is in the denominator. ``z`` is not
    re-normalised here.
    """
    if z.ndim != 3 or z.shape[0] % 2:
        raise ValueError(f"z must be (2B, V, D), got {tuple(z.shape)}")
    if labels.shape[0] * 2 != z.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} samples, z has {z.shape[0]} rows "
                         "(expected 2 views per sample)")  # fmt: skip
    n = z.shape[0]
    if n < 2:
        raise ValueError("joint_contrastive_loss needs at least one sample (two views)")
    m = positive_mask(labels, variant).to(z.device)
    self_mask = torch.eye(n, device=z.device, dtype=torch.bool)
    with torch.autocast(device_type=z.device.type, enabled=False):
        zj = z.float().transpose(0, 1)  # (V, 2B, D)
        logits = torch.bmm(zj, zj.transpose(1, 2)) / tau  # (V, 2B, 2B)
        # log-softmax over k != i: the self-similarity is removed from the normaliser.
        logits = logits.masked_fill(self_mask, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        log_prob = log_prob.masked_fill(self_mask, 0.0)  # m_ii = 0; avoid 0 * -inf
        n_pos = m.sum(dim=1)  # (2B,)
        pos_log_prob = (m * log_prob).sum(dim=-1)  # (V, 2B)
        per_anchor = torch.where(n_pos > 0, -pos_log_prob / n_pos.clamp_min(1e-12), 0.0)
        return per_anchor.mean()


def contrastive_weight(epoch: int, lam: float, start_epoch: int, ramp_epochs: int) -> float:
    """Weight of the joint-contrastive loss at ``epoch`` (0-based, constant within an epoch).

    lam * s(e), s(e) = 0 for e < start, else min((e - start) / ramp, 1); with ramp <= 0 the
    weight jumps to lam at e = start. As in the authors' code s(start) = 0 (method.md §10.19):
    JHMDB (50, 50) peaks at 0.98 * lam at epoch 99, HMDB (0, 100) reaches lam at epoch 100,
    Charades (0, 100) over 75 epochs peaks at 0.74 * lam.
    """
    if epoch < start_epoch:
        return 0.0
    if ramp_epochs <= 0:
        return float(lam)
    return float(lam) * min((epoch - start_epoch) / ramp_epochs, 1.0)
