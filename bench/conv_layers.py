"""Where the bf16 training step of the jhmdb14_gt CPU configuration spends its time: each
convolution of JMRN's folded motion extractor alone, forward and forward + backward, in bf16
autocast and in fp32, against a 2048² matrix product in the same precision (issue 24).

    python bench/conv_layers.py        # about 1 minute; writes bench/results/conv_layers.json

The extractor sees 480 images a step (two views of 16 videos, 15 joints folded into the
batch) in channels_last, as in training. The first convolution's input needs its gradient
(the per-joint input BatchNorm before it trains), so every layer is timed with it; the first
is also timed with its 3 input channels zero-padded to 4 (the same output). Run it on an
otherwise idle machine: the figures are best-of-3 wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.speedup import gemm_rate  # noqa: E402

IMAGES = 480  # 2 views x 16 videos x 15 joints
# (input channels, output channels, stride, input height, input width): JMRN widths (32, 64)
LAYERS = [(3, 32, 2, 32, 43), (32, 32, 1, 16, 22), (32, 64, 2, 16, 22), (64, 64, 1, 8, 11)]


def best_ms(fn, repeats: int = 10) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1000


def layer(cin: int, cout: int, stride: int, h: int, w: int, bf16: bool, pad_to: int = 0) -> dict:
    torch.manual_seed(0)
    weight = torch.randn(cout, cin, 3, 3, requires_grad=True)
    bias = torch.randn(cout, requires_grad=True)
    x = torch.randn(IMAGES, cin, h, w).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)

    def forward() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if pad_to:
                xp = F.pad(x, (0, 0, 0, 0, 0, pad_to - cin))
                wp = F.pad(weight, (0, 0, 0, 0, 0, pad_to - cin))
                return F.conv2d(xp.contiguous(memory_format=torch.channels_last), wp, bias,
                                stride, 1)  # fmt: skip
            return F.conv2d(x, weight, bias, stride, 1)

    y = forward()
    grad = torch.randn_like(y)
    fwd = best_ms(forward)
    both = best_ms(lambda: forward().backward(grad))
    gflop = 2 * IMAGES * cout * y.shape[2] * y.shape[3] * cin * 9 / 1e9  # one pass, unpadded
    return {"layer": f"{cin}->{cout} stride {stride}" + (f" (input padded to {pad_to})"
                                                         if pad_to else ""),
            "forward_ms": round(fwd, 2), "forward_backward_ms": round(both, 2),
            "forward_gflops": round(gflop / fwd * 1000),
            "backward_gflops": round(2 * gflop / (both - fwd) * 1000)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results/conv_layers.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict = {"machine": {"cpus": os.cpu_count(), "threads": args.threads,
                                "platform": platform.platform(),
                                "load_average_before": list(os.getloadavg())},
                    "images": IMAGES}  # fmt: skip
    for name, bf16 in (("bf16", True), ("fp32", False)):
        rows = [layer(*spec, bf16=bf16) for spec in LAYERS]
        rows.insert(1, layer(*LAYERS[0], bf16=bf16, pad_to=4))
        # the 2048^2 GEMM, the median of 7 calls (bench/speedup.py's rates take turns instead)
        result[name] = {"gemm_gflops": round(gemm_rate(name, 2048, 7)), "layers": rows}
        for row in rows:
            print(f"{name} {row['layer']:34s} forward {row['forward_ms']:5.1f} ms "
                  f"({row['forward_gflops']} GFLOP/s), forward + backward "
                  f"{row['forward_backward_ms']:5.1f} ms (backward {row['backward_gflops']} "
                  f"GFLOP/s); GEMM {result[name]['gemm_gflops']} GFLOP/s", flush=True)  # fmt: skip
    result["machine"]["load_average_after"] = list(os.getloadavg())
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
