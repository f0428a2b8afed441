"""Stage train@<model>: heatmaps.h5 -> models/<dataset>/<model>.pt, metrics and plots.

    python stages/train.py jmrn|potion

Runs on one process, or under torchrun (`torchrun --nproc_per_node N stages/train.py jmrn`).
"""

import sys

from jmrn.cli import concise_errors
from jmrn.config import load_params, training_settings
from jmrn.io import write_json
from jmrn.train import train

model = sys.argv[1] if len(sys.argv) > 1 else "jmrn"
concise_errors(f"train@{model}")
params = load_params()
name = params["dataset"]
settings = training_settings(params, model)
metrics = train(
    f"data/{name}/heatmaps.h5", settings,
    model_path=f"models/{name}/{model}.pt",
    # not a DVC output: a persist output turns DVC's run-cache off (jmrn/train.py)
    checkpoint_path=f"checkpoints/{name}/{model}.pt",
    metrics_path=f"metrics/{name}/train/{model}.json",
    per_class_path=f"metrics/{name}/train/{model}_per_class.json",
    plots_dir=f"plots/{name}/train/{model}",
    device=params["compute"]["device"], precision=params["compute"]["precision"],
    loader_workers=params["compute"]["loader_workers"],
    stage=f"train@{model}",
)  # fmt: skip
write_json(f"reports/{name}/train/{model}_settings.json", settings)
print(f"train {name} {model}: test {metrics['test']}")
