"""Model-selection rules (jmrn.selection), class-aware batches and the distributed
joint-contrastive loss (issue 23 §3-§4), each with a planted answer."""

from __future__ import annotations

import copy
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import TINY_SETTINGS
from test_train import run

from jmrn.data import class_balanced_batches
from jmrn.losses import joint_contrastive_loss
from jmrn.selection import RULES, Selection, evaluation_epochs, spearman
from jmrn.train import gather_views


def planted_run(vals, losses, window=3):
    """A Selection fed one evaluation per entry, whose weights are a tensor holding the
    evaluation's number (1, 2, ...), so a rule's pick can be read off its weights."""
    epochs = list(range(1, len(vals) + 1))
    sel = Selection(window, epochs)
    for e, v, loss in zip(epochs, vals, losses, strict=True):
        sel.observe(e, v, loss, {"w": torch.tensor([float(e)]),
                                 "n": torch.tensor(e, dtype=torch.long)})  # fmt: skip
    return sel


def test_each_rule_picks_its_planted_evaluation():
    # val top-1 peaks alone at 2 (a lucky spike), the loss is lowest at 4, the best window of
    # three is 5-6-7 (middle 6), the last is 8; the average is of 6, 7, 8.
    vals = [0.5, 0.9, 0.6, 0.7, 0.8, 0.85, 0.8, 0.7]
    losses = [2.0, 1.5, 1.4, 1.0, 1.1, 1.2, 1.3, 1.6]
    sel = planted_run(vals, losses)
    assert sel.chosen_epochs("val_metric") == [2]
    assert sel.chosen_epochs("val_loss") == [4]
    assert sel.chosen_epochs("val_smoothed") == [6]
    assert sel.chosen_epochs("last") == [8]
    assert sel.chosen_epochs("average") == [6, 7, 8]
    for rule, value in (("val_metric", 2.0), ("val_loss", 4.0), ("val_smoothed", 6.0),
                        ("last", 8.0), ("average", 7.0)):  # fmt: skip
        assert float(sel.weights(rule)["w"]) == value, rule
    assert int(sel.weights("average")["n"]) == 8  # integer buffers: the last evaluation's
    assert sel.weights("average")["n"].dtype == torch.long


def test_ties_keep_the_first_and_a_short_run_uses_all_evaluations():
    sel = planted_run([0.5, 0.5], [1.0, 1.0], window=5)
    assert sel.window == 2
    assert sel.chosen_epochs("val_metric") == [1] and sel.chosen_epochs("val_loss") == [1]
    assert sel.chosen_epochs("val_smoothed") == [1] and sel.chosen_epochs("average") == [1, 2]
    assert float(sel.weights("average")["w"]) == 1.5


def test_selection_survives_a_checkpoint_round_trip(tmp_path):
    vals, losses = [0.5, 0.9, 0.6, 0.7], [2.0, 1.5, 1.4, 1.0]
    whole = planted_run(vals, losses)
    first = Selection(3, [1, 2, 3, 4])
    for e in (1, 2):
        first.observe(e, vals[e - 1], losses[e - 1], {"w": torch.tensor([float(e)])})
    torch.save(first.state_dict(), tmp_path / "s.pt")
    resumed = Selection(3, [1, 2, 3, 4])
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    for e in (3, 4):
        resumed.observe(e, vals[e - 1], losses[e - 1], {"w": torch.tensor([float(e)])})
    for rule in RULES:
        assert resumed.chosen_epochs(rule) == whole.chosen_epochs(rule)
        assert float(resumed.weights(rule)["w"]) == float(whole.weights(rule)["w"])
    with pytest.raises(ValueError, match="another window"):
        Selection(2, [1, 2, 3, 4]).load_state_dict(first.state_dict())


def test_evaluation_epochs_and_an_unfinished_average():
    assert evaluation_epochs(10, 3) == [3, 6, 9, 10]
    assert evaluation_epochs(4, 2) == [2, 4] and evaluation_epochs(2, 5) == [2]
    sel = Selection(2, [2, 4])
    sel.observe(2, 0.5, 1.0, {"w": torch.ones(1)})
    with pytest.raises(RuntimeError, match="not finished"):
        sel.weights("average")
    with pytest.raises(ValueError, match="unknown selection rule"):
        sel.weights("best_test")


def test_spearman_against_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties share their mean rank: x ranks (0, 1.5, 1.5, 3), y ranks (0, 1, 2, 3): rho = 0.9487
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, abs=1e-6)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2], [1, 2]) is None


