"""Does JMRN training wait for its data? One training epoch, timed step by step (issue 14).

Runs one epoch of ``train@jmrn`` the way ``jmrn.train`` runs it (the same split, dataset,
loader, ``two_views`` and ``model_step``, with params.yaml's settings for the dataset) and
splits every step into:

  wait     waiting for the loader's next batch: read + decompress + crop + normalise + pad
           (whatever of it the loader's background thread has not done yet)
  augment  PAA of the two views (``jmrn.train.two_views``)
  model    forward of the 2B views, losses, backward, optimiser step (``jmrn.train.model_step``)

and reports the fraction of the epoch spent outside the model (1 - model / epoch; the epoch
starts when its loader is created, so worker start-up and the first batch count), then runs
the model alone on the same views of the same batches, already in memory, from the same
initial weights: end-to-end against model-only training samples (videos; each goes through
the network as two views) per second. Each of ``--repeats`` rounds runs both passes; the
figures are medians over the rounds (about 2 minutes with the defaults on 2 cores).

    python bench/train_input.py                  # jhmdb14_gt (built in a temp dir if absent)
    python bench/train_input.py --model potion   # the PoTion baseline's epoch
    python bench/train_input.py --heatmaps data/synthetic/heatmaps.h5 --dataset synthetic
    python bench/train_input.py --loader-workers 1 --epoch 20

Writes bench/results/train_input.json (``--out``). Needs the jhmdb14_gt raw poses
(data/raw/jhmdb14_gt, see the README) unless data/jhmdb14_gt/heatmaps.h5 exists or
``--heatmaps`` names a file. Run it on a quiet machine: the load average before the run is
recorded (a warning above 0.5), and so is the CPU other processes used during each pass.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from process_tree import machine_facts

from jmrn import train as train_module
from jmrn.config import (
    all_split_names,
    dataset_block,
    heatmap_options,
    load_params,
    section,
    training_settings,
)
from jmrn.data import HeatmapDataset, stratified_split, validation_groups
from jmrn.heatmaps_file import HeatmapsFile, build_heatmaps
from jmrn.io import write_json
from jmrn.layouts import layout_from_attrs
from jmrn.losses import contrastive_weight
from jmrn.models import build_model


def build_cache(params: dict, out_dir: Path) -> Path:
    """The dataset's heatmaps.h5 built from its raw poses into ``out_dir`` (ingest + heatmaps
    stages' library calls, without DVC)."""
    from jmrn.ingest import disjoint_splits_from_params, ingest

    block, s = dataset_block(params), section(params, "ingest")
    if not Path(block["raw_dir"]).exists():
        sys.exit(f"train_input: {block['raw_dir']} is missing: link the raw data (README, "
                 "Quickstart) or pass --heatmaps PATH")  # fmt: skip
    ingest(block["format"], block["raw_dir"], out_dir / "keypoints.h5", dataset=params["dataset"],
           options=block.get("source"), layout=block.get("layout"),
           min_frames=s["min_frames"], max_skipped_fraction=s["max_skipped_fraction"],
           frame_tolerance=s["frame_tolerance"], max_outside_fraction=s["max_outside_fraction"],
           placeholder_xy=s["placeholder_xy"], required_splits=tuple(all_split_names(params)),
           disjoint_splits=disjoint_splits_from_params(params),
           n_jobs=params["compute"]["n_jobs"])  # fmt: skip
    build_heatmaps(out_dir / "keypoints.h5", out_dir / "heatmaps.h5", **heatmap_options(params),
                   n_jobs=params["compute"]["n_jobs"])  # fmt: skip
    return out_dir / "heatmaps.h5"


def training_rows(path: Path, settings: dict) -> np.ndarray:
    """The rows ``jmrn.train`` trains on: the training split less the validation split."""
    t_set = settings["train"]
    with HeatmapsFile(path) as hf:
        train_all = hf.splits[settings["splits"]["train"]]
        groups = validation_groups([hf.video_ids[i] for i in train_all], t_set.get("val_group"))
        if groups is None and hf.clip_video is not None:
            groups = hf.clip_video[train_all]
        keep, _ = stratified_split(train_all, hf.labels[train_all], t_set["val_fraction"],
                                   int(t_set["seed"]), groups)  # fmt: skip
    return keep


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent not idle since boot (as bench/scale.py)."""
    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its reaped loader workers."""
    return sum(getattr(resource.getrusage(who), k) for k in ("ru_utime", "ru_stime")
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))  # fmt: skip


