"""Numeric precision of training and inference: ``compute.precision`` = auto | fp32 | bf16
(issue 24).

bf16 autocast runs the convolutions and matrix products in bfloat16 (about 2x the fp32 rate
where the hardware has bf16 units) while the losses, the joint-contrastive loss included,
stay in float32 (``jmrn.losses``). Which precision ran, and why, is printed and recorded in
the training metrics (``precision``), since it moves the figures within their seed spread.

* ``fp32``: no autocast.
* ``bf16``: bf16 autocast; an error on a device without fast bf16 (a CUDA GPU without bf16,
  a CPU without AVX512-BF16 or AMX, or a CPU whose flags cannot be read).
* ``auto``: bf16 where the device runs it fast (a CUDA GPU with bf16; a CPU with AVX512-BF16
  or AMX), fp32 elsewhere. On this project's CPUs (AVX512-BF16) bf16 trains JMRN and PoTion
  + PAA on jhmdb14_gt to the same test accuracy as fp32 within the paired 95 % CI over 5
  seeds (docs/benchmarks.md#precision), in about 0.6x the time of a JMRN step.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The CPU's bf16 instruction sets among :data:`CPU_BF16_FLAGS` (Linux: /proc/cpuinfo's
    flags; elsewhere, or unreadable, none)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags |= set(line.partition(":")[2].split())
    return [f for f in CPU_BF16_FLAGS if f in flags]


def resolve(preference: str, device: torch.device,
            cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[str, str]:  # fmt: skip
    """(``"bf16"`` or ``"fp32"``, why) for ``compute.precision`` = ``preference`` on
    ``device``; an explicit ``bf16`` the device cannot run fast is a one-line error."""
    if preference not in PRECISIONS:
        raise ValueError(f"compute.precision = {preference!r}: one of {' | '.join(PRECISIONS)}")
    if preference == "fp32":
        return "fp32", "compute.precision is fp32"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"compute.precision is {preference}: this GPU has bf16"
        if preference == "bf16":
            raise ValueError(f"compute.precision = 'bf16': {torch.cuda.get_device_name(device)} "
                             "has no bf16 support; set it to fp32 or auto")  # fmt: skip
        return "fp32", "compute.precision is auto: this GPU has no bf16"
    if device.type == "cpu":
        flags = cpu_bf16_flags(cpuinfo)
        if preference == "bf16":
            if not flags:
                raise ValueError("compute.precision = 'bf16': this CPU has neither AVX512-BF16 "
                                 "nor AMX (or its flags cannot be read), so bf16 would run "
                                 "slower than fp32; set it to fp32 or auto")  # fmt: skip
            return "bf16", f"compute.precision is bf16: the CPU has {', '.join(flags)}"
        if flags:
            return "bf16", f"compute.precision is auto: the CPU has {', '.join(flags)}"
        return "fp32", "compute.precision is auto: the CPU has no bf16 units"
    if preference == "bf16":
        raise ValueError(f"compute.precision = 'bf16' is supported on CUDA GPUs and CPUs, not "
                         f"on {device.type}; set it to fp32 or auto")  # fmt: skip
    return "fp32", f"compute.precision is auto: fp32 on {device.type}"


def autocast(device: torch.device, precision: str):
    """The context that runs a forward pass in ``precision`` (a resolved one: fp32 | bf16)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision {precision!r} is not resolved: fp32 or bf16")
    return contextlib.nullcontext()
