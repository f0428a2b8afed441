"""Stage clip_logits: JMRN clip logits and features of every clip -> data/<dataset>/clips/logits.h5.
"""

from jmrn.cli import concise_errors
from jmrn.config import load_params
from jmrn.io import write_json
from jmrn.predict import write_model_logits
from jmrn.progress import StageBar

concise_errors("clip_logits")
params = load_params()
name = params["dataset"]
with StageBar(f"clip logits {name}", "clip") as bar:
    summary = write_model_logits(f"models/{name}/clips/jmrn.pt",
                                 f"data/{name}/clips/heatmaps.h5", f"data/{name}/clips/logits.h5",
                                 device=params["compute"]["device"],
                                 precision=params["compute"]["precision"],
                                 workers=params["compute"]["loader_workers"],
                                 progress=bar)  # fmt: skip
write_json(f"reports/{name}/clips/logits.json", summary)
print(f"clip logits {name}: {summary['rows']} clips, {summary['feature_dim']}-d features")
