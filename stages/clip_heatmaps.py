"""Stage clip_heatmaps: keypoints.h5 -> data/<dataset>/clips/heatmaps.h5, one row per clip
(clips.clip_len frames every clips.stride frames), rendered as the whole-video heatmaps are
(same grid, and for AVA the same person-box crop with context)."""

from jmrn.cli import concise_errors
from jmrn.config import heatmap_options, load_params, section
from jmrn.heatmaps_file import build_heatmaps
from jmrn.io import write_json
from jmrn.progress import StageBar

concise_errors("clip_heatmaps")
params = load_params()
name = params["dataset"]
options, clips = heatmap_options(params), section(params, "clips")
if clips["clip_len"] < options["channels"]:
    raise ValueError(f"clips.clip_len ({clips['clip_len']}) must be at least heatmap.channels "
                     f"({options['channels']})")  # fmt: skip
with StageBar(f"clip heatmaps {name}", "clip") as bar:
    summary = build_heatmaps(f"data/{name}/keypoints.h5", f"data/{name}/clips/heatmaps.h5",
                             **options, clips=(clips["clip_len"], clips["stride"]),
                             n_jobs=params["compute"]["n_jobs"], progress=bar)  # fmt: skip
write_json(f"reports/{name}/clip_heatmaps.json",
           {**summary, "clip_len": clips["clip_len"], "stride": clips["stride"]})  # fmt: skip
print(f"clip heatmaps {name}: {summary['clips']} clips of {summary['videos']} videos")
