"""Model selection: which weights a training run publishes (issue 23 §3).

On a small validation split the selection rule is itself a source of noise: on JHMDB-14 one
validation video is 2.3 points, and "the epoch with the best validation top-1" can pick a
lucky early epoch that is 10 points worse on test than the last one. The rule is part of the
method, so it is a parameter (``train.select``), applied to every model alike, and every run
computes **all** rules from the same training, so that one grid of seeds compares them paired
(``selection.rules`` in the training metrics; ``python -m jmrn.report`` summarises them):

* ``val_metric``: the evaluation with the best validation metric (top-1, or mAP); the first
  of ties.
* ``val_loss``: the evaluation with the lowest validation loss; the first of ties.
* ``val_smoothed``: the middle evaluation of the ``window`` consecutive evaluations with the
  best mean validation metric (the earlier middle for an even window; the first of ties).
* ``last``: the weights after the last epoch.
* ``average``: the mean of the weights at the last ``window`` evaluations (checkpoint
  averaging). Floating-point tensors, BatchNorm's running statistics included, are averaged;
  integer buffers (BatchNorm's batch counter) are the last evaluation's.

A run with fewer than ``window`` evaluations uses all of them as the window. Only
evaluations count, so ``train.eval_every`` sets how finely each rule can choose.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from jmrn.config import SELECTION_RULES as RULES

Weights = dict[str, torch.Tensor]


def evaluation_epochs(epochs: int, eval_every: int) -> list[int]:
    """The (1-based) epochs after which a run of ``epochs`` evaluates: every
    ``eval_every``-th, and the last."""
    found = [e for e in range(1, epochs + 1) if e % eval_every == 0]
    return found if found and found[-1] == epochs else [*found, epochs]


def _copy(weights: Mapping[str, torch.Tensor]) -> Weights:
    return {k: v.detach().clone() for k, v in weights.items()}


class Selection:
    """Follows a run's evaluations and keeps, for every rule of :data:`RULES`, the weights it
    selects. ``observe`` is called after each evaluation, in order; ``weights(rule)`` and
    ``chosen_epochs(rule)`` are read at the end. ``state_dict``/``load_state_dict`` carry it
    in a training checkpoint (plain tensors, lists and numbers: ``weights_only`` loads it)."""

    def __init__(self, window: int, eval_epochs: list[int]) -> None:
        if window < 1:
            raise ValueError(f"the selection window must be >= 1, got {window}")
        self.window = min(window, len(eval_epochs))
        self.average_epochs = list(eval_epochs[-self.window:])
        self.picked: dict[str, dict | None] = {r: None for r in RULES if r != "average"}
        self.recent: list[dict] = []  # the last `window` evaluations, with their weights
        self.total: Weights | None = None  # the sum of the averaged weights so far
        self.averaged: list[int] = []

    def observe(self, epoch: int, val_metric: float, val_loss: float,
                weights: Mapping[str, torch.Tensor]) -> None:  # fmt: skip
        """Record the evaluation after ``epoch`` (1-based) of the weights ``weights``."""
        entry = {"epoch": epoch, "val_metric": float(val_metric), "val_loss": float(val_loss)}
        snapshot = _copy(weights)
        best = self.picked["val_metric"]
        if best is None or entry["val_metric"] > best["score"]:
            self.picked["val_metric"] = {**entry, "score": entry["val_metric"],
                                         "model": snapshot}  # fmt: skip
        best = self.picked["val_loss"]
        if best is None or entry["val_loss"] < -best["score"]:
            self.picked["val_loss"] = {**entry, "score": -entry["val_loss"], "model": snapshot}
        self.recent = [*self.recent, {**entry, "model": snapshot}][-self.window:]
        if len(self.recent) == self.window:
            score = sum(r["val_metric"] for r in self.recent) / self.window
            best = self.picked["val_smoothed"]
            if best is None or score > best["score"]:
                middle = self.recent[(self.window - 1) // 2]
                self.picked["val_smoothed"] = {**middle, "score": score}
        self.picked["last"] = {**entry, "score": 0.0, "model": snapshot}
        if epoch in self.average_epochs:
            if self.total is None:
                self.total = {k: v.double() if v.is_floating_point() else v.clone()
                              for k, v in snapshot.items()}  # fmt: skip
            else:
                for k, v in snapshot.items():
                    self.total[k] = self.total[k] + v.double() if v.is_floating_point() \
                        else v.clone()  # fmt: skip
            self.averaged.append(epoch)

    def weights(self, rule: str) -> Weights:
        """The weights ``rule`` selects (after the last evaluation)."""
        if rule not in RULES:
            raise ValueError(f"unknown selection rule {rule!r} ({' | '.join(RULES)})")
        if rule == "average":
            if self.total is None or self.averaged != self.average_epochs:
                raise RuntimeError(f"the averaged evaluations are {self.averaged}, expected "
                                   f"{self.average_epochs}: the run has not finished")
            n = len(self.averaged)
            last = self.picked["last"]["model"]
            return {k: (v / n).to(last[k].dtype) if last[k].is_floating_point() else v.clone()
                    for k, v in self.total.items()}  # fmt: skip
        picked = self.picked[rule]
        if picked is None:
            raise RuntimeError(f"rule {rule!r} has selected nothing: no evaluation yet")
        return picked["model"]

    def chosen_epochs(self, rule: str) -> list[int]:
        """The evaluated epochs whose weights ``rule`` uses (several for ``average``)."""
        if rule == "average":
            return list(self.averaged)
        self.weights(rule)  # raises for an unknown rule or a run without evaluations
        return [self.picked[rule]["epoch"]]

    def state_dict(self) -> dict:
        return {"window": self.window, "average_epochs": self.average_epochs,
                "picked": self.picked, "recent": self.recent, "total": self.total,
                "averaged": self.averaged}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        if state["average_epochs"] != self.average_epochs or state["window"] != self.window:
            raise ValueError("the checkpoint's selection was made with another window or "
                             "schedule")  # fmt: skip
        self.picked, self.recent = state["picked"], state["recent"]
        self.total, self.averaged = state["total"], state["averaged"]


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation of two equally long series (average ranks for ties);
    None when it is undefined (fewer than 3 points, or a constant series)."""
    if len(a) != len(b):
        raise ValueError(f"series of {len(a)} and {len(b)} values")
    if len(a) < 3:
        return None
    ranks = [_average_ranks(torch.tensor(s, dtype=torch.float64)) for s in (a, b)]
    ra, rb = (r - r.mean() for r in ranks)
    denominator = float(ra.norm() * rb.norm())
    return float((ra @ rb) / denominator) if denominator > 0 else None


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(values, stable=True)
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(len(values), dtype=torch.float64)
    for v in torch.unique(values):  # ties share their mean rank (few evaluations: cheap)
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks
