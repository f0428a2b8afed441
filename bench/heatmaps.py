"""Benchmark the heatmap renderer and the heatmaps stage.

1. Rendering, one thread, in this process, all measured in the same run on the same videos
   (64 x 86 grid, sigma 1, 3 channels): ms per video of
     - ``aggregate``           the renderer the pipeline uses (compiled with numba);
     - ``aggregate_numpy``     its fallback where numba is missing;
     - ``aggregate_reference`` the per-frame reference (every frame drawn in full);
     - the floor: allocating and writing the (3, V, 64, 86) float32 output, nothing else;
   and the ratios to the reference and to the floor, plus the largest difference from the
   reference relative to its peak. Cases: JHMDB-like (40 frames, 15 joints, one person),
   Penn-Action-like (70 frames, 13 joints), a two-person HMDB-like video (100 frames, 17
   joints, the persons overlapping in part of the frames), and the real JHMDB-14 videos
   when ../shared/data/jhmdb14_gt is there.
2. The heatmaps stage (``build_heatmaps``: keypoints.h5 -> heatmaps.h5) in a fresh process,
   timed including its start-up, on an HMDB-size dataset (7,000 videos of ~100 frames, 30 %
   with two persons, 17 COCO joints + neck) with one worker and with all cores, and on a
   seventh of it, to show that peak memory (the process and its workers) stays flat.
3. The one-off cost of the compiled code: numba compiling it on a machine's first run, and
   a later process loading it from the cache.

    python bench/heatmaps.py                 # writes bench/results/heatmaps.json, ~2 min
    python bench/heatmaps.py --videos 700    # quicker
"""

from __future__ import annotations

import os

# one thread for the rendering comparison (numpy's BLAS), not for the stage runs (stage_run)
SET_HERE = [name for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                              "NUMBA_NUM_THREADS") if name not in os.environ]  # fmt: skip
os.environ.update(dict.fromkeys(SET_HERE, "1"))

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from process_tree import machine_facts, run_with_peak_rss  # noqa: E402

from jmrn.heatmaps import (  # noqa: E402
    Grid,
    aggregate,
    aggregate_numpy,
    aggregate_reference,
    renderer,
)
from jmrn.io import write_json  # noqa: E402
from jmrn.keypoints_file import KeypointsWriter  # noqa: E402
from jmrn.layouts import COCO17, COCO17_NECK, convert  # noqa: E402

IMAGE = (240, 320)
CASES = {  # frames, joints, persons, (height, width) of the frame
    "jhmdb_like": (40, 15, 1, (240, 320)),
    "penn_like": (70, 13, 1, (360, 480)),
    "hmdb_two_person": (100, 17, 2, (240, 320)),
}
JHMDB = Path("../shared/data/jhmdb14_gt/jhmdb14_gt_split1.pkl")


def case_videos(frames: int, joints: int, persons: int, size: tuple[int, int], n: int,
                seed: int) -> list[np.ndarray]:  # fmt: skip
    """n random-walk skeletons of exactly this shape, 5 % of joints missing. With two
    persons the second stands next to the first for the first half of the video, so their
    blobs overlap there (max over persons differs from the sum), and apart afterwards."""
    rng = np.random.default_rng(seed)
    height, width = size
    videos = []
    for _ in range(n):
        centre = rng.uniform([0.3 * width, 0.3 * height], [0.7 * width, 0.7 * height], (1, 1, 2))
        body = rng.normal(0, 0.12 * height, (persons, joints, 2))
        drift = np.cumsum(rng.normal(0, 0.01 * height, (frames, persons, joints, 2)), axis=0)
        kp = np.empty((frames, persons, joints, 3), np.float32)
        kp[..., :2] = centre + body + drift
        if persons > 1:
            apart = np.arange(frames) >= frames // 2
            kp[:, 1, :, 0] += np.where(apart, 0.35, 0.04)[:, None] * width
        kp[..., 2] = rng.uniform(0.3, 1, (frames, persons, joints)) * (
            rng.random((frames, persons, joints)) > 0.05)
        videos.append(kp)
    return videos


def jhmdb_videos() -> list[np.ndarray] | None:
    """The real JHMDB-14 split-1 test videos (15-40 frames, 15 joints), if available."""
    if not JHMDB.exists():
        return None
    from jmrn.safe_pickle import load_pickle

    data = load_pickle(JHMDB)
    test = set(data["split"]["test1"])
    videos = []
    for ann in data["annotations"]:
        if ann["frame_dir"] in test:
            kp = np.concatenate([ann["keypoint"], ann["keypoint_score"][..., None]], axis=-1)
            videos.append(kp.transpose(1, 0, 2, 3).astype(np.float32))  # (T, M, V, 3)
    return videos


