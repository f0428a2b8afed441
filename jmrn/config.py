"""params.yaml: its schema, and the active dataset's settings with the top-level overrides.

``datasets.<name>.<section>`` holds the paper's values for that dataset; the top-level
``<section>`` (e.g. ``paa``) holds overrides, ``null`` meaning "the dataset's value". So
``dvc exp run -S paa.beta=6`` sets beta for this run whatever the dataset.

The schema
----------
``load_params`` checks the whole file before a stage does any work: every key of every
dataset block (not only the active one), of every override section and of ``compute``, then
the *resolved* values of the active dataset (its block with the overrides applied, so
``-S heatmap.sigma=0`` fails at once) and its split names. ``section`` and ``split_names``
check again where a stage reads them, so a dict built in code is as safe. Every error is a
``ParamsError`` (a ValueError) naming the full dotted key (``datasets.hmdb.heatmap.sigma``,
or ``heatmap.sigma`` for the top-level override) and the problem; an unknown key also names
the nearest valid one. A key repeated in the file is an error too (YAML keeps the last).

The schema is the plain dicts below. To add a key, add it with its check to the dict of its
place, then to params.yaml (to every dataset block, and as ``null`` to the override section):

* ``TOP_LEVEL``: the file's top-level keys (the override sections are ``SECTIONS``' names).
* ``DATASET``: the keys of a dataset block ``datasets.<name>`` (its sections: ``SECTIONS``).
* ``SPLITS``: ``datasets.<name>.splits``; how ``{split}`` and the split numbers combine is
  checked by ``split_names``.
* ``SOURCE_OPTIONS``: ``datasets.<name>.source`` per ``format``, the options that format's
  reader in jmrn/readers/ reads (all optional: the readers have defaults); ``format: auto``
  accepts those of every format it may detect.
* ``SECTIONS``: the settings sections (``ingest``, ``heatmap``, ..., ``ranker``): the same
  keys in a dataset block and in its top-level override. A rule between keys of one section
  (truncate * sigma) is in ``section_rules``; between sections (min_frames vs channels) in
  ``dataset_rules``.
* ``COMPUTE``: the top-level ``compute`` section (how much of the machine; not a stage param).

A check is a small function ``value -> problem or None``: ``integer(ge=1)``, ``number(gt=0)``,
``one_of("a", "b")``, ``pair(...)``, ``text``, ``boolean``, ... Bools are not integers, a string
is not a number, an integer is a number. A key is required unless its check is wrapped in
``optional(...)``: required keys are the ones every preset has, optional ones are used by
some datasets only (``train.ap``, ``heatmap.box_context``). ``nullable(...)`` allows ``null``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jmrn.cli import SHOWN_CHARACTERS, show_value
from jmrn.heatmaps import MIN_REACH


class ParamsError(ValueError):
    """A key of params.yaml that is unknown, missing, or has a value the code cannot use."""

    def __init__(self, detail: str, file: str | Path = "params.yaml") -> None:
        super().__init__(f"{file}: {detail}")
        self.detail = detail


# ---------------------------------------------------------------- checks: value -> problem

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class OptionalKey:
    """A key that may be absent (only some datasets use it); present, it is ``check``ed."""

    check: Check


def optional(check: Check) -> OptionalKey:
    return OptionalKey(check)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _not_a_number(value: Any) -> str:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ", not text"
        return (", not text (YAML reads a float only with a dot and a signed exponent: "
                "write 1.0e-3, not 1e-3)")  # fmt: skip
    if isinstance(value, bool):
        return ", not true/false"
    return ""


def _range(value: float, ge=None, gt=None, le=None, lt=None) -> str | None:
    """``must be in [0, 1)``-style text when ``value`` is outside the bounds, else None."""
    low = (ge is None or value >= ge) and (gt is None or value > gt)
    high = (le is None or value <= le) and (lt is None or value < lt)
    if low and high:
        return None
    lower = f"[{ge}" if ge is not None else f"({gt}" if gt is not None else None
    upper = f"{le}]" if le is not None else f"{lt})" if lt is not None else None
    if lower and upper:
        return f"must be in {lower}, {upper}"
    if lower:
        return f"must be {'>=' if ge is not None else '>'} {lower[1:]}"
    return f"must be {'<=' if le is not None else '<'} {upper[:-1]}"


def integer(*, ge=None, gt=None, le=None, lt=None) -> Check:
    def check(value: Any) -> str | None:
        if not _is_int(value):
            return "must be an integer" + _not_a_number(value)
        return _range(value, ge, gt, le, lt)

    return check


def number(*, ge=None, gt=None, le=None, lt=None) -> Check:
    def check(value: Any) -> str | None:
        if not _is_number(value):
            return "must be a number" + _not_a_number(value)
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        return _range(value, ge, gt, le, lt)

    return check


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {' | '.join(choices)}"

    return check


def nullable(check: Check) -> Check:
    def nullable_check(value: Any) -> str | None:
        return None if value is None else check(value)

    return nullable_check


def pair(check: Check, example: str) -> Check:
    """A list of exactly two values, each passing ``check`` (e.g. [height, width])."""

    def pair_check(value: Any) -> str | None:
        problems = [check(v) for v in value] if isinstance(value, list) else []
        problem = next((f"; each {p}" for p in problems if p), None)
        if len(problems) != 2 or problem:
            return f"must be a list of two values, {example}{problem or ''}"
        return None

    return pair_check


def text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def mapping(value: Any) -> str | None:
    """A nested block; its own keys are checked by its own schema."""
    return None if isinstance(value, dict) else "must be a mapping of keys to values"


def regex(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty regular expression (or null)"
    try:
        re.compile(value)
    except re.error as err:
        return f"must be a valid regular expression ({err})"
    return None


def text_list(value: Any) -> str | None:
    if not isinstance(value, list) or not value or any(text(v) for v in value):
        return "must be a non-empty list of names"
    return None


def split_numbers(value: Any) -> str | None:
    if not isinstance(value, list) or not value or any(not _is_int(v) or v < 1 for v in value):
        return "must be a non-empty list of split numbers (integers >= 1), e.g. [1, 2, 3]"
    return None if len(set(value)) == len(value) else "lists a split twice"


def dataset_name(value: Any) -> str | None:
    """Dataset names become folder names (data/<name>/, models/<name>/)."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        return None
    return "must be a name of letters, digits, '_', '.' or '-' (it names folders)"


