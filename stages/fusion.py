"""Stage fusion: data/<dataset>/logits/{jmrn,potion}.h5 + external/<dataset>/*.h5 ->
learned late fusion, metrics/<dataset>/fusion.json and the per-class plot."""

import json
from pathlib import Path

from jmrn.ava_eval import official_frame_map
from jmrn.cli import concise_errors
from jmrn.config import average_precision, dataset_block, load_params, section, split_names
from jmrn.fusion import run_fusion
from jmrn.io import write_json
from jmrn.logits_file import external_files

concise_errors("fusion")
params = load_params()
name = params["dataset"]
splits = split_names(params)
external = external_files(name)
ingest = json.loads(Path(f"reports/{name}/ingest.json").read_text())
skipped = {s["video_id"] for s in ingest.get("skipped_videos", [])}
block = dataset_block(params)
# AVA: the annotated and the detected val boxes, also scored by the official evaluator
roles = {"annotated_boxes": splits["test"], "detected_boxes": splits.get("detected")}
ava = block["format"] == "ava_csv"
# JMRN and PoTion (trained_here=2) must have held out the same model_selection videos: the
# weights are fit on them. External files must cover them with logits of a model that did not
# train on them (docs/fusion_and_clips.md, "Late fusion").
result = run_fusion([Path(f"data/{name}/logits/jmrn.h5"), Path(f"data/{name}/logits/potion.h5"),
                     *external], train_split=splits["train"], test_split=splits["test"],
                    settings=section(params, "fusion"), ap=average_precision(params),
                    trained_here=2, skipped_by_ingest=skipped,
                    score_splits=tuple(s for s in roles.values() if s) if ava else ())  # fmt: skip
metrics, official = result["metrics"], {}
if ava:
    metrics["official_frame_mAP"], official = official_frame_map(
        result["scores"], roles, block["raw_dir"], block.get("source") or {})
    if splits.get("detected") and "detected_boxes" not in official:
        print(f"fusion {name}: no split {splits.get('detected')!r} (no person-detection pickle "
              "was ingested): no evaluation on detected boxes")  # fmt: skip
write_json(f"metrics/{name}/fusion.json", metrics)
write_json(f"reports/{name}/fusion.json",
           {**metrics, "external_files": [str(p) for p in external],
            "settings": section(params, "fusion"),
            **({"official_frame_mAP_details": official} if official else {})})  # fmt: skip
write_json(f"plots/{name}/fusion/per_class.json", result["per_class"])
fit = metrics["fit"]
print(f"fusion {name}: weights fit on the {metrics['fit_on']['videos']} held-out "
      f"{metrics['fit_on']['split']!r} videos, L-BFGS converged in {fit['iterations']} "
      f"iterations (max |gradient| {fit['max_abs_gradient']:.1e})"
      + ("" if section(params, "fusion")["per_class_weights"] else ": weights "
         + ", ".join(f"{m} {w:.3f}" for m, w in metrics["weights"].items())))  # fmt: skip
print(f"fusion {name}: " + ", ".join(f"{m} {v[metrics['metric']]:.4f}"
                                     for m, v in metrics["test"].items()))  # fmt: skip
for role, values in metrics.get("official_frame_mAP", {}).items():
    print(f"fusion {name}, official frame-mAP@0.5 on the {role.replace('_', ' ')}: "
          + ", ".join(f"{m} {v:.4f}" if v is not None else f"{m} undefined"
                      for m, v in values.items()))  # fmt: skip
