"""JMRN with joints folded into the batch equals the per-joint loop; PoTion; the selector."""

from __future__ import annotations

import pytest
import torch

from jmrn.models import JMRN, PoTion, build_model, per_joint_loop_forward


def small_jmrn(**kw) -> JMRN:
    torch.manual_seed(0)
    return JMRN(num_joints=5, num_classes=4, c_dim=6, widths=(8, 12), head_width=16, **kw)


@pytest.mark.parametrize("training", [True, False])
def test_folded_equals_per_joint_loop(training):
    model = small_jmrn().train(training)
    x = torch.randn(3, 3, 5, 16, 22)
    if not training:  # give the running statistics something other than their initial values
        model.train()(x)
        model.eval()
    folded = model(x)
    loop = per_joint_loop_forward(model, x)
    for a, b in ((folded.logits, loop.logits), (folded.joint_weights, loop.joint_weights),
                 (folded.embeddings, loop.embeddings), (folded.features, loop.features)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_folded_and_loop_give_the_same_gradients_and_running_stats():
    x = torch.randn(4, 3, 5, 16, 22)
    grads, stats = [], []
    for forward in (lambda m: m(x), lambda m: per_joint_loop_forward(m, x)):
        model = small_jmrn().train()
        out = forward(model)
        (out.logits.square().sum() + out.embeddings.sum()).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        stats.append(model.input_norm.running_mean.clone())
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stats[0], stats[1])


def test_output_shapes_and_normalised_embeddings():
    out = small_jmrn().eval()(torch.rand(2, 3, 5, 16, 22))
    assert out.logits.shape == (2, 4) and out.joint_weights.shape == (2, 5)
    assert out.embeddings.shape == (2, 5, 128) and out.features.shape == (2, 16)
    torch.testing.assert_close(out.embeddings.norm(dim=-1), torch.ones(2, 5))
    assert ((out.joint_weights > 0) & (out.joint_weights < 1)).all()


def test_gumbel_selector_is_noisy_in_training_and_deterministic_in_evaluation():
    model = small_jmrn(selector="gumbel", gumbel_tau=0.66)
    x = torch.rand(2, 3, 5, 16, 22)
    model.eval()
    torch.testing.assert_close(model(x).joint_weights, model(x).joint_weights)
    model.train()
    r = model.extractor(model.normalise_input(x).reshape(10, 3, 16, 22))
    r = r.reshape(2, 5, *r.shape[1:]).flatten(1, 2)
    assert not torch.equal(model.select(r), model.select(r))
    with pytest.raises(ValueError, match="unknown selector"):
        small_jmrn(selector="softmax")


def test_paper_parameter_counts():
    # method.md §4.1 counts include ~1.7k parameters of BN layers the authors never call
    jhmdb = JMRN(18, 21, c_dim=128)
    assert abs(sum(p.numel() for p in jhmdb.parameters()) - 8.22e6) < 0.01e6
    potion = PoTion(18, 51)
    assert abs(sum(p.numel() for p in potion.parameters()) - 4.67e6) < 0.01e6


def test_build_model_and_potion_forward():
    settings = {"name": "potion", "c_dim": 4, "widths": [8, 16], "head_width": 16,
                "dropout": 0.25, "selector": "sigmoid", "gumbel_tau": 1.0}  # fmt: skip
    model = build_model(settings, num_joints=5, num_classes=3, channels=3)
    out = model(torch.rand(2, 3, 5, 16, 22))
    assert isinstance(model, PoTion) and out.logits.shape == (2, 3)
    assert out.joint_weights is None and out.embeddings is None
    with pytest.raises(ValueError, match="unknown model"):
        build_model(dict(settings, name="stgcn"), 5, 3, 3)
