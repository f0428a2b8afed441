"""Supplementary Table 5, in spirit, on real JHMDB poses: PoTion, PoTion + PAA, JMRN without
and with the joint-contrastive loss, all on the `jhmdb14_gt` dataset of params.yaml.

Prerequisite (the heatmap cache of that dataset):

    ln -s ../../../shared/data/jhmdb14_gt data/raw/jhmdb14_gt
    dvc exp run -S dataset=jhmdb14_gt heatmaps      # or: dvc repro after setting dataset

Then:

    python bench/jhmdb14_table.py [--seeds 0 1 2] [--epochs N]

Each row is the dataset's settings from params.yaml with the row's changes, trained with
``jmrn.train.train`` exactly as the train stage does, into bench/results/jhmdb14/<row>/.
The same rows as DVC experiments: see the README.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

from jmrn.config import load_params, training_settings
from jmrn.train import train

ROWS = {
    # PoTion's own normalisation (max) and no pose augmentation beyond flip
    "potion": {"model": {"name": "potion"}, "paa": {"type": "none"},
               "train": {"normalize": "max"}},
    "potion_paa": {"model": {"name": "potion"}, "train": {"normalize": "max"}},
    "jmrn_no_jcl": {"contrastive": {"variant": "none"}},
    "jmrn": {},
}  # fmt: skip


def settings_for(params: dict, changes: dict, epochs: int | None, seed: int) -> dict:
    settings = training_settings(params)
    for name, values in changes.items():
        settings[name].update(values)
    if epochs is not None:
        settings["train"]["epochs"] = epochs
    settings["train"]["seed"] = seed
    return copy.deepcopy(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--rows", nargs="+", default=list(ROWS))
    parser.add_argument("--out", default="bench/results/jhmdb14")
    args = parser.parse_args()
    params = load_params()
    params["dataset"] = "jhmdb14_gt"
    heatmaps = Path("data/jhmdb14_gt/heatmaps.h5")
    if not heatmaps.exists():
        raise SystemExit(f"{heatmaps} is missing: build it first (see this script's docstring)")
    results: dict = {}
    for row in args.rows:
        for seed in args.seeds:
            out = Path(args.out) / row / f"seed{seed}"
            start = time.perf_counter()
            metrics = train(heatmaps, settings_for(params, ROWS[row], args.epochs, seed),
                            model_path=out / "model.pt", checkpoint_path=out / "checkpoint.pt",
                            metrics_path=out / "train.json",
                            per_class_path=out / "per_class.json", plots_dir=out / "plots",
                            progress=False)  # fmt: skip
            metrics["minutes"] = (time.perf_counter() - start) / 60
            results.setdefault(row, []).append(metrics)
            print(f"{row} seed {seed}: {metrics['test']} ({metrics['minutes']:.1f} min)",
                  flush=True)  # fmt: skip
    table = {}
    for row, runs in results.items():
        top1 = [r["test"]["top1"] for r in runs]
        mca = [r["test"]["mean_class_accuracy"] for r in runs]
        table[row] = {"seeds": args.seeds, "test_top1_mean": float(np.mean(top1)),
                      "test_top1_std": float(np.std(top1)),
                      "test_mean_class_accuracy_mean": float(np.mean(mca)),
                      "test_top1_per_seed": top1, "runs": runs}  # fmt: skip
    out_file = Path(args.out) / "table.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(table, indent=2) + "\n")
    print("| model | test top-1 | mean class accuracy |\n|---|---|---|")
    for row, r in table.items():
        print(f"| {row} | {100 * r['test_top1_mean']:.1f} ± {100 * r['test_top1_std']:.1f} "
              f"| {100 * r['test_mean_class_accuracy_mean']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
