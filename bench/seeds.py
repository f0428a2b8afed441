"""Every figure of the active dataset's pipeline as mean ± std over training seeds.

One seed's accuracy on a small test set moves by several points with the seed, and with the
floating-point kernels a CPU picks (another x86 machine gave 0.90 where ours gave 0.85 on the
synthetic default), so the README reports these means, not one run. For each seed this runs,
with ``jmrn``'s own functions and the dataset's params (train.seed and ranker.seed set to the
seed), what the DVC stages after the caches run: train@jmrn, train@potion, logits, fusion,
and with ``--clips`` clip_train, clip_logits and clip_select, into
bench/results/seeds/<dataset>/seed<k>/ (nothing of the DVC workspace is touched).

Prerequisite: the dataset's caches (``dvc repro heatmaps clip_heatmaps``, or ``dvc repro``).

    python bench/seeds.py --seeds 0 1 2 [--clips] [--dataset jhmdb14_gt]

Writes bench/results/seeds/<dataset>.json: per seed the metrics, and their mean and std.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from jmrn.clip_selection import run_clip_selection
from jmrn.config import (
    MODELS,
    average_precision,
    clip_training_settings,
    load_params,
    section,
    split_names,
    training_settings,
)
from jmrn.fusion import run_fusion
from jmrn.logits_file import Logits
from jmrn.predict import write_model_logits
from jmrn.train import train


def train_into(heatmaps: Path, settings: dict, out: Path) -> dict:
    return train(heatmaps, settings, model_path=out / "model.pt",
                 checkpoint_path=out / "checkpoint.pt", metrics_path=out / "train.json",
                 per_class_path=out / "per_class.json", plots_dir=out / "plots",
                 progress=False)  # fmt: skip


def one_seed(params: dict, seed: int, out: Path, clips: bool) -> dict:
    """The figures of one seed: each model's test metric, the fusion, the clip methods."""
    name = params["dataset"]
    block = params["datasets"][name]
    block["train"]["seed"], block["ranker"]["seed"] = seed, seed
    data, splits = Path(f"data/{name}"), split_names(params)
    ingest = json.loads(Path(f"reports/{name}/ingest.json").read_text())
    result: dict = {}
    for model in MODELS:
        metrics = train_into(data / "heatmaps.h5", training_settings(params, model), out / model)
        result[model] = metrics["test"]
        write_model_logits(out / model / "model.pt", data / "heatmaps.h5",
                           out / "logits" / f"{model}.h5")  # fmt: skip
    fusion = run_fusion([out / "logits" / f"{m}.h5" for m in MODELS],
                        train_split=splits["train"], test_split=splits["test"],
                        settings=section(params, "fusion"), ap=average_precision(params),
                        trained_here=len(MODELS),
                        skipped_by_ingest={s["video_id"] for s in ingest["skipped_videos"]})
    result["fusion"] = fusion["metrics"]
    if clips:
        train_into(data / "clips/heatmaps.h5", clip_training_settings(params), out / "clips")
        write_model_logits(out / "clips/model.pt", data / "clips/heatmaps.h5",
                           out / "clips/logits.h5")  # fmt: skip
        clip_logits = Logits(out / "clips/logits.h5")
        selection = run_clip_selection(clip_logits, clip_logits, train_split=splits["train"],
                                       test_split=splits["test"],
                                       k=section(params, "clips")["k"],
                                       ranker_settings=section(params, "ranker"),
                                       ap=average_precision(params))  # fmt: skip
        result["clips"] = selection["metrics"]
    return result


def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """{"jmrn/top1": 0.85, ...}: every number of a nested metrics dict, by its path."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[path] = float(value)
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dataset", default=None, help="default: params.yaml's dataset")
    parser.add_argument("--clips", action="store_true", help="also the clip-selection stages")
    parser.add_argument("--out", default="bench/results/seeds")
    args = parser.parse_args()
    params = load_params()
    if args.dataset:
        params["dataset"] = args.dataset
    name = params["dataset"]
    runs, start = {}, time.perf_counter()
    for seed in args.seeds:
        t0 = time.perf_counter()
        runs[f"seed{seed}"] = one_seed(params, seed, Path(args.out) / name / f"seed{seed}",
                                       args.clips)  # fmt: skip
        print(f"{name} seed {seed}: done in {(time.perf_counter() - t0) / 60:.1f} min",
              flush=True)  # fmt: skip
    flat = [flatten(r) for r in runs.values()]
    common = [k for k in flat[0] if all(k in f for f in flat)]
    summary = {k: {"mean": float(np.mean([f[k] for f in flat])),
                   "std": float(np.std([f[k] for f in flat])),
                   "per_seed": [f[k] for f in flat]} for k in common}  # fmt: skip
    report = {"dataset": name, "seeds": args.seeds, "summary": summary, "runs": runs,
              "minutes": (time.perf_counter() - start) / 60,
              "machine": {"cpu": platform.processor() or platform.machine(),
                          "torch": torch.__version__,
                          "threads": torch.get_num_threads()}}  # fmt: skip
    out_file = Path(args.out) / f"{name}.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(report, indent=2) + "\n")
    for key in ("jmrn/top1", "potion/top1", "fusion/test/average/top1", "fusion/test/fused/top1",
                "jmrn/mAP", "fusion/test/fused/mAP"):  # fmt: skip
        if key in summary:
            print(f"{key}: {100 * summary[key]['mean']:.1f} ± {100 * summary[key]['std']:.1f}")


if __name__ == "__main__":
    main()
