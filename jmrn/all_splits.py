"""Train on every numbered split of the active dataset and write each split's figures and
their mean: the paper reports HMDB51 and JHMDB as the mean over their three splits.

    dvc repro heatmaps                         # the cache holds every split
    python -m jmrn.all_splits [--models jmrn potion]

Each split k of ``splits.all`` is trained with the same settings as the train stage (only the
split names change), into models/<dataset>/splits/<k>/<model>.pt (with a checkpoint, so a
killed run resumes), metrics/<dataset>/splits/<k>/<model>.json and plots next to them; then
metrics/<dataset>/splits.json gets, per model, every split's test figures and their mean and
standard deviation. It is a command, not a DVC stage, so that `dvc repro` trains one split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jmrn.config import MODELS, dataset_block, load_params, training_settings
from jmrn.io import write_json
from jmrn.train import train


def train_all_splits(params: dict, models: list[str], root: str | Path = ".",
                     progress: bool = True) -> dict:  # fmt: skip
    """Train ``models`` on every split of the active dataset; returns the splits summary."""
    root, name = Path(root), params["dataset"]
    heatmaps = root / f"data/{name}/heatmaps.h5"
    if not heatmaps.exists():
        raise FileNotFoundError(f"{heatmaps} does not exist: run `dvc repro heatmaps` first")
    choices = dataset_block(params)["splits"].get("all")
    if not choices:
        raise ValueError(f"params.yaml: datasets.{name}.splits.all lists no numbered splits")
    summary: dict[str, dict] = {}
    for model in models:
        per_split = {}
        for k in choices:
            out, scores = root / f"models/{name}/splits/{k}", root / f"metrics/{name}/splits/{k}"
            metrics = train(heatmaps, training_settings(params, model, k),
                            model_path=out / f"{model}.pt",
                            checkpoint_path=out / f"{model}.checkpoint.pt",
                            metrics_path=scores / f"{model}.json",
                            per_class_path=scores / f"{model}_per_class.json",
                            plots_dir=root / f"plots/{name}/splits/{k}/{model}",
                            device=params["compute"]["device"],
                            loader_workers=params["compute"]["loader_workers"],
                            progress=progress)  # fmt: skip
            per_split[f"split{k}"] = {key: v for key, v in metrics["test"].items() if key != "loss"}
        keys = list(next(iter(per_split.values())))
        values = {key: [s[key] for s in per_split.values()] for key in keys}
        summary[model] = {
            **per_split,
            "mean": {key: float(np.mean(v)) for key, v in values.items() if None not in v},
            "std": {key: float(np.std(v)) for key, v in values.items() if None not in v},
        }
    write_json(root / f"metrics/{name}/splits.json", summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["jmrn"])
    args = parser.parse_args()
    summary = train_all_splits(load_params(), args.models)
    for model, result in summary.items():
        print(model, {split: round(v.get("top1", v.get("mAP", 0.0)), 4)
                      for split, v in result.items() if split != "std"})  # fmt: skip


if __name__ == "__main__":
    main()
