"""The logits stage's library: a trained model's logits on every row of a heatmaps file."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import TINY_SETTINGS

from jmrn.heatmaps_file import HeatmapsFile
from jmrn.logits_file import Logits
from jmrn.metrics import single_label_metrics
from jmrn.predict import write_model_logits
from jmrn.train import train


def trained(heatmaps, out, epochs=2):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = epochs
    metrics = train(heatmaps, settings, model_path=out / "model.pt",
                    checkpoint_path=out / "checkpoint.pt", metrics_path=out / "train.json",
                    per_class_path=out / "per_class.json", plots_dir=out / "plots",
                    progress=False)  # fmt: skip
    return metrics, out / "model.pt"


def test_video_logits_reproduce_the_training_metrics(tiny_heatmaps, tmp_path):
    metrics, model = trained(tiny_heatmaps, tmp_path)
    summary = write_model_logits(model, tiny_heatmaps, tmp_path / "jmrn.h5", device="cpu")
    logits = Logits(tmp_path / "jmrn.h5")
    with HeatmapsFile(tiny_heatmaps) as hf:
        assert logits.video_ids == hf.video_ids and logits.class_names == hf.class_names
        assert (logits.labels == hf.labels).all()
        for name, rows in hf.splits.items():
            assert logits.splits[name].tolist() == rows.tolist()
    held_out = logits.splits["model_selection"]
    assert len(held_out) > 0 and set(held_out) <= set(logits.splits["train"])
    assert logits.features.shape == (30, 16) and logits.parent_ids is None
    assert summary["rows"] == 30 and summary["unit"] == "video"
    test = logits.splits["test"]
    again = single_label_metrics(logits.logits[test], logits.labels[test].argmax(1),
                                 logits.class_names)  # fmt: skip
    assert again["top1"] == pytest.approx(metrics["test"]["top1"])


def test_clip_model_validates_on_whole_held_out_videos(tiny_clip_heatmaps, tmp_path):
    _, model = trained(tiny_clip_heatmaps, tmp_path, epochs=1)
    held_out = torch.load(model, weights_only=True)["model_selection_rows"].numpy()
    with HeatmapsFile(tiny_clip_heatmaps) as cf:
        train_rows = np.setdiff1d(cf.splits["train"], held_out)
        assert len(held_out) and not set(cf.clip_video[held_out]) & set(cf.clip_video[train_rows])
        ids = cf.video_ids
    write_model_logits(model, tiny_clip_heatmaps, tmp_path / "clips.h5", device="cpu")
    logits = Logits(tmp_path / "clips.h5")
    assert logits.video_ids == ids
    assert logits.parent_ids == [i.rsplit("#", 1)[0] for i in ids]
    assert logits.splits["model_selection"].tolist() == sorted(held_out.tolist())
