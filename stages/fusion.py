"""Stage fusion: data/<dataset>/logits/{jmrn,potion}.h5 + data/<dataset>/external/*.h5 ->
learned late fusion, metrics/<dataset>/fusion.json and the per-class plot."""

import json
from pathlib import Path

from jmrn.ava_detected import evaluate as evaluate_detected
from jmrn.config import dataset_block, load_params, section, split_names
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
                    skipped_by_ingest=skipped,
                    score_splits=(splits["detected"],) if "detected" in splits else ())  # fmt: skip
metrics, detected = result["metrics"], {}
if result["scores"]:  # AVA: the detected boxes, scored with the official frame-mAP
    scores = dict(result["scores"][splits["detected"]])
    block = dataset_block(params)
    detected = evaluate_detected(scores.pop("video_ids"), scores, block["raw_dir"],
                                 block.get("source") or {})  # fmt: skip
    metrics["test_detected"] = {m: {"frame_mAP": r["mAP"]} for m, r in detected.items()}
elif "detected" in splits:
    print(f"fusion {name}: no split {splits['detected']!r} (no person-detection pickle was "
          "ingested): the detected-box evaluation is skipped")  # fmt: skip
write_json(f"metrics/{name}/fusion.json", metrics)
write_json(f"reports/{name}/fusion.json",
           {**metrics, "external_files": [str(p) for p in external],
            "settings": section(params, "fusion"),
            **({"detected": detected} if detected else {})})  # fmt: skip
write_json(f"plots/{name}/fusion/per_class.json", result["per_class"])
print(f"fusion {name}: " + ", ".join(f"{m} {v[metrics['metric']]:.4f}"
                                     for m, v in metrics["test"].items()))  # fmt: skip
if detected:
    print(f"fusion {name} on detected boxes, frame-mAP@0.5: " + ", ".join(
        f"{m} {r['mAP']:.4f}" if r["mAP"] is not None else f"{m} undefined"
        for m, r in detected.items()))  # fmt: skip
