"""Old vs new training cost, side by side in one run on this machine (issue 24 §3).

    python bench/speedup.py                      # everything: about 25 min on 2 idle cores
    python bench/speedup.py --only rates         # the GEMM and model-step rates: 1 min
    python bench/speedup.py --quick --only rates # seconds, small sizes (for the test)

Writes bench/results/speedup.json and prints one line per measurement. Three measurements,
old and new back to back in the same run:

* ``rates``: the machine's GEMM rate (a 2048x2048 matrix product) in fp32 and bf16, and the
  model step of the jhmdb14_gt CPU configuration (JMRN and PoTion, two views of a batch of
  16, forward, loss, backward, Adam): its FLOPs counted by torch's FlopCounterMode, divided by
  its time, as a fraction of the GEMM rate in the same precision. The GEMM and the steps are
  timed in turn, and each keeps its fastest round.
* ``train``: the command of ``train@jmrn`` on jhmdb14_gt (``python -m stages.train jmrn``,
  params.yaml set to the dataset and the version for the run). Its heatmaps must be in the
  workspace: ``dvc exp run -S dataset=jhmdb14_gt heatmaps && git checkout params.yaml dvc.lock``
  (run-cache) first. Not through ``dvc exp run``: in the workspace it checks out the
  baseline's outputs first, which removes another dataset's caches.
* ``repro``: the synthetic default, all twelve stages (``dvc exp run --force``).

"Old" is the previous defaults, ``compute.precision=fp32``, ``clips.per_video=0``,
``clips.init=scratch`` and ``clips.epochs=6``: no autocast, and a clip classifier trained
from scratch on every clip in every epoch, the code paths of the commits before these
existed. "New" is params.yaml as it is. params.yaml is restored after each run;
the synthetic runs are DVC experiments in this workspace, removed at the end (so that
``jmrn.report`` never sees them), and the workspace keeps the new synthetic run's outputs.
Run it on an otherwise idle machine: both runs of a pair share its load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stage_costs import timed_stages  # noqa: E402
from jmrn.io import write_json  # noqa: E402
from jmrn.models import JMRN, PoTion  # noqa: E402
from jmrn.precision import autocast  # noqa: E402

OLD = ["-S", "compute.precision=fp32", "-S", "clips.per_video=0", "-S", "clips.init=scratch",
       "-S", "clips.epochs=6"]  # fmt: skip
# the jhmdb14_gt CPU configuration of params.yaml: 15 joints, 14 classes, a 32x43 crop
STEP = dict(joints=15, classes=14, grid=(32, 43), c_dim=32, widths=(32, 64), head=128, batch=16)
QUICK_STEP = dict(joints=4, classes=3, grid=(16, 22), c_dim=8, widths=(8, 16), head=16, batch=4)


def seconds_per_call(fn, repeats: int, warmup: int = 2) -> float:
    """The median seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def gemm(precision: str, size: int):
    """A size x size matrix product in fp32 or bf16 on the CPU, as a function, and its FLOPs."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    return (lambda: torch.mm(a, b)), 2 * size**3


def gemm_rate(precision: str, size: int, repeats: int) -> float:
    """GFLOP/s of a size x size matrix product in fp32 or bf16 on the CPU."""
    product, flops = gemm(precision, size)
    return flops / seconds_per_call(product, repeats) / 1e9


def model_step(config: dict, precision: str, model: str = "jmrn"):
    """(step function, its FLOPs): one training step of JMRN or PoTion on two views of a
    batch."""
    torch.manual_seed(0)
    if model == "jmrn":
        net = JMRN(config["joints"], config["classes"], 3, config["c_dim"], config["widths"],
                   config["head"])  # fmt: skip
    else:
        net = PoTion(config["joints"], config["classes"], 3, config["widths"], config["head"])
    net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    views = torch.rand(2 * config["batch"], 3, config["joints"], *config["grid"])
    targets = torch.randint(0, config["classes"], (2 * config["batch"],))
    device = torch.device("cpu")

    def step() -> None:
        with autocast(device, precision):
            out = net(views)
        loss = F.cross_entropy(out.logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, step_flops(step)


def step_flops(step) -> int:
    """FLOPs of one call of ``step`` (matrix products and convolutions, forward and
    backward, as torch's FlopCounterMode counts them: 2 per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def rates(quick: bool) -> dict:
    """The GEMM and model-step rates in fp32 and bf16 (bf16 only where the CPU has it).

    The GEMM and the two steps of a precision take turns, ``rounds`` times, each timed as the
    median of a few calls; each keeps its fastest round. Taking turns puts the machine's slow
    phases (other jobs, its clock) on all three alike, so that the fraction of the GEMM rate
    is a same-moment ratio: timed one after the other, the GEMM alone moved by 2x."""
    from jmrn.precision import cpu_bf16_flags

    precisions = ["fp32", "bf16"] if cpu_bf16_flags() else ["fp32"]
    size, calls, rounds = (256, 3, 2) if quick else (2048, 5, 6)
    config = QUICK_STEP if quick else STEP
    out = {"config": config, "gemm_size": size, "threads": torch.get_num_threads(),
           "timing": f"fastest of {rounds} rounds, GEMM and steps in turn; a round is the "
                     f"median of {calls} calls"}  # fmt: skip
    for precision in precisions:
        product, gemm_flops = gemm(precision, size)
        work = {"gemm": (product, gemm_flops)}
        work.update({model: model_step(config, precision, model) for model in ("jmrn", "potion")})
        best = dict.fromkeys(work, float("inf"))
        for _ in range(rounds):
            for name, (fn, _) in work.items():
                best[name] = min(best[name], seconds_per_call(fn, calls))
        gemm_gflops = gemm_flops / best["gemm"] / 1e9
        out[precision] = {"gemm_gflops": round(gemm_gflops, 1)}
        print(f"rates {precision}: GEMM {gemm_gflops:.0f} GFLOP/s")
        for model in ("jmrn", "potion"):
            seconds, flops = best[model], work[model][1]
            rate = flops / seconds / 1e9
            out[precision][model] = {"step_seconds": round(seconds, 4),
                                     "step_gflop": round(flops / 1e9, 3),
                                     "step_gflops": round(rate, 1),
                                     "fraction_of_gemm": round(rate / gemm_gflops, 3)}  # fmt: skip
            print(f"rates {precision} {model}: step {seconds * 1e3:.0f} ms, {rate:.0f} GFLOP/s "
                  f"= {rate / gemm_gflops:.0%} of the GEMM rate")  # fmt: skip
    if "bf16" in out:
        out["bf16_step_speedup"] = {m: round(out["fp32"][m]["step_seconds"]
                                             / out["bf16"][m]["step_seconds"], 2)
                                    for m in ("jmrn", "potion")}  # fmt: skip
    return out


@contextlib.contextmanager
def params_restored():
    """params.yaml's bytes as they were, yielded, and written back afterwards, whatever
    happens (``dvc exp run -S`` and the train runs write into it)."""
    original = Path("params.yaml").read_bytes()
    try:
        yield original
    finally:
        Path("params.yaml").write_bytes(original)


def experiment(args: list[str], name: str) -> tuple[dict[str, float], float]:
    """Stage seconds and total of one ``dvc exp run --force`` in this workspace."""
    cmd = ["dvc", "exp", "run", "--force", "-n", name, *args]
    start = time.monotonic()
    with params_restored():
        times, _ = timed_stages(cmd)
    return times, time.monotonic() - start


def repro_pair(stamp: str) -> dict:
    """The synthetic default, every stage: old then new, back to back."""
    row = {}
    for version, extra in (("old", OLD), ("new", [])):
        times, total = experiment(extra, f"speedup-repro-{version}-{stamp}")
        row[version] = {"seconds": round(total, 1),
                        "stages": {k: round(v, 1) for k, v in times.items()}}  # fmt: skip
    return _ratio("repro", row)


def train_pair() -> dict:
    """``python -m stages.train jmrn`` on jhmdb14_gt: old then new, back to back."""
    if not Path("data/jhmdb14_gt/heatmaps.h5").exists():
        raise SystemExit("data/jhmdb14_gt/heatmaps.h5 is missing: restore it with `dvc exp run "
                         "-S dataset=jhmdb14_gt heatmaps && git checkout params.yaml dvc.lock`")
    row = {}
    with params_restored() as original:
        for version in ("old", "new"):
            params = yaml.safe_load(original)
            params["dataset"] = "jhmdb14_gt"
            if version == "old":
                params["compute"]["precision"] = "fp32"
            Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            start = time.monotonic()
            subprocess.run([sys.executable, "-m", "stages.train", "jmrn"], check=True,
                           capture_output=True)  # fmt: skip
            row[version] = {"seconds": round(time.monotonic() - start, 1)}
    return _ratio("train", row)


def _ratio(label: str, row: dict) -> dict:
    row["ratio"] = round(row["new"]["seconds"] / row["old"]["seconds"], 3)
    print(f"{label}: old {row['old']['seconds']:.0f} s, new {row['new']['seconds']:.0f} s, "
          f"new/old = {row['ratio']:.2f}", flush=True)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["rates", "train", "repro"], action="append",
                        help="run only these measurements (repeatable); default: all")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small sizes (rates only)")
    parser.add_argument("--out", default="bench/results/speedup.json")
    args = parser.parse_args()
    only = args.only or ["rates", "train", "repro"]
    if args.quick and only != ["rates"]:
        parser.error("--quick measures the rates only: add --only rates")
    load = [round(x, 2) for x in os.getloadavg()]
    result: dict = {"old": " ".join(OLD), "new": "params.yaml as committed",
                    "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "load_average_before": load}}  # fmt: skip
    if "rates" in only:
        result["rates"] = rates(args.quick)
    stamp = time.strftime("%H%M%S")
    made = []
    try:
        if "train" in only:
            result["train_jmrn_jhmdb14_gt"] = train_pair()
        if "repro" in only:
            made += [f"speedup-repro-{v}-{stamp}" for v in ("old", "new")]
            result["repro_synthetic"] = repro_pair(stamp)
    finally:
        if made:  # the benchmark's runs are not results: keep them out of every report
            subprocess.run(["dvc", "exp", "remove", *made], capture_output=True)
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
