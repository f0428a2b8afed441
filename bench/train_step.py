"""Training steps per second of JMRN with joints folded into the batch vs the per-joint loop.

Same weights, same input, same optimiser; a step = forward of 2B inputs (two views),
classification loss, backward, Adam step. Variants:
  loop                  per_joint_loop_forward (the authors' structure), NCHW
  folded                joints folded into the batch, NCHW
  folded_channels_last  joints folded into the batch, channels_last (the default)
On CUDA the same three plus bf16 autocast vs fp32.

    python bench/train_step.py                 # writes bench/results/train_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from jmrn.models import JMRN, per_joint_loop_forward

CONFIGS = {
    # the synthetic / jhmdb14_gt CPU configuration of params.yaml
    "cpu_config": dict(joints=18, grid=(32, 43), c_dim=16, widths=(32, 64), head=128,
                       classes=10, batch=32),
    # the paper's JHMDB network and grid (batch 16 samples = 32 inputs on a GPU)
    "paper_jhmdb": dict(joints=18, grid=(64, 86), c_dim=128, widths=(128, 256), head=512,
                        classes=21, batch=32),
}  # fmt: skip


def make(config: dict, device: torch.device, variant: str) -> tuple[JMRN, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = JMRN(config["joints"], config["classes"], 3, config["c_dim"], config["widths"],
                 config["head"])  # fmt: skip
    if variant == "folded_channels_last":
        model = model.to(device, memory_format=torch.channels_last)
    else:
        model = model.to(device)
        model.memory_format = torch.contiguous_format
    return model, torch.optim.Adam(model.parameters(), lr=1e-4)


def steps_per_second(config: dict, device: torch.device, variant: str, bf16: bool,
                     steps: int, batch: int) -> float:  # fmt: skip
    model, optimizer = make(config, device, variant)
    x = torch.rand(batch, 3, config["joints"], *config["grid"], device=device)
    y = torch.randint(0, config["classes"], (batch,), device=device)
    forward = per_joint_loop_forward if variant == "loop" else (lambda m, v: m(v))

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = forward(model, x)
        loss = F.cross_entropy(out.logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up (allocator, cuDNN / oneDNN kernel choice)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings")
    parser.add_argument("--cpu-paper-batch", type=int, default=4,
                        help="inputs per step for the paper-size network on a CPU")
    parser.add_argument("--out", default="bench/results/train_step.json")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda"
                     else f"{platform.machine()} CPU, {os.cpu_count()} cores, "
                          f"{torch.get_num_threads()} threads",
                     "torch": torch.__version__, "command": "python bench/train_step.py",
                     "unit": "training inputs (views) per second", "configs": {}}  # fmt: skip
    precisions = [False, True] if device.type == "cuda" else [False]
    for name, config in CONFIGS.items():
        batch = config["batch"]
        if device.type == "cpu" and name == "paper_jhmdb":
            batch = args.cpu_paper_batch
        rows = {}
        for bf16 in precisions:
            for variant in ("loop", "folded", "folded_channels_last"):
                rate = max(steps_per_second(config, device, variant, bf16, args.steps, batch)
                           for _ in range(args.repeats))  # fmt: skip
                rows[f"{variant}{'_bf16' if bf16 else ''}"] = rate
                print(f"{name} batch {batch} {variant} bf16={bf16}: {rate:.1f} inputs/s",
                      flush=True)  # fmt: skip
        ratios = {k: v / rows["loop"] for k, v in rows.items() if not k.endswith("bf16")}
        if device.type == "cuda":
            ratios["folded_channels_last_bf16_vs_fp32"] = (
                rows["folded_channels_last_bf16"] / rows["folded_channels_last"])
        results["configs"][name] = {"batch": batch, "inputs_per_second": rows,
                                    "ratio_vs_loop": ratios}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["configs"], indent=2))


if __name__ == "__main__":
    main()
