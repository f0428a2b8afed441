"""Supplementary Fig. 4 from finished DVC experiments: test top-1 against PAA's beta, one line
per gamma, mean and standard deviation over the seeds that were queued.

    dvc exp run --queue -S 'paa.beta=0,2,4,6,8' -S 'paa.gamma=0,1,2,3' train@jmrn
    dvc queue start -j 1          # wait until `dvc queue status` shows them all done
    python -m jmrn.sweep          # plots/<dataset>/sweep/paa.{csv,png}, metrics/.../paa.json

It reads what ``dvc exp show --json --all-commits`` reports (or a file saved from it,
``--input``): every experiment's params and the metrics file of the chosen model, and the
commit it was run from. Experiments of several commits are pooled where the stages' code is
the same in all of them (``same_code``, as in ``jmrn.report``), and an error naming the files
that differ otherwise (``--rev`` picks one commit). Each experiment's beta, gamma
and seed are the effective values (a top-level override, else the dataset block's), so a
sweep over overrides and a sweep over the block give the same picture. Experiments of other
datasets are left out; experiments that differ in any other parameter are an error (the
picture would mix them) unless ``--only key=value`` narrows them to one setting. Nothing is
copied by hand: the numbers in the CSV and the picture are the experiments' metrics files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jmrn.config import SECTIONS
from jmrn.experiments import lock_from_git, same_code, stage_code, stale_metrics
from jmrn.io import atomic_path, write_json

SWEPT = ("paa.beta", "paa.gamma", "train.seed")



def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: json.dumps(tree, sort_keys=True)}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def effective_params(params: dict) -> dict[str, Any]:
    """Every section of the active dataset with the top-level overrides applied, flattened
    (``paa.beta`` -> 4), plus ``dataset``, ``split`` and ``compute.precision``.

    ``params`` is an experiment's recorded params.yaml, which the params schema of its own
    commit checked when it ran: it is read as it is, not against today's schema, so an
    experiment from before a key was added still reads (without that key)."""
    flat = {"dataset": params["dataset"], "split": json.dumps(params.get("split")),
            # the one compute key that changes figures (null before it existed)
            "compute.precision": json.dumps((params.get("compute") or {}).get("precision"))}
    block = (params.get("datasets") or {}).get(params["dataset"]) or {}
    for name in SECTIONS:
        values = dict(block.get(name) or {})
        values.update({k: v for k, v in (params.get(name) or {}).items() if v is not None})
        for key, value in values.items():
            flat[f"{name}.{key}"] = json.dumps(value, sort_keys=True)
    return flat


def experiments(exp_show: list[dict]) -> list[dict]:
    """(name, baseline commit, params, metrics) of every finished experiment in
    ``dvc exp show --json``."""
    found = []
    for baseline in exp_show:
        for group in baseline.get("experiments") or []:
            for rev in group.get("revs") or []:
                data = rev.get("data") or {}
                if rev.get("error") or not data.get("metrics"):
                    continue  # queued, running or failed
                params = (data.get("params") or {}).get("params.yaml", {}).get("data")
                if params:
                    metrics = {path: (m.get("data") or {})
                               for path, m in data["metrics"].items()}  # fmt: skip
                    found.append({"name": rev.get("name") or rev["rev"][:7],
                                  "baseline": baseline.get("rev", ""), "params": params,
                                  "rev": data.get("rev", ""), "metrics": metrics})  # fmt: skip
    return found


def _metric(metrics: dict, path: str, key: str | None) -> tuple[str, float] | None:
    values = metrics.get(path)
    if not values:
        return None
    test = values.get("test") or {}
    name = key or ("top1" if "top1" in test else "mAP")
    return (name, float(test[name])) if name in test else None


def collect(exp_show: list[dict], *, dataset: str | None, model: str, metric: str | None,
            only: dict[str, str], rev: str | None = None, code_of=stage_code,
            lock_of=None) -> dict:  # fmt: skip
    """The sweep's table: one row per experiment (beta, gamma, seed, metric) of ``dataset``
    (default: the dataset of most experiments), run from commits whose stages' code is the
    same (``same_code``; ``rev``, a prefix of a commit's hash, keeps one commit's). An
    experiment whose model metrics its own run did not write (queued with another target:
    they are its baseline's) is left out and listed (``jmrn.experiments.stale_metrics``)."""
    lock_of = lock_of or lock_from_git
    rows, not_their_own = [], {}
    for exp in experiments(exp_show):
        if rev and not exp["baseline"].startswith(rev):
            continue
        flat = effective_params(exp["params"])
        if any(flat.get(k) != json.dumps(parse_value(v), sort_keys=True) for k, v in only.items()):
            continue
        path = f"metrics/{flat['dataset']}/train/{model}.json"
        found = _metric(exp["metrics"], path, metric)
        if found is not None:
            ran = lock_of(exp)
            stale = stale_metrics(ran["lock"], exp["params"], ran["code"], [path])
            if stale:
                not_their_own[exp["name"]] = stale[path]
                continue
            rows.append({"name": exp["name"], "baseline": exp["baseline"], "flat": flat,
                         "metric": found[0], "value": found[1]})  # fmt: skip
    if not rows:
        raise ValueError(f"no finished experiment has metrics of model {model!r}"
                         + (f" with {only}" if only else "")
                         + ": queue some (`dvc exp run --queue -S 'paa.beta=0,2,4'`) and run "
                         "them (`dvc queue start`) first")  # fmt: skip
    datasets = sorted({r["flat"]["dataset"] for r in rows})
    dataset = dataset or max(datasets, key=lambda d: sum(r["flat"]["dataset"] == d for r in rows))
    rows = [r for r in rows if r["flat"]["dataset"] == dataset]
    if not rows:
        raise ValueError(f"no finished experiment of dataset {dataset!r} (found {datasets})")
    commits = same_code([r["baseline"] for r in rows], code_of)
    differing = sorted(k for k in rows[0]["flat"] if k not in SWEPT
                       and len({r["flat"].get(k) for r in rows}) > 1)  # fmt: skip
    if differing:
        values = {k: sorted({r["flat"].get(k) for r in rows}) for k in differing[:5]}
        raise ValueError(f"the {len(rows)} experiments of {dataset!r} differ in more than beta, "
                         f"gamma and seed: {values}; pick one setting with --only key=value "
                         f"(e.g. --only {differing[0]}={values[differing[0]][0]})")  # fmt: skip
    if len({r["metric"] for r in rows}) != 1:
        raise ValueError("the experiments report different metrics; choose one with --metric")
    table = [{"experiment": r["name"], "beta": json.loads(r["flat"]["paa.beta"]),
              "gamma": json.loads(r["flat"]["paa.gamma"]),
              "seed": json.loads(r["flat"]["train.seed"]), r["metric"]: r["value"]}
             for r in rows]  # fmt: skip
    duplicates = _duplicates(table)
    if duplicates:
        raise ValueError(f"several experiments have the same beta, gamma and seed: {duplicates}; "
                         "remove the extra ones (`dvc exp remove <name>`)")  # fmt: skip
    return {"dataset": dataset, "model": model, "metric": rows[0]["metric"],
            "commits": commits, "left_out_not_their_own": not_their_own,
            "rows": sorted(table, key=lambda r: (r["gamma"], r["beta"], r["seed"]))}  # fmt: skip


def parse_value(value: str) -> Any:
    """A command-line value as JSON where it parses (4, true, [1, 2]), else the text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _duplicates(table: list[dict]) -> list[list[str]]:
    by_point = defaultdict(list)
    for row in table:
        by_point[(row["beta"], row["gamma"], row["seed"])].append(row["experiment"])
    return [names for names in by_point.values() if len(names) > 1]


def summarise(sweep: dict) -> list[dict]:
    """Per (gamma, beta): mean, standard deviation (ddof 0) and number of seeds."""
    metric = sweep["metric"]
    points = defaultdict(list)
    for row in sweep["rows"]:
        points[(row["gamma"], row["beta"])].append(row[metric])
    return [{"gamma": g, "beta": b, "mean": float(np.mean(v)), "std": float(np.std(v)),
             "seeds": len(v)} for (g, b), v in sorted(points.items())]  # fmt: skip


def draw(summary: list[dict], title: str, metric: str, size: tuple[int, int] = (480, 640)
         ) -> np.ndarray:  # fmt: skip
    """A line chart (BGR image): metric (%) against beta, one coloured line per gamma, error
    bars of one standard deviation where several seeds were run."""
    height, width = size
    left, right, top, bottom = 70, 130, 40, 50
    image = np.full((height, width, 3), 255, np.uint8)
    betas = sorted({p["beta"] for p in summary})
    gammas = sorted({p["gamma"] for p in summary})
    lows = [100 * (p["mean"] - p["std"]) for p in summary]
    highs = [100 * (p["mean"] + p["std"]) for p in summary]
    y_min, y_max = np.floor(min(lows) / 5) * 5, np.ceil(max(highs) / 5) * 5
    y_max = max(y_max, y_min + 5)
    b_min, b_max = min(betas), max(betas) if max(betas) > min(betas) else min(betas) + 1

    def to_px(beta: float, value: float) -> tuple[int, int]:
        x = left + (beta - b_min) / (b_max - b_min) * (width - left - right)
        y = top + (y_max - value) / (y_max - y_min) * (height - top - bottom)
        return int(round(x)), int(round(y))

    font, grey, black = cv2.FONT_HERSHEY_SIMPLEX, (200, 200, 200), (0, 0, 0)
    for tick in np.arange(y_min, y_max + 0.5, 5 if y_max - y_min <= 30 else 10):
        _, y = to_px(b_min, tick)
        cv2.line(image, (left, y), (width - right, y), grey, 1)
        cv2.putText(image, f"{tick:.0f}", (left - 40, y + 5), font, 0.45, black, 1, cv2.LINE_AA)
    for beta in betas:
        x, _ = to_px(beta, y_min)
        cv2.putText(image, f"{beta:g}", (x - 8, height - bottom + 20), font, 0.45, black, 1,
                    cv2.LINE_AA)  # fmt: skip
    cv2.rectangle(image, (left, top), (width - right, height - bottom), black, 1)
    cv2.putText(image, "beta", ((left + width - right) // 2 - 15, height - 10), font, 0.5, black,
                1, cv2.LINE_AA)  # fmt: skip
    cv2.putText(image, f"test {metric} (%)", (5, top - 12), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.putText(image, title, (left + 60, top - 12), font, 0.5, black, 1, cv2.LINE_AA)
    hues = np.linspace(0, 120, max(len(gammas), 2))[: len(gammas)]  # OpenCV hue: red .. blue
    for gamma, hue in zip(gammas, hues, strict=True):
        hsv = np.uint8([[[hue, 230, 200]]])
        colour = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
        line = [p for p in summary if p["gamma"] == gamma]
        pts = [to_px(p["beta"], 100 * p["mean"]) for p in line]
        for a, b in zip(pts, pts[1:], strict=False):
            cv2.line(image, a, b, colour, 2, cv2.LINE_AA)
        for p, (x, y) in zip(line, pts, strict=True):
            cv2.circle(image, (x, y), 4, colour, -1, cv2.LINE_AA)
            if p["seeds"] > 1:
                _, lo = to_px(p["beta"], 100 * (p["mean"] - p["std"]))
                _, hi = to_px(p["beta"], 100 * (p["mean"] + p["std"]))
                cv2.line(image, (x, lo), (x, hi), colour, 1, cv2.LINE_AA)
                cv2.line(image, (x - 4, lo), (x + 4, lo), colour, 1)
                cv2.line(image, (x - 4, hi), (x + 4, hi), colour, 1)
        y = top + 20 + 22 * gammas.index(gamma)
        cv2.line(image, (width - right + 12, y - 4), (width - right + 36, y - 4), colour, 2)
        cv2.putText(image, f"gamma {gamma:g}", (width - right + 42, y), font, 0.45, black, 1,
                    cv2.LINE_AA)  # fmt: skip
    return image


def write(sweep: dict, out_dir: Path) -> dict[str, Path]:
    """paa.csv (one row per (gamma, beta): mean, std and mean -/+ std in %, seeds), paa.png
    and paa.json (every experiment's row). The CSV is a DVC plot with the project's template
    ``.dvc/plots/sweep.json`` (one line per gamma, error bars):
    ``dvc plots show plots/<dataset>/sweep/paa.csv --template sweep -x beta -y mean``."""
    summary = summarise(sweep)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "paa.csv", "png": out_dir / "paa.png", "json": out_dir / "paa.json"}
    with atomic_path(paths["csv"]) as tmp:  # top-1 in %: low, high = mean -/+ std
        lines = ["gamma,beta,mean,std,low,high,seeds"] + [
            f"{p['gamma']:g},{p['beta']:g},{100 * p['mean']:.2f},{100 * p['std']:.2f},"
            f"{100 * (p['mean'] - p['std']):.2f},{100 * (p['mean'] + p['std']):.2f},{p['seeds']}"
            for p in summary]  # fmt: skip
        Path(tmp).write_text("\n".join(lines) + "\n")
    seeds = sorted({r["seed"] for r in sweep["rows"]})
    title = (f"{sweep['dataset']}, {sweep['model']}, seeds {','.join(map(str, seeds))}, "
             f"commit{'s' if len(sweep['commits']) > 1 else ''} "
             f"{'+'.join(c[:7] for c in sweep['commits'])}")
    image = draw(summary, title, sweep["metric"])
    with atomic_path(paths["png"]) as tmp:
        ok, encoded = cv2.imencode(".png", image)
        assert ok
        Path(tmp).write_bytes(encoded.tobytes())
    write_json(paths["json"], {**sweep, "summary": summary})
    return paths


def only_values(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, str]:
    """``--only KEY=VALUE`` options as {key: value text}; anything else is a usage error."""
    only = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--only takes KEY=VALUE, not {item!r}")
        only[key] = value
    return only


def exp_show_json() -> list[dict]:
    cmd = ["dvc", "exp", "show", "--json", "--all-commits"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jmrn.sweep",
                                     description=__doc__.split("\n")[0])  # fmt: skip
    parser.add_argument("--input", type=Path,
                        help="a saved `dvc exp show --json` (default: run it)")  # fmt: skip
    parser.add_argument("--dataset", help="default: the dataset of most experiments")
    parser.add_argument("--model", default="jmrn", choices=["jmrn", "potion"])
    parser.add_argument("--metric", help="a key of the test metrics (default top1, else mAP)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                        help="keep the experiments with this effective param value "
                             "(e.g. train.epochs=10)")  # fmt: skip
    parser.add_argument("--rev", help="the commit the experiments ran from (a hash prefix), "
                                      "when they come from several")  # fmt: skip
    parser.add_argument("--out", type=Path, help="default: plots/<dataset>/sweep")
    args = parser.parse_args(argv)
    only = only_values(parser, args.only)
    data = json.loads(args.input.read_text()) if args.input else exp_show_json()
    try:
        sweep = collect(data, dataset=args.dataset, model=args.model, metric=args.metric,
                        only=only, rev=args.rev)  # fmt: skip
    except ValueError as err:
        print(f"jmrn.sweep: error: {err}", file=sys.stderr)
        return 1
    if sweep["left_out_not_their_own"]:
        print(f"left out {len(sweep['left_out_not_their_own'])} experiment(s) whose "
              f"{args.model} metrics their own run did not write: "
              f"{sorted(sweep['left_out_not_their_own'])[:5]}", file=sys.stderr)  # fmt: skip
    paths = write(sweep, args.out or Path(f"plots/{sweep['dataset']}/sweep"))
    for p in summarise(sweep):
        seeds = f"{p['seeds']} seed{'s' if p['seeds'] > 1 else ''}"
        print(f"gamma {p['gamma']:g} beta {p['beta']:g}: {100 * p['mean']:.1f} ± "
              f"{100 * p['std']:.1f} % ({seeds})")  # fmt: skip
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
