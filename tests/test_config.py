"""params.yaml's schema: every planted mistake is an error naming the full key and the problem;
split numbers a dataset cannot honour are errors; all_splits finds the splits the data has."""

from __future__ import annotations

import copy
import re

import h5py
import pytest
import yaml
from conftest import PROJECT_ROOT

from jmrn import all_splits
from jmrn.config import (
    CONTRASTIVE_VARIANTS,
    SOURCE_OPTIONS,
    TRANSLATION_MODES,
    ParamsError,
    all_split_names,
    heatmap_options,
    load_params,
    section,
    split_names,
    training_settings,
)

REAL = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def params(dataset: str = "synthetic") -> dict:
    out = copy.deepcopy(REAL)
    out["dataset"] = dataset
    return out


def load(tmp_path, p: dict) -> dict:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return load_params(path)


def error(tmp_path, p: dict) -> str:
    with pytest.raises(ParamsError) as caught:
        load(tmp_path, p)
    return str(caught.value)


def put(p: dict, dotted: str, value) -> dict:
    """Set ``a.b.c`` in ``p`` (creating nothing but the last key)."""
    *parents, last = dotted.split(".")
    node = p
    for key in parents:
        node = node[key]
    node[last] = value
    return p


def drop(p: dict, dotted: str) -> dict:
    *parents, last = dotted.split(".")
    node = p
    for key in parents:
        node = node[key]
    del node[last]
    return p


@pytest.mark.parametrize("dataset", sorted(REAL["datasets"]))
def test_every_preset_of_params_yaml_is_valid(tmp_path, dataset):
    loaded = load(tmp_path, params(dataset))
    names = split_names(loaded)
    assert {"train", "test"} <= set(names)
    assert set(all_split_names(loaded)) >= {names["train"], names["test"]}
    for model in ("jmrn", "potion"):
        assert training_settings(loaded, model)["model"]["name"] == model


@pytest.mark.parametrize("dotted, expected", [
    # a typo inside a section of a dataset block that is not the active one
    ("datasets.hmdb.heatmap.sigmma",
     "unknown key datasets.hmdb.heatmap.sigmma; did you mean datasets.hmdb.heatmap.sigma?"),
    ("heatmapp", "unknown key heatmapp; did you mean heatmap?"),  # an override section
    ("compte", "unknown key compte; did you mean compute?"),  # a top-level typo
    ("datasets.synthetic.spilts",
     "unknown key datasets.synthetic.spilts; did you mean datasets.synthetic.splits?"),
    ("heatmap.sigmma", "unknown key heatmap.sigmma; did you mean heatmap.sigma?"),  # override
    ("train.val_grup", "unknown key train.val_grup; did you mean train.val_group?"),
    ("datasets.ava.source.proposal_min_scor",
     "unknown key datasets.ava.source.proposal_min_scor (format ava_csv reads no such option); "
     "did you mean datasets.ava.source.proposal_min_score?"),
    ("datasets.jhmdb.splits.al", "did you mean datasets.jhmdb.splits.all?"),
    ("compute.n_job", "unknown key compute.n_job; did you mean compute.n_jobs?"),
    ("datasets.synthetic.generator.sed", "did you mean datasets.synthetic.generator.seed?"),
    ("datasets.charades.ingest.min_frame", "did you mean datasets.charades.ingest.min_frames?"),
])  # fmt: skip
def test_unknown_keys_name_the_full_key_and_the_nearest_valid_one(tmp_path, dotted, expected):
    p = params()
    put(p, dotted, 1 if "." in dotted else {})
    message = error(tmp_path, p)
    assert expected in message
    assert message.startswith(str(tmp_path / "params.yaml"))


def test_an_unknown_key_without_a_near_one_lists_the_valid_keys(tmp_path):
    message = error(tmp_path, put(params(), "datasets.hmdb.fusion.lr", 1.0e-3))
    assert "unknown key datasets.hmdb.fusion.lr (removed: the fusion weights are now fit" in message
    assert "the keys of datasets.hmdb.fusion are: l2_normalize, l2_penalty, per_class_weights" \
        in message  # fmt: skip


