"""Stage clip_heatmaps: keypoints.h5 -> data/<dataset>/clips/heatmaps.h5, one row per clip
(clips.clip_len frames every clips.stride frames), on the whole-video heatmaps' grid."""

from tqdm import tqdm

from jmrn.config import load_params, section
from jmrn.heatmaps import Grid
from jmrn.heatmaps_file import build_heatmaps
from jmrn.io import write_json

params = load_params()
name = params["dataset"]
settings, clips = section(params, "heatmap"), section(params, "clips")
grid = Grid(height=settings["height"], width=settings["width"], sigma=settings["sigma"],
            truncate=settings["truncate"], min_conf=settings["min_conf"])  # fmt: skip
if clips["clip_len"] < settings["channels"]:
    raise ValueError(f"clips.clip_len ({clips['clip_len']}) must be at least heatmap.channels "
                     f"({settings['channels']})")  # fmt: skip
with tqdm(desc=f"clip heatmaps {name}", unit="clip") as bar:
    summary = build_heatmaps(f"data/{name}/keypoints.h5", f"data/{name}/clips/heatmaps.h5", grid,
                             channels=settings["channels"],
                             discretisation=settings["discretisation"], dtype=settings["dtype"],
                             clips=(clips["clip_len"], clips["stride"]),
                             n_jobs=params["compute"]["n_jobs"], progress=bar.update)  # fmt: skip
write_json(f"reports/{name}/clip_heatmaps.json",
           {**summary, "clip_len": clips["clip_len"], "stride": clips["stride"]})  # fmt: skip
print(f"clip heatmaps {name}: {summary['clips']} clips of {summary['videos']} videos")
