"""Stage synthesize: write the built-in synthetic dataset as a PYSKL pickle + class list."""

from pathlib import Path

from jmrn import synthetic
from jmrn.cli import concise_errors
from jmrn.config import load_params
from jmrn.io import atomic_path

concise_errors("synthesize")
params = load_params()
settings = params["datasets"]["synthetic"]["generator"]
out_dir = Path(params["datasets"]["synthetic"]["raw_dir"])
data = synthetic.generate(seed=settings["seed"], videos_per_class=settings["videos_per_class"])
synthetic.write(out_dir / "synthetic.pkl", data)
with atomic_path(out_dir / "classes.txt") as tmp:
    tmp.write_text("\n".join(synthetic.CLASS_NAMES) + "\n")
print(f"synthesize: {len(data['annotations'])} videos, {len(synthetic.CLASS_NAMES)} classes "
      f"-> {out_dir}")
