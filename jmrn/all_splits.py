"""Train on every numbered split of the active dataset and write each split's figures and
their mean: the paper reports HMDB51 and JHMDB as the mean over their three splits.

    dvc repro heatmaps                         # the cache holds every split
    python -m jmrn.all_splits [--models jmrn potion]

Each split k of ``splits.all`` is trained with the same settings as the train stage (only the
split names change); without ``splits.all``, every k for which the heatmaps hold both names
(``splits.train`` and ``.test`` with k for ``{split}``: train1/test1, ...), so no preset needs
editing. A split number the data lacks is an error before anything is trained. Each split
goes into models/<dataset>/splits/<k>/<model>.pt (with a checkpoint in
checkpoints/<dataset>/splits/<k>/, so a killed run resumes),
metrics/<dataset>/splits/<k>/<model>.json and plots next to them; then
metrics/<dataset>/splits.json gets, per model, every split's test figures and their mean and
standard deviation. It is a command, not a DVC stage, so that `dvc repro` trains one split.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from jmrn.cli import concise_errors, show_value
from jmrn.config import (
    MODELS,
    ParamsError,
    dataset_block,
    load_params,
    split_names,
    training_settings,
)
from jmrn.heatmaps_file import HeatmapsFile
from jmrn.io import write_json
from jmrn.train import train


def numbered_splits(params: dict, available: list[str]) -> list[int]:
    """The split numbers k whose train and test names (``splits.train`` / ``.test`` with
    ``{split}`` = k) are both among ``available``, the split names the data has."""
    splits = dataset_block(params)["splits"]
    split_names(params)  # an error if the names have no {split}: one split only
    found = None
    for role in ("train", "test"):
        template = str(splits[role])
        if "{split}" not in template:
            continue
        prefix, _, suffix = template.partition("{split}")
        pattern = re.compile(re.escape(prefix) + r"([1-9][0-9]*)" + re.escape(suffix))
        numbers = {int(m.group(1)) for m in map(pattern.fullmatch, available) if m}
        found = numbers if found is None else found & numbers
    return sorted(found or ())


def splits_to_train(params: dict, available: list[str]) -> list[int]:
    """``splits.all``, each checked against the data's split names ``available``, else every
    numbered split the data has; an error names what is missing and the param to change."""
    where = f"datasets.{params['dataset']}.splits"
    splits = dataset_block(params)["splits"]
    if not any("{split}" in str(splits[role]) for role in ("train", "test")):
        raise ParamsError(f"{where} has one split only ({show_value(splits['train'])} / "
                          f"{show_value(splits['test'])}, no {{split}} in them): there is "
                          "nothing to average over; the train stage trains it")  # fmt: skip
    choices = splits.get("all")
    if not choices:
        choices = numbered_splits(params, available)
        if not choices:
            names = split_names(params)
            raise ParamsError(f"the data has no numbered splits like "
                              f"{show_value(names['train'])} / {show_value(names['test'])}: its "
                              f"splits are {sorted(available)}; check "
                              f"{where}.train and .test")  # fmt: skip
        return choices
    for k in choices:
        names = split_names(params, k)
        missing = [names[role] for role in ("train", "test") if names[role] not in available]
        if missing:
            raise ParamsError(f"{where}.all asks for split {k}, but the data has no split(s) "
                              f"{missing}: its splits are {sorted(available)}; set {where}.all "
                              "to numbers it has (or remove it to train every numbered split "
                              "the data has)")  # fmt: skip
    return list(choices)


def train_all_splits(params: dict, models: list[str], root: str | Path = ".",
                     progress: bool = True) -> dict:  # fmt: skip
    """Train ``models`` on every split of the active dataset; returns the splits summary."""
    root, name = Path(root), params["dataset"]
    heatmaps = root / f"data/{name}/heatmaps.h5"
    if not heatmaps.exists():
        raise FileNotFoundError(f"{heatmaps} does not exist: run `dvc repro heatmaps` first")
    with HeatmapsFile(heatmaps) as hf:
        available = list(hf.splits)
    choices = splits_to_train(params, available)
    summary: dict[str, dict] = {}
    for model in models:
        per_split = {}
        for k in choices:
            out, scores = root / f"models/{name}/splits/{k}", root / f"metrics/{name}/splits/{k}"
            metrics = train(heatmaps, training_settings(params, model, k),
                            model_path=out / f"{model}.pt",
                            checkpoint_path=root / f"checkpoints/{name}/splits/{k}/{model}.pt",
                            stage=f"all_splits {model} split {k}",
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
    concise_errors("all_splits")
    summary = train_all_splits(load_params(), args.models)
    for model, result in summary.items():
        print(model, {split: round(v.get("top1", v.get("mAP", 0.0)), 4)
                      for split, v in result.items() if split != "std"})  # fmt: skip


if __name__ == "__main__":
    main()
