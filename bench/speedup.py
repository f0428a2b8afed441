"""Old vs new training cost, side by side in one run on this machine (issue 24 §3).

    python bench/speedup.py                      # everything: about 20 min on 2 idle cores
    python bench/speedup.py --only rates         # the GEMM and model-step rates: 1 min
    python bench/speedup.py --quick --only rates # seconds, small sizes (for the test)

Writes bench/results/speedup.json and prints one line per measurement. Three measurements,
old and new back to back in the same run:

* ``rates``: the machine's GEMM rate (a 2048x2048 matrix product) in fp32 and bf16, and the
  model step of the jhmdb14_gt CPU configuration (JMRN and PoTion, two views of a batch of
  16, forward, loss, backward, Adam): its FLOPs counted by torch's FlopCounterMode, divided by
  its time, as a fraction of the GEMM rate in the same precision. The GEMM and the steps are
  timed in turn, and each keeps its fastest round.
* ``train``: the command of ``train@jmrn`` on jhmdb14_gt (``python -m stages.train jmrn``)
  with params.yaml set to the dataset; its ingest and heatmaps run first, untimed. The
  JHMDB-14 poses must be linked at data/raw/jhmdb14_gt (README, Quickstart).
* ``repro``: the synthetic default, all twelve stages (``dvc repro --force``).

"Old" is the code and params.yaml of ``--baseline`` (default ``9f62700``, the commit before
issue 24's first change: fp32, a clip classifier trained from scratch for 6 epochs), "new"
is HEAD's, each checked out in a temporary git worktree that is removed afterwards, so the
workspace is not touched and every change of issue 24, to the code as to the params, is in
the ratio. Commit what you want measured. Run it on an otherwise idle machine: both runs of
a pair share its load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
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

BASELINE = "9f62700"  # the commit before issue 24's first change (1d68155, compute.precision)
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
def checkouts(baseline: str):
    """{"old": worktree of ``baseline``, "new": worktree of HEAD}, removed afterwards."""
    known = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{baseline}^{{commit}}"],
                           capture_output=True)  # fmt: skip
    if known.returncode != 0:
        raise SystemExit(f"commit {baseline} is not in this clone (a shallow one?): fetch the "
                         "history (`git fetch --unshallow`) or pass --baseline")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="speedup-") as tmp:
        trees: dict[str, Path] = {}
        try:
            for version, rev in (("old", baseline), ("new", "HEAD")):
                trees[version] = Path(tmp) / version
                subprocess.run(["git", "worktree", "add", "--detach", str(trees[version]), rev],
                               check=True, capture_output=True)  # fmt: skip
            yield trees
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)],
                               capture_output=True)  # fmt: skip
            subprocess.run(["git", "worktree", "prune"], capture_output=True)


def run_in(tree: Path, module: str, *args: str) -> float:
    """Seconds of ``python -m module args`` in ``tree``; a failure stops the benchmark."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=tree, capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{tree}: python -m {module} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - start


def train_pair(trees: dict[str, Path]) -> dict:
    """``python -m stages.train jmrn`` on jhmdb14_gt: old then new, back to back."""
    poses = Path("data/raw/jhmdb14_gt").resolve()
    if not poses.is_dir():
        raise SystemExit("data/raw/jhmdb14_gt is missing: link the JHMDB-14 poses (README)")
    for tree in trees.values():  # untimed: the inputs of the timed command
        (tree / "data/raw").mkdir(parents=True, exist_ok=True)
        (tree / "data/raw/jhmdb14_gt").symlink_to(poses)
        params = yaml.safe_load((tree / "params.yaml").read_text())
        params["dataset"] = "jhmdb14_gt"
        (tree / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run_in(tree, "stages.ingest")
        run_in(tree, "stages.heatmaps")
    row = {v: {"seconds": round(run_in(trees[v], "stages.train", "jmrn"), 1)}
           for v in ("old", "new")}  # fmt: skip
    for tree in trees.values():
        subprocess.run(["git", "checkout", "params.yaml"], cwd=tree, check=True,
                       capture_output=True)  # fmt: skip
    return _ratio("train", row)


def repro_pair(trees: dict[str, Path]) -> dict:
    """The synthetic default, every stage: old then new, back to back."""
    for tree in trees.values():  # untimed: numba compiles the renderer once per checkout
        timed_stages(["dvc", "repro", "heatmaps"], cwd=tree)
    row = {}
    for version in ("old", "new"):
        start = time.monotonic()
        times, _ = timed_stages(["dvc", "repro", "--force"], cwd=trees[version])
        row[version] = {"seconds": round(time.monotonic() - start, 1),
                        "stages": {k: round(v, 1) for k, v in times.items()}}  # fmt: skip
    return _ratio("repro", row)


def _ratio(label: str, row: dict) -> dict:
    row["ratio"] = round(row["new"]["seconds"] / row["old"]["seconds"], 3)
    print(f"{label}: old {row['old']['seconds']:.0f} s, new {row['new']['seconds']:.0f} s, "
          f"new/old = {row['ratio']:.2f}", flush=True)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["rates", "train", "repro"], action="append",
                        help="run only these measurements (repeatable); default: all")  # fmt: skip
    parser.add_argument("--baseline", default=BASELINE, help="the old commit (%(default)s)")
    parser.add_argument("--quick", action="store_true", help="small sizes (rates only)")
    parser.add_argument("--out", default="bench/results/speedup.json")
    args = parser.parse_args()
    only = args.only or ["rates", "train", "repro"]
    if args.quick and only != ["rates"]:
        parser.error("--quick measures the rates only: add --only rates")
    load = [round(x, 2) for x in os.getloadavg()]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    result: dict = {"old": args.baseline, "new": head,
                    "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "load_average_before": load}}  # fmt: skip
    if "rates" in only:
        result["rates"] = rates(args.quick)
    if "train" in only or "repro" in only:
        with checkouts(args.baseline) as trees:
            if "train" in only:
                result["train_jmrn_jhmdb14_gt"] = train_pair(trees)
            if "repro" in only:
                result["repro_synthetic"] = repro_pair(trees)
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
