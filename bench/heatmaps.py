"""Benchmark the heatmap renderer.

1. Fast path vs the per-frame reference on the same videos (the built-in synthetic dataset
   if data/synthetic/keypoints.h5 exists, else generated videos): videos per second of each,
   their ratio, the largest difference between them, and peak memory of each.
2. The heatmaps stage's work (keypoints.h5 -> heatmaps.h5 with joblib workers, in a fresh
   process, timed including its start-up) on an HMDB-sized dataset: about 7,000 videos of
   about 100 frames, 17 COCO joints + neck, 1-2 persons, and on a seventh of it, to show that
   peak memory (the process and its workers) does not grow with the number of videos.

    python bench/heatmaps.py                      # full run, writes bench/results/heatmaps.json
    python bench/heatmaps.py --videos 700         # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from process_tree import run_with_peak_rss

from jmrn.heatmaps import Grid, aggregate, aggregate_reference
from jmrn.keypoints_file import KeypointsFile, KeypointsWriter
from jmrn.layouts import COCO17, COCO17_NECK, convert

IMAGE = (240, 320)


def random_videos(n: int, seed: int = 0, mean_frames: int = 100):
    """Smooth random-walk skeletons: n videos of 60-140 frames, 1-2 persons, some joints missing."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        frames = int(rng.integers(mean_frames - 40, mean_frames + 41))
        persons = 1 + int(rng.random() < 0.3)
        centre = rng.uniform([60, 60], [260, 180], (persons, 1, 2))
        body = rng.normal(0, 25, (persons, 17, 2))
        drift = np.cumsum(rng.normal(0, 1.5, (frames, persons, 17, 2)), axis=0)
        kp = np.empty((frames, persons, 17, 3), np.float32)
        kp[..., :2] = centre + body + drift
        kp[..., 2] = rng.uniform(0.3, 1, (frames, persons, 17)) * (rng.random(kp.shape[:3]) > 0.05)
        yield f"video_{i:05d}", convert(kp, COCO17, COCO17_NECK)


def write_keypoints(path: Path, n: int) -> None:
    from jmrn.records import Video

    writer = KeypointsWriter(path, dataset="bench", source_format="generated",
                             layout=COCO17_NECK, class_names=["a"], multi_label=False)  # fmt: skip
    for vid, kp in random_videos(n):
        writer.add(Video(vid, kp, IMAGE, (0,), "generated"))
    writer.close({"all": list(range(n))})


def compare_paths(videos: list[np.ndarray], sizes: list[tuple[int, int]], grid: Grid) -> dict:
    """Both renderers on the same videos in this process (one core): speed, agreement, memory.

    Timing runs without tracemalloc (it slows allocation-heavy code); peak memory of one
    video's rendering is measured in a separate pass.
    """
    out: dict = {}
    for name, fn in (("fast", aggregate), ("reference", aggregate_reference)):
        fn(videos[0], sizes[0], grid)  # warm up
        start = time.perf_counter()
        for kp, size in zip(videos, sizes, strict=True):
            fn(kp, size, grid)
        seconds = time.perf_counter() - start
        peak = 0
        for kp, size in zip(videos[:10], sizes[:10], strict=True):
            tracemalloc.start()
            fn(kp, size, grid)
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        out[name] = {"videos_per_second": len(videos) / seconds, "peak_mib_per_video": peak / 2**20}
    out["speedup"] = out["fast"]["videos_per_second"] / out["reference"]["videos_per_second"]
    out["max_abs_difference"] = max(
        float(np.abs(aggregate(kp, size, grid) - aggregate_reference(kp, size, grid)).max())
        for kp, size in zip(videos, sizes, strict=True)
    )
    return out


def stage_run(n: int, grid: Grid, workdir: Path, n_jobs: int) -> dict:
    """The heatmaps stage's work (build_heatmaps) on n videos, in its own process."""
    kp_path, hm_path = workdir / f"kp_{n}.h5", workdir / f"hm_{n}.h5"
    write_keypoints(kp_path, n)
    with KeypointsFile(kp_path) as kf:
        frames = int(kf.num_frames.sum())
    code = ("from jmrn.heatmaps import Grid; from jmrn.heatmaps_file import build_heatmaps; "
            f"build_heatmaps({str(kp_path)!r}, {str(hm_path)!r}, Grid(height={grid.height}, "
            f"width={grid.width}, sigma={grid.sigma}), n_jobs={n_jobs})")  # fmt: skip
    seconds, peak, _ = run_with_peak_rss([sys.executable, "-c", code])
    result = {"videos": n, "frames": frames, "seconds": seconds,
              "videos_per_second": n / seconds, "peak_rss_mib": peak,
              "output_mib": hm_path.stat().st_size / 2**20}  # fmt: skip
    kp_path.unlink()
    hm_path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=7000, help="HMDB-sized run")
    parser.add_argument("--compare", type=int, default=60, help="videos for fast vs reference")
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--out", default="bench/results/heatmaps.json")
    args = parser.parse_args()
    grid = Grid(height=64, width=86)

    synthetic = Path("data/synthetic/keypoints.h5")
    if synthetic.exists():
        with KeypointsFile(synthetic) as kf:
            ids = range(min(args.compare, len(kf)))
            videos = [kf.keypoints(i) for i in ids]
            sizes = [tuple(kf.image_size[i]) for i in ids]
        source = str(synthetic)
    else:
        videos = [kp for _, kp in random_videos(args.compare, seed=1)]
        sizes = [IMAGE] * len(videos)
        source = "generated random-walk videos"
    print(f"fast path vs per-frame reference on {len(videos)} videos ({source}) ...")
    comparison = compare_paths(videos, sizes, grid)
    print(json.dumps(comparison, indent=2))

    runs = []
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        for n in sorted({max(args.videos // 7, 1), args.videos}):
            print(f"heatmaps stage on {n} HMDB-like videos ...")
            runs.append(stage_run(n, grid, Path(tmp), args.n_jobs))
            print(json.dumps(runs[-1], indent=2))
    report = {
        "command": "python bench/heatmaps.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.machine()},
        "compare": {"videos": len(videos), "source": source, **comparison},
        "stage": runs,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
