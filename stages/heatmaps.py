"""Stage heatmaps: keypoints.h5 -> data/<dataset>/heatmaps.h5, a picture of it, a report."""

import time

from jmrn.cli import concise_errors
from jmrn.config import heatmap_options, load_params, section
from jmrn.heatmaps_file import build_heatmaps
from jmrn.io import write_json
from jmrn.progress import StageBar
from jmrn.visualise import write_class_overview

concise_errors("heatmaps")
params = load_params()
name = params["dataset"]
start = time.perf_counter()
with StageBar(f"heatmaps {name}", "video") as bar:
    summary = build_heatmaps(f"data/{name}/keypoints.h5", f"data/{name}/heatmaps.h5",
                             **heatmap_options(params), n_jobs=params["compute"]["n_jobs"],
                             progress=bar)  # fmt: skip
seconds = time.perf_counter() - start
write_class_overview(f"data/{name}/heatmaps.h5", f"plots/{name}/heatmaps.png")
metrics = {k: summary[k] for k in ("videos", "mean_frames", "occupancy", "mean_area_peak")}
write_json(f"metrics/{name}/heatmaps.json", metrics)
write_json(f"reports/{name}/heatmaps.json", {**summary, "settings": section(params, "heatmap")})
print(f"heatmaps {name}: {summary['videos']} videos {summary['shape']} in {seconds:.1f} s "
      f"(renderer: {summary['renderer']})")
