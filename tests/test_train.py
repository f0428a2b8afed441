"""The training loop on a tiny real pipeline output: outputs, determinism, resume, DDP."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def killed_before_finishing(heatmaps, out: Path, settings=None) -> Path:
    """Train every epoch, then die before the final outputs (as a kill right after the last
    checkpoint would): returns the checkpoint such a run leaves."""

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "_finish", killed)
        with pytest.raises(KeyboardInterrupt):
            run(heatmaps, out, settings)
    return out / "checkpoint.pt"


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


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_killed_run_resumes_where_it_stopped(tiny_heatmaps, tmp_path, monkeypatch, capsys,
                                             schedule):  # fmt: skip
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["schedule"] = schedule
    reference = run(tiny_heatmaps, tmp_path / "reference", settings)
    calls = {"n": 0}
    real_augment = train_module.augment

    def dying_augment(*args, **kwargs):  # dies in epoch 3 (after two checkpoints)
        calls["n"] += 1
        if calls["n"] > 2 * 2 * 2:  # 2 views x 2 batches per epoch x 2 epochs
            raise KeyboardInterrupt
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(train_module, "augment", dying_augment)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_heatmaps, tmp_path / "killed", settings)
    saved = torch.load(tmp_path / "killed/checkpoint.pt", weights_only=True)
    live = json.loads((tmp_path / "killed/train.json").read_text())  # the live figures
    assert saved["epoch"] == 2 and live["epoch"] == 2 and live["finished"] is False
    monkeypatch.setattr(train_module, "augment", real_augment)
    resumed = run(tiny_heatmaps, tmp_path / "killed", settings)
    assert "resuming" in capsys.readouterr().out
    assert resumed == reference
    assert not (tmp_path / "killed/checkpoint.pt").exists()  # a finished run removes it


def test_cosine_schedule_decays_the_rate_to_zero_over_the_epochs(tiny_heatmaps, tmp_path):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"].update(schedule="cosine", epochs=3, lr=1e-3)
    run(tiny_heatmaps, tmp_path, settings)
    history = list(csv.DictReader((tmp_path / "plots/history.csv").read_text().splitlines()))
    # epoch e of E (from 0) trains at lr * (1 + cos(pi e / E)) / 2: 1, 3/4, 1/4 of lr
    assert [float(row["lr"]) for row in history] == pytest.approx([1e-3, 0.75e-3, 0.25e-3])


def test_plateau_schedule_lowers_the_rate_only_on_a_stalled_validation_loss():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    settings = {"schedule": "plateau", "lr_patience": 1, "lr_factor": 0.1, "epochs": 9}
    scheduler = train_module.make_scheduler(optimizer, settings)
    rates = []
    for val_loss in (3.0, 2.0, 2.5, 2.5, 1.0):  # the 2nd evaluation without progress lowers it
        scheduler.step(val_loss)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1])
    with pytest.raises(ValueError, match="train.schedule = 'linear'"):
        train_module.make_scheduler(optimizer, {**settings, "schedule": "linear"})


def test_checkpoint_of_other_settings_is_not_resumed(tiny_heatmaps, tmp_path, capsys):
    killed_before_finishing(tiny_heatmaps, tmp_path)
    other = copy.deepcopy(TINY_SETTINGS)
    other["paa"]["beta"] = 1
    metrics = run(tiny_heatmaps, tmp_path, other)
    assert "made with other settings" in capsys.readouterr().out and metrics["epochs"] == 3


@pytest.mark.parametrize("change", [
    {"model": {"name": "potion"}},
    {"contrastive": {"variant": "none"}},
    {"contrastive": {"variant": "only_aug"}},
    {"model": {"selector": "gumbel", "dropout": 0.25}},
    {"model": {"embedding": "c", "projection": "none"}},
    {"model": {"projection": "linear"}},
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
    reference = run(tiny_heatmaps, tmp_path / "reference")
    checkpoint = killed_before_finishing(tiny_heatmaps, tmp_path)
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[: len(whole) // 2])  # a save cut short
    saves = []
    real_save = train_module._save_checkpoint

    def recording_save(path, *args):
        real_save(path, *args)
        saves.append(torch.load(path, weights_only=True)["epoch"])

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "_save_checkpoint", recording_save)
        metrics = run(tiny_heatmaps, tmp_path)
    out = capsys.readouterr().out
    assert f"train: ignoring {checkpoint}: cannot read it" in out
    assert "training starts over" in out and "resuming" not in out
    assert metrics == reference  # a full run from scratch, not a partial one
    assert saves == [1, 2, 3]  # replaced by good ones, then removed with the run finished
    assert not checkpoint.exists()


def test_checkpoint_without_expected_keys_is_ignored(tiny_heatmaps, tmp_path, capsys):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = 1
    checkpoint = killed_before_finishing(tiny_heatmaps, tmp_path, settings)
    saved = torch.load(checkpoint, weights_only=True)
    del saved["optimizer"], saved["history"]
    torch.save(saved, checkpoint)
    capsys.readouterr()
    metrics = run(tiny_heatmaps, tmp_path, settings)
    out = capsys.readouterr().out
    assert f"train: ignoring {checkpoint}: it lacks ['optimizer', 'history']" in out
    assert metrics["epochs"] == 1 and "resuming" not in out


@pytest.mark.parametrize("done, epochs, eval_every, left", [
    (0, 3, 1, {"epoch": 3, "evaluation": 4}),    # 3 epoch evaluations + the final one
    (3, 20, 5, {"epoch": 17, "evaluation": 5}),  # epochs 5, 10, 15, 20 + final
    (5, 20, 5, {"epoch": 15, "evaluation": 4}),  # epoch 5's evaluation is done
    (0, 7, 5, {"epoch": 7, "evaluation": 3}),    # epoch 5, the last epoch 7, final
    (6, 7, 5, {"epoch": 1, "evaluation": 2}),
    (7, 7, 5, {"epoch": 0, "evaluation": 1}),    # only the final evaluation is left
])  # fmt: skip
def test_steps_left_for_the_stage_eta(done, epochs, eval_every, left):
    assert train_module._steps_left(done, epochs, eval_every) == left


def test_metrics_and_history_are_live_during_training(tiny_heatmaps, tmp_path, monkeypatch,
                                                      capsys):  # fmt: skip
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["eval_every"] = 2  # evaluations after epochs 2 and 3
    on_disk = []  # (metrics file, history.csv lines) as the files are after each epoch
    real_write_history = train_module._write_history

    def snapshot(plots_dir, history):
        real_write_history(plots_dir, history)
        on_disk.append((json.loads((tmp_path / "train.json").read_text()),
                        (plots_dir / "history.csv").read_text().splitlines()))  # fmt: skip

    monkeypatch.setattr(train_module, "_write_history", snapshot)
    final = run(tiny_heatmaps, tmp_path, settings, stage="train@tiny")
    history = list(csv.DictReader((tmp_path / "plots/history.csv").read_text().splitlines()))
    assert len(on_disk) == 3 + 1  # after each epoch, and once more with the final plots
    for epoch, (live, lines) in enumerate(on_disk[:3], start=1):
        row = history[epoch - 1]
        assert live["finished"] is False and live["epoch"] == epoch and live["epochs"] == 3
        assert live["train"]["loss"] == pytest.approx(float(row["train_loss"]))
        assert len(lines) == 1 + epoch  # header and the epochs so far
    assert "val" not in on_disk[0][0]  # epoch 1 was not evaluated
    for live, epoch in ((on_disk[1][0], 2), (on_disk[2][0], 3)):
        row = history[epoch - 1]
        assert live["evaluated_epoch"] == epoch
        assert live["val"]["top1"] == pytest.approx(float(row["val_metric"]))
        assert live["test"]["top1"] == pytest.approx(float(row["test_metric"]))
        assert live["selected_epoch"] in (2, 3)
    assert json.loads((tmp_path / "train.json").read_text()) == final
    assert final["finished"] is True and final["epoch"] == final["epochs"] == 3
    assert {"model", "test", "val", "selected_epoch", "test_final_epoch", "splits", "validation",
            "test_best_over_evaluations_paper_style"} <= set(final)  # fmt: skip
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 3
    eta = r" \| \d+:\d\d elapsed, ETA (>?)\d+:\d\d for train@tiny$"
    assert re.fullmatch(r"epoch 1/3 loss \d+\.\d{4}" + eta, lines[0]).group(1) == ">"  # no
    # evaluation timed yet: a lower bound; then every kind of step has been timed
    assert re.fullmatch(r"epoch 2/3 loss .* test \d\.\d{4}" + eta, lines[1]).group(1) == ""
    assert re.fullmatch(r"epoch 3/3 .*" + eta, lines[2]).group(1) == ""


def test_run_killed_after_its_last_epoch_finishes_from_the_checkpoint(tiny_heatmaps, tmp_path,
                                                                      capsys):  # fmt: skip
    reference = run(tiny_heatmaps, tmp_path / "reference")
    checkpoint = killed_before_finishing(tiny_heatmaps, tmp_path / "killed")
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 3
    capsys.readouterr()
    resumed = run(tiny_heatmaps, tmp_path / "killed")
    captured = capsys.readouterr()
    assert f"resuming {checkpoint} after epoch 3" in captured.out
    assert "epoch 1/3" not in captured.err  # nothing trained again
    assert resumed == reference and not checkpoint.exists()


def test_identical_rerun_after_a_finished_run_trains_from_scratch(tiny_heatmaps, tmp_path,
                                                                  capsys):  # fmt: skip
    first = run(tiny_heatmaps, tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()
    capsys.readouterr()
    second = run(tiny_heatmaps, tmp_path)
    captured = capsys.readouterr()
    assert "resuming" not in captured.out and "epoch 1/3" in captured.err
    assert second == first


def test_a_checkpoint_of_other_training_code_is_not_resumed(tiny_heatmaps, tmp_path, monkeypatch,
                                                            capsys):  # fmt: skip
    """A killed run, then an edit of the model code: the next run must start over rather than
    mix epochs of the old and the new code."""
    checkpoint = killed_before_finishing(tiny_heatmaps, tmp_path)
    before = train_module.fingerprint(TINY_SETTINGS, tiny_heatmaps)
    edited = tmp_path / "jmrn"
    edited.mkdir()
    for name in train_module.TRAINING_CODE:  # the same modules, one of them edited
        source = (PROJECT_ROOT / "jmrn" / name).read_text()
        (edited / name).write_text(source + ("\n# edited\n" if name == "models.py" else ""))
    monkeypatch.setattr(train_module, "__file__", str(edited / "train.py"))
    after = train_module.fingerprint(TINY_SETTINGS, tiny_heatmaps)
    assert after["code"] != before["code"]
    assert (after["settings"], after["data"]) == (before["settings"], before["data"])
    capsys.readouterr()
    run(tiny_heatmaps, tmp_path)
    out = capsys.readouterr().out
    assert "resuming" not in out and str(checkpoint) in out  # named, then ignored


def test_input_pipeline_of_issue_14_gives_the_metrics_of_the_old_one(tiny_heatmaps, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    """Batched reads, the prefetching loader and PAA's single gather change no number: the
    same params train to the same metrics as with the per-item dataset, a plain DataLoader
    and the two-pass shift and flip (tests/test_data_pipeline.py has them)."""
    from test_data_pipeline import PerItemDataset, shift_then_flip
    from torch.utils.data import DataLoader

    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"]["epochs"] = 2
    now = run(tiny_heatmaps, tmp_path / "now", settings)

    def loader_before(dataset, batch, shuffle, workers, seed, sampler=None, batches=None):
        assert batches is None  # shuffled batches, as before class-aware sampling existed
        items = PerItemDataset(dataset.path, dataset.indices, dataset.crop,
                               dataset.normalisation, dataset.train, dataset.seed)  # fmt: skip
        items.set_epoch(dataset.epoch)
        return DataLoader(items, batch_size=batch, shuffle=shuffle and sampler is None,
                          sampler=sampler, num_workers=workers,
                          generator=torch.Generator().manual_seed(seed))  # fmt: skip

    monkeypatch.setattr(train_module, "_loader", loader_before)
    monkeypatch.setattr(train_module, "augment", shift_then_flip)
    before = run(tiny_heatmaps, tmp_path / "before", settings)
    assert now == before
    assert (tmp_path / "now/model.pt").read_bytes() == (tmp_path / "before/model.pt").read_bytes()


@pytest.mark.parametrize("role", ["test", "train", "also_test"])
def test_an_empty_split_stops_training_before_the_first_epoch(tiny_heatmaps, tmp_path, role):
    """An empty test split used to pass until the first evaluation ("need at least one array
    to concatenate"); now the split is named before anything is trained."""
    import shutil

    import h5py

    heatmaps = tmp_path / "heatmaps.h5"
    shutil.copy(tiny_heatmaps, heatmaps)
    with h5py.File(heatmaps, "a") as f:
        f.create_dataset("splits/empty", data=np.zeros(0, np.int64))
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["splits"] = {**settings["splits"],
                          **({"also_test": ["empty"]} if role == "also_test"
                             else {role: "empty"})}  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(f"{heatmaps}: split 'empty', which "
                                                   "params.yaml asks for, has no video")):
        run(heatmaps, tmp_path, settings)
    assert not (tmp_path / "train.json").exists()


