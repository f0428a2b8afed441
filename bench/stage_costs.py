"""Wall time of every stage of one `dvc repro`, and its cost per 1,000 videos.

    python bench/stage_costs.py                          # the active dataset, all stages forced
    python bench/stage_costs.py --dataset jhmdb14_gt     # -S dataset=... (dvc exp run)

Runs ``dvc repro --force`` (or ``dvc exp run --force -S dataset=<name>``) in this checkout,
timestamps each ``Running stage`` line of DVC's output, and writes the seconds of each stage,
per 1,000 videos of the dataset and per 1,000 clips for the clip stages, with the machine's
cores and load, to bench/results/stage_costs/<dataset>.json. It re-runs every stage: run it
on an otherwise idle machine, and expect it to take as long as the pipeline.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jmrn.config import load_params  # noqa: E402
from jmrn.heatmaps_file import HeatmapsFile  # noqa: E402
from jmrn.io import write_json  # noqa: E402

CLIP_STAGES = ("clip_heatmaps", "clip_train", "clip_logits", "clip_select")


def timed_stages(cmd: list[str], cwd: str | Path | None = None) -> tuple[dict[str, float], str]:
    """Seconds from each ``Running stage 'x'`` line to the next stage line (or the end)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=cwd)  # fmt: skip
    times: dict[str, float] = {}
    current, started, log = None, time.monotonic(), []
    for line in proc.stdout:
        log.append(line)
        now = time.monotonic()
        is_stage = line.startswith("Running stage '") or " is cached - skipping" in line
        if is_stage or line.startswith(("Updating lock file", "Ran experiment")):
            if current is not None:
                times[current] = times.get(current, 0.0) + now - started
                current = None
        if line.startswith("Running stage '"):
            current, started = line.split("'")[1], now
    if current is not None:  # the last stage, where its closing line was not found
        times[current] = times.get(current, 0.0) + time.monotonic() - started
    if proc.wait() != 0:
        raise SystemExit("".join(log[-40:]) + f"\n{' '.join(cmd)} failed")
    return times, "".join(log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", help="run with -S dataset=<name> (default: params.yaml's)")
    args = parser.parse_args()
    if args.dataset:
        cmd = ["dvc", "exp", "run", "--force", "-S", f"dataset={args.dataset}"]
    else:
        cmd = ["dvc", "repro", "--force"]
    load_before = os.getloadavg()
    start = time.monotonic()
    times, _ = timed_stages(cmd)
    total = time.monotonic() - start
    name = load_params()["dataset"]
    with HeatmapsFile(f"data/{name}/heatmaps.h5") as hf:
        videos = len(hf.video_ids)
    with HeatmapsFile(f"data/{name}/clips/heatmaps.h5") as hf:
        clips = len(hf.video_ids)
    stages = {stage: {"seconds": round(s, 1),
                      "seconds_per_1000_videos": round(1000 * s / videos, 1),
                      **({"seconds_per_1000_clips": round(1000 * s / clips, 1)}
                         if stage in CLIP_STAGES else {})}
              for stage, s in times.items()}  # fmt: skip
    load_after = [round(x, 2) for x in os.getloadavg()]
    result = {"dataset": name, "command": " ".join(cmd), "videos": videos, "clips": clips,
              "clips_per_video": round(clips / videos, 2), "total_seconds": round(total, 1),
              "stages": stages,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "processor": platform.processor(),
                          "load_average_before": [round(x, 2) for x in load_before],
                          "load_average_after": load_after}}  # fmt: skip
    out = Path(f"bench/results/stage_costs/{name}.json")
    write_json(out, result)
    width = max(map(len, stages))
    print(f"{name}: {videos} videos, {clips} clips, {total / 60:.1f} min in all")
    for stage, row in stages.items():
        print(f"  {stage:<{width}}  {row['seconds']:7.1f} s  "
              f"{row['seconds_per_1000_videos'] / 60:6.1f} min per 1,000 videos")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
