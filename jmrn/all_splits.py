"""Queue every numbered split of the active dataset as DVC experiments: the paper reports
HMDB51 and JHMDB as the mean over their three splits.

    dvc repro heatmaps                          # the cache holds every split
    python -m jmrn.all_splits --seeds 0 1 2     # queues split x seed experiments
    dvc queue start -j 1
    python -m jmrn.report                       # split and train.seed are its replicates

There is one way to run a grid (issue 23): each split k and seed s is the experiment
``dvc exp run --queue -S split=k -S train.seed=s train@<model>``, which restores ingest and the
heatmaps from DVC's run-cache and trains; ``python -m jmrn.report`` then averages over the
replicate keys (``split`` and ``train.seed``), which for one setting is the paper's mean over
splits, with its confidence interval. Which splits: ``splits.all``, each checked against the
data, else every k for which the heatmaps hold both names (``splits.train`` and ``.test`` with
k for ``{split}``: train1/test1, ...), so no preset needs editing. A split the data lacks is an
error before anything is queued. ``--dry-run`` prints the commands without queueing them.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from pathlib import Path

from jmrn.cli import concise_errors, show_value
from jmrn.config import MODELS, ParamsError, dataset_block, load_params, section, split_names
from jmrn.heatmaps_file import HeatmapsFile


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


def queue_commands(params: dict, available: list[str], seeds: list[int], models: list[str],
                   copy_paths: list[str]) -> list[list[str]]:  # fmt: skip
    """The ``dvc exp run --queue`` command of every split to train (``splits_to_train``) and
    seed, training ``models``; ``copy_paths`` (untracked raw data, e.g. a symlink) go with
    each experiment's temporary copy."""
    copies = [arg for path in copy_paths for arg in ("-C", path)]
    targets = [f"train@{m}" for m in models]
    return [["dvc", "exp", "run", "--queue", *copies, "-S", f"split={k}",
             "-S", f"train.seed={seed}", *targets]
            for k in splits_to_train(params, available) for seed in seeds]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["jmrn"])
    parser.add_argument("--seeds", nargs="+", type=int, help="default: the params' train.seed")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args()
    concise_errors("all_splits")
    params = load_params()
    name = params["dataset"]
    heatmaps = Path(f"data/{name}/heatmaps.h5")
    if not heatmaps.exists():
        raise FileNotFoundError(f"{heatmaps} does not exist: run `dvc repro heatmaps` first")
    with HeatmapsFile(heatmaps) as hf:
        available = list(hf.splits)
    raw = Path(dataset_block(params)["raw_dir"])
    seeds = args.seeds if args.seeds is not None else [section(params, "train")["seed"]]
    commands = queue_commands(params, available, seeds, args.models,
                              [str(raw)] if raw.exists() else [])  # fmt: skip
    for command in commands:
        print(shlex.join(command))
        if not args.dry_run:
            subprocess.run(command, check=True)
    if not args.dry_run:
        print(f"queued {len(commands)} experiment(s): run them with `dvc queue start -j 1`, "
              "then `python -m jmrn.report` (split and train.seed are its replicates)")


if __name__ == "__main__":
    main()
