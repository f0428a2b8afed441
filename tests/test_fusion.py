"""Learned late fusion recovers a planted best modality and beats the plain average."""

from __future__ import annotations

import numpy as np
import pytest

from jmrn.fusion import apply_fusion, fit_fusion


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
