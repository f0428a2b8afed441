"""Learned late fusion of per-video logits from several modalities (supplementary §3, Eq. 1).

    fused = sum_m w_m * logits_m            (one scalar per modality)
    fused = sum_m w_{m,k} * logits_{m,k}    (``per_class_weights``: one per modality and class)

Decisions (method.md §8.1, issue 12 item 1.1):

* **Fit on held-out logits.** The weights are fit on the rows of the ``model_selection`` split
  of the logits files: the training videos each model held out for validation (carved from the
  training split with the training seed, jmrn/predict.py), which no model trained on. On the
  training rows every model is close to perfect, so there is nothing to choose between them;
  the test split is only scored. JMRN and PoTion are trained with the same seed and
  validation fraction on the same heatmaps, so their ``model_selection`` videos are the same;
  if they differ, that is an error, not a fit on their intersection: the two files then come
  from runs with different training settings (or one is stale), and with independent
  carvings the intersection is only about ``val_fraction``^2 of the training videos (2 % at
  0.15), too few to fit on, and a silent shrinking of the fit set the params do not say.
  External modalities (``external/<dataset>/*.h5``) must have logits for those videos
  too, produced by a model that did **not** train on them (this cannot be checked here: it
  is the provider's responsibility, see docs/fusion_and_clips.md).
* **Fit to convergence.** The objective, cross-entropy (single-label) or BCE (multi-label) of
  the fused logits plus ``l2_penalty * sum(w^2)``, is convex in the weights (a convex loss of a
  linear function of them) and, with a penalty > 0, strictly convex: it has one minimum, and
  a deterministic full-batch L-BFGS with a strong-Wolfe line search finds it in a few dozen
  iterations, in float64, from the plain average 1/M, to a gradient tolerance. The result is
  reported (iterations, evaluations, final gradient) and a fit that did not converge within
  the iteration cap is an error. The paper's recipe, Adam for 100 epochs at lr 1e-3 / 5e-4 /
  1e-4, cannot get there: Adam moves a weight by at most about lr per step, so 100 full-batch
  epochs move it at most 0.01-0.1 from 1/M (the weights stayed at 0.5 + 100 x lr), and even
  mini-batches (16 videos, a held-out split of 300: ~1900 steps) move it at most 0.19 at the
  HMDB rate, far from taking a useless modality from 0.5 to 0, and the answer would depend on
  lr, epochs, batch size and the batch order. L-BFGS has none of these knobs.
* **The L2 penalty** keeps the weights finite when the fit set is separable (no penalty: the
  loss keeps falling as the weights grow) and conditions the problem. It pulls towards 0, so
  a modality that does not help ends near 0.
* ``l2_normalize`` divides every video's logit vector by its L2 norm first (the paper does this
  for JHMDB and HMDB, whose modalities have very different logit scales).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jmrn.cli import show_value
from jmrn.logits_file import Logits, align
from jmrn.metrics import multi_label_metrics, single_label_metrics

FIT_SPLIT = "model_selection"
"""The split of a logits file the fusion weights are fit on (jmrn/predict.py writes it)."""

SETTINGS = ("l2_penalty", "l2_normalize", "per_class_weights")
"""The ``fusion`` params, exactly."""

MAX_ITERATIONS = 1000
"""L-BFGS iteration cap: generous, the fits converge in 10-50 iterations (1200 videos x 157
classes x 3 modalities with per-class weights: ~10)."""

GRADIENT_TOLERANCE = 1e-6
"""Converged: the largest absolute partial derivative of the objective is at most this."""


def check_settings(settings: dict) -> dict:
    """The validated ``fusion`` settings: exactly ``SETTINGS``, with their types."""
    gone = [k for k in ("lr", "epochs") if k in settings]
    if gone:
        raise ValueError(f"params.yaml: fusion.{gone[0]} is no longer a setting: the fusion "
                         "weights are fit to convergence with L-BFGS, which has no learning "
                         "rate or epochs; remove fusion.lr and fusion.epochs (the one knob "
                         "is fusion.l2_penalty)")  # fmt: skip
    missing = [k for k in SETTINGS if k not in settings]
    unknown = sorted(set(settings) - set(SETTINGS))
    if missing or unknown:
        raise ValueError(f"params.yaml: the fusion settings must be exactly {list(SETTINGS)}; "
                         f"missing {missing}, unknown {unknown}")  # fmt: skip
    penalty = settings["l2_penalty"]
    if (isinstance(penalty, bool) or not isinstance(penalty, (int, float))
            or not math.isfinite(penalty) or penalty < 0):  # fmt: skip
        raise ValueError(f"params.yaml: fusion.l2_penalty must be a finite number >= 0, got "
                         f"{show_value(penalty)}")  # fmt: skip
    for key in ("l2_normalize", "per_class_weights"):
        if not isinstance(settings[key], bool):
            raise ValueError(f"params.yaml: fusion.{key} must be true or false, got "
                             f"{show_value(settings[key])}")  # fmt: skip
    return {k: settings[k] for k in SETTINGS}


def prepare(logits: list[np.ndarray], l2_normalize: bool,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:  # fmt: skip
    """Stack M modalities' (N, K) logits into an (M, N, K) tensor."""
    shapes = {np.shape(x) for x in logits}
    if len(shapes) != 1:
        raise ValueError(f"modalities disagree on the logits shape: {sorted(shapes)}")
    stacked = torch.as_tensor(np.stack(logits), dtype=dtype)
    if l2_normalize:
        stacked = stacked / stacked.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return stacked