def test_source_options_depend_on_the_format(tmp_path):
    # JHMDB's reader has no `file` option (its .mat files are found by their layout)
    message = error(tmp_path, put(params(), "datasets.jhmdb.source.file", "x.pkl"))
    assert "unknown key datasets.jhmdb.source.file (format jhmdb_mat reads no such option)" \
        in message  # fmt: skip
    assert "the keys of datasets.jhmdb.source are: class_names, image_size" in message
    # frame_sizes: the OpenPose-based formats only
    for dataset in ("hmdb", "charades", "ava"):
        load(tmp_path, put(params(), f"datasets.{dataset}.source.frame_sizes", "sizes.csv"))
    assert "unknown key datasets.kinetics50_mimetics.source.frame_sizes" in error(
        tmp_path, put(params(), "datasets.kinetics50_mimetics.source.frame_sizes", "s.csv"))
    # a PYSKL pickle has every video's size: a frame size there would be silently unused
    message = error(tmp_path, put(params(), "datasets.synthetic.source.image_size", [240, 320]))
    assert "datasets.synthetic.source.image_size = [240, 320]: must be null" in message
    assert "unknown key datasets.synthetic.format" not in message
    message = error(tmp_path, put(params(), "datasets.synthetic.format", "pyskl_pickle"))
    assert "datasets.synthetic.format = 'pyskl_pickle': must be one of auto | pyskl" in message


@pytest.mark.parametrize("dotted, expected", [
    ("datasets.ava.train.lr", "datasets.ava.train.lr is missing"),
    ("datasets.hmdb.ranker", "datasets.hmdb.ranker is missing"),
    ("datasets.charades.ingest.placeholder_xy", "datasets.charades.ingest.placeholder_xy is "
                                                "missing"),
    ("datasets.jhmdb.splits.test", "datasets.jhmdb.splits.test is missing"),
    ("datasets.synthetic.raw_dir", "datasets.synthetic.raw_dir is missing"),
    ("compute.device", "compute.device is missing"),
    ("dataset", "dataset is missing"),
])  # fmt: skip
def test_missing_required_keys_are_errors(tmp_path, dotted, expected):
    assert expected in error(tmp_path, drop(params(), dotted))


def test_optional_keys_may_be_absent_and_overrides_may_be_partial(tmp_path):
    p = drop(params("ava"), "datasets.ava.train.ap")  # the default AP: charades
    p["heatmap"] = {"sigma": 1.5}  # an override section with one key
    drop(p, "ranker")  # no override section at all
    loaded = load(tmp_path, p)
    assert section(loaded, "heatmap")["sigma"] == 1.5
    assert section(loaded, "train").get("ap") is None


