"""The validation split carved from train: grouped by source video, and the normalisation
that follows the crop."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import yaml
from conftest import PROJECT_ROOT, TINY_SETTINGS

from jmrn.data import HeatmapDataset, stratified_split, validation_groups
from jmrn.train import train

HMDB_IDS = [
    "April_09_brush_hair_u_nm_np1_ba_goo_0", "April_09_brush_hair_u_nm_np1_ba_goo_1",
    "April_09_brush_hair_u_nm_np1_fr_med_2", "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0",
    "Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2", "Goal_Keeping_Tips_catch_f_cm_np1_ba_bad_0",
    "how_to_catch_a_ball_catch_u_cm_np1_le_goo_1",
]  # fmt: skip


def preset_pattern(name: str) -> str:
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    return params["datasets"][name]["train"]["val_group"]


def test_hmdb_preset_groups_the_clips_of_one_source_video():
    keys = validation_groups(HMDB_IDS, preset_pattern("hmdb"))
    # the three clips of April_09 (other tags, other clip numbers) are one group
    assert len(set(keys[:3])) == 1 and keys[0] != keys[3]
    assert keys[4] == keys[5] != keys[6]
    assert preset_pattern("jhmdb") == preset_pattern("hmdb")


def test_ava_preset_groups_the_keyframes_of_one_movie():
    ids = ["-5KQ66BBWC4,0902,0", "-5KQ66BBWC4,0903,1", "zlVkeKC6Ha8,0902,0,det"]
    assert list(validation_groups(ids, preset_pattern("ava"))) == ["-5KQ66BBWC4"] * 2 + [
        "zlVkeKC6Ha8"]  # fmt: skip


def test_clip_ids_are_grouped_by_their_video():
    keys = validation_groups([f"{HMDB_IDS[0]}#0", f"{HMDB_IDS[1]}#3"], preset_pattern("hmdb"))
    assert keys[0] == keys[1]


def test_an_id_the_pattern_does_not_match_is_an_error_naming_it():
    with pytest.raises(ValueError, match="train.val_group.*'jhmdb14_s1_train_0000_clap'"):
        validation_groups(["jhmdb14_s1_train_0000_clap"], preset_pattern("hmdb"))
    assert validation_groups(["anything"], None) is None


def test_grouped_split_never_puts_a_source_on_both_sides():
    rng = np.random.default_rng(0)
    sources = np.repeat(np.arange(40), rng.integers(1, 5, size=40))  # 1-4 clips per source
    ids = [f"title{s}_wave_f_nm_np1_fr_med_{k}" for k, s in enumerate(sources)]
    labels = np.eye(4, dtype=bool)[sources % 4]
    groups = validation_groups(ids, preset_pattern("hmdb"))
    for seed in range(5):
        keep, held = stratified_split(np.arange(len(ids)), labels, 0.2, seed, groups)
        assert len(held) > 0 and not set(groups[keep]) & set(groups[held])
        assert sorted(np.concatenate([keep, held])) == list(range(len(ids)))
    # ungrouped, the same data does put sources on both sides
    keep, held = stratified_split(np.arange(len(ids)), labels, 0.2, 0)
    assert set(sources[keep]) & set(sources[held])


def run(heatmaps, out, settings):
    return train(heatmaps, settings, model_path=out / "model.pt",
                 checkpoint_path=out / "checkpoint.pt", metrics_path=out / "train.json",
                 per_class_path=out / "per_class.json", plots_dir=out / "plots",
                 progress=False)  # fmt: skip


def test_training_applies_the_grouping_and_records_it(tiny_heatmaps, tmp_path):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = 1
    metrics = run(tiny_heatmaps, tmp_path / "plain", copy.deepcopy(settings))
    assert metrics["splits"] == {"train": "train", "test": "test"}
    assert metrics["validation"]["grouped_by"] is None and metrics["validation"]["videos"] > 0
    # one group per class (the class name): no class can give a group to validation
    settings["train"]["val_group"] = r"^([a-z_]+)_\d+$"
    with pytest.raises(ValueError, match="validation split is empty"):
        run(tiny_heatmaps, tmp_path / "grouped", settings)


def test_a_class_without_training_videos_is_an_error(tiny_heatmaps, tmp_path):
    copy_path = tmp_path / "heatmaps.h5"
    copy_path.write_bytes(tiny_heatmaps.read_bytes())
    with h5py.File(copy_path, "r+") as f:
        train_rows = f["splits/train"][:]
        labels = f["labels"][:]
        keep = train_rows[~labels[train_rows, 0]]  # drop class 0 from the training split
        del f["splits/train"]
        f["splits/train"] = keep
    with pytest.raises(ValueError, match=r"no video of class\(es\) \['wave'\]"):
        run(copy_path, tmp_path / "out", copy.deepcopy(TINY_SETTINGS))


def test_max_normalisation_divides_by_the_maximum_inside_the_crop(tiny_heatmaps):
    with h5py.File(tiny_heatmaps) as f:
        grid = f["heatmaps"].shape[-2:]
    crop = (grid[0] - 6, grid[1] - 6)
    dataset = HeatmapDataset(tiny_heatmaps, np.arange(10), crop, "max", train=False)
    for item in range(10):
        x, _ = dataset[item]
        peaks = x.amax(dim=(-2, -1))
        drawn = peaks > 0
        assert drawn.any()
        # every map that has anything inside the crop reaches exactly 1 there
        np.testing.assert_allclose(peaks[drawn].numpy(), 1.0, rtol=1e-6)