def fuse(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(M, N, K) logits and (M,) or (M, K) weights -> (N, K) fused logits."""
    if weights.dim() == 1:
        return torch.einsum("mnk,m->nk", logits, weights)
    return torch.einsum("mnk,mk->nk", logits, weights)


@dataclass
class FusionFit:
    """Fitted weights, (M,) or (M, K), and how the fit went."""

    weights: np.ndarray
    iterations: int
    evaluations: int
    max_abs_gradient: float
    objective: float
    converged: bool

    def report(self) -> dict:
        return {"method": "L-BFGS, strong-Wolfe line search, full batch, float64",
                "iterations": self.iterations, "evaluations": self.evaluations,
                "converged": self.converged, "max_abs_gradient": self.max_abs_gradient,
                "gradient_tolerance": GRADIENT_TOLERANCE, "objective": self.objective}  # fmt: skip


def fit_fusion(
    logits: list[np.ndarray],
    targets: np.ndarray,
    *,
    multi_label: bool,
    per_class: bool,
    l2_normalize: bool,
    l2_penalty: float,
    max_iterations: int = MAX_ITERATIONS,
) -> FusionFit:
    """Minimise loss(sum_m w_m logits_m) + l2_penalty * |w|^2 from w = 1/M, to convergence.

    ``logits`` must be held-out logits (see the module docstring). Deterministic: full batch,
    a fixed start, no sampling.
    """
    x = prepare(logits, l2_normalize, torch.float64)
    t = torch.as_tensor(targets, dtype=torch.float64)
    if t.shape != x.shape[1:]:
        raise ValueError(f"targets {tuple(t.shape)} and logits {tuple(x.shape[1:])} disagree")
    m, _, k = x.shape
    weights = torch.full((m, k) if per_class else (m,), 1.0 / m, dtype=torch.float64,
                         requires_grad=True)  # fmt: skip
    optimizer = torch.optim.LBFGS([weights], lr=1.0, max_iter=max_iterations,
                                  max_eval=3 * max_iterations,
                                  tolerance_grad=GRADIENT_TOLERANCE, tolerance_change=0.0,
                                  history_size=20, line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> torch.Tensor:
        # float64 throughout (jmrn.losses.classification_loss computes in float32, too coarse
        # to check a gradient tolerance on): the same losses, written out here.
        optimizer.zero_grad()
        fused = fuse(x, weights)
        loss = (F.binary_cross_entropy_with_logits(fused, t) if multi_label
                else F.cross_entropy(fused, t))  # fmt: skip
        objective = loss + l2_penalty * weights.square().sum()
        objective.backward()
        return objective

    optimizer.step(closure)
    state = optimizer.state[weights]
    objective = closure()  # the objective and its gradient at the final weights
    gradient = float(weights.grad.abs().max())
    return FusionFit(weights=weights.detach().numpy().astype(np.float32),
                     iterations=int(state.get("n_iter", 0)),
                     evaluations=int(state.get("func_evals", 0)),
                     max_abs_gradient=gradient, objective=float(objective.detach()),
                     converged=gradient <= GRADIENT_TOLERANCE)  # fmt: skip


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


def _split_ids(logits: Logits, split: str) -> list[str]:
    return [logits.video_ids[i] for i in logits.splits[split]]


def fit_video_ids(modalities: list[Logits], *, trained_here: int, train_split: str,
                  test_split: str) -> list[str]:  # fmt: skip
    """The videos the fusion weights are fit on: the pose model's ``model_selection`` split.

    The first ``trained_here`` modalities are models this pipeline trained (JMRN, PoTion):
    each must carry the split, with the same videos as the pose model's. The split must lie
    in ``train_split`` (the models were trained on it) and outside ``test_split``.
    """
    pose = modalities[0]
    for m in modalities[:trained_here]:
        if FIT_SPLIT not in m.splits:
            raise ValueError(f"{m.path}: no split {FIT_SPLIT!r} (the training videos its model "
                             "held out for validation, on which fusion fits its weights); it "
                             f"has {sorted(m.splits)}: re-run the logits stage, which writes "
                             "it")  # fmt: skip
    fit_ids = _split_ids(pose, FIT_SPLIT)
    if not fit_ids:
        raise ValueError(f"{pose.path}: split {FIT_SPLIT!r} is empty: nothing to fit the fusion "
                         "weights on (raise train.val_fraction)")  # fmt: skip
    wanted = set(fit_ids)
    for m in modalities[1:trained_here]:
        theirs = set(_split_ids(m, FIT_SPLIT))
        if theirs != wanted:
            only_pose, only_theirs = sorted(wanted - theirs), sorted(theirs - wanted)
            first = (only_pose or only_theirs)[0]
            raise ValueError(
                f"{m.path} and {pose.path} held out different videos for validation (split "
                f"{FIT_SPLIT!r}: {len(only_pose)} only in {pose.path.name}, {len(only_theirs)} "
                f"only in {m.path.name}; first: {first!r}): each model's logits on videos the "
                "other held out were fit in training, so there is no common held-out set to "
                "fit the fusion weights on. Train both models with the same train.seed, "
                "train.val_fraction, train.val_group and split (re-run the stale one)")
    train, test = set(_split_ids(pose, train_split)), set(_split_ids(pose, test_split))
    outside = [v for v in fit_ids if v not in train]
    if outside:
        raise ValueError(f"{pose.path}: {len(outside)} of the {len(fit_ids)} {FIT_SPLIT!r} "
                         f"videos are not in the training split {train_split!r} (first: "
                         f"{outside[0]!r}): the model was trained on another split than the "
                         "one fusion uses")  # fmt: skip
    in_test = [v for v in fit_ids if v in test]
    if in_test:
        raise ValueError(f"{pose.path}: {len(in_test)} {FIT_SPLIT!r} videos are in the test "
                         f"split {test_split!r} (first: {in_test[0]!r}); fusion would fit its "
                         "weights on test videos")  # fmt: skip
    return fit_ids


def run_fusion(modality_paths: list[Path], *, train_split: str, test_split: str,
               settings: dict, ap: str = "charades", trained_here: int = 1,
               skipped_by_ingest: set[str] = frozenset(),
               score_splits: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """Fit the fusion weights on the held-out ``model_selection`` videos and score everything
    on ``test_split``.

    The first path is the pose model (JMRN): its file defines the videos, labels and splits;
    the first ``trained_here`` paths are models this pipeline trained (``fit_video_ids``).
    Every other modality must have logits for the fit and the test videos, and nothing else
    except videos that ingest skipped (counted in the result). ``settings`` are the ``fusion``
    params (``check_settings``); ``ap`` the multi-label AP (charades | voc). Returns the
    metrics (each modality alone, the plain average, the learned fusion, the weights, what
    they were fit on and how the fit went) and the per-class differences fused minus pose;
    and, for each of ``score_splits`` the pose model's file has, the scores of that split to
    evaluate elsewhere (AVA's detected boxes): ``video_ids`` and the logits of every modality
    that covers the split, with ``average`` and ``fused`` when all do.
    """
    settings = check_settings(settings)
    l2_normalize = settings["l2_normalize"]
    if not 1 <= trained_here <= len(modality_paths):
        raise ValueError(f"trained_here={trained_here}: must be between 1 and the "
                         f"{len(modality_paths)} modalities")  # fmt: skip
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
    ids = {FIT_SPLIT: fit_video_ids(modalities, trained_here=trained_here,
                                    train_split=train_split, test_split=test_split),
           test_split: _split_ids(pose, test_split)}  # fmt: skip
    for m in modalities[1:]:
        have = set(m.video_ids)
        for split, wanted in ids.items():
            missing = [v for v in wanted if v not in have]
            if missing:
                raise ValueError(
                    f"{m.path}: no logits for {len(missing)} of the {len(wanted)} videos of "
                    f"split {split!r} (first: {missing[0]!r}); every modality needs logits for "
                    f"the {FIT_SPLIT!r} videos (the fusion weights are fit on them; an external "
                    "model's must come from a model that did not train on them) and for the "
                    "test videos")  # fmt: skip
    logits = {s: align(modalities, ids[s]) for s in ids}
    both = ids[FIT_SPLIT] + ids[test_split]
    for m in modalities[1:]:
        if m.labels is not None and (m.labels[m.rows(both)] != pose.labels[pose.rows(both)]).any():
            raise ValueError(f"{m.path}: its labels disagree with the dataset's")
    targets = {s: pose.labels[pose.rows(ids[s])] for s in ids}
    fit = fit_fusion(logits[FIT_SPLIT], targets[FIT_SPLIT], multi_label=multi_label,
                     per_class=settings["per_class_weights"], l2_normalize=l2_normalize,
                     l2_penalty=settings["l2_penalty"],
                     max_iterations=MAX_ITERATIONS)  # fmt: skip
    if not fit.converged:
        raise ValueError(f"fusion: L-BFGS did not converge in {fit.iterations} iterations on the "
                         f"{len(ids[FIT_SPLIT])} {FIT_SPLIT!r} videos (max |gradient| "
                         f"{fit.max_abs_gradient:.3g} > {GRADIENT_TOLERANCE}): raise "
                         f"fusion.l2_penalty (now {settings['l2_penalty']}), which makes the "
                         "problem better conditioned")  # fmt: skip
    weights = fit.weights
    test, classes = logits[test_split], pose.class_names
    scored = {name: _video_metrics(x, targets[test_split], multi_label, classes, ap)
              for name, x in zip(names, test, strict=True)}  # fmt: skip
    m = len(modalities)
    average = apply_fusion(test, np.full(m, 1.0 / m, np.float32), l2_normalize)
    fused = apply_fusion(test, weights, l2_normalize)
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
        "fit_on": {"split": FIT_SPLIT, "videos": len(ids[FIT_SPLIT])},
        "fit": fit.report(),
        "splits": {"train": train_split, "test": test_split},
        "videos": {"fit": len(ids[FIT_SPLIT]), "test": len(ids[test_split])},
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
        split_ids = _split_ids(pose, split)
        covering = [mod for mod in modalities if set(split_ids) <= set(mod.video_ids)]
        x = align(covering, split_ids)
        scores[split] = {"video_ids": split_ids}
        scores[split].update((mod.model, v) for mod, v in zip(covering, x, strict=True))
        if len(covering) == m:  # m: the number of modalities
            scores[split]["average"] = apply_fusion(x, np.full(m, 1.0 / m, np.float32),
                                                    l2_normalize)  # fmt: skip
            scores[split]["fused"] = apply_fusion(x, weights, l2_normalize)
    return {"metrics": metrics, "per_class": per_class, "scores": scores}
