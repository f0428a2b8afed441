"""Stage clip_select: oracle labels, the saliency ranker and the evaluation of supplementary
Table 6 -> metrics/<dataset>/clips/selection.json, models/<dataset>/clips/ranker.pt, plots;
and, as the supplementary's Fig. 5, the clips the ranker and the oracle pick in a few test
videos drawn as skeletons: plots/<dataset>/clips/salient/*.png, their numbers in
reports/<dataset>/clips/salient.json.

The clip classifier f is JMRN's clip model (clips.classifier: jmrn), or the one logits file in
external/<dataset>/clips/ (clips.classifier: external); the ranker always reads JMRN's
clip features.
"""

import csv

from jmrn.cli import concise_errors
from jmrn.clip_selection import run_clip_selection
from jmrn.config import average_precision, load_params, section, split_names
from jmrn.io import atomic_path, save_torch, write_json
from jmrn.logits_file import Logits, external_files
from jmrn.progress import StageBar
from jmrn.visualise import write_salient_clips

concise_errors("clip_select")
params = load_params()
name = params["dataset"]
splits, clips, ranker = split_names(params), section(params, "clips"), section(params, "ranker")
jmrn_clips = Logits(f"data/{name}/clips/logits.h5")
if clips["classifier"] == "jmrn":
    classifier = jmrn_clips
elif clips["classifier"] == "external":
    files = external_files(name, clips=True)
    if len(files) != 1:
        raise ValueError(f"clips.classifier = external needs exactly one .h5 file in "
                         f"external/{name}/clips/, found {len(files)}")  # fmt: skip
    classifier = Logits(files[0])
else:
    raise ValueError(f"clips.classifier must be jmrn or external, not {clips['classifier']!r}")
with StageBar(f"clip_select {name}: ranker", "epoch") as bar:
    result = run_clip_selection(jmrn_clips, classifier, train_split=splits["train"],
                                test_split=splits["test"], k=clips["k"],
                                ranker_settings=ranker, ap=average_precision(params),
                                progress=bar)  # fmt: skip
metrics = {"classifier": classifier.model, **result["metrics"]}
write_json(f"metrics/{name}/clips/selection.json", metrics)
write_json(f"reports/{name}/clips/selection.json",
           {**metrics, "classifier_file": str(classifier.path), "clips": clips,
            "ranker": ranker, "ranker_skipped": result["ranker_skipped"]})  # fmt: skip
model = result["ranker"]
if model is None:
    print(f"clip selection {name}: ranker skipped: {result['ranker_skipped']}")
save_torch(f"models/{name}/clips/ranker.pt",
           {"model": {} if model is None else model.state_dict(), "trained": model is not None,
            "n_features": int(jmrn_clips.features.shape[1]), "settings": ranker})  # fmt: skip
with atomic_path(f"plots/{name}/clips/ranker_loss.csv") as tmp, open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["epoch", "pairwise_loss"])
    writer.writerows((e + 1, f"{loss:.6f}") for e, loss in enumerate(result["losses"]))
key = metrics["metric"]
write_json(f"plots/{name}/clips/methods.json",
           [{"method": f"{method} ({how})", "metric": values[how][key]}
            for method, values in metrics["methods"].items()
            for how in ("average", "max")])  # fmt: skip
table = {m: round(v["average"][key], 4) for m, v in metrics["methods"].items()}
print(f"clip selection {name} (K={clips['k']}, average consensus, {key}): {table}")
salient = write_salient_clips(f"plots/{name}/clips/salient", f"reports/{name}/clips/salient.json",
                              clip_heatmaps_path=f"data/{name}/clips/heatmaps.h5",
                              keypoints_path=f"data/{name}/keypoints.h5", clip_logits=jmrn_clips,
                              classifier=classifier, ranker=model, test_split=splits["test"],
                              k=clips["k"], ranker_skipped=result["ranker_skipped"])  # fmt: skip
print(f"clip selection {name}: salient clips of {len(salient['videos'])} test videos drawn in "
      f"plots/{name}/clips/salient/")
