"""JMRN with joints folded into the batch equals the per-joint loop; PoTion; the selector."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

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


def test_selector_on_pooled_features_equals_the_convolution_over_every_position():
    # the authors' selector: 1x1 convolution over the joint-major concatenation of r, global
    # average pooling, ReLU; JMRN pools first (both linear), which must give the same weights
    model = small_jmrn().eval()
    r = torch.randn(2, 5 * 12, 4, 6)
    conv = model.select_conv
    by_position = F.relu(F.conv2d(r, conv.weight, conv.bias).mean(dim=(2, 3)))
    expected = torch.sigmoid(model.select_fc(by_position))
    pooled = r.view(2, 5, 12, 4, 6).mean(dim=(3, 4))
    torch.testing.assert_close(model.select(pooled), expected, rtol=1e-5, atol=1e-6)


def test_gumbel_selector_is_noisy_in_training_and_deterministic_in_evaluation():
    model = small_jmrn(selector="gumbel", gumbel_tau=0.66)
    x = torch.rand(2, 3, 5, 16, 22)
    model.eval()
    torch.testing.assert_close(model(x).joint_weights, model(x).joint_weights)
    model.train()
    r = model.extractor(model.normalise_input(x).reshape(10, 3, 16, 22))
    pooled = r.reshape(2, 5, *r.shape[1:]).mean(dim=(3, 4))
    assert not torch.equal(model.select(pooled), model.select(pooled))
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


@pytest.mark.parametrize("embedding", ["r", "c"])
@pytest.mark.parametrize("projection", ["mlp", "linear", "none"])
def test_embedding_reads_the_chosen_features_through_the_chosen_head(embedding, projection):
    model = small_jmrn(embedding=embedding, projection=projection).eval()
    x = torch.rand(2, 3, 5, 16, 22)
    out = model(x)
    r = model.extractor(model.normalise_input(x).reshape(10, 3, 16, 22))
    features = r if embedding == "r" else model.compress(r)
    pooled = features.mean(dim=(2, 3))  # (B*V, width): every joint of every input
    expected = torch.nn.functional.normalize(model.project(pooled), dim=-1).view(2, 5, -1)
    torch.testing.assert_close(out.embeddings, expected)
    width = {"mlp": 128, "linear": 128, "none": 12 if embedding == "r" else 6}[projection]
    assert out.embeddings.shape == (2, 5, width)
    if projection == "none":  # nothing learnt between the features and the loss
        assert not list(model.project.parameters())
        torch.testing.assert_close(out.embeddings, torch.nn.functional.normalize(
            pooled, dim=-1).view(2, 5, -1))  # fmt: skip
    # a loss on the embeddings reaches the compression only when it reads c
    out = model.train()(x)
    out.embeddings.sum().backward()
    reached = model.compress[0].weight.grad
    assert (reached is not None and reached.abs().sum() > 0) == (embedding == "c")


def test_default_embedding_is_the_authors_and_unknown_options_are_refused():
    default = small_jmrn()
    assert default.embedding == "r" and len(default.project) == 3  # Linear, ReLU, Linear
    assert default.project[0].in_features == 12  # w2: r_j, before compression
    with pytest.raises(ValueError, match="unknown embedding"):
        small_jmrn(embedding="w")
    with pytest.raises(ValueError, match="unknown projection"):
        small_jmrn(projection="attention")


def test_build_model_reads_the_embedding_options_and_old_checkpoints_mean_the_authors():
    settings = {"name": "jmrn", "c_dim": 6, "widths": [8, 12], "head_width": 16,
                "dropout": 0.0, "selector": "sigmoid", "gumbel_tau": 1.0}  # fmt: skip
    old = build_model(settings, num_joints=5, num_classes=3, channels=3)
    assert old.embedding == "r" and isinstance(old.project, torch.nn.Sequential)
    new = build_model(dict(settings, embedding="c", projection="none"), 5, 3, 3)
    assert new.embedding == "c" and isinstance(new.project, torch.nn.Identity)


def test_config_lists_the_models_options():
    from jmrn.config import EMBEDDINGS, PROJECTIONS
    from jmrn.models import EMBEDDINGS as embeddings
    from jmrn.models import PROJECTIONS as projections

    assert (EMBEDDINGS, PROJECTIONS) == (embeddings, projections)
