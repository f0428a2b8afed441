"""The DVC pipeline end to end on the built-in synthetic dataset, in a copy of the project."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import PROJECT_ROOT

from jmrn.heatmaps_file import HeatmapsFile
from jmrn.keypoints_file import KeypointsFile
from jmrn.logits_file import Logits

COPIED = ["jmrn", "stages", "params.yaml", "dvc.yaml", ".dvcignore", ".dvc/config",
          ".gitignore", "data/README.md", "external/README.md"]  # fmt: skip
# A tiny network and two epochs: the test is about the pipeline, not about accuracy.
TINY_TRAINING = {"model": {"c_dim": 4, "widths": [8, 16], "head_width": 16},
                 "train": {"epochs": 2, "batch_size": 16}, "clips": {"epochs": 1},
                 "ranker": {"epochs": 5}}  # fmt: skip
DOWNSTREAM = ("train@jmrn", "train@potion", "logits@jmrn", "logits@potion", "fusion",
              "clip_heatmaps", "clip_train", "clip_logits", "clip_select")  # fmt: skip
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is needed by dvc")
    root = tmp_path_factory.mktemp("project")
    for name in COPIED:
        src, dst = PROJECT_ROOT / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    params = yaml.safe_load((root / "params.yaml").read_text())
    block = params["datasets"]["synthetic"]
    block["generator"]["videos_per_class"] = 8  # keep the test quick
    for section, values in TINY_TRAINING.items():
        block[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q")
    run(root, *GIT, "add", "-A")
    run(root, *GIT, "commit", "-qm", "project")
    return root


def project_env(root: Path) -> dict:
    """Run stages with this interpreter and the copied package, as an activated venv would."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ, PYTHONPATH=str(root), PATH=path)


