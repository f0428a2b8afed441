"""Stage train: heatmaps.h5 -> models/<dataset>/model.pt, metrics and plots.

Runs on one process, or under torchrun (`torchrun --nproc_per_node N stages/train.py`).
"""

from jmrn.config import load_params, training_settings
from jmrn.io import write_json
from jmrn.train import train

params = load_params()
name = params["dataset"]
settings = training_settings(params)
metrics = train(
    f"data/{name}/heatmaps.h5", settings,
    model_path=f"models/{name}/model.pt", checkpoint_path=f"models/{name}/checkpoint.pt",
    metrics_path=f"metrics/{name}/train.json",
    per_class_path=f"metrics/{name}/train_per_class.json", plots_dir=f"plots/{name}/train",
    device=params["compute"]["device"], loader_workers=params["compute"]["loader_workers"],
)  # fmt: skip
write_json(f"reports/{name}/train_settings.json", settings)
print(f"train {name}: test {metrics['test']}")