@pytest.mark.parametrize("rule", ["last", "average", "val_loss"])
def test_training_publishes_its_rule_and_reports_every_rule(tiny_heatmaps, tmp_path, rule):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"].update(select=rule, select_window=2, epochs=4)
    metrics = run(tiny_heatmaps, tmp_path, settings)
    selection = metrics["selection"]
    assert selection["rule"] == rule and selection["window"] == 2
    assert set(selection["rules"]) == set(RULES)
    chosen = selection["rules"][rule]
    assert metrics["test"]["top1"] == pytest.approx(chosen["test"]["top1"])
    assert metrics["val"] == chosen["val"]
    assert selection["rules"]["last"]["epochs"] == [4]
    assert selection["rules"]["average"]["epochs"] == [3, 4]
    best = metrics["test_best_over_evaluations_paper_style"]["top1"]
    for r in RULES[:-1]:  # a single evaluation's test figure never beats the best one
        assert selection["rules"][r]["test"]["top1"] <= best
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["selection_rule"] == rule and saved["selected_epoch"] == chosen["epochs"][-1]


def test_class_balanced_batches_hold_m_videos_of_each_of_b_over_m_classes():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 14, 433)
    labels = np.eye(14, dtype=np.float32)[classes]
    batches = class_balanced_batches(labels, 16, 4, seed=3, epoch=1)
    assert len(batches) == -(-433 // 16)
    for batch in batches:
        assert len(batch) == 16
        counts = np.unique(classes[batch], return_counts=True)[1]
        assert len(counts) == 4 and (counts == 4).all()
    seen = np.bincount(np.concatenate(batches), minlength=433)
    assert seen.max() - seen.min() <= 2  # every video about equally often
    assert batches == class_balanced_batches(labels, 16, 4, seed=3, epoch=1)
    assert batches != class_balanced_batches(labels, 16, 4, seed=3, epoch=2)
    with pytest.raises(ValueError, match="divide"):
        class_balanced_batches(labels, 16, 3, seed=0, epoch=0)
    with pytest.raises(ValueError, match="needs 8 classes"):
        class_balanced_batches(labels[classes < 5], 16, 2, seed=0, epoch=0)


def test_class_aware_training_runs_and_its_batches_reach_the_model(tiny_heatmaps, tmp_path):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"].update(videos_per_class=2, epochs=1)
    shuffled = run(tiny_heatmaps, tmp_path / "a", copy.deepcopy(TINY_SETTINGS) | {
        "train": {**TINY_SETTINGS["train"], "epochs": 1}})
    balanced = run(tiny_heatmaps, tmp_path / "b", settings)
    assert balanced["train"]["loss"] != shuffled["train"]["loss"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embed(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(n, V, F) inputs -> (n, V, D) L2-normalised joint embeddings."""
    return torch.nn.functional.normalize(net(x), dim=-1)


def _loss_and_grads(net, x1, x2, labels, variant):
    z = torch.cat([_embed(net, x1), _embed(net, x2)])
    z, labels = gather_views(z, labels)
    loss = joint_contrastive_loss(z, labels, variant, tau=0.3)
    loss.backward()
    return loss.detach()


def _rank(rank: int, world: int, port: int, data: dict, out: dict) -> None:
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        net = DistributedDataParallel(torch.nn.Linear(6, 5))
        net.module.load_state_dict(data["weights"])
        part = slice(rank, None, world)  # the interleaved share DistributedSampler gives
        loss = _loss_and_grads(net, data["x1"][part], data["x2"][part], data["labels"][part],
                               data["variant"])  # fmt: skip
        out[rank] = {"loss": loss, "grad": net.module.weight.grad.clone()}
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("variant", ["proposed", "only_aug"])
def test_distributed_contrastive_loss_equals_the_single_process_loss(variant):
    """Two gloo processes, each with half of a batch of 10: the gathered loss and the DDP
    gradient equal one process's on the whole batch (to 1e-6); without the gather they do
    not (the planted difference the gather removes)."""
    g = torch.Generator().manual_seed(1)
    b, joints = 10, 3
    data = {"x1": torch.randn(b, joints, 6, generator=g),
            "x2": torch.randn(b, joints, 6, generator=g),
            "labels": torch.eye(4)[torch.tensor([0, 1, 2, 3, 0, 1, 2, 0, 1, 3])],
            "weights": torch.nn.Linear(6, 5).state_dict(), "variant": variant}  # fmt: skip
    single = torch.nn.Linear(6, 5)
    single.load_state_dict(data["weights"])
    loss = _loss_and_grads(single, data["x1"], data["x2"], data["labels"], variant)
    manager = mp.get_context("spawn").Manager()
    out = manager.dict()
    mp.start_processes(_rank, args=(2, _free_port(), data, out), nprocs=2,
                       start_method="spawn")  # fmt: skip
    for rank in (0, 1):
        assert float(out[rank]["loss"]) == pytest.approx(float(loss), abs=1e-6)
        assert torch.allclose(out[rank]["grad"], single.weight.grad, atol=1e-6, rtol=0)
    # each rank's own share alone gives another loss: the gather is what makes them equal
    alone = torch.nn.Linear(6, 5)
    alone.load_state_dict(data["weights"])
    half = _loss_and_grads(alone, data["x1"][::2], data["x2"][::2], data["labels"][::2], variant)
    assert abs(float(half) - float(loss)) > 1e-3