# A bad value at each place a stage reads one: (dotted key, value, expected problem). Override
# sections are resolved onto the active dataset (synthetic), so `-S key=value` fails at once.
BAD_VALUES = [
    ("heatmap.sigma", 0, "must be > 0"),
    ("heatmap.sigma", -1.0, "must be > 0"),
    ("heatmap.sigma", "1.0", "must be a number, not text"),
    ("heatmap.sigma", float("nan"), "must be a finite number"),
    ("heatmap.sigma", float("inf"), "must be a finite number"),
    ("heatmap.height", 0, "must be >= 1"),
    ("heatmap.height", 32.0, "must be an integer"),
    ("heatmap.width", True, "must be an integer, not true/false"),
    ("heatmap.truncate", 0, "must be > 0"),
    ("heatmap.min_conf", 1.0, "must be in [0, 1)"),
    ("heatmap.min_conf", -0.1, "must be in [0, 1)"),
    ("heatmap.channels", 1, "must be >= 2"),
    ("heatmap.discretisation", "cod", "must be one of code | continuous"),
    ("heatmap.dtype", "int8", "must be one of float16 | float32"),
    ("heatmap.box_margin", -0.1, "must be >= 0"),
    ("heatmap.box_context", "yes", "must be true or false"),
    ("train.lr", 0, "must be > 0"),
    ("train.lr", "1e-3", "must be a number, not text (YAML reads a float only with a dot"),
    ("train.batch_size", 0, "must be >= 1"),
    ("train.epochs", True, "must be an integer"),
    ("train.epochs", 2.5, "must be an integer"),
    ("train.val_fraction", 1.0, "must be in [0, 1)"),
    ("train.crop", [32], "must be a list of two values, [height, width] in grid cells"),
    ("train.crop", [0, 43], "must be a list of two values, [height, width] in grid cells; "
                                "each must be >= 1"),
    ("train.crop", "32x43", "must be a list of two values"),
    ("train.normalize", "l2", "must be one of area | max | none"),
    ("train.optimizer", "rmsprop", "must be one of adam | adamw | sgd"),
    ("train.momentum", 1.0, "must be in [0, 1)"),
    ("train.lr_factor", 1.0, "must be in (0, 1)"),
    ("train.lr_patience", -1, "must be >= 0"),
    ("train.schedule", "step", "must be one of plateau | cosine"),
    ("train.eval_every", 0, "must be >= 1"),
    ("train.seed", -1, "must be >= 0"),
    ("train.val_group", "^(.+_", "must be a valid regular expression (missing )"),
    ("train.val_group", "", "must be a non-empty regular expression"),
    ("train.ap", "map", "must be one of charades | voc"),
    ("ingest.min_frames", 0, "must be >= 1"),
    ("ingest.max_skipped_fraction", 1.5, "must be in [0, 1]"),
    ("ingest.frame_tolerance", -0.1, "must be in [0, 1]"),
    ("ingest.max_outside_fraction", 2, "must be in [0, 1]"),
    ("ingest.placeholder_xy", [1], "must be a list of two values, [x, y]"),
    ("ingest.placeholder_xy", [1, "a"], "[x, y] in source pixels; each must be a number"),
    ("ingest.placeholder_xy", [1, float("inf")], "pixels; each must be a finite number"),
    ("model.widths", [32], "must be a list of two values"),
    ("model.c_dim", 0, "must be >= 1"),
    ("model.dropout", 1.0, "must be in [0, 1)"),
    ("model.selector", "softmax", "must be one of sigmoid | gumbel"),
    ("model.gumbel_tau", 0, "must be > 0"),
    ("model.embedding", "w", "must be one of r | c"),
    ("model.projection", "attention", "must be one of mlp | linear | none"),
    ("paa.type", "random", "must be one of none | global | groupwise"),
    ("paa.beta", -1, "must be >= 0"),
    ("paa.beta", 1.5, "must be an integer"),
    ("paa.flip_p", 2, "must be in [0, 1]"),
    ("paa.cutmix_joints", -2, "must be >= 0"),
    ("contrastive.variant", "all", "must be one of proposed | only_aug"),
    ("contrastive.tau", 0, "must be > 0"),
    ("contrastive.lambda", -0.5, "must be >= 0"),
    ("fusion.l2_penalty", -1, "must be >= 0"),
    ("fusion.l2_normalize", "yes", "must be true or false"),
    ("fusion.per_class_weights", 1, "must be true or false"),
    ("potion.normalize", "l1", "must be one of area | max | none"),
    ("clips.classifier", "i3d", "must be one of jmrn | external"),
    ("clips.k", 0, "must be >= 1"),
    ("clips.stride", 0, "must be >= 1"),
    ("ranker.random_repeats", 0, "must be >= 1"),
    ("ranker.lr", 0.0, "must be > 0"),
    ("compute.n_jobs", 0, "must be a non-zero integer"),
    ("compute.n_jobs", "4", "must be a non-zero integer"),
    ("compute.loader_workers", -1, "must be >= 0"),
    ("compute.device", "gpu", "must be auto | cpu | cuda | cuda:N | mps"),
    ("compute.device", "cuda:x", "must be auto | cpu | cuda | cuda:N | mps"),
    ("split", 0, "must be >= 1"),
    ("split", True, "must be an integer"),
    ("split", "2", "must be an integer"),
]


