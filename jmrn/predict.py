"""Logits and pooled features of a trained model on every row of a heatmaps.h5: the logits
stage, for whole videos (late fusion) and for clips (clip selection).

Every row is evaluated as at test time: centre crop, the model's own normalisation, no
augmentation, one forward pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from jmrn.data import HeatmapDataset
from jmrn.heatmaps_file import HeatmapsFile
from jmrn.logits_file import write_logits
from jmrn.models import build_model
from jmrn.precision import autocast
from jmrn.precision import resolve as resolve_precision
from jmrn.progress import announce_total
from jmrn.train import pick_device


def load_model(model_path: str | Path, num_channels: int,
               device: torch.device) -> tuple[torch.nn.Module, dict]:  # fmt: skip
    """The model of a models/<dataset>/<name>.pt file (weights only), in eval mode."""
    saved = torch.load(model_path, map_location=device, weights_only=True)
    model = build_model(saved["settings"]["model"], len(saved["joint_names"]),
                        len(saved["class_names"]), num_channels)  # fmt: skip
    model.load_state_dict(saved["model"])
    return model.to(device, memory_format=torch.channels_last).eval(), saved


@torch.no_grad()
def predict(model: torch.nn.Module, heatmaps_path: str | Path, rows: np.ndarray,
            settings: dict, device: torch.device, batch_size: int = 64, workers: int = 0,
            progress: Callable[[int], None] | None = None, precision: str = "fp32",
            ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(logits (N, K), features (N, F)) of ``rows`` of a heatmaps.h5, float32.

    ``progress`` (e.g. a ``jmrn.progress.StageBar``) is told len(rows), then the rows done.
    """
    announce_total(progress, len(rows))
    train = settings["train"]
    dataset = HeatmapDataset(heatmaps_path, rows, tuple(train["crop"]), train["normalize"],
                             train=False)  # fmt: skip
    logits, features = [], []
    for x, _ in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
        with autocast(device, precision):
            out = model(x.to(device))
        logits.append(out.logits.float().cpu().numpy())
        features.append(out.features.float().cpu().numpy())
        if progress is not None:
            progress(len(x))
    return np.concatenate(logits), np.concatenate(features)


def params_hash(saved_settings: dict, heatmaps_attrs: dict) -> str:
    """A short hash of what produced the logits: the training settings and the representation."""
    text = json.dumps({"train": saved_settings, "heatmaps": heatmaps_attrs}, sort_keys=True,
                      default=str)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_model_logits(model_path: str | Path, heatmaps_path: str | Path,
                       out_path: str | Path, *, device: str = "auto", precision: str = "auto",
                       batch_size: int = 64,
                       workers: int = 0,
                       progress: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """Logits and features of every row (every video, or every clip) of every split -> a
    logits file (jmrn/logits_file.py). Returns a summary for the stage's report."""
    dev = pick_device(device)
    used, _ = resolve_precision(precision, dev)
    with HeatmapsFile(heatmaps_path) as hf:
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                 for k, v in hf.file.attrs.items()}  # fmt: skip
        ids, labels, splits = hf.video_ids, hf.labels, dict(hf.splits)
        class_names, multi_label, unit = hf.class_names, hf.multi_label, hf.unit
    model, saved = load_model(model_path, int(attrs["channels"]), dev)
    if saved["class_names"] != class_names:
        raise ValueError(f"{model_path} was trained on other classes than {heatmaps_path}'s")
    if "model_selection" in splits:
        raise ValueError(f"{heatmaps_path}: a split is named 'model_selection', which the "
                         "logits file uses for the validation rows; rename it")  # fmt: skip
    splits["model_selection"] = saved["model_selection_rows"].numpy()
    logits, features = predict(model, heatmaps_path, np.arange(len(ids)), saved["settings"],
                               dev, batch_size, workers, progress, used)  # fmt: skip
    parents = [i.rsplit("#", 1)[0] for i in ids] if unit == "clip" else None
    name = saved["settings"]["model"]["name"]
    write_logits(out_path, dataset=str(attrs["dataset"]), model=name,
                 params_hash=params_hash(saved["settings"], attrs), class_names=class_names,
                 multi_label=multi_label, video_ids=ids, logits=logits, features=features,
                 labels=labels, splits=splits, parent_ids=parents)  # fmt: skip
    return {"model": name, "rows": len(ids), "unit": unit, "classes": len(class_names),
            "feature_dim": int(features.shape[1]),
            "splits": {k: len(v) for k, v in splits.items()}, "precision": used}  # fmt: skip
