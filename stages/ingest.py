"""Stage ingest: raw keypoints of the active dataset -> data/<dataset>/keypoints.h5 + report."""

from tqdm import tqdm

from jmrn.config import all_split_names, dataset_block, load_params, section
from jmrn.ingest import ingest
from jmrn.io import write_json

params = load_params()
name, block = params["dataset"], dataset_block(params)
settings = section(params, "ingest")
with tqdm(desc=f"ingest {name}", unit="video") as bar:
    report = ingest(block["format"], block["raw_dir"], f"data/{name}/keypoints.h5",
                    dataset=name, options=block.get("source"), layout=block.get("layout"),
                    min_frames=settings["min_frames"],
                    max_skipped_fraction=settings["max_skipped_fraction"],
                    required_splits=tuple(all_split_names(params)),
                    n_jobs=params["compute"]["n_jobs"], progress=bar.update)  # fmt: skip
write_json(f"reports/{name}/ingest.json", report)
counts = ("videos_read", "kept", "skipped", "skipped_by_reason", "left_out", "classes",
          "splits")
write_json(f"metrics/{name}/ingest.json", {k: report[k] for k in counts})
print(f"ingest {name}: read {report['videos_read']}, kept {report['kept']}, "
      f"skipped {report['skipped']} {report['skipped_by_reason'] or ''}; splits {report['splits']}")
