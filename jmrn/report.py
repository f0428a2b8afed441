"""Every figure of a grid of DVC experiments, with its certainty (issue 23).

    dvc exp run --queue -S 'train.seed=range(0,5)' -S 'contrastive.variant=proposed,none'
    dvc queue start -j 1              # wait until `dvc queue status` shows them all done
    python -m jmrn.report --out docs/results/jcl --json docs/results/jcl/report.json

It reads ``dvc exp show --json`` (or a file saved from it, ``--input``): every experiment's
params, metrics, data and the commit it ran from. Then:

* **Groups.** Experiments are grouped by every param that differs between them, except the
  replicate keys (``--replicate``, default ``train.seed`` and ``split``): a group is one
  setting, its experiments are its seeds (and splits). Params are the effective ones (a
  top-level override, else the dataset block's), so ``-S paa.beta=4`` and the same value in
  the block are one setting.
* **Per group and metric:** n, mean, sample standard deviation (ddof 1) and the 95 %
  confidence interval of the mean, mean ± t(0.975, n - 1) · std / √n (Student's t: with 3 to
  10 seeds the normal 1.96 would make it 10 to 130 % too narrow). n = 1 has no std or CI.
* **Pairs of groups** that differ in exactly one param: the paired difference b − a of every
  metric both have, paired by replicate (seed, split), with its mean, std and 95 % CI. A
  paired difference removes what a seed does to both settings (the split of validation
  videos, the initialisation), so its CI is the one to read for "does b beat a". ``a`` is
  the group whose value of that param is the commit's own (params.yaml, the report's
  dataset), where there is one. Groups that differ in several params of one section also
  pair where ``a`` has the commit's values of all of them: a setting such as a stronger
  ``contrastive.lambda`` with its schedule, against the default (``differs`` names them all,
  ``keys`` lists them). ``--recipes`` lifts the one-section limit, for a recipe whose keys
  span sections (a shorter ``train`` schedule with its ``contrastive`` ramp); ``a`` must still
  have the commit's values of them all.
* **Comparisons within a group** (``--compare A B``, default: JMRN vs PoTion + PAA, and
  every model's selection rules against the best test epoch): the paired difference B − A
  of two metrics of the same experiments. An operand may name another setting of the group,
  ``--compare train/potion/test/top1 train/jmrn/test/top1@contrastive.variant=none``: JMRN
  without the loss against PoTion + PAA of the same seeds, from two groups.

Metrics are named by their file under ``metrics/<dataset>/`` and their key, e.g.
``train/jmrn/test/top1``, ``fusion/test/fused/top1``,
``train/jmrn/selection/rules/last/test/top1``, ``clips/selection/methods/ranker/average/top1``.
``--metric`` (patterns matched segment by segment like paths, ``*`` within one segment) picks
which are summarised (default :data:`DEFAULT_METRICS`).

Metrics files that an experiment's own run did not write are left out of it and listed
(``left_out_not_their_own``, and a line under the tables): an experiment queued with a target
(``... train@jmrn``) runs only what the target needs, and holds its baseline commit's files
for the other stages, which another seed or setting produced. Each experiment's dvc.lock tells
which (``jmrn.experiments.stale_metrics``).

It refuses (an error naming them): experiments that have not finished (queued, running,
failed, or a live metrics file with ``finished: false``; ``--skip-unfinished`` leaves them
out and lists them), two experiments of one group with the same replicate values, experiments
whose data differ (the hash of their raw data folder or of a cache they restored), and
experiments of several commits whose stages' code differs (``--rev`` picks one commit).
``--by-commit`` compares code versions instead: the commit becomes a param of its own (``commit``,
7 characters), so the experiments of each commit form their own groups and a commit's seeds
pair with the same seeds of another (the first ``--rev`` is ``a``): does a change of the code
move the figures? A param that only some of the commits have shows as ``"(absent)"`` in the
others, and does not keep their seeds from pairing. Otherwise experiments of several commits
are pooled where the stages' code is the same in all of them:
dvc.yaml and every file under ``jmrn/`` and ``stages/`` that it declares as a dependency, by
git's blob hashes (``stage_code``). So seeds queued in later sessions add to a grid as long
as no stage's code has changed, and a commit that touched only docs, tests or the report
does not split it.

Writes ``--out``/report.md (a table of the headline metrics and every pair), report.csv (one
row per group or pair and metric), report.png (every replicate as a point, the CI as a bar)
and ``--json`` (``groups``, ``pairs``, ``comparisons``, ``experiments``).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from jmrn.config import SELECTION_RULES
from jmrn.experiments import (
    ExperimentsError,
    lock_from_git,
    same_code,
    stage_code,
    stale_metrics,
)
from jmrn.io import atomic_path, write_json
from jmrn.sweep import effective_params, exp_show_json, only_values, parse_value

REPLICATES = ("train.seed", "split")
DEFAULT_METRICS = (
    "train/*/test/top1", "train/*/test/mAP", "train/*/test/mean_class_accuracy",
    "train/*/val/top1", "train/*/val/mAP",
    "train/*/test_best_over_evaluations_paper_style/*", "train/*/test_final_epoch/*",
    "train/*/selection/rules/*/*/*", "train/*/selection/val_test_spearman",
    "fusion/test/*/*", "fusion/fused_minus_best_single",
    "clips/train/test/*", "clips/selection/methods/*/*/top1",
    "clips/selection/methods/*/*/mAP",
)  # fmt: skip
HEADLINE = ("train/*/test/top1", "train/*/test/mAP", "fusion/test/fused/*",
            "clips/selection/methods/*/average/top1",
            "clips/selection/methods/*/average/mAP")  # fmt: skip


# ------------------------------------------------------------------------------ statistics
ABSENT = "(absent)"  # the value of a param that an experiment's commit does not have


def t_quantile(n: int) -> float:
    """t(0.975, n - 1), the two-sided 95 % quantile of Student's t with n - 1 degrees."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def summary(values: list[float]) -> dict:
    """n, mean, sample std (ddof 1) and the 95 % CI of the mean (None where n < 2)."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0:
        raise ExperimentsError("no value to summarise")
    mean = float(x.mean())
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci95": None}
    std = float(x.std(ddof=1))
    half = t_quantile(n) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


# ----------------------------------------------------------------------------- experiments
def _numbers(tree: Any, prefix: str) -> dict[str, float]:
    """The numeric leaves of a metrics file, named prefix/key/key (booleans left out)."""
    if isinstance(tree, dict):
        out: dict[str, float] = {}
        for key, value in tree.items():
            out.update(_numbers(value, f"{prefix}/{key}"))
        return out
    if isinstance(tree, int | float) and not isinstance(tree, bool) and math.isfinite(tree):
        return {prefix: float(tree)}
    return {}


def read_experiments(exp_show: list[dict]) -> list[dict]:
    """Every experiment of ``dvc exp show --json``: name, commit, params, metrics (flat),
    data hashes, and ``unfinished`` (why it cannot be used yet, or None)."""
    found = []
    for baseline in exp_show:
        commit = baseline.get("rev", "")
        for group in baseline.get("experiments") or []:
            for rev in group.get("revs") or []:
                data = rev.get("data") or {}
                name = rev.get("name") or rev.get("rev", "")[:7]
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
                files = {path: m.get("data") for path, m in (data.get("metrics") or {}).items()
                         if isinstance(m, dict) and isinstance(m.get("data"), dict)}  # fmt: skip
                unfinished = None
                if rev.get("error"):
                    unfinished = f"failed ({rev['error'].get('msg', 'error')})"
                elif data.get("rev") == "workspace" or not files or not params:
                    unfinished = "queued or running"
                elif any(m.get("finished") is False for m in files.values()):
                    unfinished = "running (a metrics file says finished: false)"
                found.append({"name": name, "commit": commit, "rev": data.get("rev", ""),
                              "params": params or {}, "files": files,
                              "data": _data_hashes(data), "unfinished": unfinished})  # fmt: skip
    return found


def _data_hashes(data: dict) -> dict[str, str]:
    """The hashes of the raw data folders (deps under data/raw/) and caches (outs under
    data/): what must agree for experiments to be compared."""
    hashes = {}
    for kind in ("deps", "outs"):
        for path, info in (data.get(kind) or {}).items():
            if path.startswith("data/") and isinstance(info, dict) and info.get("hash"):
                hashes[path] = info["hash"]
    return hashes


def matches(name: str, pattern: str) -> bool:
    """Whether a metric name matches a pattern segment by segment, as a path glob does: ``*``
    never crosses a ``/`` (``train/*/test/top1`` is each model's test top-1, not every
    selection rule's ``train/jmrn/selection/rules/last/test/top1``)."""
    parts, wanted = name.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(fnmatch.fnmatchcase(a, b)
                                             for a, b in zip(parts, wanted, strict=True))


def decoded_params(params: dict) -> dict[str, Any]:
    """``jmrn.sweep.effective_params`` with its JSON-encoded values decoded (4, not "4")."""
    return {k: v if k == "dataset" else json.loads(v)
            for k, v in effective_params(params).items()}  # fmt: skip


def metrics_of(files: dict[str, dict], dataset: str) -> dict[str, float]:
    """The numeric metrics of the dataset's files, named by their path under
    metrics/<dataset>/ without .json, then their keys."""
    prefix = f"metrics/{dataset}/"
    out: dict[str, float] = {}
    for path, values in files.items():
        if path.startswith(prefix) and path.endswith(".json"):
            out.update(_numbers(values, path[len(prefix):-len(".json")]))
    return out


# ---------------------------------------------------------------------------------- report
def build(exp_show: list[dict], *, replicates: tuple[str, ...] = REPLICATES,
          metrics: tuple[str, ...] = DEFAULT_METRICS, dataset: str | None = None,
          rev: str | list[str] | None = None, only: dict[str, Any] | None = None,
          compare: list[tuple[str, str]] | None = None, skip_unfinished: bool = False,
          baseline_params: dict | None = None, by_commit: bool = False, recipes: bool = False,
          code_of=stage_code, lock_of=None) -> dict:  # fmt: skip
    """The report of the experiments in ``exp_show`` (see the module docstring).
    ``code_of(commit)`` and ``lock_of(experiment)`` read a commit's stage code and an
    experiment's dvc.lock with its code (default: from git, ``jmrn.experiments``)."""
    experiments = read_experiments(exp_show)
    revs = [rev] if isinstance(rev, str) else list(rev or [])
    if revs:
        experiments = [e for e in experiments if e["commit"].startswith(tuple(revs))]
    if not experiments:
        of = f" of commit {', '.join(revs)}" if revs else ""
        raise ExperimentsError(f"no experiment found{of}" +
                          ": queue some (`dvc exp run --queue -S 'train.seed=range(0,3)'`) "
                          "and run them (`dvc queue start -j 1`)")  # fmt: skip
    unfinished = [e for e in experiments if e["unfinished"]]
    if unfinished and not skip_unfinished:
        listed = ", ".join(f"{e['name']} ({e['unfinished']})" for e in unfinished[:5])
        raise ExperimentsError(f"{len(unfinished)} experiment(s) have not finished: {listed}"
                          f"{' ...' if len(unfinished) > 5 else ''}; wait for `dvc queue "
                          "status`, remove them (`dvc exp remove <name>`), or pass "
                          "--skip-unfinished")  # fmt: skip
    experiments = [e for e in experiments if not e["unfinished"]]
    if not experiments:
        raise ExperimentsError("no finished experiment")
    for e in experiments:
        e["flat"] = decoded_params(e["params"])
    datasets = sorted({e["flat"]["dataset"] for e in experiments})
    if dataset is None and len(datasets) > 1:
        raise ExperimentsError(f"the experiments are of {len(datasets)} datasets {datasets}: pick "
                          "one with --dataset")  # fmt: skip
    dataset = dataset or datasets[0]
    experiments = [e for e in experiments if e["flat"]["dataset"] == dataset]
    for key, value in (only or {}).items():
        experiments = [e for e in experiments if e["flat"].get(key) == value]
    if not experiments:
        raise ExperimentsError(f"no finished experiment of dataset {dataset!r}"
                          + (f" with {only}" if only else ""))  # fmt: skip
    if by_commit:  # the commit is a setting: its code may differ from the others'
        commits = list(dict.fromkeys(e["commit"] for e in experiments))
        for e in experiments:
            e["flat"]["commit"] = e["commit"][:7]
    else:
        commits = same_code([e["commit"] for e in experiments], code_of)
    _check_same_data(experiments)
    not_their_own = _leave_out_stale(experiments, dataset, lock_of or lock_from_git)
    unknown = [k for k in replicates if k not in experiments[0]["flat"]]
    if unknown:
        raise ExperimentsError(f"replicate key(s) {unknown} are not params (e.g. train.seed)")
    keys = sorted(set().union(*(e["flat"] for e in experiments)))  # a later commit's new keys
    differing = [k for k in keys if k not in replicates
                 and len({json.dumps(e["flat"].get(k, ABSENT), sort_keys=True)
                          for e in experiments}) > 1]  # fmt: skip
    for e in experiments:
        e["group"] = {k: e["flat"].get(k, ABSENT) for k in differing}
        e["replicate"] = {k: e["flat"].get(k) for k in replicates}
        e["metrics"] = {name: value for name, value in metrics_of(e["files"], dataset).items()
                        if any(matches(name, p) for p in metrics)}  # fmt: skip
    groups = _groups(experiments)
    # the commit's own values for this dataset (params.yaml's block of it, with its overrides)
    base = decoded_params({**baseline_params, "dataset": dataset}) if baseline_params else {}
    if by_commit and revs:  # a: the first --rev
        base["commit"] = next((c[:7] for c in commits if c.startswith(revs[0])), None)
    return {
        "dataset": dataset, "commit": "+".join(c[:7] for c in commits) if len(commits) > 1
        else commits[0], "commits": commits, "replicates": list(replicates),
        "differing_params": differing,
        "groups": [_group_summary(g) for g in groups],
        "pairs": _pairs(groups, base, recipes),
        "comparisons": _comparisons(groups, compare, differing),
        "experiments": [{"name": e["name"], "params": e["group"], "replicate": e["replicate"]}
                        for g in groups for e in g["experiments"]],
        "left_out_unfinished": [e["name"] for e in unfinished],
        "left_out_not_their_own": not_their_own,
    }  # fmt: skip


def _leave_out_stale(experiments: list[dict], dataset: str, lock_of) -> dict[str, dict]:
    """Drop from each experiment the metrics files that its own run did not write (a stage its
    target did not run: the baseline commit's file, ``jmrn.experiments.stale_metrics``);
    returns {experiment: {file: why}} for the report to list."""
    left_out = {}
    for e in experiments:
        paths = [p for p in e["files"] if p.startswith(f"metrics/{dataset}/")]
        try:
            ran = lock_of(e)
        except ExperimentsError as err:
            raise ExperimentsError(f"experiment {e['name']}: cannot read its dvc.lock ({err}); "
                                   "run the report in the repository where the experiments "
                                   "ran") from None  # fmt: skip
        stale = stale_metrics(ran["lock"], e["params"], ran["code"], paths)
        for path in stale:
            del e["files"][path]
        if stale:
            left_out[e["name"]] = stale
    return left_out


def _check_same_data(experiments: list[dict]) -> None:
    by_path: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for e in experiments:
        for path, digest in e["data"].items():
            if path.startswith("data/raw/") or path.endswith(("keypoints.h5", "heatmaps.h5")):
                by_path[path][digest].append(e["name"])
    for path, digests in by_path.items():
        if len(digests) > 1:
            example = {d[:8]: names[:3] for d, names in digests.items()}
            raise ExperimentsError(f"the experiments differ in their data: {path} has "
                              f"{len(digests)} versions (hash: experiments {example}); compare "
                              "experiments of one data version")  # fmt: skip


def _groups(experiments: list[dict]) -> list[dict]:
    groups: dict[str, dict] = {}
    for e in experiments:
        key = json.dumps(e["group"], sort_keys=True)
        groups.setdefault(key, {"params": e["group"], "experiments": []})["experiments"].append(e)
    for g in groups.values():
        seen: dict[str, str] = {}
        for e in g["experiments"]:
            rep = json.dumps(e["replicate"], sort_keys=True)
            if rep in seen:
                raise ExperimentsError(f"experiments {seen[rep]} and {e['name']} have the same "
                                  f"params {g['params'] or '(the commit’s)'} and replicate "
                                  f"{e['replicate']}: remove one (`dvc exp remove "
                                  f"{e['name']}`)")  # fmt: skip
            seen[rep] = e["name"]
        g["experiments"].sort(key=lambda e: json.dumps(e["replicate"], sort_keys=True))
    return [groups[k] for k in sorted(groups)]


def _group_summary(group: dict) -> dict:
    names = sorted({m for e in group["experiments"] for m in e["metrics"]})
    metrics = {}
    for name in names:
        values = [e["metrics"][name] for e in group["experiments"] if name in e["metrics"]]
        metrics[name] = {**summary(values), "values": values}
    return {"params": group["params"], "n": len(group["experiments"]), "metrics": metrics}


def _paired(a: list[dict], b: list[dict], metric_a: str, metric_b: str) -> dict | None:
    """Paired difference b[metric_b] - a[metric_a] over the replicates both have."""
    index = {json.dumps(e["replicate"], sort_keys=True): e for e in a}
    diffs = []
    for e in b:
        other = index.get(json.dumps(e["replicate"], sort_keys=True))
        if other is not None and metric_a in other["metrics"] and metric_b in e["metrics"]:
            diffs.append(e["metrics"][metric_b] - other["metrics"][metric_a])
    return {**summary(diffs), "values": diffs} if diffs else None


def _pairs(groups: list[dict], base: dict, recipes: bool = False) -> list[dict]:
    """b - a for two groups that differ in one param (a: the commit's value where one is), or
    in several params of one section (of any sections with ``recipes``) where a has the
    commit's values of all of them (a setting such as ``contrastive.lambda`` with its
    schedule, against the default)."""
    out = []
    for i, first in enumerate(groups):
        for second in groups[i + 1:]:
            differs = [k for k in first["params"] if first["params"][k] != second["params"][k]]
            # a param that one of two commits does not have is part of what the commits
            # differ in (--by-commit), not a setting of its own
            decisive = [k for k in differs if not ("commit" in differs and ABSENT in (
                first["params"][k], second["params"][k]))]  # fmt: skip
            a, b = first, second
            if any(k in base and b["params"][k] == base[k] for k in decisive):
                a, b = b, a  # a: the commit's own value
            sections = {k.split(".")[0] for k in decisive}
            if len(decisive) > 1 and ((len(sections) > 1 and not recipes)
                                      or any(k not in base or a["params"][k] != base[k]
                                             for k in decisive)):  # fmt: skip
                continue
            metrics = {}
            for name in sorted({m for e in a["experiments"] for m in e["metrics"]}):
                found = _paired(a["experiments"], b["experiments"], name, name)
                if found is not None:
                    metrics[name] = found
            if metrics:
                n = max(m["n"] for m in metrics.values())
                out.append({"a": a["params"], "b": b["params"], "differs": ", ".join(differs),
                            "keys": differs, "n": n, "metrics": metrics})  # fmt: skip
    return out


def setting(params: dict, keys: list[str]) -> str:
    """The values of ``keys`` (of one section) in ``params``: the bare value for one key, else
    key=value without the section's name."""
    if len(keys) == 1:
        return json.dumps(params[keys[0]])
    return _joined((k.split(".", 1)[-1], params[k]) for k in keys)


def default_comparisons(names: set[str]) -> list[tuple[str, str]]:
    """JMRN against PoTion + PAA (PoTion first: the difference is JMRN's gain), and each
    model's selection rules against its best test epoch (the difference is minus the
    rule's regret)."""
    pairs = []
    for key in ("top1", "mAP"):
        a, b = f"train/potion/test/{key}", f"train/jmrn/test/{key}"
        if a in names and b in names:
            pairs.append((a, b))
        for model in ("jmrn", "potion"):
            best = f"train/{model}/test_best_over_evaluations_paper_style/{key}"
            for rule in SELECTION_RULES:
                picked = f"train/{model}/selection/rules/{rule}/test/{key}"
                if best in names and picked in names:
                    pairs.append((best, picked))
    return pairs


def metric_setting(spec: str, differing: list[str]) -> tuple[str, dict[str, Any]]:
    """A ``--compare`` operand: a metric, optionally of another setting of the same group,
    ``train/jmrn/test/top1@contrastive.variant=none`` (``key=value`` pairs joined by ``,``;
    values as on the command line), -> (metric, {key: value})."""
    metric, _, where = spec.partition("@")
    chosen: dict[str, Any] = {}
    for item in filter(None, where.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ExperimentsError(f"--compare {spec!r}: write metric@key=value[,key=value]")
        if key not in differing:
            raise ExperimentsError(f"--compare {spec!r}: {key} is not a param the experiments "
                                   f"differ in (they differ in {differing})")  # fmt: skip
        chosen[key] = parse_value(value)
    return metric, chosen


def _comparisons(groups: list[dict], compare: list[tuple[str, str]] | None,
                 differing: list[str]) -> list[dict]:  # fmt: skip
    """B − A of two metrics, paired by replicate: of the same group, or, where an operand
    names a setting (``metric@key=value``), of the group that differs from A's in that."""
    by_params = {json.dumps(g["params"], sort_keys=True): g for g in groups}
    out = []
    for g in groups:
        names = {m for e in g["experiments"] for m in e["metrics"]}
        for a, b in compare if compare is not None else default_comparisons(names):
            metric_a, setting_a = metric_setting(a, differing)
            metric_b, setting_b = metric_setting(b, differing)
            if any(g["params"][k] != v for k, v in setting_a.items()):
                continue  # g is A's group
            other = by_params.get(json.dumps({**g["params"], **setting_b}, sort_keys=True))
            if other is None:
                continue
            found = _paired(g["experiments"], other["experiments"], metric_a, metric_b)
            if found is not None:
                entry = {"params": g["params"], "a": a, "b": b, **found}
                if other is not g:
                    entry["b_params"] = other["params"]
                out.append(entry)
    return out


# ---------------------------------------------------------------------------------- output
def _joined(items) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in items)


def label(params: dict) -> str:
    return _joined(params.items()) or "(commit's params)"


def short_label(params: dict, common: dict[str, str]) -> str:
    """The params where a group differs from the most common value of each (for the picture,
    whose rows have little room)."""
    differ = {k: v for k, v in params.items() if json.dumps(v) != common.get(k)}
    return _joined(differ.items()) or "the common values"


def _pct(stats: dict) -> str:
    text = f"{100 * stats['mean']:.1f}"
    if stats["std"] is not None:
        low, high = stats["ci95"]
        text += f" ± {100 * stats['std']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
    return text


def headline_names(report: dict, patterns: tuple[str, ...] = HEADLINE) -> list[str]:
    names = {m for g in report["groups"] for m in g["metrics"]}
    return sorted(n for n in names if any(matches(n, p) for p in patterns))


def commits_label(report: dict, quote: str = "`") -> str:
    """"commit abc1234", or "commits abc1234, def5678 (the same stage code)"."""
    commits = [f"{quote}{c[:7]}{quote}" for c in report.get("commits") or [report["commit"]]]
    if len(commits) == 1:
        return f"commit {commits[0]}"
    if "commit" in report.get("differing_params", []):
        return f"commits {', '.join(commits)} (compared)"
    return f"commits {', '.join(commits)} (the same stage code)"


def markdown(report: dict, command: str = "", headline: tuple[str, ...] = HEADLINE) -> str:
    """Every headline metric of every group (mean ± std [95 % CI], in %), then the pairs and
    comparisons of those metrics."""
    heads = headline_names(report, headline)
    lines = [f"Dataset `{report['dataset']}`, {commits_label(report)}; replicates: "
             f"{', '.join(report['replicates'])}. Figures: mean ± sample std [95 % CI of the "
             "mean], in %.", ""]  # fmt: skip
    if command:
        lines += [f"Produced by `{command}`.", ""]
    lines += ["| metric | setting | n | mean ± std [95 % CI] |", "|---|---|---|---|"]
    for name in heads:
        for g in report["groups"]:
            if name in g["metrics"]:
                s = g["metrics"][name]
                lines.append(f"| `{name}` | {label(g['params'])} | {s['n']} | {_pct(s)} |")
    if report["pairs"]:
        lines += ["", "Paired differences b − a (points), by replicate:", "",
                  "| differs | a | b | metric | n | b − a [95 % CI] |", "|---|---|---|---|---|---|"]
        for p in report["pairs"]:
            for name in heads:
                if name in p["metrics"]:
                    s = p["metrics"][name]
                    lines.append(f"| `{p['differs']}` | {setting(p['a'], p['keys'])} | "
                                 f"{setting(p['b'], p['keys'])} | `{name}` | {s['n']} | "
                                 f"{_pct(s)} |")  # fmt: skip
    if report["comparisons"]:
        lines += ["", "Within a setting, paired differences B − A (points):", "",
                  "| setting | A | B | n | B − A [95 % CI] |", "|---|---|---|---|---|"]
        for c in report["comparisons"]:
            if not {c["a"].partition("@")[0], c["b"].partition("@")[0]} & set(heads):
                continue
            lines.append(f"| {label(c['params'])} | `{c['a']}` | `{c['b']}` | {c['n']} | "
                         f"{_pct(c)} |")  # fmt: skip
    stale = report.get("left_out_not_their_own") or {}
    if stale:
        files = sum(len(v) for v in stale.values())
        name, why = next(iter(stale.items()))
        path, reason = next(iter(why.items()))
        lines += ["", f"Left out: {files} metrics file(s) of {len(stale)} experiment(s) that "
                  "their own run did not write (a stage their target did not run), e.g. "
                  f"{name}: `{path}` ({reason}); all listed in the JSON's "
                  "`left_out_not_their_own`."]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_csv(report: dict, path: Path) -> None:
    """One row per (group or pair or comparison, metric): kind, setting, metric, n, mean,
    std, ci_low, ci_high (fractions, not %)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "setting", "metric", "n", "mean", "std", "ci_low", "ci_high"])

        def row(kind: str, setting: str, metric: str, s: dict) -> None:
            low, high = s["ci95"] or (None, None)
            w.writerow([kind, setting, metric, s["n"], s["mean"], s["std"], low, high])

        for g in report["groups"]:
            for name, s in g["metrics"].items():
                row("group", label(g["params"]), name, s)
        for p in report["pairs"]:
            for name, s in p["metrics"].items():
                row("pair", f"{p['differs']}: {label(p['b'])} minus {label(p['a'])}", name, s)
        for c in report["comparisons"]:
            row("comparison", label(c["params"]), f"{c['b']} minus {c['a']}", c)


def draw(report: dict, names: list[str]) -> np.ndarray:
    """A forest plot (BGR image): one row per (group, metric), every replicate a dot, the
    95 % CI a bar, the mean a tick; x in %."""
    import cv2

    common = {}  # each param's most frequent value: a row names only where its group differs
    for key in report["groups"][0]["params"] if report["groups"] else []:
        values = [json.dumps(g["params"][key]) for g in report["groups"]]
        common[key] = max(values, key=values.count)
    rows = [(short_label(g["params"], common), n.replace("selection/rules/", "rule "),
             g["metrics"][n]) for n in names for g in report["groups"]
            if n in g["metrics"]]  # fmt: skip
    if not rows:
        raise ExperimentsError("no headline metric to draw")
    values = [v for _, _, s in rows for v in s["values"]]
    values += [c for _, _, s in rows if s["ci95"] for c in s["ci95"]]
    lo, hi = 100 * min(values), 100 * max(values)
    lo, hi = math.floor(lo / 5) * 5, math.ceil(hi / 5) * 5 + (5 if hi == lo else 0)
    left, right, top, step = 560, 30, 40, 26
    width, height = 1100, top + step * len(rows) + 40
    image = np.full((height, width, 3), 255, np.uint8)
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (210, 210, 210)

    def x_of(value: float) -> int:
        return int(round(left + (100 * value - lo) / (hi - lo) * (width - left - right)))

    for tick in range(int(lo), int(hi) + 1, 5 if hi - lo <= 40 else 10):
        x = x_of(tick / 100)
        cv2.line(image, (x, top - 10), (x, height - 35), grey, 1)
        cv2.putText(image, str(tick), (x - 8, height - 15), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.putText(image, f"{report['dataset']}, {commits_label(report, '')}: every replicate "
                "(dot), mean (tick), 95% CI (bar), in %", (10, 22), font, 0.45, black, 1,
                cv2.LINE_AA)  # fmt: skip
    for i, (setting, name, s) in enumerate(rows):
        y = top + step * i + step // 2
        text = f"{name} | {setting}"  # fmt: skip
        cv2.putText(image, text[:88], (8, y + 4), font, 0.36, black, 1, cv2.LINE_AA)
        colour = (180, 90, 20)
        if s["ci95"]:
            cv2.line(image, (x_of(s["ci95"][0]), y), (x_of(s["ci95"][1]), y), colour, 2)
        cv2.line(image, (x_of(s["mean"]), y - 7), (x_of(s["mean"]), y + 7), colour, 2)
        for v in s["values"]:
            cv2.circle(image, (x_of(v), y), 3, (40, 40, 200), -1, cv2.LINE_AA)
    return image


def write(report: dict, out: Path | None, json_path: Path | None, command: str = "",
          headline: tuple[str, ...] = HEADLINE) -> list[Path]:  # fmt: skip
    written = []
    if out is not None:
        import cv2

        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "report.md") as tmp:
            Path(tmp).write_text(markdown(report, command, headline))
        write_csv(report, out / "report.csv")
        ok, png = cv2.imencode(".png", draw(report, headline_names(report, headline)))
        assert ok
        with atomic_path(out / "report.png") as tmp:
            Path(tmp).write_bytes(png.tobytes())
        written += [out / "report.md", out / "report.csv", out / "report.png"]
    if json_path is not None:
        write_json(json_path, {**report, "command": command})
        written.append(json_path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jmrn.report",
                                     description=__doc__.split("\n")[0])  # fmt: skip
    parser.add_argument("--input", type=Path, help="a saved `dvc exp show --json --all-commits`"
                                                   " (default: run it)")  # fmt: skip
    parser.add_argument("--dataset", help="needed when the experiments are of several")
    parser.add_argument("--rev", action="append",
                        help="keep the experiments run from this commit (a hash prefix; "
                             "repeatable)")  # fmt: skip
    parser.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                        help="keep the experiments with this effective param value")
    parser.add_argument("--replicate", action="append", metavar="KEY",
                        help=f"a replicate key (default: {' and '.join(REPLICATES)})")
    parser.add_argument("--metric", action="append", metavar="PATTERN",
                        help="metrics to summarise, patterns like train/*/test/top1 "
                             "(default: tests, selection rules, fusion, clip methods)")
    parser.add_argument("--headline", action="append", metavar="PATTERN",
                        help="the metrics of the Markdown table and the picture (default: "
                             "each model's test top-1 or mAP, fusion, clip methods)")
    parser.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                        help="also give B - A within each group (default: JMRN vs PoTion, "
                             "selection rules vs the best test epoch); METRIC@key=value takes "
                             "it from the group that differs in that")  # fmt: skip
    parser.add_argument("--by-commit", action="store_true",
                        help="compare the experiments' commits (paired by seed; a: the first "
                             "--rev) instead of refusing commits whose code differs")
    parser.add_argument("--recipes", action="store_true",
                        help="also pair groups that differ in keys of several sections, where "
                             "a has the commit's values of them all (e.g. train.epochs with "
                             "contrastive.start_epoch)")
    parser.add_argument("--skip-unfinished", action="store_true",
                        help="leave out (and list) unfinished experiments instead of failing")
    parser.add_argument("--out", type=Path, help="folder for report.md, .csv and .png")
    parser.add_argument("--json", type=Path, dest="json_path", help="the report as JSON")
    args = parser.parse_args(argv)
    only = {k: parse_value(v) for k, v in only_values(parser, args.only).items()}
    command = "python -m jmrn.report " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        data = json.loads(args.input.read_text()) if args.input else exp_show_json()
        baseline = None
        if Path("params.yaml").exists():
            from jmrn.config import load_params

            baseline = load_params()
        report = build(data, replicates=tuple(args.replicate or REPLICATES),
                       metrics=tuple(args.metric or DEFAULT_METRICS), dataset=args.dataset,
                       rev=args.rev, only=only,
                       compare=[tuple(c) for c in args.compare] if args.compare else None,
                       skip_unfinished=args.skip_unfinished, baseline_params=baseline,
                       by_commit=args.by_commit, recipes=args.recipes)
    except (ExperimentsError, RuntimeError, OSError, json.JSONDecodeError) as err:
        print(f"jmrn.report: error: {err}", file=sys.stderr)
        return 1
    if report["left_out_unfinished"]:
        print(f"left out {len(report['left_out_unfinished'])} unfinished experiment(s)",
              file=sys.stderr)  # fmt: skip
    if report["left_out_not_their_own"]:
        print(f"left out the metrics files of stages that {len(report['left_out_not_their_own'])}"
              " experiment(s) did not run (listed in the report)", file=sys.stderr)  # fmt: skip
    headline = tuple(args.headline or HEADLINE)
    print(markdown(report, command, headline))
    for path in write(report, args.out, args.json_path, command.strip(), headline):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