@pytest.mark.parametrize("dotted, value, expected", BAD_VALUES)
def test_a_bad_value_is_an_error_naming_the_key(tmp_path, dotted, value, expected):
    message = error(tmp_path, put(params(), dotted, value))
    assert f"{dotted} = {value!r}: must" in message and expected in message


@pytest.mark.parametrize("dotted, value, expected", BAD_VALUES[:12])
def test_a_bad_value_in_a_dataset_that_is_not_active_is_found_too(tmp_path, dotted, value,
                                                                   expected):  # fmt: skip
    message = error(tmp_path, put(params(), f"datasets.charades.{dotted}", value))
    assert f"datasets.charades.{dotted} = {value!r}: must" in message and expected in message


@pytest.mark.parametrize("dotted, value", [("compute.device", "cuda:1"), ("compute.n_jobs", -2),
                                           ("heatmap.sigma", 2), ("train.val_group", "^(v)_"),
                                           ("heatmap.dtype", "float32"), ("split", None)])
def test_good_values_pass(tmp_path, dotted, value):
    load(tmp_path, put(params(), dotted, value))


def test_the_resolved_section_is_checked_where_it_is_read():
    """A params dict changed in code (as by a stage after load) fails in section(), before
    the Grid or anything else is built from it."""
    p = params()
    p["heatmap"]["sigma"] = 0
    with pytest.raises(ParamsError, match=r"heatmap\.sigma = 0: must be > 0"):
        section(p, "heatmap")
    with pytest.raises(ParamsError, match=r"heatmap\.sigma = 0: must be > 0"):
        heatmap_options(p)
    p = params()
    p["datasets"]["synthetic"]["train"]["epochs"] = 0
    with pytest.raises(ParamsError, match=r"datasets\.synthetic\.train\.epochs = 0"):
        training_settings(p)


def test_truncate_times_sigma_must_reach_half_a_cell(tmp_path):
    # the override sigma 0.1 with the dataset's truncate 3.0: a reach of 0.3 cell
    message = error(tmp_path, put(params(), "heatmap.sigma", 0.1))
    assert "datasets.synthetic.heatmap.truncate * heatmap.sigma = 3.0 * 0.1 = 0.3 is below " \
           "0.5 cell: a joint inside the grid could draw nothing, not even the cell it lies " \
           "in" in message  # fmt: skip
    p = put(params(), "heatmap.sigma", 0.25)
    load(tmp_path, put(p, "heatmap.truncate", 2.0))  # exactly half a cell is enough
    assert heatmap_options(load(tmp_path, p))["grid"].sigma == 0.25


def test_person_box_keys_go_together(tmp_path):
    message = error(tmp_path, put(params(), "heatmap.box_margin", 0.2))
    assert "heatmap.box_margin is set but has no effect without heatmap.box_context: true" \
        in message  # fmt: skip
    message = error(tmp_path, drop(params("ava"), "datasets.ava.heatmap.box_margin"))
    assert "datasets.ava.heatmap.box_context is true but no heatmap.box_margin is set" in message
    loaded = load(tmp_path, put(params("ava"), "heatmap.box_margin", 0.3))
    assert heatmap_options(loaded)["box_margin"] == 0.3
    assert heatmap_options(load(tmp_path, params("hmdb")))["box_margin"] is None


def test_frames_per_video_and_clip_must_cover_the_temporal_channels(tmp_path):
    message = error(tmp_path, put(params(), "heatmap.channels", 4))
    assert "datasets.synthetic.ingest.min_frames = 3 is below heatmap.channels (4)" in message
    message = error(tmp_path, put(params(), "clips.clip_len", 2))
    assert "clips.clip_len = 2 is below heatmap.channels (3)" in message