def n_jobs(value: Any) -> str | None:
    if _is_int(value) and value != 0:
        return None
    return "must be a non-zero integer (-1: every core, N: N worker processes)"


def device(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return None
    return "must be auto | cpu | cuda | cuda:N | mps"


def must_be_null(reason: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value is None else f"must be null: {reason}"

    return check


FRACTION = number(ge=0, le=1)
PROBABILITY_BELOW_ONE = number(ge=0, lt=1)
POSITIVE_INT = integer(ge=1)
COUNT = integer(ge=0)
SEED = integer(ge=0)
PATH = nullable(text)  # a file name or path; null: the reader's default
IMAGE_SIZE = nullable(pair(integer(ge=1), "[height, width] in pixels"))

# ------------------------------------------------------------------------------ the schema

# Kept equal to the code's lists by tests/test_config.py (importing torch here would slow
# every stage's start): jmrn.augment.TRANSLATION_MODES, jmrn.losses.VARIANTS + none.
TRANSLATION_MODES = ("none", "global", "groupwise", "global_and_groupwise", "jointwise")
CONTRASTIVE_VARIANTS = ("proposed", "only_aug", "multi_label_weighted", "none")
# jmrn.models.EMBEDDINGS / PROJECTIONS, repeated so that reading params does not import torch
EMBEDDINGS = ("r", "c")
PROJECTIONS = ("mlp", "linear", "none")
NORMALISATIONS = ("area", "max", "none")
# Model-selection rules (jmrn.selection, issue 23 §3)
SELECTION_RULES = ("val_metric", "val_loss", "val_smoothed", "last", "average")
SCHEDULES = ("plateau", "cosine")  # the learning-rate schedule (jmrn.train.make_scheduler)

SECTIONS: dict[str, dict[str, Check | OptionalKey]] = {
    "ingest": {
        "min_frames": POSITIVE_INT,  # and >= heatmap.channels (dataset_rules)
        "max_skipped_fraction": FRACTION,
        "frame_tolerance": FRACTION,
        "max_outside_fraction": FRACTION,
        "placeholder_xy": nullable(pair(number(), "[x, y] in source pixels")),
    },
    "heatmap": {
        "height": POSITIVE_INT,
        "width": POSITIVE_INT,
        "sigma": number(gt=0),  # truncate * sigma >= MIN_REACH (section_rules)
        "truncate": number(gt=0),
        "min_conf": PROBABILITY_BELOW_ONE,
        "channels": integer(ge=2),
        "discretisation": one_of("code", "continuous"),
        "dtype": one_of("float16", "float32"),  # an integer type would quantise the cache
        "box_context": optional(boolean),
        "box_margin": optional(number(ge=0)),
    },
    "model": {
        "c_dim": POSITIVE_INT,
        "widths": pair(POSITIVE_INT, "[w1, w2] channels of the two conv blocks"),
        "head_width": POSITIVE_INT,
        "dropout": PROBABILITY_BELOW_ONE,
        "selector": one_of("sigmoid", "gumbel"),
        "gumbel_tau": number(gt=0),
        "embedding": one_of(*EMBEDDINGS),  # where the joint-contrastive projection reads
        "projection": one_of(*PROJECTIONS),
    },
    "paa": {
        "type": one_of(*TRANSLATION_MODES),
        "beta": COUNT,
        "gamma": COUNT,
        "flip_p": FRACTION,
        "rotation_degrees": number(ge=0),
        "group_rotation_degrees": number(ge=0),
        "cutmix_joints": COUNT,
    },
    "contrastive": {
        "variant": one_of(*CONTRASTIVE_VARIANTS),
        "lambda": number(ge=0),
        "tau": number(gt=0),
        "start_epoch": COUNT,
        "ramp_epochs": COUNT,
    },
    "train": {
        "optimizer": one_of("adam", "adamw", "sgd"),
        "lr": number(gt=0),
        "momentum": PROBABILITY_BELOW_ONE,
        "weight_decay": number(ge=0),
        "batch_size": POSITIVE_INT,
        "epochs": POSITIVE_INT,
        "normalize": one_of(*NORMALISATIONS),
        "crop": pair(POSITIVE_INT, "[height, width] in grid cells"),
        "schedule": one_of(*SCHEDULES),
        "lr_patience": COUNT,  # plateau only
        "lr_factor": number(gt=0, lt=1),  # plateau only
        "eval_every": POSITIVE_INT,
        "val_fraction": PROBABILITY_BELOW_ONE,
        "seed": SEED,
        "val_group": nullable(regex),
        "select": one_of(*SELECTION_RULES),
        "select_window": POSITIVE_INT,
        "videos_per_class": COUNT,  # 0, or >= 2 and dividing batch_size (section_rules)
        "ap": optional(one_of("charades", "voc")),
    },
    "fusion": {
        "l2_penalty": number(ge=0),
        "l2_normalize": boolean,
        "per_class_weights": boolean,
    },
    "potion": {"normalize": one_of(*NORMALISATIONS)},
    "clips": {
        "clip_len": POSITIVE_INT,  # and >= heatmap.channels (dataset_rules)
        "stride": POSITIVE_INT,
        "epochs": POSITIVE_INT,
        "per_video": COUNT,  # clips of each video per epoch of clip_train; 0 = every clip
        "init": one_of("scratch", "video"),  # video: start from models/<dataset>/jmrn.pt
        "k": POSITIVE_INT,
        "classifier": one_of("jmrn", "external"),
    },
    "ranker": {
        "hidden": POSITIVE_INT,
        "dropout": PROBABILITY_BELOW_ONE,
        "lr": number(gt=0),
        "weight_decay": number(ge=0),
        "epochs": POSITIVE_INT,
        "batch_pairs": POSITIVE_INT,
        "random_repeats": POSITIVE_INT,
        "seed": SEED,
    },
}
# Keys that were removed on purpose: the error says why instead of only "unknown key".
REMOVED = {
    "fusion.lr": "the fusion weights are now fit to convergence (L-BFGS): see fusion.l2_penalty",
    "fusion.epochs": "the fusion weights are now fit to convergence (L-BFGS): see "
                     "fusion.l2_penalty",
}  # fmt: skip

_OPENPOSE = {"class_names": PATH, "layout": PATH, "image_size": IMAGE_SIZE,
             "frame_sizes": PATH}  # fmt: skip
SOURCE_OPTIONS: dict[str, dict[str, Check]] = {
    "pyskl": {"file": PATH, "class_names": PATH, "layout": PATH,
              "image_size": must_be_null("a PYSKL pickle records every video's img_shape, "
                                         "which is what is used")},  # fmt: skip
    "jhmdb_mat": {"class_names": PATH, "image_size": IMAGE_SIZE},
    "stgcn_json": {"class_names": PATH, "subset_classes": PATH, "layout": PATH,
                   "image_size": IMAGE_SIZE},  # fmt: skip
    "openpose_json": _OPENPOSE,
    "charades_csv": {"keypoints": nullable(one_of("auto", "pyskl", "openpose")), "file": PATH,
                     "layout": PATH, "image_size": IMAGE_SIZE, "frame_sizes": PATH},
    "ava_csv": {"image_size": IMAGE_SIZE, "frame_sizes": PATH, "fps": number(gt=0),
                "start_second": number(ge=0), "clip_seconds": number(gt=0),
                "min_inside": FRACTION, "layout": PATH, "action_list": PATH,
                "proposals": PATH, "proposal_min_score": FRACTION},  # fmt: skip
}
# format: auto may detect any format (jmrn.readers.detect_format): it takes all their options.
SOURCE_OPTIONS["auto"] = {k: v for fmt in ("pyskl", "jhmdb_mat", "stgcn_json", "charades_csv",
                                           "ava_csv", "openpose_json")
                          for k, v in SOURCE_OPTIONS[fmt].items()}  # fmt: skip

SPLITS: dict[str, Check | OptionalKey] = {
    "train": text,  # "{split}" in it is replaced by the split number
    "test": text,
    "split": optional(nullable(POSITIVE_INT)),  # the default number (top-level split wins)
    "all": optional(nullable(split_numbers)),  # every number python -m jmrn.all_splits trains
    "also_test": optional(nullable(text_list)),
    "detected": optional(nullable(text)),
}
GENERATOR: dict[str, Check | OptionalKey] = {"seed": SEED, "videos_per_class": POSITIVE_INT}
DATASET: dict[str, Check | OptionalKey] = {
    "format": one_of("auto", *(f for f in SOURCE_OPTIONS if f != "auto")),
    "raw_dir": text,
    "source": nullable(mapping),  # SOURCE_OPTIONS[format]
    "generator": optional(mapping),  # GENERATOR (the built-in synthetic data)
    "layout": nullable(text),  # the target layout; null keeps the source's
    "splits": mapping,  # SPLITS
    **{name: mapping for name in SECTIONS},
}
COMPUTE: dict[str, Check | OptionalKey] = {
    "n_jobs": n_jobs,
    "loader_workers": COUNT,
    "device": device,
    "precision": one_of("auto", "fp32", "bf16"),  # jmrn.precision
}
TOP_LEVEL: dict[str, Check | OptionalKey] = {
    "dataset": dataset_name,  # a key of datasets
    "datasets": mapping,  # name -> DATASET block
    "split": optional(nullable(POSITIVE_INT)),  # overrides splits.split (see split_names)
    "compute": mapping,  # COMPUTE
    **{name: optional(nullable(mapping)) for name in SECTIONS},  # overrides
}


# ------------------------------------------------------------------------- checking


def _names(keys) -> str:
    """The sorted names of a mapping's keys, bounded for a message."""
    text = str(sorted(str(k)[:SHOWN_CHARACTERS] for k in keys))
    return text if len(text) <= 3 * SHOWN_CHARACTERS else text[:3 * SHOWN_CHARACTERS] + "...]"


def _unknown_key(key: str, where: str, valid: list[str], note: str = "") -> ParamsError:
    if len(key) > SHOWN_CHARACTERS:  # a mapping or a long text used as a key
        key = key[:SHOWN_CHARACTERS - 3] + "..."
    full = f"{where}.{key}" if where else key
    close = difflib.get_close_matches(key, valid, n=1)
    nearest = f"; did you mean {where + '.' if where else ''}{close[0]}?" if close else ""
    removed = next((why for name, why in REMOVED.items()
                    if full == name or full.endswith("." + name)), None)  # fmt: skip
    reason = f" (removed: {removed})" if removed else ""
    return ParamsError(f"unknown key {full}{reason}{note}{nearest} (the keys of "
                       f"{where or 'the top level'} are: {', '.join(sorted(valid))})")


def _check_value(key: str, value: Any, check: Check | OptionalKey) -> None:
    if isinstance(check, OptionalKey):
        check = check.check
    problem = check(value)
    if problem:
        raise ParamsError(f"{key} = {show_value(value)}: {problem}")


def _check_block(values: Any, schema: dict, where: str, *, required: bool = True,
                 overrides: bool = False, note: str = "") -> None:  # fmt: skip
    """The keys of ``values`` against ``schema``: none unknown, the required ones present
    (unless ``required`` is off), and every value passes its check. ``overrides``: a top-level
    override section, where every key may be absent or null (= the dataset's value)."""
    problem = mapping(values)
    if problem:
        raise ParamsError(f"{where} = {show_value(values)}: {problem}")
    for key in values:
        if not isinstance(key, str) or key not in schema:
            raise _unknown_key(key if isinstance(key, str) else show_value(key), where,
                               list(schema), note)  # fmt: skip
    if required and not overrides:
        missing = [k for k, c in schema.items()
                   if not isinstance(c, OptionalKey) and k not in values]  # fmt: skip
        if missing:
            more = f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""
            raise ParamsError(f"{where}.{missing[0]} is missing{more}")
    for key, value in values.items():
        if not (overrides and value is None):
            _check_value(f"{where}.{key}" if where else key, value, schema[key])


def _numbered(splits: dict) -> bool:
    return any("{split}" in str(splits[role]) for role in ("train", "test"))


def _check_splits(where: str, splits: dict) -> None:
    """A dataset's own split settings agree with each other (the top-level split is checked
    with the active dataset's names by ``split_names``)."""
    _check_block(splits, SPLITS, where)
    numbers = {k: splits[k] for k in ("split", "all") if splits.get(k) is not None}
    if numbers and not _numbered(splits):
        key = next(iter(numbers))
        raise ParamsError(f"{where}.{key} = {show_value(numbers[key])} names a numbered split, "
                          f"but {where}.train ({show_value(splits['train'])}) and .test "
                          f"({show_value(splits['test'])}) "
                          "have no {split} to put it in: remove it, or name the splits "
                          "'train{split}' and 'test{split}'")  # fmt: skip
    if "split" in numbers and "all" in numbers and numbers["split"] not in numbers["all"]:
        raise ParamsError(f"{where}.split = {numbers['split']} is not one of {where}.all "
                          f"{show_value(numbers['all'])}")  # fmt: skip


def check_dataset(name: str, block: Any) -> None:
    """Every key and value of one dataset block (active or not)."""
    where = f"datasets.{name}"
    problem = dataset_name(name)
    if problem:
        raise ParamsError(f"dataset name {show_value(name)} (a key of datasets): {problem}")
    _check_block(block, DATASET, where)
    fmt = block["format"]
    _check_block(block["source"] or {}, SOURCE_OPTIONS[fmt], f"{where}.source", required=False,
                 note=f" (format {fmt} reads no such option)")  # fmt: skip
    if block.get("generator") is not None:
        _check_block(block["generator"], GENERATOR, f"{where}.generator")
    _check_splits(f"{where}.splits", block["splits"])
    for section_name, schema in SECTIONS.items():
        _check_block(block[section_name], schema, f"{where}.{section_name}")


def section_rules(name: str, values: dict, key: Callable[[str], str]) -> None:
    """Rules between the keys of one resolved section; ``key(k)`` names where k was set."""
    if name == "train":
        per_class, batch = values["videos_per_class"], values["batch_size"]
        if per_class == 1 or (per_class and batch % per_class):
            raise ParamsError(f"{key('videos_per_class')} = {per_class}: 0 (shuffled batches) "
                              "or a number >= 2 of videos of each class in a batch that "
                              f"divides {key('batch_size')} = {batch}")  # fmt: skip
    if name == "heatmap":
        reach = values["truncate"] * values["sigma"]
        if reach < MIN_REACH:
            raise ParamsError(
                f"{key('truncate')} * {key('sigma')} = {values['truncate']} * "
                f"{values['sigma']} = {reach:g} is below {MIN_REACH} cell: a joint inside the "
                "grid could draw nothing, not even the cell it lies in (raise truncate or "
                "sigma)")  # fmt: skip
        if values.get("box_context") and values.get("box_margin") is None:
            raise ParamsError(f"{key('box_context')} is true but no heatmap.box_margin is set "
                              "(the margin around the person box, e.g. 0.1)")  # fmt: skip
        if "box_context" not in values and values.get("box_margin") is not None:
            raise ParamsError(f"{key('box_margin')} is set but has no effect without "
                              "heatmap.box_context: true (AVA's person-box crop)")  # fmt: skip


def dataset_rules(params: dict) -> None:
    """Rules between the active dataset's resolved sections."""
    channels = section(params, "heatmap")["channels"]
    for name, key in (("ingest", "min_frames"), ("clips", "clip_len")):
        value = section(params, name)[key]
        if value < channels:
            raise ParamsError(f"{_source_key(params, name, key)} = {value} is below "
                              f"heatmap.channels ({channels}): a video (clip) needs at least "
                              "one frame per temporal channel")  # fmt: skip


def check_params(params: Any) -> None:
    """The whole file against the schema, then the active dataset's resolved settings."""
    _check_block(params, TOP_LEVEL, "")
    datasets = params["datasets"]
    if not datasets:
        raise ParamsError("datasets is empty: it needs at least one dataset block")
    for name, block in datasets.items():
        check_dataset(str(name), block)
    if params["dataset"] not in datasets:
        raise ParamsError(f"dataset {show_value(params['dataset'])} is not a key of datasets: "
                          f"{_names(datasets)}")  # fmt: skip
    _check_block(params["compute"], COMPUTE, "compute")
    for name, schema in SECTIONS.items():
        if params.get(name) is not None:
            _check_block(params[name], schema, name, overrides=True)
    for name in SECTIONS:  # the resolved values and the rules between them
        section(params, name)
    dataset_rules(params)
    split_names(params)
    all_split_names(params)


# What the loader accepts. params.yaml is ~17 kB of ~1,400 values, 5 levels deep; these
# bounds are far above any real file and far below what hurts. YAML aliases (*name) repeat
# what an anchor (&name) holds without copying it, so a few lines of nested aliases ("billion
# laughs") stand for billions of values: anything that walks or prints them (a check, an error
# message) runs for minutes and ends in a MemoryError. The loader counts values as expanded.
MAX_PARAMS_CHARACTERS = 1 << 18  # 256 kB: parsing that much takes about a second
MAX_PARAMS_VALUES = 100_000
MAX_PARAMS_DEPTH = 32


def _expanded_values(node: yaml.Node, memo: dict[int, int], depth: int = 0) -> int:
    """How many values ``node`` holds once every alias is expanded (each shared node counted
    once per use, computed once); a document nested deeper than MAX_PARAMS_DEPTH is refused."""
    if id(node) in memo:
        return memo[id(node)]
    if depth > MAX_PARAMS_DEPTH:
        raise ParamsError(f"line {node.start_mark.line + 1}: nested more than "
                          f"{MAX_PARAMS_DEPTH} levels deep; params.yaml needs about 6")
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    memo[id(node)] = 1 + sum(_expanded_values(child, memo, depth + 1) for child in children)
    return memo[id(node)]


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error: plain YAML
    silently keeps the last, which would hide a typo'd copy of a whole section. It refuses a
    document that expands to more than MAX_PARAMS_VALUES values (nested aliases) before
    building it."""

    def get_single_node(self):  # PyYAML's signature
        node = super().get_single_node()
        if node is not None:
            memo: dict[int, int] = {}
            values = _expanded_values(node, memo)
            if values > MAX_PARAMS_VALUES:
                why = ("YAML aliases (*name) nested in one another repeat their anchor's "
                       "content many times over; write the values out or use fewer aliases"
                       if values > len(memo) else "is this the right file?")  # fmt: skip
                raise ParamsError(f"the file expands to {values:,} values, more than "
                                  f"{MAX_PARAMS_VALUES:,} (params.yaml has a few thousand): "
                                  f"{why}")  # fmt: skip
        return node

    def construct_mapping(self, node, deep=False):  # PyYAML's signature
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # "? [a, b]": unhashable, no name
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise ParamsError(f"line {key_node.start_mark.line + 1}: a key that is a {kind}; "
                                  "a key is a name")  # fmt: skip
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ParamsError(f"line {key_node.start_mark.line + 1}: key {show_value(key)} "
                                  "is given twice in the same mapping")  # fmt: skip
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml, checked against the schema (module docstring): raises ParamsError. The
    file must be at most MAX_PARAMS_CHARACTERS and expand to at most MAX_PARAMS_VALUES values."""
    try:
        with open(path) as f:
            if len(f.read(MAX_PARAMS_CHARACTERS + 1)) > MAX_PARAMS_CHARACTERS:
                raise ParamsError(f"larger than {MAX_PARAMS_CHARACTERS:,} characters; params.yaml "
                                  "is about 17 kB: is this the right file?")  # fmt: skip
            f.seek(0)
            params = yaml.load(f, Loader=_UniqueKeyLoader)  # a SafeLoader: no objects
        check_params(params)
    except ParamsError as err:
        raise ParamsError(err.detail, path) from None
    except yaml.YAMLError as err:
        raise ParamsError(f"not valid YAML: {err}", path) from None
    except RecursionError:  # brackets nested thousands deep: the parser recurses
        raise ParamsError(f"nested more than {MAX_PARAMS_DEPTH} levels deep; params.yaml "
                          "needs about 6", path) from None
    return params


# ------------------------------------------------------------------------- reading


def dataset_block(params: dict) -> dict:
    return params["datasets"][params["dataset"]]


def _source_key(params: dict, name: str, key: str) -> str:
    """Where the resolved ``name.key`` was set: the top-level override, else the block."""
    if (params.get(name) or {}).get(key) is not None:
        return f"{name}.{key}"
    return f"datasets.{params['dataset']}.{name}.{key}"


def section(params: dict, name: str) -> dict:
    """The active dataset's ``name`` section with the top-level overrides applied, checked:
    the block's and the overrides' keys and values, and the section's rules."""
    if name not in SECTIONS:
        raise ValueError(f"unknown params section {name!r} ({', '.join(SECTIONS)})")
    schema, dataset = SECTIONS[name], params["dataset"]
    block = dataset_block(params).get(name)
    _check_block(block, schema, f"datasets.{dataset}.{name}")
    overrides = params.get(name) or {}
    _check_block(overrides, schema, name, overrides=True)
    values = dict(block)
    values.update({k: v for k, v in overrides.items() if v is not None})
    section_rules(name, values, lambda key: _source_key(params, name, key))
    return values


MODELS = ("jmrn", "potion")


def split_names(params: dict, split: int | None = None) -> dict[str, str]:
    """The train and test split names of the active dataset: ``splits.train`` and
    ``splits.test`` with ``{split}`` replaced by ``split``, else the top-level ``split``
    param, else the dataset's ``splits.split``.

    A split number the dataset cannot honour is an error, never ignored: one given while the
    names have no ``{split}``, one not in ``splits.all`` (when given), one that is not an
    integer >= 1; and names with ``{split}`` but no number at all.
    """
    where = f"datasets.{params['dataset']}.splits"
    splits = dataset_block(params)["splits"]
    _check_splits(where, splits)
    if split is not None:
        number, key = split, "split"
    elif params.get("split") is not None:
        number, key = params["split"], "split"
    else:
        number, key = splits.get("split"), f"{where}.split"
    numbered = _numbered(splits)
    if number is None and numbered:
        raise ParamsError(f"{where}.train and .test are {show_value(splits['train'])} and "
                          f"{show_value(splits['test'])}: set {where}.split (or the top-level "
                          "split) "
                          "to the split number")  # fmt: skip
    if number is not None:
        _check_value(key, number, POSITIVE_INT)
        if not numbered:
            raise ParamsError(f"{key} = {number} asks for split {number}, but {where}.train "
                              f"({show_value(splits['train'])}) and .test "
                              f"({show_value(splits['test'])}) have no "
                              "{split} to put it in, so it would be ignored: set split to "
                              "null, or name the splits 'train{split}' and "
                              "'test{split}'")  # fmt: skip
        if splits.get("all") and number not in splits["all"]:
            raise ParamsError(f"{key} = {number} is not one of {where}.all "
                              f"{show_value(splits['all'])}: "
                              "pick one of those, or add it there")  # fmt: skip
    names = {role: str(splits[role]).replace("{split}", str(number)) for role in ("train", "test")}
    if splits.get("also_test"):  # further test sets, scored with the selected model
        names["also_test"] = list(splits["also_test"])
    if splits.get("detected"):  # AVA's detected boxes of the test keyframes (no labels)
        names["detected"] = str(splits["detected"])
    return names


def all_split_names(params: dict) -> list[str]:
    """Every split name the dataset's params can ask for: those of every number of
    ``splits.all``, else of the split in use; and ``also_test`` (ingest requires them all)."""
    splits = dataset_block(params)["splits"]
    names = set(splits.get("also_test") or [])
    for k in splits.get("all") or [None]:
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
    ``clips.epochs`` on the clip representations, on ``clips.per_video`` clips of each video
    per epoch (0: every clip), from random weights or from the video model's
    (``clips.init``: scratch | video)."""
    settings = training_settings(params, "jmrn")
    clips = section(params, "clips")
    settings["train"]["epochs"] = clips["epochs"]
    settings["train"]["clips_per_video"] = clips["per_video"]
    settings["train"]["init"] = clips["init"]
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
