"""Everything the README promises for a GPU, measured by one command (issue 24 §4).

    python bench/gpu_check.py                       # on one CUDA GPU, in at most ~8 minutes
    python bench/gpu_check.py --device cpu --quick  # the same code in seconds, on any machine

Five checks, each printed as one verdict line and kept in one JSON (``--out``, default
bench/results/gpu_check.json):

  folded    the paper's JHMDB network at 64x86 (bench/train_step.py's ``paper_jhmdb``):
            training inputs/s with the joints folded into the batch vs the per-joint loop;
            passes if folding is faster
  bf16      the folded network in bf16 autocast vs fp32 (``compute.precision``); passes if
            bf16 is faster
  loader    one epoch of train@jmrn (bench/train_input.py's ``profile``) with
            ``compute.loader_workers`` 0 and 4: end to end vs the model alone; passes if one
            of them keeps the share of the epoch outside the model under 10 %
  torchrun  ``torchrun --nproc_per_node 1`` trains one epoch under DistributedDataParallel
            (NCCL on a GPU, gloo on a CPU); passes if it exits 0 and writes its metrics
  train     a whole ``jmrn.train.train`` of jhmdb14_gt at the paper's sizes (the README's GPU
            keys: 64x86 grid, the jhmdb preset's network and schedule), with its wall time and
            test top-1; passes if it finishes

The data: the jhmdb14_gt poses (data/raw/jhmdb14_gt, see the README's Quickstart) rendered
into a temporary folder; with ``--quick``, or without those poses, a small synthetic dataset
instead (the verdicts then check the code path, not the figures). ``--quick`` also shrinks
every check (the CPU configuration's network, a few steps, one epoch).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from process_tree import machine_facts
from train_input import build_cache, profile
from train_step import CONFIGS, steps_per_second

from jmrn import synthetic
from jmrn.config import load_params, training_settings
from jmrn.heatmaps import Grid
from jmrn.heatmaps_file import build_heatmaps
from jmrn.ingest import ingest
from jmrn.io import write_json
from jmrn.train import train

# The keys in which jhmdb14_gt's CPU configuration differs from the paper's JHMDB settings
# (the README's "On a GPU" table, without clips.epochs: no clip stage runs here).
PAPER_SIZES = {
    "heatmap": {"height": 64, "width": 86},
    "model": {"c_dim": 128, "widths": [128, 256], "head_width": 512},
    "paa": {"beta": 6, "gamma": 3},
    "train": {"crop": [64, 86], "lr": 1.0e-4, "epochs": 100, "eval_every": 5},
    "contrastive": {"start_epoch": 50, "ramp_epochs": 50},
}
# What torchrun runs: one process of a DDP training (argv: heatmaps, settings JSON, out, device)
TORCHRUN_SCRIPT = """
import json, sys
from jmrn.train import train
settings = json.loads(sys.argv[2])
out = sys.argv[3]
train(sys.argv[1], settings, model_path=out + "/model.pt",
                checkpoint_path=out + "/checkpoint.pt", metrics_path=out + "/metrics.json",
                per_class_path=out + "/per_class.json", plots_dir=out + "/plots",
      device=sys.argv[4], progress=False, stage="torchrun check")
"""


def paper_params(quick: bool) -> dict:
    """params.yaml with jhmdb14_gt active and, unless ``quick``, the paper's sizes."""
    params = load_params()
    params["dataset"] = "jhmdb14_gt"
    if not quick:
        for section, values in PAPER_SIZES.items():
            params[section].update(values)
    return params


def synthetic_cache(out: Path) -> Path:
    """A small synthetic dataset's heatmaps.h5: 3 videos a class on a 16x22 grid."""
    raw = out / "raw"
    synthetic.write(raw / "synthetic.pkl", synthetic.generate(seed=1, videos_per_class=3))
    (raw / "classes.txt").write_text("\n".join(synthetic.CLASS_NAMES) + "\n")
    ingest("pyskl", raw, out / "keypoints.h5", dataset="synthetic", layout="coco17_neck",
           options={"class_names": raw / "classes.txt"}, n_jobs=1)  # fmt: skip
    build_heatmaps(out / "keypoints.h5", out / "heatmaps.h5", Grid(height=16, width=22),
                   n_jobs=1)  # fmt: skip
    return out / "heatmaps.h5"


def small_settings(settings: dict) -> dict:
    """``settings`` shrunk for the synthetic data: a narrow network, 1 epoch, its splits."""
    settings = copy.deepcopy(settings)
    settings["model"].update(c_dim=4, widths=[8, 16], head_width=16)
    settings["train"].update(epochs=1, eval_every=1, batch_size=8, crop=[16, 20],
                             val_fraction=0.2, val_group=None)  # fmt: skip
    settings["splits"] = {"train": "train", "test": "test"}
    return settings


