"""params.yaml: the active dataset's block, overridden key by key by the top-level sections.

``datasets.<name>.<section>`` holds the paper's values for that dataset; the top-level
``<section>`` (e.g. ``paa``) holds overrides, ``null`` meaning "the dataset's value". So
``dvc exp run -S paa.beta=6`` sets beta for this run whatever the dataset.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def load_params(path: str | Path = "params.yaml") -> dict:
    with open(path) as f:
        params = yaml.safe_load(f)
    dataset = params.get("dataset")
    if dataset not in params.get("datasets", {}):
        raise ValueError(f"{path}: dataset {dataset!r} is not a key of datasets: "
                         f"{sorted(params.get('datasets', {}))}")  # fmt: skip
    return params


def dataset_block(params: dict) -> dict:
    return params["datasets"][params["dataset"]]


def section(params: dict, name: str) -> dict:
    """The active dataset's ``name`` section with the top-level overrides applied."""
    base = dict(dataset_block(params).get(name) or {})
    overrides = params.get(name) or {}
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ValueError(f"params.yaml: {name}.{unknown[0]} overrides nothing: "
                         f"datasets.{params['dataset']}.{name} has keys {sorted(base)}")
    base.update({k: v for k, v in overrides.items() if v is not None})
    return base


MODELS = ("jmrn", "potion")


def split_names(params: dict, split: int | None = None) -> dict[str, str]:
    """The train and test split names of the active dataset: ``splits.train`` and
    ``splits.test`` with ``{split}`` replaced by ``split``, else the top-level ``split``
    param, else the dataset's ``splits.split``."""
    splits = dataset_block(params)["splits"]
    if split is None:
        split = params.get("split") if params.get("split") is not None else splits.get("split")
    names = {}
    for role in ("train", "test"):
        name = str(splits[role])
        if "{split}" in name and split is None:
            raise ValueError(f"params.yaml: datasets.{params['dataset']}.splits.{role} is "
                             f"{name!r}: set splits.split (or the top-level split)")
        names[role] = name.replace("{split}", str(split))
    if splits.get("also_test"):  # further test sets, scored with the selected model
        names["also_test"] = list(splits["also_test"])
    if splits.get("detected"):  # AVA's detected boxes of the test keyframes (no labels)
        names["detected"] = str(splits["detected"])
    return names


def all_split_names(params: dict) -> list[str]:
    """Every split name the dataset's params can ask for (all numbered splits)."""
    choices = dataset_block(params)["splits"].get("all") or [None]
    names = set(dataset_block(params)["splits"].get("also_test") or [])
    for k in choices:
        names |= {split_names(params, k)[role] for role in ("train", "test")}
    return sorted(names)


def training_settings(params: dict, model: str = "jmrn", split: int | None = None) -> dict:
    """What a train stage reads: the resolved model, paa, contrastive and train sections for
    ``model`` (jmrn | potion), and the dataset's split names. The PoTion baseline takes its
    own normalisation from the ``potion`` section (PoTion's is ``max``)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r} ({' | '.join(MODELS)})")
    settings = {key: section(params, key) for key in ("model", "paa", "contrastive", "train")}
    settings["model"]["name"] = model
    if model == "potion":
        settings["train"]["normalize"] = section(params, "potion")["normalize"]
    settings["splits"] = split_names(params, split)
    return settings


def clip_training_settings(params: dict) -> dict:
    """The clip classifier: JMRN with the video model's settings, trained for
    ``clips.epochs`` on the clip representations."""
    settings = training_settings(params, "jmrn")
    settings["train"]["epochs"] = section(params, "clips")["epochs"]
    return settings


def average_precision(params: dict) -> str:
    """The active dataset's multi-label AP, ``train.ap``: charades | voc (AVA). Single-label
    datasets do not set it and never use it."""
    return section(params, "train").get("ap", "charades")


def heatmap_options(params: dict) -> dict:
    """``build_heatmaps``' keyword arguments from the resolved ``heatmap`` section: the grid,
    channels, discretisation, dtype, and the person-box crop with context where
    ``box_context`` is on (AVA). One place, so the video and the clip caches always agree."""
    from jmrn.heatmaps import Grid

    s = section(params, "heatmap")
    return {"grid": Grid(height=s["height"], width=s["width"], sigma=s["sigma"],
                         truncate=s["truncate"], min_conf=s["min_conf"]),
            "channels": s["channels"], "discretisation": s["discretisation"],
            "dtype": s["dtype"],
            "box_margin": s["box_margin"] if s.get("box_context") else None}  # fmt: skip
