"""Stage ingest: raw keypoints of the active dataset -> data/<dataset>/keypoints.h5, the
report, and plots/<dataset>/ingest.png (per joint: confidence, missing and out-of-frame
shares)."""

from jmrn.cli import concise_errors
from jmrn.config import all_split_names, dataset_block, load_params, section
from jmrn.ingest import (
    disjoint_splits_from_params,
    empty_classes_warning,
    ingest,
    ingest_metrics,
    missing_videos_warning,
)
from jmrn.io import write_json
from jmrn.progress import StageBar
from jmrn.visualise import write_ingest_png

concise_errors("ingest")
params = load_params()
name, block = params["dataset"], dataset_block(params)
settings = section(params, "ingest")
with StageBar(f"ingest {name}", "video") as bar:  # its total once the raw files are listed
    report = ingest(block["format"], block["raw_dir"], f"data/{name}/keypoints.h5",
                    dataset=name, options=block.get("source"), layout=block.get("layout"),
                    min_frames=settings["min_frames"],
                    max_skipped_fraction=settings["max_skipped_fraction"],
                    frame_tolerance=settings["frame_tolerance"],
                    max_outside_fraction=settings["max_outside_fraction"],
                    placeholder_xy=settings["placeholder_xy"],
                    required_splits=tuple(all_split_names(params)),
                    disjoint_splits=disjoint_splits_from_params(params),
                    n_jobs=params["compute"]["n_jobs"], progress=bar)  # fmt: skip
write_json(f"reports/{name}/ingest.json", report)
write_json(f"metrics/{name}/ingest.json", ingest_metrics(report))
write_ingest_png(f"plots/{name}/ingest.png", report)
outside = report["joints_outside_frame"]
print(f"ingest {name}: read {report['videos_read']}, kept {report['kept']}, "
      f"skipped {report['skipped']} {report['skipped_by_reason'] or ''}; "
      f"splits {report['splits']}; joints outside the frame {outside['outside']} of "
      f"{outside['detected']}, confidences clipped {report['confidences_clipped']}")  # fmt: skip
if report["suspected_placeholders"]:
    print(f"ingest {name}: possible placeholder joints (one exact pixel holds a large share of "
          f"the detections; set ingest.placeholder_xy to remove them): "
          f"{report['suspected_placeholders']}")  # fmt: skip
for warning in (empty_classes_warning(report), missing_videos_warning(report)):
    if warning:
        print(warning)
