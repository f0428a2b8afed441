"""Stage clip_train: the clip classifier f, JMRN trained on data/<dataset>/clips/heatmaps.h5
(every clip labelled with its video's label; validation clips come from held-out videos),
from random weights or, with clips.init: video, from the video model models/<dataset>/jmrn.pt."""

from jmrn.cli import concise_errors
from jmrn.config import clip_training_settings, load_params
from jmrn.io import write_json
from jmrn.train import train

concise_errors("clip_train")
params = load_params()
name = params["dataset"]
settings = clip_training_settings(params)
metrics = train(
    f"data/{name}/clips/heatmaps.h5", settings,
    model_path=f"models/{name}/clips/jmrn.pt",
    checkpoint_path=f"checkpoints/{name}/clips/jmrn.pt",  # not a DVC output (see train.py)
    metrics_path=f"metrics/{name}/clips/train.json",
    per_class_path=f"reports/{name}/clips/train_per_class.json",
    plots_dir=f"plots/{name}/clips/train",
    device=params["compute"]["device"], precision=params["compute"]["precision"],
    loader_workers=params["compute"]["loader_workers"],
    stage="clip_train",
    init_from=f"models/{name}/jmrn.pt" if settings["train"]["init"] == "video" else None,
)  # fmt: skip
write_json(f"reports/{name}/clips/train_settings.json", settings)
print(f"clip classifier {name}: test (per clip) {metrics['test']}")