class Watch:
    """Wall time of a block and the CPU the rest of the machine used meanwhile, in cores."""

    def __enter__(self):
        self.start, self.busy, self.own = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        other = (busy_cpu_seconds() - self.busy) - (own_cpu_seconds() - self.own)
        self.other_cores_busy = max(other, 0.0) / self.seconds


class Epoch:
    """One training epoch of ``jmrn.train`` (its loader, ``two_views`` and ``model_step``),
    timed step by step, and the model alone on the same views."""

    def __init__(self, path: Path, settings: dict, device: torch.device, workers: int,
                 epoch: int) -> None:  # fmt: skip
        self.settings, self.device, self.workers, self.epoch = settings, device, workers, epoch
        t_set = settings["train"]
        self.seed, self.batch = int(t_set["seed"]), int(t_set["batch_size"])
        with HeatmapsFile(path) as hf:
            self.layout = layout_from_attrs(hf.file.attrs)
            channels, joints = int(hf.file.attrs["channels"]), len(hf.joint_names)
            self.classes, self.multi_label = len(hf.class_names), hf.multi_label
        self.dataset = HeatmapDataset(path, training_rows(path, settings), tuple(t_set["crop"]),
                                      t_set["normalize"], train=True, seed=self.seed)  # fmt: skip
        self.dataset.set_epoch(epoch)
        torch.manual_seed(self.seed)
        model = build_model(settings["model"], joints, self.classes, channels)
        self.model = model.to(device, memory_format=torch.channels_last).train()
        self.initial = copy.deepcopy(self.model.state_dict())
        c_set = settings["contrastive"]
        uses_jcl = settings["model"]["name"] == "jmrn" and c_set["variant"] != "none"
        self.jcl_weight = contrastive_weight(epoch, c_set["lambda"], c_set["start_epoch"],
                                             c_set["ramp_epochs"]) if uses_jcl else 0.0  # fmt: skip
        # warm-up (oneDNN kernel choice, allocator), outside the timing
        self.reset()
        shape = (2 * self.batch, channels, joints, *t_set["crop"])
        target = torch.nn.functional.one_hot(torch.zeros(shape[0], dtype=torch.long),
                                             self.classes).float().to(device)  # fmt: skip
        self.step(torch.rand(shape, device=device), target, target[: self.batch])

    def step(self, views: torch.Tensor, view_targets: torch.Tensor, t: torch.Tensor) -> None:
        train_module.model_step(self.model, self.optimizer, views, view_targets, t,
                                self.multi_label, self.jcl_weight,
                                self.settings["contrastive"], self.epoch)[0].item()  # fmt: skip

    def reset(self) -> None:
        """The initial weights and a fresh optimiser: every pass does the same work."""
        self.model.load_state_dict(self.initial)
        self.optimizer = train_module.make_optimizer(self.model, self.settings["train"])
        torch.manual_seed(self.seed * 1_000_003 + self.epoch)

    def end_to_end(self) -> tuple[dict, list]:
        """The epoch as ``jmrn.train._train`` runs it; returns its timings and the views."""
        self.reset()
        rng = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + self.epoch)
        waits, augments, models, kept = [], [], [], []
        sync(self.device)
        with Watch() as watch:
            loader = train_module._loader(self.dataset, self.batch, True, self.workers,
                                          self.seed * 1_000_003 + self.epoch)  # fmt: skip
            batches = iter(loader)
            while True:
                t0 = time.perf_counter()
                try:
                    x, t = next(batches)
                except StopIteration:
                    break
                x, t = x.to(self.device, non_blocking=True), t.to(self.device, non_blocking=True)
                sync(self.device)
                t1 = time.perf_counter()
                views, view_targets = train_module.two_views(x, t, self.settings["paa"],
                                                             self.layout, rng)  # fmt: skip
                sync(self.device)
                t2 = time.perf_counter()
                self.step(views, view_targets, t)
                sync(self.device)
                waits.append(t1 - t0)
                augments.append(t2 - t1)
                models.append(time.perf_counter() - t2)
                kept.append((views, view_targets, t))
        timings = {"seconds": watch.seconds, "wait": waits, "augment": augments, "model": models,
                   "other_cores_busy": watch.other_cores_busy}  # fmt: skip
        return timings, kept

    def model_only(self, kept: list) -> dict:
        """The model's steps alone on views already in memory."""
        self.reset()
        steps = []
        sync(self.device)
        with Watch() as watch:
            for views, view_targets, t in kept:
                t0 = time.perf_counter()
                self.step(views, view_targets, t)
                sync(self.device)
                steps.append(time.perf_counter() - t0)
        return {"seconds": watch.seconds, "model": steps,
                "other_cores_busy": watch.other_cores_busy}  # fmt: skip


