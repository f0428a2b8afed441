"""Stage logits@<model>: models/<dataset>/<model>.pt -> data/<dataset>/logits/<model>.h5.

    python stages/logits.py jmrn|potion
"""

import sys

from jmrn.cli import concise_errors
from jmrn.config import load_params
from jmrn.io import write_json
from jmrn.predict import write_model_logits
from jmrn.progress import StageBar

model = sys.argv[1] if len(sys.argv) > 1 else "jmrn"
concise_errors(f"logits@{model}")
params = load_params()
name = params["dataset"]
with StageBar(f"logits {name} {model}", "video") as bar:
    summary = write_model_logits(f"models/{name}/{model}.pt", f"data/{name}/heatmaps.h5",
                                 f"data/{name}/logits/{model}.h5",
                                 device=params["compute"]["device"],
                                 precision=params["compute"]["precision"],
                                 workers=params["compute"]["loader_workers"],
                                 progress=bar)  # fmt: skip
write_json(f"reports/{name}/logits/{model}.json", summary)
print(f"logits {name} {model}: {summary['rows']} videos, {summary['feature_dim']}-d features")