CPU_ONLY = not torch.cuda.is_available() and not torch.backends.mps.is_available()


@pytest.mark.skipif(not CPU_ONLY, reason="needs a machine without CUDA and MPS")
@pytest.mark.parametrize("device", ["cuda", "cuda:7", "cuda:0", "mps", "gpu0", "cuda:x", ""])
def test_a_device_the_machine_lacks_is_one_line_naming_the_key(device):
    """cuda on a CPU-only PyTorch, cuda:7, mps gave full tracebacks in train and logits."""
    with pytest.raises(ValueError) as caught:
        train_module.pick_device(device)
    message = str(caught.value)
    assert message.startswith(f"compute.device = {device!r}") and "\n" not in message
    assert "this machine has cpu only (PyTorch " in message
    assert train_module.pick_device("auto") == torch.device("cpu")
    assert train_module.pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not CPU_ONLY, reason="needs a machine without CUDA and MPS")
def test_train_and_logits_stop_at_a_missing_device_before_any_work(tiny_heatmaps, tmp_path):
    from jmrn.cli import is_user_error
    from jmrn.predict import write_model_logits

    with pytest.raises(ValueError, match=r"^compute.device = 'cuda:7': this machine has cpu "
                                         r"only") as caught:  # fmt: skip
        run(tiny_heatmaps, tmp_path, device="cuda:7")
    assert is_user_error(caught.value) and not (tmp_path / "train.json").exists()
    with pytest.raises(ValueError, match=r"^compute.device = 'mps' \(an Apple GPU\): this "
                                         r"machine has cpu only"):  # fmt: skip
        write_model_logits(tmp_path / "no_model.pt", tiny_heatmaps, tmp_path / "l.h5",
                           device="mps")  # fmt: skip
