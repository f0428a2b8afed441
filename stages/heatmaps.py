"""Stage heatmaps: keypoints.h5 -> data/<dataset>/heatmaps.h5, a picture of it, a report."""

import time

from tqdm import tqdm

from jmrn.config import load_params, section
from jmrn.heatmaps import Grid
from jmrn.heatmaps_file import build_heatmaps
from jmrn.io import write_json
from jmrn.visualise import write_class_overview

params = load_params()
name = params["dataset"]
settings = section(params, "heatmap")
grid = Grid(height=settings["height"], width=settings["width"], sigma=settings["sigma"],
            truncate=settings["truncate"], min_conf=settings["min_conf"])  # fmt: skip
start = time.perf_counter()
with tqdm(desc=f"heatmaps {name}", unit="video") as bar:
    summary = build_heatmaps(f"data/{name}/keypoints.h5", f"data/{name}/heatmaps.h5", grid,
                             channels=settings["channels"],
                             discretisation=settings["discretisation"], dtype=settings["dtype"],
                             box_margin=(settings["box_margin"] if settings.get("box_context")
                                         else None),  # AVA: the person's box, with context
                             n_jobs=params["compute"]["n_jobs"], progress=bar.update)  # fmt: skip
seconds = time.perf_counter() - start
write_class_overview(f"data/{name}/heatmaps.h5", f"plots/{name}/heatmaps.png")
metrics = {k: summary[k] for k in ("videos", "mean_frames", "occupancy", "mean_area_peak")}
write_json(f"metrics/{name}/heatmaps.json", metrics)
write_json(f"reports/{name}/heatmaps.json", {**summary, "settings": settings})
print(f"heatmaps {name}: {summary['videos']} videos {summary['shape']} in {seconds:.1f} s")
