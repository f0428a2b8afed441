"""Stage fusion: data/<dataset>/logits/{jmrn,potion}.h5 + data/<dataset>/external/*.h5 ->
learned late fusion, metrics/<dataset>/fusion.json and the per-class plot."""

import json
from pathlib import Path

from jmrn.config import load_params, section, split_names
from jmrn.fusion import run_fusion
from jmrn.io import write_json

params = load_params()
name = params["dataset"]
splits = split_names(params)
external = sorted(Path(f"data/{name}/external").glob("*.h5"))
ingest = json.loads(Path(f"reports/{name}/ingest.json").read_text())
skipped = {s["video_id"] for s in ingest.get("skipped_videos", [])}
result = run_fusion([Path(f"data/{name}/logits/jmrn.h5"), Path(f"data/{name}/logits/potion.h5"),
                     *external], train_split=splits["train"], test_split=splits["test"],
                    settings={**section(params, "fusion"),
                              "ap": section(params, "train").get("ap", "charades")},
                    skipped_by_ingest=skipped)  # fmt: skip
metrics = result["metrics"]
write_json(f"metrics/{name}/fusion.json", metrics)
write_json(f"reports/{name}/fusion.json",
           {**metrics, "external_files": [str(p) for p in external],
            "settings": section(params, "fusion")})  # fmt: skip
write_json(f"plots/{name}/fusion/per_class.json", result["per_class"])
print(f"fusion {name}: " + ", ".join(f"{m} {v[metrics['metric']]:.4f}"
                                     for m, v in metrics["test"].items()))  # fmt: skip
