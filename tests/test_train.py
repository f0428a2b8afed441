"""The training loop on a tiny real pipeline output: outputs, determinism, resume, DDP."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT, TINY_SETTINGS

from jmrn import train as train_module
from jmrn.train import train


def run(heatmaps, out: Path, settings=None, **kw) -> dict:
    return train(heatmaps, copy.deepcopy(settings or TINY_SETTINGS),
                 model_path=out / "model.pt", checkpoint_path=out / "checkpoint.pt",
                 metrics_path=out / "train.json", per_class_path=out / "per_class.json",
                 plots_dir=out / "plots", progress=False, **kw)  # fmt: skip


def test_training_writes_metrics_plots_and_a_safe_model(tiny_heatmaps, tmp_path):
    metrics = run(tiny_heatmaps, tmp_path)
    assert json.loads((tmp_path / "train.json").read_text()) == metrics
    assert metrics["epochs"] == 3 and 1 <= metrics["selected_epoch"] <= 3
    assert 0 <= metrics["test"]["top1"] <= 1 and "mean_class_accuracy" in metrics["test"]
    assert metrics["test"]["loss"] > 0
    assert "top1" in metrics["test_best_over_evaluations_paper_style"]
    per_class = json.loads((tmp_path / "per_class.json").read_text())["per_class_accuracy"]
    assert len(per_class) == 10
    history = (tmp_path / "plots/history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss") and len(history) == 4
    confusion = json.loads((tmp_path / "plots/confusion.json").read_text())
    assert {"actual", "predicted"} <= set(confusion[0])
    assert (tmp_path / "plots/joint_weights.png").stat().st_size > 1000
    weights_csv = (tmp_path / "plots/joint_weights.csv").read_text().splitlines()
    assert weights_csv[0].split(",")[1:4] == ["nose", "left_eye", "right_eye"]
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["class_names"][0] == "wave" and "fc.weight" in saved["model"]


def test_same_params_give_the_same_metrics(tiny_heatmaps, tmp_path):
    first = run(tiny_heatmaps, tmp_path / "a")
    second = run(tiny_heatmaps, tmp_path / "b")
    assert first == second
    a = (tmp_path / "a/plots/history.csv").read_text()
    assert a == (tmp_path / "b/plots/history.csv").read_text()
    # byte-identical files, so DVC sees an unchanged output
    assert (tmp_path / "a/model.pt").read_bytes() == (tmp_path / "b/model.pt").read_bytes()


def test_killed_run_resumes_where_it_stopped(tiny_heatmaps, tmp_path, monkeypatch, capsys):
    reference = run(tiny_heatmaps, tmp_path / "reference")
    calls = {"n": 0}
    real_augment = train_module.augment

    def dying_augment(*args, **kwargs):  # dies in epoch 3 (after two checkpoints)
        calls["n"] += 1
        if calls["n"] > 2 * 2 * 2:  # 2 views x 2 batches per epoch x 2 epochs
            raise KeyboardInterrupt
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(train_module, "augment", dying_augment)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_heatmaps, tmp_path / "killed")
    saved = torch.load(tmp_path / "killed/checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and not (tmp_path / "killed/train.json").exists()
    monkeypatch.setattr(train_module, "augment", real_augment)
    resumed = run(tiny_heatmaps, tmp_path / "killed")
    assert "resuming" in capsys.readouterr().out
    assert resumed == reference


def test_checkpoint_of_other_settings_is_not_resumed(tiny_heatmaps, tmp_path, capsys):
    run(tiny_heatmaps, tmp_path)
    other = copy.deepcopy(TINY_SETTINGS)
    other["paa"]["beta"] = 1
    metrics = run(tiny_heatmaps, tmp_path, other)
    assert "made with other settings" in capsys.readouterr().out and metrics["epochs"] == 3


@pytest.mark.parametrize("change", [
    {"model": {"name": "potion"}},
    {"contrastive": {"variant": "none"}},
    {"contrastive": {"variant": "only_aug"}},
    {"model": {"selector": "gumbel", "dropout": 0.25}},
    {"train": {"normalize": "max", "optimizer": "sgd"}},
    {"train": {"optimizer": "adamw", "crop": [16, 22]}},
    {"paa": {"type": "none", "flip_p": 0.0}},
    {"paa": {"rotation_degrees": 10, "group_rotation_degrees": 10, "cutmix_joints": 3}},
])  # fmt: skip
def test_every_switch_trains(tiny_heatmaps, tmp_path, change):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = 1
    for section, values in change.items():
        settings[section].update(values)
    metrics = run(tiny_heatmaps, tmp_path, settings)
    assert metrics["model"] == settings["model"]["name"] and metrics["epochs"] == 1


def test_two_cpu_processes_train_through_torchrun(tiny_heatmaps, tmp_path):
    script = tmp_path / "ddp.py"
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = 2
    script.write_text(
        "import json, sys\nfrom jmrn.train import train\n"
        f"settings = json.loads({json.dumps(json.dumps(settings))})\n"
        f"out = {str(tmp_path)!r}\n"
        f"m = train({str(tiny_heatmaps)!r}, settings, model_path=out + '/model.pt', "
        "checkpoint_path=out + '/checkpoint.pt', metrics_path=out + '/train.json', "
        "per_class_path=out + '/per_class.json', plots_dir=out + '/plots', progress=False)\n"
        "import torch.distributed as dist\nprint('RANK_DONE', m['epochs'])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                           "2", "--master_port", "29533", str(script)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("RANK_DONE 2") == 2
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["test"]["top1"] <= 1


def test_dataloader_workers_do_not_change_the_result(tiny_heatmaps, tmp_path):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = 1
    in_process = run(tiny_heatmaps, tmp_path / "a", settings)
    with_workers = run(tiny_heatmaps, tmp_path / "b", settings, loader_workers=2)
    assert in_process == with_workers


def test_truncated_checkpoint_is_ignored_and_training_starts_over(tiny_heatmaps, tmp_path,
                                                                  capsys):  # fmt: skip
    reference = run(tiny_heatmaps, tmp_path)
    checkpoint = tmp_path / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[: len(whole) // 2])  # a save cut short, kept by DVC
    capsys.readouterr()
    metrics = run(tiny_heatmaps, tmp_path)
    out = capsys.readouterr().out
    assert f"train: ignoring {checkpoint}: cannot read it" in out
    assert "training starts over" in out and "resuming" not in out
    assert metrics == reference  # a full run from scratch, not a partial one
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 3  # replaced by a good one


def test_checkpoint_without_expected_keys_is_ignored(tiny_heatmaps, tmp_path, capsys):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = 1
    run(tiny_heatmaps, tmp_path, settings)
    checkpoint = tmp_path / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=True)
    del saved["optimizer"], saved["history"]
    torch.save(saved, checkpoint)
    capsys.readouterr()
    metrics = run(tiny_heatmaps, tmp_path, settings)
    out = capsys.readouterr().out
    assert f"train: ignoring {checkpoint}: it lacks ['optimizer', 'history']" in out
    assert metrics["epochs"] == 1 and "resuming" not in out
