"""Stage clip_logits: JMRN clip logits and features of every clip -> data/<dataset>/clips/logits.h5.

Also makes data/<dataset>/external_clips/ (where a clip model's logits go, for
clips.classifier = external) if it does not exist, so clip_select's dependency is there.
"""

from pathlib import Path

from jmrn.cli import concise_errors
from jmrn.config import load_params
from jmrn.io import write_json
from jmrn.predict import write_model_logits

concise_errors("clip_logits")
params = load_params()
name = params["dataset"]
summary = write_model_logits(f"models/{name}/clips/jmrn.pt", f"data/{name}/clips/heatmaps.h5",
                             f"data/{name}/clips/logits.h5", device=params["compute"]["device"],
                             workers=params["compute"]["loader_workers"])  # fmt: skip
Path(f"data/{name}/external_clips").mkdir(parents=True, exist_ok=True)
write_json(f"reports/{name}/clips/logits.json", summary)
print(f"clip logits {name}: {summary['rows']} clips, {summary['feature_dim']}-d features")
