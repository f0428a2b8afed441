"""Benchmark ingest of many small JSON files: OpenPose frame folders and ST-GCN video files.

Reading HMDB51 from OpenPose output means ~600,000 per-frame JSON files (6,766 videos), and
Kinetics-skeleton ~260,000 per-video JSON files; parsing them is the slow part of ingest. This
times the real ``jmrn.ingest.ingest`` end to end (index, parallel load, validation, conversion
to coco17_neck, streaming to keypoints.h5) on synthetic data written in each format by
``jmrn.synthetic_formats``, with one worker and with all cores, and projects the full sizes
from the measured files per second (Kinetics also from frames per second, its files being
longer than the synthetic ones). Each run is a fresh process, so its peak memory (the
process and its joblib workers, summed) is its own; a format is also run on N and 4N videos to
show that memory does not grow with the number of videos. (The keypoints writer buffers 2^18
rows, ~57 MB at 18 joints, between HDF5 writes, so memory rises until the first write, after
~2,900 videos of ~90 rows, and is flat after it: N defaults to 4,000.) Files are written to a
temporary folder (deleted afterwards) and read back hot from the page cache: a cold disk adds
I/O time.

    python bench/ingest.py                    # the defaults: ~11 minutes on 2 cores
    python bench/ingest.py --openpose-videos 100 --stgcn-videos 500 --memory-videos 500
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from process_tree import (
    busy_cpu_seconds,
    fastest,
    in_turns,
    machine_facts,
    run_json_child,
    start_pool,
    stop_pool,
)

FULL_SIZE = {"openpose_json": 600_000, "stgcn_json": 260_000}  # files of HMDB51 / Kinetics
FULL_NAME = {"openpose_json": "HMDB51 from OpenPose (600,000 frame files)",
             "stgcn_json": "Kinetics-skeleton (260,000 video files)"}  # fmt: skip
# A frame file holds one frame whatever the dataset, but a Kinetics-skeleton file holds a
# whole clip: 10 s at 30 fps (ST-GCN's 300-frame window), ~4x the synthetic mean of ~70, so
# its cost is also projected from frames per second.
KINETICS_FRAMES_PER_VIDEO = 300
OPTIONS = {"openpose_json": {"image_size": [240, 320]}, "stgcn_json": {"image_size": [256, 340]}}
LAYOUT = "coco17_neck"
READER_MODULE = {"openpose_json": "jmrn.readers.openpose", "stgcn_json": "jmrn.readers.stgcn"}


def measure(fmt: str, raw: Path, out: Path, n_jobs: int) -> dict:
    """In the child process: the worker pool's start-up, the index alone, then the whole
    ingest (on the started pool: start-up is a one-off that would distort small runs'
    projections); rusage peaks."""
    from joblib import effective_n_jobs

    from jmrn.ingest import ingest
    from jmrn.readers import get_reader

    workers = effective_n_jobs(n_jobs)
    # the workers started and the reader imported: a one-off per stage, timed apart
    startup_seconds = start_pool(workers, ["jmrn.ingest", READER_MODULE[fmt]])
    start = time.perf_counter()
    get_reader(fmt).index(raw, dict(OPTIONS[fmt]))
    index_seconds = time.perf_counter() - start
    busy = busy_cpu_seconds()
    start = time.perf_counter()
    report = ingest(fmt, raw, out, dataset="bench", options=OPTIONS[fmt], layout=LAYOUT,
                    n_jobs=n_jobs)  # fmt: skip
    seconds = time.perf_counter() - start
    busy = busy_cpu_seconds() - busy
    stop_pool(workers)
    kib = 1024  # ru_maxrss is in KiB on Linux
    return {
        "worker_startup_seconds": startup_seconds,
        "index_seconds": index_seconds,
        "ingest_seconds": seconds,
        # the whole machine's CPU while ingest ran, in cores (at most the core count): two
        # workers near 2.0 leave no core idle, so a speed-up short of 2x is each core
        # running slower, not waiting
        "machine_cores_busy": busy / seconds,
        "kept": report["kept"],
        "skipped": report["skipped"],
        "ru_maxrss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
        "ru_maxrss_children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
        "output_mib": out.stat().st_size / 2**20,
    }


def run_child(fmt: str, raw: Path, out: Path, n_jobs: int, interval: float = 0.02) -> dict:
    """``measure`` in a fresh process; adds its wall time and the peak summed RSS of the
    process tree (an upper bound: pages shared between processes are counted in each)."""
    cmd = [sys.executable, __file__, "--measure", fmt, str(raw), str(out), str(n_jobs)]
    result = run_json_child(cmd, interval)
    out.unlink()
    return result


def write_dataset(fmt: str, videos: int, root: Path) -> tuple[Path, int, int, int]:
    """Synthetic videos (~70 frames, 30% with a second person) in ``fmt``: (dir, videos,
    files, frames)."""
    from jmrn import synthetic
    from jmrn.synthetic_formats import write_openpose_folders, write_stgcn_json

    data = synthetic.generate(seed=0, videos_per_class=max(1, round(videos / 10)))
    raw = root / f"{fmt}_{len(data['annotations'])}"
    frames = sum(int(a["total_frames"]) for a in data["annotations"])
    if fmt == "openpose_json":  # no splits folder: every video in split "all"
        info = write_openpose_folders(data, raw, "openpose18", hmdb_splits=0)
        return raw, info["videos"], info["frame_files"], frames
    info = write_stgcn_json(data, raw)
    return raw, info["videos"], info["videos"], frames


def bench(fmt: str, videos: int, jobs: list[int], repeats: int, root: Path,
          runs: list[dict]) -> None:  # fmt: skip
    """Write the data once; ingest it ``repeats`` times per n_jobs: the fastest run is
    reported (others on the machine only ever slow a run down), with the largest peaks.
    The n_jobs values take turns, in alternating order (1, -1, -1, 1, ...), so that a phase
    in which this shared machine runs slow costs each the same: the speed-up compares the
    fastest of each, and every pair's ratio is kept (``speedup_pairs``).

    The data is generated in a subprocess too: this process stays small, which matters
    because Linux keeps a process's peak RSS across fork and exec, so a child of a big parent
    would report the parent's size as its own ru_maxrss.
    """
    start = time.perf_counter()
    written = subprocess.run([sys.executable, __file__, "--write", fmt, str(videos), str(root)],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
    raw, n_videos, n_files, n_frames = json.loads(written.strip().splitlines()[-1])
    raw = Path(raw)
    raw_mib = sum(f.stat().st_size for f in raw.rglob("*") if f.is_file()) / 2**20
    write_seconds = time.perf_counter() - start
    all_tries = in_turns(jobs, repeats,
                         lambda n_jobs: run_child(fmt, raw, root / "keypoints.h5", n_jobs))
    for n_jobs, tries in all_tries.items():
        assert all(r["kept"] == n_videos and r["skipped"] == 0 for r in tries), tries
        result = fastest(tries, "ingest_seconds", ("machine_cores_busy", "other_cores_busy"))
        if n_jobs != 1 and 1 in all_tries:
            one = all_tries[1]
            result["speedup"] = min(r["ingest_seconds"] for r in one) / result["ingest_seconds"]
            result["speedup_pairs"] = [a["ingest_seconds"] / b["ingest_seconds"]
                                       for a, b in zip(one, tries, strict=True)]  # fmt: skip
        files_per_second = n_files / result["ingest_seconds"]
        runs.append({
            "format": fmt, "videos": n_videos, "files": n_files, "n_jobs": n_jobs,
            "workers": os.cpu_count() if n_jobs == -1 else n_jobs,
            "write_seconds": write_seconds, **result,
            "files_per_second": files_per_second,
            "videos_per_second": n_videos / result["ingest_seconds"],
            "frames": n_frames, "frames_per_second": n_frames / result["ingest_seconds"],
            "raw_mib": raw_mib,
            "projected_full_size": FULL_NAME[fmt],
            "projected_full_minutes": FULL_SIZE[fmt] / files_per_second / 60,
        })  # fmt: skip
        if fmt == "stgcn_json":
            frames = FULL_SIZE[fmt] * KINETICS_FRAMES_PER_VIDEO
            runs[-1]["projected_full_minutes_at_300_frames"] = (
                frames / runs[-1]["frames_per_second"] / 60)
        print_row(runs[-1])
    shutil.rmtree(raw)


def print_row(run: dict | None) -> None:
    if run is None:
        print(f"{'format':<14}{'videos':>7}{'files':>8}{'jobs':>5}{'index s':>9}{'ingest s':>9}"
              f"{'files/s':>9}{'videos/s':>9}{'speedup':>8}{'cores':>6}{'peak MiB':>9}"
              f"{'full size':>11}")  # fmt: skip
        return
    print(f"{run['format']:<14}{run['videos']:>7}{run['files']:>8}{run['n_jobs']:>5}"
          f"{run['index_seconds']:>9.2f}{run['ingest_seconds']:>9.2f}"
          f"{run['files_per_second']:>9.0f}{run['videos_per_second']:>9.1f}"
          + (f"{run['speedup']:>7.2f}x" if "speedup" in run else " " * 8)
          + f"{run['machine_cores_busy']:>6.2f}{run['peak_tree_rss_mib']:>9.0f}"
          f"{run['projected_full_minutes']:>8.1f} min"
          + (f" ({run['projected_full_minutes_at_300_frames']:.1f} min at 300 frames/video)"
             if "projected_full_minutes_at_300_frames" in run else ""),
          flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--openpose-videos", type=int, default=1000,
                        help="OpenPose folders (~70 frame files each)")  # fmt: skip
    parser.add_argument("--stgcn-videos", type=int, default=2000, help="ST-GCN video files")
    parser.add_argument("--memory-format", default="stgcn_json", choices=sorted(FULL_SIZE))
    parser.add_argument("--memory-videos", type=int, default=4000,
                        help="N of the N vs 4N memory comparison (n_jobs=-1); past the "
                             "writer's first flush, ~2,900 videos")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="ingest runs per measurement")
    parser.add_argument("--tmp-dir", default=None, help="where to write the data (default: TMP)")
    parser.add_argument("--out", default="bench/results/ingest.json")
    parser.add_argument("--write", nargs=3, metavar=("FMT", "VIDEOS", "ROOT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--measure", nargs=4, metavar=("FMT", "RAW", "OUT", "N_JOBS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    load_before = os.getloadavg()
    if load_before[0] > 0.5 and args.measure is None and args.write is None:
        print(f"warning: load average {load_before[0]:.2f} before the start: other work on "
              "the machine slows the runs and lowers the speed-ups")  # fmt: skip
    if args.write:
        fmt, videos, root = args.write
        raw, n_videos, n_files, n_frames = write_dataset(fmt, int(videos), Path(root))
        os.sync()  # flush to disk now, not while a later run is timed
        print(json.dumps([str(raw), n_videos, n_files, n_frames]))
        return
    if args.measure:
        fmt, raw, out, n_jobs = args.measure
        print(json.dumps(measure(fmt, Path(raw), Path(out), int(n_jobs))))
        return

    runs: list[dict] = []
    print_row(None)
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="jmrn_bench_ingest_") as tmp:
        bench("openpose_json", args.openpose_videos, [1, -1], args.repeats, Path(tmp), runs)
        bench("stgcn_json", args.stgcn_videos, [1, -1], args.repeats, Path(tmp), runs)
        sizes = {args.memory_videos, 4 * args.memory_videos}
        done = {r["videos"] for r in runs if r["format"] == args.memory_format
                and r["n_jobs"] == -1}  # fmt: skip
        for n in sorted(sizes):
            if round(n / 10) * 10 not in done:
                bench(args.memory_format, n, [-1], args.repeats, Path(tmp), runs)
    memory = sorted((r for r in runs if r["format"] == args.memory_format and r["n_jobs"] == -1
                     and r["videos"] in {round(n / 10) * 10 for n in sizes}),
                    key=lambda r: r["videos"])  # fmt: skip
    report = {
        "command": "python bench/ingest.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k != "measure" and v is not None),
        "machine": {**machine_facts(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "notes": "ingest_seconds: jmrn.ingest.ingest end to end (index, load in joblib workers, "
                 "check_video, convert to coco17_neck, write keypoints.h5), timed in a fresh "
                 "process whose worker pool was started first (worker_startup_seconds, a "
                 "one-off); index_seconds: the reader's index alone (also inside ingest); "
                 "process_seconds: the whole process, interpreter start included. Files were "
                 "just written (and synced), so they are read from the page cache. "
                 "peak_tree_rss_mib sums "
                 "the RSS of the process and its workers (polled every 20 ms); "
                 "ru_maxrss_children_mib is the largest single child (a worker; at n_jobs=1 "
                 "a fork of the process that runs `uname -p` during the imports). "
                 "The n_jobs values of a format take turns (1, -1, -1, 1, ...); speedup: the "
                 "fastest 1-worker run over this row's fastest; speedup_pairs: each turn's "
                 "ratio. machine_cores_busy: the whole machine's non-idle CPU (steal "
                 "included) during ingest, in cores; other_cores_busy: what the rest of the "
                 "machine used during the process, in cores.",
        "runs": runs,
        "memory": {
            "format": args.memory_format,
            "videos": [r["videos"] for r in memory],
            "peak_tree_rss_mib": [r["peak_tree_rss_mib"] for r in memory],
            "ru_maxrss_self_mib": [r["ru_maxrss_self_mib"] for r in memory],
            "ru_maxrss_children_mib": [r["ru_maxrss_children_mib"] for r in memory],
        },
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"memory, {args.memory_format}, n_jobs=-1: " + ", ".join(
        f"{v} videos: {m:.0f} MiB" for v, m in
        zip(report["memory"]["videos"], report["memory"]["peak_tree_rss_mib"], strict=True)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