def test_a_key_given_twice_is_an_error(tmp_path):
    text = (PROJECT_ROOT / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text + "\nheatmap: {sigma: 2.0}\n")  # a second top-level heatmap section
    with pytest.raises(ParamsError, match=r"key 'heatmap' is given twice"):
        load_params(path)
    path.write_text("dataset: x\ndatasets: {x: {format: pyskl, format: auto}}\n")
    with pytest.raises(ParamsError, match=r"line 2: key 'format' is given twice"):
        load_params(path)
    path.write_text("dataset: [x\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


def test_the_schemas_lists_match_the_code():
    """The enums are copied into config.py (importing torch there would slow every stage's
    start): they must not drift from the code that uses them."""
    from jmrn.augment import TRANSLATION_MODES as modes
    from jmrn.losses import VARIANTS
    from jmrn.readers import READERS

    assert TRANSLATION_MODES == modes
    assert set(CONTRASTIVE_VARIANTS) == {*VARIANTS, "none"}
    assert set(SOURCE_OPTIONS) == {*READERS, "auto"}


# ------------------------------------------------------------------------------- splits


def test_a_split_number_on_a_dataset_without_numbered_splits_is_an_error(tmp_path):
    """Before, `-S split=2` on such a dataset was silently ignored (split 1 was trained)."""
    message = error(tmp_path, put(params(), "split", 2))
    assert "split = 2 asks for split 2, but datasets.synthetic.splits.train ('train') and " \
           ".test ('test') have no {split} to put it in, so it would be ignored" in message
    p = params()
    with pytest.raises(ParamsError, match="so it would be ignored"):
        split_names(p, 2)  # as python -m jmrn.all_splits asks
    message = error(tmp_path, put(params(), "datasets.charades.splits.split", 1))
    assert "datasets.charades.splits.split = 1 names a numbered split, but" in message
    message = error(tmp_path, put(params(), "datasets.ava.splits.all", [1, 2]))
    assert "datasets.ava.splits.all = [1, 2] names a numbered split, but" in message


def test_jhmdb14_gt_takes_a_split_number_like_jhmdb_and_hmdb(tmp_path):
    loaded = load(tmp_path, params("jhmdb14_gt"))
    assert split_names(loaded) == {"train": "train1", "test": "test1"}
    assert all_split_names(loaded) == ["test1", "train1"]
    loaded = load(tmp_path, put(params("jhmdb14_gt"), "split", 2))
    assert split_names(loaded) == {"train": "train2", "test": "test2"}
    assert all_split_names(loaded) == ["test2", "train2"]  # what ingest then requires


def test_a_split_outside_splits_all_is_an_error(tmp_path):
    message = error(tmp_path, put(params("hmdb"), "split", 4))
    assert "split = 4 is not one of datasets.hmdb.splits.all [1, 2, 3]" in message
    message = error(tmp_path, put(params(), "datasets.jhmdb.splits.split", 4))
    assert "datasets.jhmdb.splits.split = 4 is not one of datasets.jhmdb.splits.all" in message
    loaded = load(tmp_path, put(params("hmdb"), "split", 3))
    assert split_names(loaded) == {"train": "train3", "test": "test3"}
    assert all_split_names(loaded) == [f"{s}{k}" for s in ("test", "train") for k in (1, 2, 3)]
    message = error(tmp_path, put(params("hmdb"), "datasets.hmdb.splits.all", [1, 1]))
    assert "datasets.hmdb.splits.all = [1, 1]: lists a split twice" in message


def test_numbered_names_need_a_number(tmp_path):
    p = drop(params("jhmdb14_gt"), "datasets.jhmdb14_gt.splits.split")
    message = error(tmp_path, p)
    assert "set datasets.jhmdb14_gt.splits.split (or the top-level split)" in message
    assert split_names(load(tmp_path, put(p, "split", 1)))["test"] == "test1"


def test_all_split_names_keeps_the_fixed_extra_splits(tmp_path):
    loaded = load(tmp_path, params("kinetics50_mimetics"))
    assert all_split_names(loaded) == ["kinetics_train", "kinetics_val", "mimetics"]


# ---------------------------------------------------------------------- python -m all_splits


def test_all_splits_without_splits_all_takes_the_numbered_splits_the_data_has():
    p = params("jhmdb14_gt")
    assert all_splits.splits_to_train(p, ["train1", "test1"]) == [1]
    data = ["train1", "test1", "train2", "test2", "train3", "train10", "test10", "extra2"]
    assert all_splits.splits_to_train(p, data) == [1, 2, 10]  # train3 has no test3
    p["datasets"]["jhmdb14_gt"]["splits"].update(train="{split}_tr", test="{split}_te")
    assert all_splits.numbered_splits(p, ["2_tr", "2_te", "1_tr", "x_te"]) == [2]
    with pytest.raises(ParamsError, match=r"the data has no numbered splits like '1_tr' / "
                                          r"'1_te': its splits are \['test', 'train'\]"):
        all_splits.splits_to_train(p, ["train", "test"])
    with pytest.raises(ParamsError, match="datasets.synthetic.splits has one split only"):
        all_splits.splits_to_train(params(), ["train", "test"])


def test_all_splits_fails_naming_a_split_of_splits_all_the_data_lacks():
    data = ["train1", "test1", "train2", "test2", "train3"]
    with pytest.raises(ParamsError) as caught:
        all_splits.splits_to_train(params("hmdb"), data)
    assert "datasets.hmdb.splits.all asks for split 3, but the data has no split(s) " \
           "['test3']: its splits are ['test1', 'test2', 'train1', 'train2', 'train3']; set " \
           "datasets.hmdb.splits.all" in str(caught.value)  # fmt: skip


def numbered_project(tmp_path, tiny_heatmaps, splits: dict) -> tuple:
    """A project root whose heatmaps.h5 is the tiny one with numbered splits 1 and 2 (the
    same rows), and the synthetic preset made numbered and tiny."""
    root = tmp_path / "project"
    (root / "data/synthetic").mkdir(parents=True)
    path = root / "data/synthetic/heatmaps.h5"
    path.write_bytes(tiny_heatmaps.read_bytes())
    with h5py.File(path, "a") as f:
        for k in (1, 2):
            for role in ("train", "test"):
                f.create_dataset(f"splits/{role}{k}", data=f[f"splits/{role}"][:])
    p = params()
    p["datasets"]["synthetic"]["splits"] = splits
    p["model"].update(c_dim=4, widths=[8, 16], head_width=16)
    p["train"].update(epochs=1, batch_size=8, crop=[16, 22], val_fraction=0.2)
    p["compute"].update(device="cpu", loader_workers=0)
    return root, p


def test_all_splits_queues_every_numbered_split_of_the_data_and_seed(tmp_path, tiny_heatmaps):
    _, p = numbered_project(tmp_path, tiny_heatmaps,
                            {"train": "train{split}", "test": "test{split}", "split": 1})
    commands = all_splits.queue_commands(p, ["train1", "test1", "train2", "test2"], [0, 1],
                                         ["jmrn", "potion"], ["data/raw/x"])  # fmt: skip
    assert [c[c.index("-S") + 1] + " " + c[c.index("-S") + 3] for c in commands] == [
        "split=1 train.seed=0", "split=1 train.seed=1", "split=2 train.seed=0",
        "split=2 train.seed=1"]  # fmt: skip
    assert commands[0][:7] == ["dvc", "exp", "run", "--queue", "-C", "data/raw/x", "-S"]
    assert commands[0][-2:] == ["train@jmrn", "train@potion"]


def test_all_splits_checks_every_split_before_queueing_any(tmp_path, tiny_heatmaps):
    _, p = numbered_project(tmp_path, tiny_heatmaps, {"train": "train{split}",
                                                      "test": "test{split}", "split": 1,
                                                      "all": [1, 3]})  # fmt: skip
    with pytest.raises(ParamsError, match=r"splits.all asks for split 3, but the data has no "
                                          r"split\(s\) \['train3', 'test3'\]"):
        all_splits.queue_commands(p, ["train1", "test1"], [0], ["jmrn"], [])


def laughs(levels: int = 9) -> str:
    """A YAML flow list of ``levels`` nested anchors, each alias list 9 times the previous:
    9 ** levels strings in all ("billion laughs"), in a few hundred characters."""
    names = "abcdefghijklmnopqrstuvwxyz"
    parts = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip(names, names[1:levels], strict=False):
        parts.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(parts) + "]"


def planted(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1
    return text.replace(old, new, 1)


def test_nested_yaml_aliases_are_refused_quickly_with_one_line(tmp_path):
    """A value of nested aliases ran 41 s, took 2.7 GB and ended in a MemoryError traceback:
    the error message formatted the whole value. Now the loader counts the expanded values
    and refuses the file at once."""
    import time

    real = (PROJECT_ROOT / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    synthetic_splits = "splits: {train: train, test: test}"
    cases = {  # the example: a list of names built from aliases; then variants
        "also_test": planted(real, synthetic_splits,
                             "splits: {train: train, test: test, also_test: " + laughs() + "}"),
        "anchors aside": real + "\nx-anchors: " + laughs() + "\n",  # under an unknown key
        "a mapping": planted(real, "layout: coco17_neck", "layout: {k: " + laughs(8) + "}"),
    }  # fmt: skip
    for name, text in cases.items():
        path.write_text(text)
        started = time.perf_counter()
        with pytest.raises(ParamsError) as caught:
            load_params(path)
        assert time.perf_counter() - started < 1.0, name
        message = str(caught.value)
        assert "\n" not in message and len(message) < 400, name
        assert message.startswith(f"{path}: the file expands to ") and "more than 100,000" \
            in message and "YAML aliases" in message, name  # fmt: skip


def test_aliases_that_expand_to_little_are_fine(tmp_path):
    real = (PROJECT_ROOT / "params.yaml").read_text()
    text = planted(real, "splits: {train: train, test: test}",
                   "splits: &plain {train: train, test: test}")  # fmt: skip
    path = tmp_path / "params.yaml"
    path.write_text(text + "\nx-reused: [*plain, *plain]\n")
    with pytest.raises(ParamsError, match="unknown key x-reused"):  # loaded, then checked
        load_params(path)


@pytest.mark.parametrize("text, expected", [
    ("dataset: x\ndatasets: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels"),
    ("dataset: x\ndatasets: [" + "x, " * 1_200 + "x]\n",
     "the file expands to 1,206 values, more than 1,000 (params.yaml has a few thousand): is "
     "this the right file?"),  # run with MAX_PARAMS_VALUES = 1000
    ("dataset: x\ndatasets: {x: {format: pyskl, " + "y" * 300_000 + ": 1}}\n",
     "larger than 262,144 characters"),
    ("dataset: x\ndatasets: {? [a, b] : 1}\n", "line 2: a key that is a list; a key is a name"),
])  # fmt: skip
def test_what_the_loader_accepts_is_bounded(tmp_path, monkeypatch, text, expected):
    import time

    monkeypatch.setattr("jmrn.config.MAX_PARAMS_VALUES", 1000)  # to test it without aliases
    path = tmp_path / "params.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(ParamsError, match=re.escape(expected)) as caught:
        load_params(path)
    # bounded, not instant: the 5,000-deep file takes 1.5 s to parse on a loaded 2-core machine
    assert time.perf_counter() - started < 10.0
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_every_message_that_quotes_a_value_is_bounded(tmp_path):
    long_name = "x" * 100_000
    message = error(tmp_path, put(params(), "heatmap", {"discretisation": long_name}))
    assert "heatmap.discretisation = 'xxxx" in message and len(message) < 500
    message = error(tmp_path, put(params(), "datasets.synthetic.splits.also_test",
                                  [[list(range(30)) for _ in range(10)]
                                   for _ in range(10)]))  # fmt: skip
    assert "datasets.synthetic.splits.also_test = [[[" in message and len(message) < 500
    message = error(tmp_path, put(params(), "datasets.synthetic.ingest." + long_name, 1))
    assert "unknown key datasets.synthetic.ingest.xxx" in message and len(message) < 700