def per_video_ms(fns: dict, videos: list[np.ndarray], size, grid: Grid,
                 repeats: int) -> dict[str, float]:  # fmt: skip
    """Best of ``repeats`` passes over the videos for each function, the functions' passes
    interleaved: this machine's speed drifts from one minute to the next (others on it only
    slow a pass), and a ratio between two functions should not depend on which ran first."""
    best = dict.fromkeys(fns, np.inf)
    for fn in fns.values():
        fn(videos[0], size, grid)  # warm up (the compiled code loads from its cache)
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for kp in videos:
                fn(kp, size, grid)
            best[name] = min(best[name], (time.perf_counter() - start) / len(videos))
    return {name: seconds * 1e3 for name, seconds in best.items()}


def write_output(kp: np.ndarray, size, grid: Grid) -> np.ndarray:
    """The floor: allocating and writing a video's (3, V, H, W) float32 output, nothing else."""
    return np.full((3, kp.shape[2], grid.height, grid.width), 1.0, np.float32)


def compare(name: str, videos: list[np.ndarray], size, grid: Grid, repeats: int) -> dict:
    frames = [kp.shape[0] for kp in videos]
    ms = per_video_ms({"floor": write_output, "aggregate": aggregate,
                       "aggregate_numpy": aggregate_numpy}, videos, size, grid, repeats)
    ms |= per_video_ms({"aggregate_reference": aggregate_reference}, videos[:5], size, grid,
                       max(1, repeats // 2))  # fmt: skip
    worst = {"aggregate": 0.0, "aggregate_numpy": 0.0}
    for kp in videos[:5]:
        slow = aggregate_reference(kp, size, grid)
        for fn in (aggregate, aggregate_numpy):
            diff = np.abs(fn(kp, size, grid) - slow).max() / slow.max()
            worst[fn.__name__] = max(worst[fn.__name__], float(diff))
    result = {
        "videos": len(videos), "frames": f"{min(frames)}-{max(frames)}",
        "persons": int(videos[0].shape[1]), "joints": int(videos[0].shape[2]),
        "ms_per_video": ms,
        "aggregate_vs_reference": ms["aggregate_reference"] / ms["aggregate"],
        "aggregate_vs_numpy_fallback": ms["aggregate_numpy"] / ms["aggregate"],
        "aggregate_over_floor": ms["aggregate"] / ms["floor"],
        "max_difference_from_reference_over_peak": worst,
    }  # fmt: skip
    print(f"{name:<18}{ms['aggregate']:>9.3f}{ms['aggregate_numpy']:>9.3f}"
          f"{ms['aggregate_reference']:>10.2f}{ms['floor']:>8.3f}"
          f"{result['aggregate_vs_reference']:>9.0f}x{result['aggregate_over_floor']:>8.1f}x"
          f"{worst['aggregate']:>10.1e}", flush=True)  # fmt: skip
    return result


def hmdb_like_videos(n: int, seed: int = 0):
    """HMDB-sized data: n videos of 60-140 frames, 30 % with two persons, COCO-17 + neck."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        frames = int(rng.integers(60, 141))
        persons = 1 + int(rng.random() < 0.3)
        centre = rng.uniform([60, 60], [260, 180], (persons, 1, 2))
        body = rng.normal(0, 25, (persons, 17, 2))
        drift = np.cumsum(rng.normal(0, 1.5, (frames, persons, 17, 2)), axis=0)
        kp = np.empty((frames, persons, 17, 3), np.float32)
        kp[..., :2] = centre + body + drift
        kp[..., 2] = rng.uniform(0.3, 1, (frames, persons, 17)) * (rng.random(kp.shape[:3]) > 0.05)
        yield f"video_{i:05d}", convert(kp, COCO17, COCO17_NECK)


def write_keypoints(path: Path, n: int) -> int:
    from jmrn.records import Video

    writer = KeypointsWriter(path, dataset="bench", source_format="generated",
                             layout=COCO17_NECK, class_names=["a"], multi_label=False)  # fmt: skip
    frames = 0
    for vid, kp in hmdb_like_videos(n):
        writer.add(Video(vid, kp, IMAGE, (0,), "generated"))
        frames += kp.shape[0]
    writer.close({"all": list(range(n))})
    return frames


def stage_run(kp_path: Path, n: int, frames: int, n_jobs: int) -> dict:
    """build_heatmaps (the heatmaps stage's work) in a fresh process, start-up included."""
    out = kp_path.with_name(f"hm_{n}_{n_jobs}.h5")
    code = ("from jmrn.heatmaps import Grid; from jmrn.heatmaps_file import build_heatmaps; "
            f"build_heatmaps({str(kp_path)!r}, {str(out)!r}, Grid(height=64, width=86), "
            f"n_jobs={n_jobs})")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in SET_HERE}
    seconds, peak, _ = run_with_peak_rss([sys.executable, "-c", code], env=env)
    result = {"videos": n, "frames": frames, "n_jobs": n_jobs, "seconds": seconds,
              "videos_per_second": n / seconds, "peak_rss_mib": peak,
              "output_mib": out.stat().st_size / 2**20}  # fmt: skip
    out.unlink()
    print(f"heatmaps stage: {n} videos, n_jobs={n_jobs}: {seconds:.2f} s, "
          f"{peak:.0f} MiB peak", flush=True)  # fmt: skip
    return result


def jit_costs() -> dict:
    """Seconds of a fresh process's first render: compiling (an empty numba cache), then
    loading the compiled code from the cache it left (every later process)."""
    code = ("import time, numpy as np; t = time.perf_counter(); "
            "from jmrn.heatmaps import Grid, aggregate; from jmrn.heatmaps_file import "
            "stored_chunk; h = aggregate(np.ones((4, 1, 2, 3), np.float32), (240, 320), "
            "Grid()); stored_chunk(h, 'float16', 'lzf'); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = [float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                     capture_output=True, text=True).stdout)
                for _ in range(2)]  # fmt: skip
    print(f"compiled code: {runs[0]:.1f} s to compile (once per machine and checkout), "
          f"{runs[1]:.2f} s to load in a later process", flush=True)  # fmt: skip
    return {"first_run_compile_seconds": runs[0], "later_process_load_seconds": runs[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=7000, help="HMDB-size stage run")
    parser.add_argument("--per-case", type=int, default=40, help="videos per rendering case")
    parser.add_argument("--repeats", type=int, default=5, help="passes; the best is kept")
    parser.add_argument("--out", default="bench/results/heatmaps.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.2f} before the start: other work on "
              "the machine slows the runs and lowers the speed-ups")  # fmt: skip
    grid = Grid(height=64, width=86, sigma=1.0)
    print(f"renderer: {renderer()}; ms per video, one thread")
    print(f"{'case':<18}{'jmrn':>9}{'numpy':>9}{'reference':>10}{'floor':>8}"
          f"{'vs ref':>10}{'/floor':>9}{'max diff':>10}")  # fmt: skip
    render = {}
    for seed, (name, (frames, joints, persons, size)) in enumerate(CASES.items()):
        videos = case_videos(frames, joints, persons, size, args.per_case, seed)
        render[name] = compare(name, videos, size, grid, args.repeats)
    real = jhmdb_videos()
    if real is not None:
        render["jhmdb14_gt_test_real"] = compare("jhmdb14_gt (real)", real, IMAGE, grid,
                                                 args.repeats)  # fmt: skip
    jit = jit_costs()
    stage = []
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        for n in sorted({max(args.videos // 7, 1), args.videos}):
            kp_path = Path(tmp) / f"kp_{n}.h5"
            frames = write_keypoints(kp_path, n)
            jobs = (1, -1) if n == args.videos else (-1,)
            stage += [stage_run(kp_path, n, frames, n_jobs) for n_jobs in jobs]
    full = {run["n_jobs"]: run["seconds"] for run in stage if run["videos"] == args.videos}
    report = {
        "command": "python bench/heatmaps.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": {**machine_facts(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "renderer": renderer(),
        "grid": {"height": grid.height, "width": grid.width, "sigma": grid.sigma,
                 "truncate": grid.truncate, "channels": 3},
        "render": render,
        "jit": jit,
        "stage": stage,
        "stage_speedup_all_cores_vs_one": full[1] / full[-1],
        "notes": "render: one thread, best of --repeats passes over the same videos for "
                 "every renderer, the passes of floor, aggregate and aggregate_numpy "
                 "interleaved (the reference over 5 of them, after); floor: np.full of the "
                 "(3, V, 64, 86) float32 output per video. stage: build_heatmaps in a fresh "
                 "process (interpreter, imports, worker start-up and compiled-code loading "
                 "included; the cache is warm), peak_rss_mib summed over the process and its "
                 "workers; float16 rows, LZF-compressed.",
    }  # fmt: skip
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