def profile(path: Path, settings: dict, device: torch.device, workers: int, epoch: int,
            repeats: int) -> dict:  # fmt: skip
    """``repeats`` pairs of passes (the epoch end to end, then the model alone on its views).

    The figures are medians over the rounds: on a small shared machine the same pass varies
    by 10-20 % from one run to the next (the model's steps as much as the rest), more than
    the effects measured here, so one pass says little; the fastest passes are reported
    too. ``fraction_outside_model`` is measured within each end-to-end pass, so it does not
    depend on that drift; the model-only comparison does.
    """
    run = Epoch(path, settings, device, workers, epoch)
    passes, steps = [], {"wait": [], "augment": [], "model": [], "model_only": []}
    for _ in range(repeats):
        timings, kept = run.end_to_end()
        alone = run.model_only(kept)
        del kept
        passes.append({"end_to_end_seconds": timings["seconds"],
                       **{k: float(np.sum(timings[k])) for k in ("wait", "augment", "model")},
                       "model_only_seconds": alone["seconds"],
                       "other_cores_busy": [timings["other_cores_busy"],
                                            alone["other_cores_busy"]]})  # fmt: skip
        for k in ("wait", "augment", "model"):
            steps[k] += timings[k]
        steps["model_only"] += alone["model"]

    def median(key: str) -> float:
        return float(np.median([p[key] for p in passes]))

    samples = len(run.dataset)
    seconds, alone_seconds = median("end_to_end_seconds"), median("model_only_seconds")
    fastest = min(p["end_to_end_seconds"] for p in passes)
    fastest_alone = min(p["model_only_seconds"] for p in passes)
    return {
        "epoch": epoch,
        "jcl_weight": run.jcl_weight,
        "loader_workers": workers,
        "batch_size": run.batch,
        "samples": samples,
        "steps": len(steps["wait"]) // repeats,
        "repeats": repeats,
        "epoch_seconds": {"end_to_end": seconds, "model_only": alone_seconds},
        "seconds": {k: median(k) for k in ("wait", "augment", "model")},
        "fraction_outside_model": float(np.median([1 - p["model"] / p["end_to_end_seconds"]
                                                   for p in passes])),  # fmt: skip
        "fraction_waiting_for_data": float(np.median([p["wait"] / p["end_to_end_seconds"]
                                                      for p in passes])),  # fmt: skip
        "samples_per_second": {"end_to_end": samples / seconds,
                               "model_only": samples / alone_seconds},
        # per round (the two passes are seconds apart), then the median: steadier than the
        # ratio of the medians when the machine's speed drifts
        "end_to_end_over_model_only": float(np.median([p["model_only_seconds"]
                                                       / p["end_to_end_seconds"]
                                                       for p in passes])),  # fmt: skip
        "fastest": {"samples_per_second": {"end_to_end": samples / fastest,
                                           "model_only": samples / fastest_alone}},
        "per_step_ms_median": {k: 1e3 * float(np.median(v)) for k, v in steps.items()},
        "passes": passes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="jhmdb14_gt",
                        help="params.yaml block whose settings the epoch uses")
    parser.add_argument("--heatmaps", default=None,
                        help="a heatmaps.h5 (default: data/<dataset>/heatmaps.h5, else built "
                             "from data/raw/<dataset> into a temporary folder)")
    parser.add_argument("--loader-workers", type=int, default=None,
                        help="DataLoader workers (default: params.yaml compute.loader_workers)")
    parser.add_argument("--epoch", type=int, default=0,
                        help="which epoch (its crops, shuffling and contrastive weight)")
    parser.add_argument("--model", default="jmrn", choices=("jmrn", "potion"))
    parser.add_argument("--repeats", type=int, default=5,
                        help="pairs of passes (end to end, model alone); medians are reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="bench/results/train_input.json")
    args = parser.parse_args()
    if args.repeats < 1 or args.epoch < 0 or (args.loader_workers or 0) < 0:
        parser.error("--repeats must be >= 1, --epoch and --loader-workers >= 0")
    if args.heatmaps is not None and not Path(args.heatmaps).is_file():
        parser.error(f"--heatmaps {args.heatmaps}: no such file")
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.2f} before the start: other work on "
              "the machine slows the steps and skews the fractions")  # fmt: skip
    params = load_params()
    if args.dataset not in params["datasets"]:
        parser.error(f"--dataset {args.dataset}: params.yaml has no such dataset block "
                     f"({', '.join(params['datasets'])})")  # fmt: skip
    params["dataset"] = args.dataset
    settings = training_settings(params, args.model)
    workers = params["compute"]["loader_workers"] if args.loader_workers is None \
        else args.loader_workers  # fmt: skip
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="jmrn_bench_train_input_") as tmp:
        path = Path(args.heatmaps or f"data/{args.dataset}/heatmaps.h5")
        source = str(path)
        if args.heatmaps is None and not path.exists():
            print(f"{path} is absent: building it in {tmp}", flush=True)
            path = build_cache(params, Path(tmp))
            source = f"built from {dataset_block(params)['raw_dir']} in a temporary folder"
        result = profile(path, settings, device, workers, args.epoch, args.repeats)
    command = " ".join(["python bench/train_input.py"] + [
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v is not None and v != parser.get_default(k)])
    report = {
        "command": command,
        "machine": {**machine_facts(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "device": str(device),
                    # 1, 5, 15 min, as bench/scale.py: other work on the machine shows here
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "dataset": args.dataset,
        "model": args.model,
        "heatmaps": source,
        "unit": "training samples (videos) per second; each goes through the network as two "
                "augmented views",
        **result,
        "notes": "Medians over the passes (fastest: the fastest pass of each kind). An "
                 "end-to-end pass is one epoch as jmrn.train runs it, from the loader's "
                 "creation to the last step: wait = time in next() on the loader (read + "
                 "decompress + crop + normalise + collate, what the background thread has not "
                 "done yet), augment = jmrn.train.two_views (PAA of both views), model = "
                 "jmrn.train.model_step (forward, losses, backward, optimiser step). "
                 "fraction_outside_model = 1 - model / epoch. A model-only pass runs "
                 "model_step alone on the same views, in memory, from the same initial "
                 "weights; end_to_end_over_model_only = end-to-end samples/s over model-only "
                 "samples/s, per round, median over the rounds. other_cores_busy (per pass: end "
                 "to end, model alone): CPU the rest of the machine used meanwhile, in cores; "
                 "near 0 on a quiet machine.",
    }  # fmt: skip
    write_json(args.out, report)
    rate, s = result["samples_per_second"], result["seconds"]
    print(f"{result['steps']} steps of {result['batch_size']}, {result['samples']} samples; "
          f"medians of {result['repeats']} passes: epoch "
          f"{result['epoch_seconds']['end_to_end']:.2f} s, of which waiting for data "
          f"{s['wait']:.2f} s, augmenting {s['augment']:.2f} s, model {s['model']:.2f} s: "
          f"{100 * result['fraction_outside_model']:.1f} % outside the model; samples/s "
          f"end to end {rate['end_to_end']:.1f}, model alone {rate['model_only']:.1f} "
          f"({100 * result['end_to_end_over_model_only']:.0f} %)")  # fmt: skip
    busy = max(max(p["other_cores_busy"]) for p in result["passes"])
    if busy > 0.2:
        print(f"warning: other work used up to {busy:.2f} cores during the passes")


if __name__ == "__main__":
    main()
