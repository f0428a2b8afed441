"""Losses: the vectorised joint-contrastive loss = the formula of method.md §5.1 written as
loops; positive masks worked by hand; the released warm-up schedules; classification loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from jmrn.losses import (
    VARIANTS,
    classification_loss,
    contrastive_weight,
    joint_contrastive_loss,
    positive_mask,
)


def random_z(b: int, v: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(2 * b, v, d, generator=g, dtype=torch.float64), dim=-1)


def one_hot(classes: list[int], k: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(classes), k).float()


SINGLE = one_hot([0, 1, 0, 2, 1, 3], 4)  # class 3 has one sample: only its other view
MULTI = torch.tensor(
    [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1], [0, 0, 0, 1]],
    dtype=torch.float32,
)  # sample 3 has no label


def naive_mask(labels: list[list[float]], variant: str) -> list[list[float]]:
    """m over 2B embeddings, entry by entry, from method.md §5.2."""
    b = len(labels)
    m = [[0.0] * (2 * b) for _ in range(2 * b)]
    for i in range(2 * b):
        for k in range(2 * b):
            si, sk = i % b, k % b
            if i == k:
                continue
            li = {c for c, t in enumerate(labels[si]) if t > 0}
            lk = {c for c, t in enumerate(labels[sk]) if t > 0}
            if variant == "only_aug":
                m[i][k] = 1.0 if si == sk else 0.0
            elif variant == "proposed":
                m[i][k] = 1.0 if li & lk else 0.0
            else:
                m[i][k] = len(li & lk) / (max(len(li), len(lk)) + 1e-3)
    return m


def naive_loss(z: torch.Tensor, labels: torch.Tensor, variant: str, tau: float) -> float:
    """method.md §5.1, literally: per joint, per anchor, sums over p and k."""
    n, v, _ = z.shape
    m = naive_mask(labels.tolist(), variant)
    total = 0.0
    for j in range(v):
        for i in range(n):
            norm = sum(math.exp(float(z[i, j] @ z[k, j]) / tau) for k in range(n) if k != i)
            n_pos = sum(m[i][p] for p in range(n) if p != i)
            if n_pos == 0:
                continue  # contributes 0, still counted below
            s = 0.0
            for p in range(n):
                if p != i and m[i][p] != 0:
                    s += m[i][p] * math.log(math.exp(float(z[i, j] @ z[p, j]) / tau) / norm)
            total += -s / n_pos
    return total / (v * n)


# ---------------------------------------------------------------- joint-contrastive loss


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("labels", [SINGLE, MULTI], ids=["single", "multi"])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_loss_matches_naive_formula(variant, labels, tau):
    z = random_z(len(labels), v=3, d=5, seed=10 * VARIANTS.index(variant) + int(10 * tau))
    got = joint_contrastive_loss(z, labels, variant, tau)
    assert got.dtype == torch.float32 and got.ndim == 0
    assert got.item() == pytest.approx(naive_loss(z, labels, variant, tau), rel=1e-5)


def test_naive_mask_matches_positive_mask():
    for labels in (SINGLE, MULTI):
        for variant in VARIANTS:
            want = torch.tensor(naive_mask(labels.tolist(), variant))
            torch.testing.assert_close(positive_mask(labels, variant), want)


def test_sample_without_label_counts_as_zero_in_the_mean():
    # B = 2, sample 1 without label: only anchors 0 and 2 (the two views of sample 0) have a
    # positive (each other); anchors 1 and 3 add 0 but still count in the mean over V * 4.
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    z = random_z(2, v=2, d=4, seed=3)
    tau = 0.2
    total = 0.0
    for j in range(2):
        s = z[:, j] @ z[:, j].T / tau
        total -= float(s[0, 2] - torch.logsumexp(s[0, [1, 2, 3]], 0))
        total -= float(s[2, 0] - torch.logsumexp(s[2, [0, 1, 3]], 0))
    got = joint_contrastive_loss(z, labels, "proposed", tau)
    assert got.item() == pytest.approx(total / (2 * 4), rel=1e-5)
    assert joint_contrastive_loss(z, torch.zeros(2, 2), "proposed", tau).item() == 0.0


def test_one_sample_only_aug_is_zero():
    # B = 1: each view's only other embedding is its positive, so log-prob = 0.
    z = random_z(1, v=4, d=8, seed=0)
    assert joint_contrastive_loss(z, one_hot([0], 2), "only_aug", 0.1).item() == pytest.approx(0)


def test_loss_lower_when_classes_aligned():
    classes = [0, 1, 2, 0, 1, 2, 0, 1]
    labels = one_hot(classes, 3)
    b, v, d = len(classes), 5, 16
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(3, v, d, generator=g), dim=-1)
    idx = torch.tensor(classes * 2)
    aligned = F.normalize(centres[idx] + 0.05 * torch.randn(2 * b, v, d, generator=g), dim=-1)
    random = F.normalize(torch.randn(2 * b, v, d, generator=g), dim=-1)
    for variant in ("proposed", "multi_label_weighted"):
        la = joint_contrastive_loss(aligned, labels, variant, 0.1)
        lr = joint_contrastive_loss(random, labels, variant, 0.1)
        assert la < lr - 1.0


def test_gradient_is_finite():
    raw = torch.randn(2 * 6, 4, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    for variant in VARIANTS:
        raw.grad = None
        loss = joint_contrastive_loss(F.normalize(raw, dim=-1), MULTI, variant, 0.05)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(raw.grad).all()
        assert raw.grad.abs().sum() > 0


def test_permuting_joints_leaves_value_unchanged():
    z = random_z(6, v=7, d=6, seed=2)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    for variant in VARIANTS:
        a = joint_contrastive_loss(z, MULTI, variant, 0.1)
        b = joint_contrastive_loss(z[:, perm], MULTI, variant, 0.1)
        torch.testing.assert_close(a, b)


def test_stable_at_small_temperature():
    z = random_z(6, v=2, d=4, seed=4).float()
    loss = joint_contrastive_loss(z, SINGLE, "proposed", 1e-3)
    assert torch.isfinite(loss)


def test_autocast_computes_in_float32():
    z = random_z(6, v=3, d=8, seed=5).to(torch.bfloat16)
    want = joint_contrastive_loss(z.float(), SINGLE, "proposed", 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = joint_contrastive_loss(z, SINGLE, "proposed", 0.1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_loss_rejects_bad_shapes():
    with pytest.raises(ValueError):
        joint_contrastive_loss(torch.zeros(5, 2, 3), SINGLE, "proposed", 0.1)
    with pytest.raises(ValueError):
        joint_contrastive_loss(torch.zeros(6, 2, 3), SINGLE, "proposed", 0.1)


# ---------------------------------------------------------------- positive masks


def check_structure(m: torch.Tensor) -> None:
    assert m.dtype == torch.float32
    torch.testing.assert_close(m, m.T)
    assert (m.diagonal() == 0).all()


def tile(block: list[list[float]]) -> torch.Tensor:
    m = torch.tensor(block, dtype=torch.float32).repeat(2, 2)
    m.fill_diagonal_(0)
    return m


def test_mask_proposed_single_label():
    m = positive_mask(one_hot([0, 1, 0], 2), "proposed")
    check_structure(m)
    want = torch.tensor(
        [
            [0, 0, 1, 1, 0, 1],
            [0, 0, 0, 0, 1, 0],
            [1, 0, 0, 1, 0, 1],
            [1, 0, 1, 0, 0, 1],
            [0, 1, 0, 0, 0, 0],
            [1, 0, 1, 1, 0, 0],
        ],
        dtype=torch.float32,
    )
    torch.testing.assert_close(m, want)


def test_mask_proposed_multi_label():
    labels = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    m = positive_mask(labels, "proposed")
    check_structure(m)
    block = [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    torch.testing.assert_close(m, tile(block))
    assert m[3].sum() == 0 and m[7].sum() == 0  # no label: not even its other view


def test_mask_multi_label_weighted():
    labels = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    m = positive_mask(labels, "multi_label_weighted")
    check_structure(m)
    a, c, d = 2 / 2.001, 1 / 2.001, 1 / 1.001
    block = [[a, c, 0, 0], [c, d, 0, 0], [0, 0, d, 0], [0, 0, 0, 0]]
    torch.testing.assert_close(m, tile(block))


def test_mask_only_aug():
    m = positive_mask(torch.tensor([[1.0, 0], [1, 0], [0, 0]]), "only_aug")
    check_structure(m)
    want = torch.zeros(6, 6)
    for i in range(3):
        want[i, i + 3] = want[i + 3, i] = 1
    torch.testing.assert_close(m, want)


def test_mask_soft_targets_count_every_mixed_class():
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    want = tile([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    torch.testing.assert_close(positive_mask(soft, "proposed"), want)


def test_mask_unknown_variant():
    with pytest.raises(ValueError, match="unknown contrastive variant"):
        positive_mask(SINGLE, "all")


# ---------------------------------------------------------------- warm-up


def test_contrastive_weight_released_schedules():
    # JHMDB: start 50, ramp 50, 100 epochs -> still 0 at the start epoch, peaks at 0.98.
    assert contrastive_weight(49, 1.0, 50, 50) == 0.0
    assert contrastive_weight(50, 1.0, 50, 50) == 0.0
    assert contrastive_weight(99, 1.0, 50, 50) == pytest.approx(0.98)
    # HMDB: start 0, ramp 100, 150 epochs -> full weight from epoch 100.
    assert contrastive_weight(0, 1.0, 0, 100) == 0.0
    assert contrastive_weight(100, 1.0, 0, 100) == 1.0
    assert contrastive_weight(149, 1.0, 0, 100) == 1.0
    # Charades: start 0, ramp 100, 75 epochs -> peaks at 0.74.
    assert contrastive_weight(74, 1.0, 0, 100) == pytest.approx(0.74)


def test_contrastive_weight_scales_and_no_ramp():
    assert contrastive_weight(75, 0.5, 50, 50) == pytest.approx(0.25)
    assert contrastive_weight(9, 0.3, 10, 0) == 0.0
    assert contrastive_weight(10, 0.3, 10, 0) == pytest.approx(0.3)


# ---------------------------------------------------------------- classification loss


def test_classification_one_hot_matches_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 5, generator=g)
    classes = torch.randint(0, 5, (8,), generator=g)
    got = classification_loss(logits, F.one_hot(classes, 5).float(), multi_label=False)
    torch.testing.assert_close(got, F.cross_entropy(logits, classes))


def test_classification_soft_targets():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=g)
    targets = torch.softmax(torch.randn(6, 4, generator=g), dim=1)  # e.g. CutMix mixes
    want = -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(classification_loss(logits, targets, multi_label=False), want)


def test_classification_multi_label_is_bce_over_all_entries():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 7, generator=g)
    targets = (torch.rand(6, 7, generator=g) < 0.3).float()
    p = torch.sigmoid(logits)
    want = -(targets * p.log() + (1 - targets) * (1 - p).log()).sum() / (6 * 7)
    got = classification_loss(logits, targets, multi_label=True)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(logits, targets))


def test_classification_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        classification_loss(torch.zeros(4, 3), torch.zeros(4), multi_label=False)