def check_speedup(device: torch.device, quick: bool, base: tuple[str, str, bool],
                  new: tuple[str, str, bool]) -> dict:  # fmt: skip
    """Training inputs/s of two (name, variant, bf16) settings of bench/train_step.py's
    network (the paper's JHMDB one, or the CPU configuration's with --quick), best of 2;
    passes if ``new`` is faster than ``base``."""
    config = CONFIGS["cpu_config" if quick else "paper_jhmdb"]
    batch, steps = (4, 1) if quick else (config["batch"], 20)
    rates = {name: max(steps_per_second(config, device, variant, bf16, steps, batch)
                       for _ in range(2)) for name, variant, bf16 in (base, new)}  # fmt: skip
    ratio = rates[new[0]] / rates[base[0]]
    return {"inputs_per_second": rates, "ratio": ratio, "pass": ratio > 1,
            "verdict": f"{new[0]} {rates[new[0]]:.0f} vs {base[0]} {rates[base[0]]:.0f} "
                       f"inputs/s ({ratio:.2f}x)"}  # fmt: skip


def check_loader(path: Path, settings: dict, device: torch.device, quick: bool) -> dict:
    runs = {w: profile(path, settings, device, w, epoch=0, repeats=1 if quick else 2)
            for w in (0, 4)}  # fmt: skip
    outside = {w: r["fraction_outside_model"] for w, r in runs.items()}
    best = min(outside, key=outside.get)
    return {"fraction_outside_model": outside,
            "samples_per_second": {w: r["samples_per_second"] for w, r in runs.items()},
            "pass": outside[best] < 0.10,
            "verdict": "outside the model: " + ", ".join(
                f"{100 * f:.1f} % with {w} workers" for w, f in outside.items())}  # fmt: skip


def check_torchrun(path: Path, settings: dict, device: str, out: Path) -> dict:
    one_epoch = copy.deepcopy(settings)
    one_epoch["train"].update(epochs=1, eval_every=1)
    out.mkdir(parents=True, exist_ok=True)
    script = out / "torchrun_check.py"
    script.write_text(TORCHRUN_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "1", str(script), str(path), json.dumps(one_epoch), str(out), device]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()), *sys.path]))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    seconds = time.perf_counter() - start
    ok = proc.returncode == 0 and (out / "metrics.json").exists()
    return {"returncode": proc.returncode, "seconds": seconds, "pass": ok,
            "backend": "nccl" if device.startswith("cuda") else "gloo",
            "stderr_tail": "" if ok else proc.stderr[-2000:],
            "verdict": f"exit {proc.returncode} in {seconds:.0f} s"}  # fmt: skip


def check_train(path: Path, settings: dict, device: str, out: Path) -> dict:
    start = time.perf_counter()
    metrics = train(path, settings, model_path=out / "model.pt",
                    checkpoint_path=out / "checkpoint.pt", metrics_path=out / "metrics.json",
                    per_class_path=out / "per_class.json", plots_dir=out / "plots",
                    device=device, progress=False, stage="train check")  # fmt: skip
    seconds = time.perf_counter() - start
    top1 = metrics["test"]["top1"]
    return {"seconds": seconds, "epochs": metrics["epochs"], "test_top1": top1,
            "precision": metrics["precision"], "selection": metrics["selection"]["rule"],
            "pass": True, "verdict": f"{metrics['epochs']} epochs in {seconds:.0f} s, test "
                                     f"top-1 {100 * top1:.1f} %"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true",
                        help="small data, network and epochs: checks the code in seconds")
    parser.add_argument("--out", default="bench/results/gpu_check.json")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here: run with --device cpu (--quick for a fast check)")
    device = torch.device(args.device)
    params = paper_params(args.quick)
    results: dict = {"command": "python bench/gpu_check.py " + " ".join(argv or sys.argv[1:]),
                     "machine": {**machine_facts(), "torch": torch.__version__,
                                 "device": torch.cuda.get_device_name(device)
                                 if device.type == "cuda" else "cpu"},
                     "quick": args.quick, "checks": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="jmrn_gpu_check_") as tmp:
        tmp = Path(tmp)
        real = not args.quick and Path("data/raw/jhmdb14_gt").exists()
        path = build_cache(params, tmp) if real else synthetic_cache(tmp)
        results["data"] = "jhmdb14_gt at 64x86" if real else "synthetic"
        settings = training_settings(params, "jmrn")
        if not real:
            settings = small_settings(settings)
        checks = {
            "folded": lambda: check_speedup(device, args.quick,
                                            ("loop", "loop", False),
                                            ("folded", "folded_channels_last", False)),
            "bf16": lambda: check_speedup(device, args.quick,
                                          ("fp32", "folded_channels_last", False),
                                          ("bf16", "folded_channels_last", True)),
            "loader": lambda: check_loader(path, settings, device, args.quick),
            "torchrun": lambda: check_torchrun(path, settings, args.device, tmp / "torchrun"),
            "train": lambda: check_train(path, settings, args.device, tmp / "train"),
        }  # fmt: skip
        for name, check in checks.items():
            try:
                result = check()
            except Exception as error:  # a failed check is a verdict, not the end of the run
                result = {"pass": False, "verdict": f"failed: {type(error).__name__}: {error}"}
            results["checks"][name] = result
            print(f"{name:9s} {'PASS' if result['pass'] else 'FAIL'}  {result['verdict']}",
                  flush=True)  # fmt: skip
    write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0 if all(c["pass"] for c in results["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