def run(root: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=root, env=project_env(root), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_repro_builds_the_synthetic_cache_then_does_nothing(project):
    out = run(project, "dvc", "repro", "heatmaps")
    for stage in ("synthesize", "ingest", "heatmaps"):
        assert f"Running stage '{stage}'" in out
    report = json.loads((project / "reports/synthetic/ingest.json").read_text())
    assert report["kept"] == report["videos_read"] == 80 and report["classes"] == 10
    assert report["layout"] == "coco17_neck" and report["source_layout"] == "coco17"
    with KeypointsFile(project / "data/synthetic/keypoints.h5") as kf:
        assert len(kf) == 80 and sorted(kf.splits) == ["test", "train"]
    with HeatmapsFile(project / "data/synthetic/heatmaps.h5") as hf:
        assert hf.heatmaps.shape == (80, 3, 18, 32, 43)
        assert float(hf.heatmaps[0].max()) > 0
    assert (project / "plots/synthetic/heatmaps.png").stat().st_size > 1000
    cache = project / "data/synthetic/heatmaps.h5"
    before = cache.stat().st_mtime_ns
    again = run(project, "dvc", "repro", "heatmaps")
    assert "Running stage" not in again
    assert cache.stat().st_mtime_ns == before


def ran(out: str) -> set[str]:
    """The stages a dvc command ran, from its output."""
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def restored(out: str) -> set[str]:
    """The stages a dvc command restored from DVC's run-cache instead of running them."""
    return {line.split("'")[1] for line in out.splitlines()
            if line.startswith("Stage '") and "is cached - skipping run" in line}  # fmt: skip


def test_the_whole_dag_runs_then_does_nothing(project):
    out = run(project, "dvc", "repro")
    assert set(DOWNSTREAM) <= ran(out)
    for model in ("jmrn", "potion"):
        metrics = json.loads((project / f"metrics/synthetic/train/{model}.json").read_text())
        assert metrics["epochs"] == 2 and metrics["model"] == model
        for name in ("history.csv", "confusion.json", "joint_weights.png"):
            assert (project / f"plots/synthetic/train/{model}" / name).exists()
        logits = Logits(project / f"data/synthetic/logits/{model}.h5")
        assert len(logits.video_ids) == 80 and logits.features.shape == (80, 16)
        assert {"train", "test", "model_selection"} == set(logits.splits)
        assert len(logits.params_hash) == 16
    fusion = json.loads((project / "metrics/synthetic/fusion.json").read_text())
    assert fusion["modalities"] == ["jmrn", "potion"]
    assert set(fusion["test"]) == {"jmrn", "potion", "average", "fused"}
    assert json.loads((project / "plots/synthetic/fusion/per_class.json").read_text())
    clips = json.loads((project / "metrics/synthetic/clips/selection.json").read_text())
    assert set(clips["methods"]) == {"dense", "random", "uniform", "empirical", "ranker",
                                     "oracle"}  # fmt: skip
    assert clips["methods"]["dense"]["clips_used"] == 1.0
    assert clips["methods"]["ranker"]["clips_used"] < 1.0
    assert (project / "plots/synthetic/clips/ranker_loss.csv").read_text().count("\n") == 6
    assert (project / "plots/synthetic/ingest.png").stat().st_size > 1000
    salient = json.loads((project / "reports/synthetic/clips/salient.json").read_text())
    assert len(list((project / "plots/synthetic/clips/salient").glob("*.png"))) == len(
        salient["videos"]) > 0  # fmt: skip
    assert ran(run(project, "dvc", "repro")) == set()
    run(project, *GIT, "add", "-A")
    run(project, *GIT, "commit", "-qm", "baseline")


def test_switching_datasets_back_and_forth_recomputes_nothing(project):
    """A -> B -> A: the third run restores A's keypoints and heatmaps from DVC's run-cache."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    other = {k: v for k, v in params["datasets"]["synthetic"].items() if k != "generator"}
    params["datasets"]["other"] = {**other, "raw_dir": "data/raw/other",
                                   "source": {**other["source"],
                                              "class_names": "data/raw/other/classes.txt"},
                                   "heatmap": {**other["heatmap"], "sigma": 1.5}}  # fmt: skip
    shutil.copytree(project / "data/raw/synthetic", project / "data/raw/other", dirs_exist_ok=True)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(project, *GIT, "commit", "-qam", "a second dataset")
    built = ("ingest", "heatmaps")
    try:
        first = run(project, "dvc", "exp", "run", "-S", "dataset=other", "heatmaps")
        assert ran(first) == set(built)
        with HeatmapsFile(project / "data/other/heatmaps.h5") as hf:
            assert hf.file.attrs["sigma"] == 1.5
        (project / "data/other/heatmaps.h5").unlink()  # only DVC's cache can bring it back
        back = run(project, "dvc", "exp", "run", "-S", "dataset=synthetic", "heatmaps")
        assert ran(back) == set() and restored(back) == set(built)
        again = run(project, "dvc", "exp", "run", "-S", "dataset=other", "heatmaps")
        assert ran(again) == set() and restored(again) == set(built)
        with HeatmapsFile(project / "data/other/heatmaps.h5") as hf:
            assert hf.file.attrs["sigma"] == 1.5
        report = json.loads((project / "reports/other/ingest.json").read_text())
        assert report["kept"] == 80  # reports are restored with the data
    finally:
        run(project, "git", "checkout", "--", ".")
        run(project, "dvc", "checkout", "--force")


def queue_and_run(project: Path, *overrides: str) -> list[str]:
    """Queue a 2 x 2 grid of train@jmrn experiments (the project's old ones removed), run them
    one at a time, and check that each trained only: ingest and the heatmaps came from DVC's
    caches. Returns the experiments' names."""
    run(project, "dvc", "exp", "remove", "--all-commits")
    sets = [arg for o in overrides for arg in ("-S", o)]
    queued = run(project, "dvc", "exp", "run", "--queue", *sets, "train@jmrn")
    names = re.findall(r"Queued experiment '([^']+)'", queued)
    assert len(names) == 4
    run(project, "dvc", "queue", "start", "-j", "1")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(project, "dvc", "queue", "status")
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert status.count("Success") >= len(names), status
    for name in names:
        log = run(project, "dvc", "queue", "logs", name)
        assert ran(log) == {"train@jmrn"}, log
        assert {"ingest", "heatmaps"} <= restored(log) | unchanged(log), log
    return names


def unchanged(log: str) -> set[str]:
    """The stages a dvc command found up to date."""
    return set(re.findall(r"Stage '([^']+)' didn't change, skipping", log))


def test_a_queued_sweep_reruns_training_only_and_gives_the_sweep_picture(project):
    """`dvc exp run --queue` with comma lists queues the grid; each experiment runs in a fresh
    copy of the last commit, takes the heatmap cache from DVC's cache and trains; then
    jmrn.sweep turns `dvc exp show --json` into supplementary Fig. 4."""
    names = queue_and_run(project, "paa.beta=0,3", "paa.gamma=0,2")
    exp_show = project / "exp_show.json"
    exp_show.write_text(_stdout(project, "dvc", "exp", "show", "--json"))
    out = run(project, sys.executable, "-m", "jmrn.sweep", "--input", str(exp_show))
    table = json.loads((project / "plots/synthetic/sweep/paa.json").read_text())
    assert sorted((r["beta"], r["gamma"]) for r in table["rows"]) == [(0, 0), (0, 2), (3, 0),
                                                                       (3, 2)]  # fmt: skip
    assert {r["experiment"] for r in table["rows"]} == set(names)
    shown = json.loads(exp_show.read_text())
    by_name = {rev["name"]: rev["data"]["metrics"]["metrics/synthetic/train/jmrn.json"]["data"]
               for base in shown for group in base.get("experiments") or []
               for rev in group["revs"] if rev.get("name") in names}  # fmt: skip
    for row in table["rows"]:  # the picture's numbers are the experiments' own metrics
        assert row["top1"] == by_name[row["experiment"]]["test"]["top1"]
    assert "gamma 2 beta 3" in out
    assert cv2.imread(str(project / "plots/synthetic/sweep/paa.png")) is not None
    exp_show.unlink()
    run(project, "dvc", "exp", "remove", *names)


def test_a_tiny_queued_grid_runs_end_to_end_into_the_report(project):
    """2 seeds x 2 contrastive variants as queued experiments (train@jmrn, 2 epochs): each
    restores the caches from DVC's run-cache and trains; jmrn.report then gives the two
    groups and their paired difference, from the experiments' own metrics."""
    names = queue_and_run(project, "train.seed=0,1", "contrastive.variant=proposed,none")
    exp_show = project / "exp_show.json"
    exp_show.write_text(_stdout(project, "dvc", "exp", "show", "--json", "--all-commits"))
    run(project, sys.executable, "-m", "jmrn.report", "--input", str(exp_show),
        "--json", "grid.json", "--out", "grid")  # fmt: skip
    result = json.loads((project / "grid.json").read_text())
    shown = json.loads(exp_show.read_text())
    top1 = {}
    for base in shown:
        for group in base.get("experiments") or []:
            for rev in group["revs"]:
                if rev.get("name") in names:
                    data = rev["data"]
                    params = data["params"]["params.yaml"]["data"]
                    key = (params["contrastive"]["variant"], params["train"]["seed"])
                    metrics = data["metrics"]["metrics/synthetic/train/jmrn.json"]["data"]
                    top1[key] = metrics["test"]["top1"]
    groups = {g["params"]["contrastive.variant"]: g for g in result["groups"]}
    assert set(groups) == {"proposed", "none"}
    for variant, group in groups.items():
        values = group["metrics"]["train/jmrn/test/top1"]["values"]
        assert values == [top1[(variant, 0)], top1[(variant, 1)]]
    (pair,) = result["pairs"]
    assert pair["differs"] == "contrastive.variant" and pair["n"] == 2
    assert pair["metrics"]["train/jmrn/test/top1"]["values"] == pytest.approx(
        [top1[(pair["b"]["contrastive.variant"], s)] - top1[(pair["a"]["contrastive.variant"], s)]
         for s in (0, 1)])  # fmt: skip
    assert (project / "grid/report.png").stat().st_size > 1000
    # the other stages' metrics in these experiments are the baseline commit's, which ran
    # without the -S overrides (and with seed 0): they are left out by name, never averaged in
    stale = result["left_out_not_their_own"]
    seed_1 = {n for n in names if any(e["name"] == n and e["replicate"]["train.seed"] == 1
                                      for e in result["experiments"])}  # fmt: skip
    assert len(seed_1) == 2 and seed_1 <= set(stale)
    variant = {e["name"]: e["params"]["contrastive.variant"] for e in result["experiments"]}
    for name in seed_1:  # the first of the lock's (sorted) params that differs is named
        assert stale[name]["metrics/synthetic/train/potion.json"] == "train@potion ran with " \
            f'contrastive.variant = null, the experiment has "{variant[name]}"'  # fmt: skip
    assert not any("metrics/synthetic/train/jmrn.json" in files for files in stale.values())
    exp_show.unlink()
    (project / "grid.json").unlink()
    shutil.rmtree(project / "grid")
    run(project, "dvc", "exp", "remove", *names)


def _stdout(root: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=root, env=project_env(root), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_fusion_param_reruns_only_fusion(project):
    out = run(project, "dvc", "exp", "run", "-S", "fusion.l2_penalty=0.01")
    assert ran(out) == {"fusion"}
    diff = json.loads(run(project, "dvc", "metrics", "diff", "--json"))
    assert "metrics/synthetic/fusion.json" in diff
    # dvc exp run leaves the experiment in the workspace: back to the committed baseline
    run(project, "git", "checkout", "--", ".")
    assert ran(run(project, "dvc", "repro")) == set()


def write_external(path: Path, ids: list[str], labels: np.ndarray, classes: list[str],
                   scale: float) -> None:  # fmt: skip
    """An external modality written by hand with h5py, following the README's schema only."""
    rng = np.random.default_rng(0)
    logits = scale * labels + rng.normal(0, 1, labels.shape)
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = 1
        f.attrs["class_names"] = classes
        f.attrs["model"] = "rgb"
        f["video_id"] = np.array(ids, dtype="S")
        f["logits"] = logits.astype(np.float64)


def test_external_logits_are_fused_and_mismatches_are_errors(project):
    pose = Logits(project / "data/synthetic/logits/jmrn.h5")
    external = project / "external/synthetic/rgb.h5"
    external.parent.mkdir(parents=True, exist_ok=True)
    labels = pose.labels.astype(float)
    write_external(external, pose.video_ids[::-1], labels[::-1], pose.class_names, 4.0)
    try:
        out = run(project, "dvc", "repro")
        assert ran(out) == {"fusion", "clip_select"}  # both depend on the folder external/
        fusion = json.loads((project / "metrics/synthetic/fusion.json").read_text())
        assert fusion["modalities"] == ["jmrn", "potion", "rgb"]
        assert fusion["best_single"] == "rgb"
        assert fusion["weights"]["rgb"] > max(fusion["weights"]["jmrn"],
                                              fusion["weights"]["potion"])  # fmt: skip
        # fusion needs every held-out (model_selection) and test video: drop one of each
        for split in ("model_selection", "test"):
            drop = int(pose.splits[split][0])
            keep = [i for i in range(len(pose.video_ids)) if i != drop]
            write_external(external, [pose.video_ids[i] for i in keep], labels[keep],
                           pose.class_names, 4.0)  # fmt: skip
            proc = subprocess.run(["dvc", "repro"], cwd=project, env=project_env(project),
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
            assert proc.returncode != 0
            output = proc.stdout + proc.stderr
            assert "rgb.h5" in output and "no logits for 1 of the" in output
            assert pose.video_ids[drop] in output
            assert "Traceback" not in proc.stderr  # one clear line, not a stack
    finally:
        external.unlink(missing_ok=True)
    out = run(project, "dvc", "repro")  # the run without rgb.h5 was seen before: no re-run
    assert ran(out) == set() and restored(out) == {"fusion", "clip_select"}


def test_files_in_the_old_external_folder_are_an_error(project):
    old = project / "data/synthetic/external/rgb.h5"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"")
    try:
        proc = subprocess.run([sys.executable, "stages/fusion.py"], cwd=project,
                              env=project_env(project), capture_output=True, text=True)  # fmt: skip
    finally:
        old.unlink()
    assert proc.returncode == 1
    assert "now go in external/synthetic/" in proc.stdout + proc.stderr


def test_an_external_clip_classifier_replaces_f(project):
    clips = Logits(project / "data/synthetic/clips/logits.h5")
    external = project / "external/synthetic/clips/rgb.h5"
    external.parent.mkdir(parents=True, exist_ok=True)
    write_external(external, clips.video_ids, clips.labels.astype(float), clips.class_names, 4.0)
    params_path = project / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["clips"]["classifier"] = "external"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        assert ran(run(project, "dvc", "repro")) == {"clip_select", "fusion"}
        selection = json.loads((project / "metrics/synthetic/clips/selection.json").read_text())
        assert selection["classifier"] == "rgb"
        assert selection["methods"]["dense"]["average"]["top1"] > 0.9  # the planted logits
    finally:
        external.unlink(missing_ok=True)
        params_path.write_text(original)
    out = run(project, "dvc", "repro")  # back to a state DVC has seen: restored, not re-run
    assert ran(out) == set() and restored(out) == {"clip_select", "fusion"}


def test_exp_run_with_a_paa_param_reruns_training_and_what_follows(project):
    out = run(project, "dvc", "exp", "run", "-S", "paa.beta=1")
    assert {"train@jmrn", "train@potion", "clip_train"} <= ran(out)
    assert not ran(out) & {"synthesize", "ingest", "heatmaps", "clip_heatmaps"}
    diff = run(project, "dvc", "metrics", "diff", "--json")
    changed = json.loads(diff)["metrics/synthetic/train/jmrn.json"]
    assert "test.loss" in changed and changed["test.loss"]["diff"] != 0
    assert "paa.beta" in run(project, "dvc", "params", "diff")


def test_killed_training_resumes_on_the_next_repro(project):
    params_path = project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["train"]["epochs"] = 40  # long enough to be killed in the middle
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    checkpoint = project / "checkpoints/synthetic/jmrn.pt"
    checkpoint.unlink(missing_ok=True)  # one from an earlier run would be ignored anyway
    proc = subprocess.Popen(["dvc", "repro", "train@jmrn"], cwd=project,
                            env=project_env(project), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if checkpoint.exists() and checkpoint_epoch(checkpoint) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stopped_at = checkpoint_epoch(checkpoint)
    assert 2 <= stopped_at < 40
    out = run(project, "dvc", "repro", "train@jmrn")
    assert f"resuming {Path('checkpoints/synthetic/jmrn.pt')} after epoch" in out
    metrics = json.loads((project / "metrics/synthetic/train/jmrn.json").read_text())
    assert metrics["epochs"] == 40
    assert metrics["finished"] is True and not checkpoint.exists()
    params["train"]["epochs"] = None
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))


def checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def test_heatmap_param_reruns_only_heatmaps(project):
    run(project, "dvc", "repro", "heatmaps")
    keypoints = project / "data/synthetic/keypoints.h5"
    before = keypoints.stat().st_mtime_ns
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["heatmap"]["sigma"] = 1.5  # top-level override of the dataset's sigma
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(project, "dvc", "repro", "heatmaps")
    assert "Running stage 'heatmaps'" in out and "Running stage 'ingest'" not in out
    assert keypoints.stat().st_mtime_ns == before
    with HeatmapsFile(project / "data/synthetic/heatmaps.h5") as hf:
        assert hf.file.attrs["sigma"] == 1.5


def test_a_dataset_without_raw_data_fails_with_a_clear_message(project):
    params_path = project / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["dataset"] = "ava"
    params["datasets"]["ava"]["raw_dir"] = "data/raw/ava_elsewhere"
    (project / "data/raw/ava").mkdir(parents=True, exist_ok=True)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = subprocess.run(["dvc", "repro", "ingest"], cwd=project, env=project_env(project),
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        params_path.write_text(original)
    assert proc.returncode != 0
    assert "raw data folder data/raw/ava_elsewhere does not exist" in proc.stdout + proc.stderr
