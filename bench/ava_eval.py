"""Time AVA's official frame-mAP (``jmrn.ava_eval.evaluate``) at AVA v2.2 val size.

The fusion stage scores every model on the annotated val boxes (~57,000) and on the detected
ones with ActivityNet's evaluator: each box for each of the 60 classes, i.e. millions of
detection rows. This writes a synthetic val CSV of that size (64 movies, every second of
902-1798, 0-2 people per keyframe, 1-2 actions each), scores all boxes with random logits
for two models, and reports the seconds and the peak memory of the process.

    python bench/ava_eval.py            # writes bench/results/ava_eval.json
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from process_tree import machine_facts

from jmrn.ava_eval import evaluate
from jmrn.readers.ava import sample_id


def write_val_csv(raw: Path, movies: int, rng: np.random.Generator) -> list[str]:
    """An AVA raw folder (action list, empty train CSV, val CSV); returns the box ids."""
    action_ids = [k + 1 for k in range(80) if k % 4 != 3][:60]  # 60 of 80, not contiguous
    (raw / "ava_action_list.pbtxt").write_text(
        "".join(f'item {{\n  name: "action {i}"\n  id: {i}\n}}\n' for i in action_ids))
    (raw / "ava_train_v2.2.csv").write_text("")
    lines, ids = [], []
    for v in range(movies):
        video = f"movie{v:06d}"
        for second in range(902, 1799):
            for person in range(int(rng.integers(0, 2)) + (1 if second % 3 else 0)):
                x1, y1 = rng.uniform(0, 0.6, 2).round(3)
                box = (x1, y1, round(x1 + 0.3, 3), round(y1 + 0.35, 3))
                ids.append(sample_id(video, second, box))
                for action in rng.choice(action_ids, size=int(rng.integers(1, 3)), replace=False):
                    lines.append(f"{ids[-1]},{action},{person}")
    (raw / "ava_val_v2.2.csv").write_text("\n".join(lines) + "\n")
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movies", type=int, default=64, help="AVA v2.2 val has 64")
    parser.add_argument("--out", default="bench/results/ava_eval.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        ids = write_val_csv(Path(tmp), args.movies, rng)
        logits = rng.normal(size=(len(ids), 60)).astype(np.float32)
        start = time.perf_counter()
        result = evaluate(ids, {"model_a": logits, "model_b": 0.5 * logits + 1}, tmp, {})
        seconds = time.perf_counter() - start
    out = {
        "command": f"python bench/ava_eval.py --movies {args.movies} --out {args.out}",
        "machine": machine_facts(),
        "boxes": len(ids),
        "ground_truth_rows": result["model_a"]["num_ground_truth"],
        "detection_rows_per_model": len(ids) * 60,
        "models": 2,
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "mAP_random_scores": result["model_a"]["mAP"],
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
