"""Train JMRN or PoTion on a heatmaps.h5 and evaluate it (method.md §3-§6).

One function, ``train``, does the whole job for the stage: data, model, optimiser, the epoch
loop with two augmented views per sample, evaluation, model selection, checkpoints and
resumption, and the files DVC reads. It runs on CUDA when present, else on
the CPU, in the precision ``compute.precision`` resolves to (``jmrn.precision``: fp32, or bf16
autocast), and under ``torchrun`` with DistributedDataParallel (NCCL on GPUs, gloo on CPUs).

Decisions (method.md §10), each written where the code makes it:
* Both views go through the network in one batch of 2B (shared BatchNorm statistics) and the
  classification loss is taken on both (§6.2, §10.23).
* Model selection: the rule ``train.select`` (``jmrn.selection``: best validation metric,
  lowest validation loss, a smoothed validation curve, the last epoch, or the average of the
  last evaluations' weights) picks the published weights from validation figures only; the
  test split is never used to choose anything. Every rule's pick and its validation and test
  figures are reported (``selection.rules``), so one grid of seeds compares the rules. The
  paper-style number (best test metric over the evaluations, as the authors' code selects) is
  reported too, labelled ``test_best_over_evaluations_paper_style`` (§10.21).
* Batches are shuffled videos, or with ``train.videos_per_class`` = m >= 2 class-aware:
  m videos of each of batch_size / m classes (``jmrn.data.class_balanced_batches``), so that
  every anchor of the joint-contrastive loss has positives beyond its own other view.
  The clip classifier (``clips.per_video`` = n >= 1) sees at most n clips of each video per
  epoch, drawn afresh each epoch (``jmrn.data.clips_of_epoch``).
* Under DDP the joint-contrastive loss gathers every rank's embeddings (with gradients), so it
  is the loss of the global batch, as in single-process training (``gather_views``).
* ReduceLROnPlateau watches the validation loss and is stepped at each evaluation, so its
  patience counts evaluations, as in the authors' code (§10.22).
* The joint-contrastive term is skipped while its weight is 0 (the authors compute it and
  multiply by 0: same gradients, wasted time). Its positives come from the samples' own
  labels, before any CutMix mixing of the classification targets.
* Every epoch draws its randomness (shuffling, crops, augmentations, dropout) from seeds
  derived from (seed, epoch), so a resumed run is identical to an uninterrupted one and the
  same params give the same metrics on a CPU.
* Under DDP each process trains on its share of every batch (``batch_size`` is the global
  batch); BatchNorm statistics are per process. Evaluation and all files are rank 0's.

Live metrics (issue 13). After every epoch the metrics file (``metrics_path``) is rewritten,
atomically, with that epoch's figures and ``"epoch": n, "epochs": N, "finished": false``, and
``history.csv`` with the epochs so far; at the end it holds the selected model's figures and
``"finished": true``. DVC reads them where the stage runs: ``dvc metrics show`` and ``dvc exp
show`` follow a ``dvc repro`` or ``dvc exp run`` in the workspace, and ``dvc exp show`` reads
a running queued experiment's files from its temporary workspace (checked with DVC 3.67).
dvclive, DVC's logger, is not used: DVC needs no more than these files, and what dvclive adds
does not fit here. It writes its own layout (a metrics.json and one .tsv per metric under its
folder), so dvc.yaml's outputs and plots, the README and the tests would change for the same
figures; it generates dvc.yaml sections and experiment commits, which our declared stages and
``dvc exp run`` already make; its live view is DVC Studio (network and token); it must be
told to resume with the checkpoint, where this history simply travels in the checkpoint; and
it would add dvclive and nvidia-ml-py to the dependencies (the rest come with dvc).

Whole-stage ETA: after every epoch one line on stderr gives the elapsed time and the time
left for all remaining epochs, evaluations and the final evaluation (``jmrn.progress``).

Checkpoint: written after every epoch to ``checkpoint_path`` (``checkpoints/...``, outside
DVC: a ``persist`` output would turn DVC's run-cache off for the stage) and deleted once the
run has written all its outputs. A finished run's checkpoint is never resumed: its
fingerprint (settings, data) does not cover the code, so after a code change that DVC re-runs
the stage for, a kept checkpoint at the last epoch would skip training and re-publish the old
model; and ``dvc repro -f`` is meant to retrain. The finished model is ``model_path``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from jmrn.augment import augment
from jmrn.cli import show_value
from jmrn.data import (
    HeatmapDataset,
    Prefetcher,
    class_balanced_batches,
    clips_of_epoch,
    collate,
    shuffled_batches,
    stratified_split,
    validation_groups,
)
from jmrn.heatmaps_file import HeatmapsFile
from jmrn.io import atomic_path, resume_checkpoint, save_torch, write_json
from jmrn.layouts import layout_from_attrs
from jmrn.losses import classification_loss, contrastive_weight, joint_contrastive_loss
from jmrn.metrics import multi_label_metrics, single_label_metrics
from jmrn.models import build_model
from jmrn.precision import autocast
from jmrn.precision import resolve as resolve_precision
from jmrn.progress import StageClock
from jmrn.selection import RULES, Selection, evaluation_epochs, spearman
from jmrn.visualise import write_joint_weights_png

CHECKPOINT_VERSION = 2  # 2: the selection state of every rule (issue 23)


DEVICE = re.compile(r"auto|cpu|mps|cuda(?::(\d+))?")


def machine_devices() -> str:
    """What this machine offers PyTorch, for messages: the CUDA devices, MPS, else cpu only."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    parts = [f"{count} CUDA device(s), cuda:0 to cuda:{count - 1}"] if count else []
    if torch.backends.mps.is_available():
        parts.append("mps")
    if parts:
        return " and ".join(parts) + " (and cpu)"
    why = "built without CUDA" if torch.version.cuda is None else "no CUDA device found"
    return f"cpu only (PyTorch {torch.__version__}: {why})"


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """The ``compute.device`` to run on: ``auto`` takes CUDA when present, else the CPU;
    ``cuda`` is this process's GPU (``local_rank`` under torchrun). A device the machine
    lacks is an error naming the key and what the machine has, before any work (not a CUDA
    traceback in the middle of a stage)."""
    match = DEVICE.fullmatch(str(preference))
    if match is None:
        raise ValueError(f"compute.device = {show_value(preference)}: not a device (auto | cpu "
                         f"| cuda | cuda:N | mps); this machine has {machine_devices()}")
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(match[1]) if match[1] is not None else local_rank
        if index >= count:
            rank = f" (cuda:{index} for local rank {local_rank})" \
                if match[1] is None and local_rank else ""  # fmt: skip
            raise ValueError(f"compute.device = {preference!r}{rank}: this machine has "
                             f"{machine_devices()}; set compute.device to auto or to a device "
                             "it has")  # fmt: skip
        return torch.device("cuda", index)
    if preference == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"compute.device = 'mps' (an Apple GPU): this machine has "
                         f"{machine_devices()}; set compute.device to auto or to a device it "
                         "has")  # fmt: skip
    return torch.device(preference)


# The modules whose code decides what an epoch computes: a checkpoint written by other code
# is not resumed (a killed run, then an edit to the model, must not mix old and new epochs).
TRAINING_CODE = ("train.py", "models.py", "augment.py", "losses.py", "data.py", "heatmaps.py",
                 "heatmaps_file.py", "metrics.py", "selection.py", "precision.py")  # fmt: skip


def fingerprint(settings: dict, heatmaps_path: str | Path) -> dict[str, str]:
    """What a checkpoint must match to be resumed: the settings, the input's content and the
    training code.

    The content, not the file's time stamp: DVC may re-link an unchanged cache file.
    """
    code = hashlib.sha256()
    for name in TRAINING_CODE:
        code.update((Path(__file__).parent / name).read_bytes())
    text = json.dumps(settings, sort_keys=True, default=str)
    return {"settings": hashlib.sha256(text.encode()).hexdigest()[:16],
            "data": file_sha256(heatmaps_path)[:16], "code": code.hexdigest()[:16]}  # fmt: skip


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 23):
            digest.update(block)
    return digest.hexdigest()


def initial_weights(model: torch.nn.Module, path: str | Path, *, class_names: list[str],
                    joint_names: list[str], model_settings: dict,
                    held_out_videos: np.ndarray) -> None:  # fmt: skip
    """Load the video model at ``path`` into the clip classifier ``model`` (``clips.init:
    video``): a clip's representation has the video's shape, so the same network reads it.

    Checked first, each a one-line error naming the file: the same classes, joints and model
    settings; and the same videos held out for model selection (``held_out_videos``, the
    clip classifier's validation clips' videos), since a video model trained on a
    validation video would make the clip classifier's validation figures, and the model they
    select, optimistic. Both draw that split with the same seed and fraction, so they agree
    unless the data or the settings differ.
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    for what, have in (("class_names", class_names), ("joint_names", joint_names)):
        if list(saved[what]) != list(have):
            raise ValueError(f"{path}: its {what} differ from the clip file's; retrain the "
                             "video model on this data (dvc repro train@jmrn)")  # fmt: skip
    theirs = dict(saved["settings"]["model"])
    if theirs != dict(model_settings):
        raise ValueError(f"{path}: model settings {theirs} differ from the clip "
                         f"classifier's {dict(model_settings)}")  # fmt: skip
    held = np.unique(saved["model_selection_rows"].numpy())
    if not np.array_equal(held, np.unique(held_out_videos)):
        raise ValueError(f"{path}: the video model held out other videos for model selection "
                         "than the clip classifier's validation clips come from: it has "
                         "trained on some of them. Set clips.init: scratch, or use the same "
                         "train.seed, val_fraction and val_group for both")  # fmt: skip
    model.load_state_dict(saved["model"])


def make_optimizer(model: torch.nn.Module, settings: dict) -> torch.optim.Optimizer:
    """Adam (no weight decay, like the authors, §10.24), AdamW or SGD with momentum."""
    name, lr, decay = settings["optimizer"], settings["lr"], settings["weight_decay"]
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=settings["momentum"],
                               weight_decay=decay)  # fmt: skip
    raise ValueError(f"unknown optimizer {name!r} (adam | adamw | sgd)")


def make_scheduler(optimizer: torch.optim.Optimizer, settings: dict):
    """The learning-rate schedule ``train.schedule``:

    * ``plateau``: the authors' ReduceLROnPlateau on the validation loss (factor
      ``lr_factor``), stepped at each evaluation, so its patience ``lr_patience`` counts
      evaluations, as in their code;
    * ``cosine``: from ``lr`` down to 0 over ``epochs`` (half a cosine), stepped after every
      epoch; it does not look at the validation loss, and ``lr_patience`` / ``lr_factor`` are
      not used.
    """
    if settings["schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=settings["lr_factor"], patience=settings["lr_patience"])
    if settings["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, int(settings["epochs"]))
    raise ValueError(f"train.schedule = {settings['schedule']!r}: plateau | cosine")


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable, device: torch.device,
             multi_label: bool, precision: str = "fp32") -> dict:  # fmt: skip
    """One forward per video (view 1, no augmentation): loss, scores, targets, joint weights."""
    model.eval()
    total, count, scores, targets, weights = 0.0, 0, [], [], []
    for x, t in loader:
        x, t = x.to(device, non_blocking=True), t.to(device, non_blocking=True)
        with autocast(device, precision):
            out = model(x)
        logits = out.logits.float()
        total += float(classification_loss(logits, t, multi_label)) * len(x)
        count += len(x)
        scores.append(logits.cpu().numpy())
        targets.append(t.cpu().numpy())
        if out.joint_weights is not None:
            weights.append(out.joint_weights.float().cpu().numpy())
    return {
        "loss": total / max(count, 1),
        "scores": np.concatenate(scores),
        "targets": np.concatenate(targets),
        "joint_weights": np.concatenate(weights) if weights else None,
    }


def score(result: dict, multi_label: bool, class_names: list[str], ap: str = "charades") -> dict:
    """Single-label metrics, or multi-label ones with ``ap`` = charades | voc (AVA)."""
    if multi_label:
        return multi_label_metrics(result["scores"], result["targets"], class_names, ap)
    return single_label_metrics(result["scores"], result["targets"].argmax(1), class_names)


def main_metric(metrics: dict, multi_label: bool) -> float:
    """Top-1, or mAP for multi-label data (0 when no class of the split has a positive)."""
    return (metrics["mAP"] or 0.0) if multi_label else metrics["top1"]


def _loader(dataset: HeatmapDataset, batch: int, shuffle: bool, workers: int, seed: int,
            sampler=None, batches: list[list[int]] | None = None) -> Prefetcher:  # fmt: skip
    """The batches of ``dataset``, shuffled by a generator seeded with ``seed`` (or the given
    ``batches`` of item indices), prepared in a background thread (``Prefetcher``) while the
    model runs: training never waits for data (issue 14; ``bench/train_input.py`` measures
    it). The DataLoader fetches each batch with one ``HeatmapDataset.__getitems__`` call."""
    generator = torch.Generator().manual_seed(seed)
    common = {"num_workers": workers, "pin_memory": torch.cuda.is_available(),
              "persistent_workers": False, "collate_fn": collate}  # fmt: skip
    if batches is not None:
        return Prefetcher(DataLoader(dataset, batch_sampler=batches, **common))
    loader = DataLoader(dataset, batch_size=batch, shuffle=shuffle and sampler is None,
                        sampler=sampler, generator=generator, drop_last=False,
                        **common)  # fmt: skip
    return Prefetcher(loader)


def epoch_batches(train_set: HeatmapDataset, t_set: dict, seed: int, epoch: int, rank: int,
                  world: int,
                  clip_video: np.ndarray | None = None) -> list[list[int]] | None:  # fmt: skip
    """This rank's batches of the epoch where they are not plain shuffled batches of every
    row (None then):

    * ``train.clips_per_video`` >= 1 (the clip classifier, ``clips.per_video``): at most that
      many clips of each video (``clip_video``: the video of each training row), drawn afresh
      each epoch (``clips_of_epoch``);
    * ``train.videos_per_class`` >= 2: class-aware batches (``class_balanced_batches``), of
      the drawn clips where both are set.

    Each rank takes every world-th item of each global batch."""
    per_class = int(t_set.get("videos_per_class") or 0)
    per_video = int(t_set.get("clips_per_video") or 0)
    if per_video and clip_video is None:
        raise ValueError("train.clips_per_video needs a clip heatmaps file (unit = clip)")
    if per_class == 0 and per_video == 0:
        return None
    batch = int(t_set["batch_size"])
    rows = clips_of_epoch(clip_video, per_video, seed, epoch) if per_video \
        else np.arange(len(train_set))  # fmt: skip
    if per_class:
        batches = [[int(rows[i]) for i in b] for b in class_balanced_batches(
            train_set.targets[rows], batch, per_class, seed, epoch)]  # fmt: skip
    else:
        batches = shuffled_batches(rows, batch, seed, epoch)
    return [b[rank::world] for b in batches]


def gather_views(z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's embeddings ``z`` (2b, V, D) and labels ``t`` (b, K) as one global batch
    [view 1 of all samples; view 2 of all samples], for the joint-contrastive loss under DDP.

    Gradients reach each rank's own rows: ``torch.distributed.nn``'s all_gather sums, in its
    backward, the gradients every rank computes for a rank's rows, and DDP then averages the
    parameters' gradients over the ranks; together that is the gradient of the global batch's
    loss, as in single-process training (the authors' DataParallel computed the loss on the
    gathered batch too). Ranks may hold different numbers of samples (padded, then trimmed).
    Without an initialised process group of several ranks, ``z`` and ``t`` are returned."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z, t
    from torch.distributed.nn.functional import all_gather

    world, b = dist.get_world_size(), t.shape[0]
    sizes = [torch.zeros(1, dtype=torch.long, device=z.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([b], dtype=torch.long, device=z.device))
    sizes = [int(n) for n in sizes]
    pad = max(sizes) - b

    def gathered(x: torch.Tensor) -> list[torch.Tensor]:
        x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))]) if pad else x
        return [part[:n] for part, n in zip(all_gather(x), sizes, strict=True)]

    view1, view2 = gathered(z[:b]), gathered(z[b:])
    return torch.cat(view1 + view2), torch.cat(gathered(t)).detach()


def two_views(x: torch.Tensor, t: torch.Tensor, paa: dict, layout,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The 2B inputs of a training step: two independently augmented views of the batch,
    view 1 of every sample first, and their (possibly CutMix-mixed) targets."""
    x1, t1 = augment(x, t, paa, layout, generator)
    x2, t2 = augment(x, t, paa, layout, generator)
    return torch.cat([x1, x2]), torch.cat([t1, t2])


def model_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, views: torch.Tensor,
               view_targets: torch.Tensor, t: torch.Tensor, multi_label: bool,
               jcl_weight: float, contrastive: dict, epoch: int,
               precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Forward of the views, the losses, backward and the optimiser step: everything of a
    training step that is the model's. Returns (loss, classification loss), still tensors."""
    with autocast(views.device, precision):
        out = net(views)
    cls = classification_loss(out.logits.float(), view_targets, multi_label)
    if jcl_weight > 0:
        z, labels = gather_views(out.embeddings.float(), t)
        jcl = joint_contrastive_loss(z, labels, contrastive["variant"], contrastive["tau"])
    elif out.embeddings is not None:  # keep the projection head in the graph for DDP
        jcl = 0.0 * out.embeddings.float().sum()
    else:
        jcl = torch.zeros((), device=views.device)
    loss = cls + jcl_weight * jcl
    if not torch.isfinite(loss):
        raise FloatingPointError(f"epoch {epoch + 1}: the loss is {float(loss)}; "
                                 "lower train.lr")  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, cls


def train(
    heatmaps_path: str | Path,
    settings: dict,
    *,
    model_path: str | Path,
    checkpoint_path: str | Path,
    metrics_path: str | Path,
    per_class_path: str | Path,
    plots_dir: str | Path,
    device: str = "auto",
    precision: str = "auto",
    loader_workers: int = 0,
    progress: bool = True,
    stage: str = "training",
    init_from: str | Path | None = None,
) -> dict:
    """Train with ``settings`` = {"model", "paa", "contrastive", "train", "splits"} sections.

    Returns the metrics written to ``metrics_path`` (on every rank; only rank 0 writes).
    ``stage`` names the run in the ETA line (``train@jmrn``); ``progress`` also shows a bar
    over each epoch's batches. ``init_from``: a video model (models/<dataset>/jmrn.pt) whose
    weights the clip classifier starts from (``initial_weights``).
    """
    clock = StageClock(stage)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    used, why = resolve_precision(precision, dev)
    if distributed:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    try:
        if rank == 0:
            print(f"{stage}: {used} ({why})", file=sys.stderr)
        return _train(heatmaps_path, settings, dev, {"used": used, "reason": why}, rank, world,
                      loader_workers, progress, Path(model_path), Path(checkpoint_path),
                      Path(metrics_path), Path(per_class_path), Path(plots_dir),
                      clock, None if init_from is None else Path(init_from))  # fmt: skip
    finally:
        if distributed:
            dist.destroy_process_group()


def _train(heatmaps_path, settings, dev, precision_info, rank, world, loader_workers, progress,
           model_path, checkpoint_path, metrics_path, per_class_path, plots_dir,
           clock: StageClock, init_from: Path | None) -> dict:  # fmt: skip
    precision = precision_info["used"]
    t_set, m_set, c_set, p_set = (settings[k] for k in ("train", "model", "contrastive", "paa"))
    seed = int(t_set["seed"])
    ap = t_set.get("ap", "charades")  # the multi-label AP: charades | voc (AVA)
    torch.manual_seed(seed)
    with HeatmapsFile(heatmaps_path) as hf:
        class_names, joint_names = hf.class_names, hf.joint_names
        multi_label, layout = hf.multi_label, layout_from_attrs(hf.file.attrs)
        channels = int(hf.file.attrs["channels"])
        also_test = list(settings["splits"].get("also_test", []))
        wanted = [settings["splits"]["train"], settings["splits"]["test"], *also_test]
        missing = [s for s in wanted if s not in hf.splits]
        if missing:
            raise ValueError(f"{heatmaps_path}: no split(s) {missing}, which params.yaml asks "
                             f"for; the data has {sorted(hf.splits)}: pick one it has with the "
                             "top-level split (-S split=N), or set the dataset's splits.train "
                             "/ .test / .also_test")  # fmt: skip
        empty = [s for s in dict.fromkeys(wanted) if len(hf.splits[s]) == 0]
        if empty:  # found now, not by a failed evaluation after the first epoch
            raise ValueError(f"{heatmaps_path}: split {empty[0]!r}, which params.yaml asks for, "
                             "has no video (the ingest report's split_entries_not_kept says "
                             "why); pick another split or fix the data")  # fmt: skip
        train_all = hf.splits[settings["splits"]["train"]]
        test_idx = hf.splits[settings["splits"]["test"]]
        extra_idx = {name: hf.splits[name] for name in also_test}
        # rows of one source on one side of the validation split: the clips of a video, and
        # the videos of one source video or movie where train.val_group names it
        groups = validation_groups([hf.video_ids[i] for i in train_all], t_set.get("val_group"))
        if groups is None and hf.clip_video is not None:
            groups = hf.clip_video[train_all]
        no_training = [class_names[k] for k in np.flatnonzero(~hf.labels[train_all].any(0))]
        if no_training and multi_label:  # rare classes: their AP is simply undefined
            print(f"train: warning: split {settings['splits']['train']!r} has no positive of "
                  f"{len(no_training)} class(es), e.g. {no_training[:5]}")  # fmt: skip
        elif no_training:
            raise ValueError(f"{heatmaps_path}: split {settings['splits']['train']!r} has no "
                             f"video of class(es) {no_training[:5]} ({len(no_training)} in "
                             "all): the model cannot learn them; see the ingest report's "
                             "empty classes and fix the class list or the data")  # fmt: skip
        train_idx, val_idx = stratified_split(train_all, hf.labels[train_all],
                                              t_set["val_fraction"], seed, groups)  # fmt: skip
        train_clip_video = hf.clip_video[train_idx] if hf.clip_video is not None else None
        clip_video_of_val = hf.clip_video[val_idx] if hf.clip_video is not None else None
    if len(val_idx) == 0:
        raise ValueError("the validation split is empty: raise train.val_fraction")
    crop, norm = tuple(t_set["crop"]), t_set["normalize"]
    train_set = HeatmapDataset(heatmaps_path, train_idx, crop, norm, train=True, seed=seed)
    val_set = HeatmapDataset(heatmaps_path, val_idx, crop, norm, train=False)
    test_set = HeatmapDataset(heatmaps_path, test_idx, crop, norm, train=False)
    # further test sets, reported for the selected model only (e.g. Mimetics beside Kinetics)
    extra_sets = {name: HeatmapDataset(heatmaps_path, extra_idx[name], crop, norm, train=False)
                  for name in also_test}  # fmt: skip

    # channels_last weights match the channels_last activations (and their gradients, which
    # DistributedDataParallel's buckets expect in the parameters' layout).
    model = build_model(m_set, len(joint_names), len(class_names), channels)
    if init_from is not None:
        if train_clip_video is None:
            raise ValueError(f"{heatmaps_path}: starting from a video model's weights is for "
                             "the clip classifier: this is not a clip file")  # fmt: skip
        initial_weights(model, init_from, class_names=class_names, joint_names=joint_names,
                        model_settings=m_set, held_out_videos=clip_video_of_val)  # fmt: skip
    model = model.to(dev, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, t_set)
    scheduler = make_scheduler(optimizer, t_set)
    net = DistributedDataParallel(model) if world > 1 else model
    uses_jcl = m_set["name"] == "jmrn" and c_set["variant"] != "none"

    epochs, per_rank = int(t_set["epochs"]), max(1, int(t_set["batch_size"]) // world)
    eval_every, key_name = int(t_set["eval_every"]), "mAP" if multi_label else "top1"
    rule = t_set.get("select", "val_metric")
    selection = Selection(int(t_set.get("select_window", 3)),
                          evaluation_epochs(epochs, eval_every))  # fmt: skip
    if t_set.get("videos_per_class") and multi_label:
        raise ValueError("train.videos_per_class (class-aware batches) needs single-label "
                         "data: set it to 0 for this dataset")  # fmt: skip
    # a clip classifier started from a video model resumes only from that same model
    started_from = {} if init_from is None else {"init_from": file_sha256(init_from)}
    key = fingerprint({**settings, "precision": precision, **started_from}, heatmaps_path)
    state = {"epoch": 0, "history": [], "selection": selection.state_dict()}
    saved = resume_checkpoint(checkpoint_path, {"model": model, "optimizer": optimizer,
                                                "scheduler": scheduler},
                              fingerprint=key, version=CHECKPOINT_VERSION,
                              state_keys=tuple(state), map_location=dev,
                              log=print if rank == 0 else None)  # fmt: skip
    if saved is not None:
        state = {k: saved[k] for k in state}
        selection.load_state_dict(state["selection"])
        if rank == 0:
            print(f"train: resuming {checkpoint_path} after epoch {state['epoch']}")
    if rank == 0:  # a run that has started shows as unfinished from its first moment
        write_json(metrics_path, _live_metrics(m_set["name"], state, epochs, key_name,
                                               selection, rule))  # fmt: skip
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=seed) \
        if world > 1 else None  # fmt: skip
    augment_rng = torch.Generator(device=dev)
    for epoch in range(state["epoch"], epochs):
        torch.manual_seed(seed * 1_000_003 + epoch)  # dropout, Gumbel noise
        augment_rng.manual_seed(seed * 1_000_003 + epoch + rank * 7919)
        train_set.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        started = time.perf_counter()
        loader = _loader(train_set, per_rank, True, loader_workers, seed * 1_000_003 + epoch,
                         sampler, epoch_batches(train_set, t_set, seed, epoch, rank, world,
                                                train_clip_video))  # fmt: skip
        net.train()
        jcl_weight = contrastive_weight(epoch, c_set["lambda"], c_set["start_epoch"],
                                        c_set["ramp_epochs"]) if uses_jcl else 0.0  # fmt: skip
        sums = np.zeros(3)
        batches = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                       disable=not progress or rank != 0)  # fmt: skip
        for x, t in batches:
            x, t = x.to(dev, non_blocking=True), t.to(dev, non_blocking=True)
            views, view_targets = two_views(x, t, p_set, layout, augment_rng)
            loss, cls = model_step(net, optimizer, views, view_targets, t, multi_label,
                                   jcl_weight, c_set, epoch, precision)  # fmt: skip
            sums += (loss.item() * len(x), cls.item() * len(x), len(x))
            batches.set_postfix(loss=f"{sums[0] / sums[2]:.3f}")
        record = {"epoch": epoch + 1, "train_loss": float(sums[0] / sums[2]),
                  "train_cls_loss": float(sums[1] / sums[2]), "jcl_weight": jcl_weight,
                  "lr": optimizer.param_groups[0]["lr"]}  # fmt: skip
        evaluate_now = (epoch + 1) % eval_every == 0 or epoch + 1 == epochs
        eval_seconds = 0.0
        if evaluate_now:
            eval_start = time.perf_counter()
            record.update(_evaluate_epoch(model, val_set, test_set, dev, multi_label,
                                          class_names, per_rank, loader_workers, ap,
                                          precision))  # fmt: skip
            if t_set["schedule"] == "plateau":
                scheduler.step(record["val_loss"])
            selection.observe(epoch + 1, record["val_metric"], record["val_loss"],
                              model.state_dict())  # fmt: skip
            state["selection"] = selection.state_dict()
            eval_seconds = time.perf_counter() - eval_start
            clock.record("evaluation", eval_seconds)
        if t_set["schedule"] == "cosine":
            scheduler.step()
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if rank == 0:
            _save_checkpoint(checkpoint_path, model, optimizer, scheduler, state, key)
            write_json(metrics_path, _live_metrics(m_set["name"], state, epochs, key_name,
                                                   selection, rule))  # fmt: skip
            _write_history(Path(plots_dir), state["history"])
            clock.record("epoch", time.perf_counter() - started - eval_seconds)  # incl. saving
            left = _steps_left(epoch + 1, epochs, eval_every)
            print(f"{_summary_line(record, epochs)} | {clock.status(left)}", file=sys.stderr,
                  flush=True)  # fmt: skip
    result = _finish(model, state, selection, val_set, test_set, dev, multi_label, class_names,
                     joint_names, settings, per_rank, loader_workers, rank, model_path,
                     metrics_path, per_class_path, plots_dir, val_idx, extra_sets,
                     ap, precision_info)  # fmt: skip
    if rank == 0:  # every output is written: the checkpoint has served (module docstring)
        checkpoint_path.unlink(missing_ok=True)
    return result


def _steps_left(done: int, epochs: int, eval_every: int) -> dict[str, int]:
    """Epochs and evaluations still to run after ``done`` epochs, for the stage's ETA.

    Evaluations at every ``eval_every``-th epoch and the last one, plus the final evaluation
    of the selected model (counted as one more: it scores the test split, and any
    ``also_test`` split, where an epoch's evaluation scores validation and test).
    """
    evals = epochs // eval_every - done // eval_every  # the eval_every-th epochs left
    if epochs % eval_every and done < epochs:  # and the last epoch
        evals += 1
    return {"epoch": epochs - done, "evaluation": evals + 1}


def _live_metrics(model_name: str, state: dict, epochs: int, key: str, selection: Selection,
                  rule: str) -> dict:  # fmt: skip
    """The metrics file while training runs: the last epoch's figures, the last evaluation's
    (``evaluated_epoch``) and the epoch that the rule ``rule`` selects so far (for
    ``average``, the last evaluation), with ``finished: false``."""
    history = state["history"]
    live: dict = {"model": model_name, "finished": False, "epoch": state["epoch"],
                  "epochs": epochs}  # fmt: skip
    if history:
        live["train"] = _train_figures(history[-1])
    evaluated = [r for r in history if "val_metric" in r]
    if evaluated:
        last = evaluated[-1]
        live["evaluated_epoch"] = last["epoch"]
        live["val"] = {"loss": last["val_loss"], key: last["val_metric"]}
        live["test"] = {"loss": last["test_loss"], key: last["test_metric"]}
    if evaluated:
        picked = selection.picked.get(rule) or selection.picked["last"]
        if picked is not None:
            live["selected_epoch"] = picked["epoch"]
    return live


def _train_figures(record: dict) -> dict:
    return {"loss": record["train_loss"], "cls_loss": record["train_cls_loss"],
            "jcl_weight": record["jcl_weight"], "lr": record["lr"]}  # fmt: skip


def _evaluate_epoch(model, val_set, test_set, dev, multi_label, class_names, batch,
                    workers, ap, precision) -> dict:  # fmt: skip
    """Validation and test figures of the current weights (every rank computes them: cheap,
    and it keeps the scheduler identical on every rank)."""
    record = {}
    for name, dataset in (("val", val_set), ("test", test_set)):
        result = evaluate(model, _loader(dataset, batch, False, workers, 0), dev, multi_label,
                          precision)  # fmt: skip
        metrics = score(result, multi_label, class_names, ap)
        record[f"{name}_loss"] = float(result["loss"])
        record[f"{name}_metric"] = float(main_metric(metrics, multi_label))
    return record


def _summary_line(record: dict, epochs: int) -> str:
    line = f"epoch {record['epoch']}/{epochs} loss {record['train_loss']:.4f}"
    if "val_metric" in record:
        line += (f" val_loss {record['val_loss']:.4f} val {record['val_metric']:.4f}"
                 f" test {record['test_metric']:.4f}")  # fmt: skip
    return line


def _save_checkpoint(path: Path, model, optimizer, scheduler, state: dict, key: dict) -> None:
    save_torch(path, {"version": CHECKPOINT_VERSION, "fingerprint": key,
                      "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), **state})  # fmt: skip


def selection_figures(model, selection: Selection, history: list[dict], val_set, test_set,
                      dev, multi_label, class_names, batch, workers, ap,
                      precision) -> dict:  # fmt: skip
    """Every rule's pick with its validation and test metric, and the rank correlation of the
    validation and test curves over the evaluations: what ``python -m jmrn.report`` compares
    across seeds to choose the rule. The picks of single evaluations take their figures from
    the history (the same weights were scored there); the average of weights is scored here
    (and leaves ``model`` holding it)."""
    key = "mAP" if multi_label else "top1"
    by_epoch = {r["epoch"]: r for r in history if "val_metric" in r}
    rules = {}
    for rule in RULES:
        epochs = selection.chosen_epochs(rule)
        if rule == "average":
            model.load_state_dict(selection.weights(rule))
            figures = _evaluate_epoch(model, val_set, test_set, dev, multi_label, class_names,
                                      batch, workers, ap, precision)  # fmt: skip
        else:
            figures = by_epoch[epochs[0]]
        rules[rule] = {"epochs": epochs, "val": {key: figures["val_metric"]},
                       "test": {key: figures["test_metric"]}}  # fmt: skip
    evaluated = list(by_epoch.values())
    rho = spearman([r["val_metric"] for r in evaluated], [r["test_metric"] for r in evaluated])
    return {"rules": rules, "val_test_spearman": rho}


def _finish(model, state, selection, val_set, test_set, dev, multi_label, class_names,
            joint_names, settings, batch, workers, rank, model_path, metrics_path,
            per_class_path, plots_dir, val_idx, extra_sets, ap,
            precision_info) -> dict:  # fmt: skip
    """Evaluate the selected weights on the test split and write every output (rank 0)."""
    history = state["history"]
    rule = settings["train"].get("select", "val_metric")
    precision = precision_info["used"]
    figures = selection_figures(model, selection, history, val_set, test_set, dev,
                                multi_label, class_names, batch, workers, ap,
                                precision)  # fmt: skip
    chosen = figures["rules"][rule]
    model.load_state_dict(selection.weights(rule))
    result = evaluate(model, _loader(test_set, batch, False, workers, 0), dev, multi_label,
                      precision)  # fmt: skip
    test = score(result, multi_label, class_names, ap)
    evaluated = [r for r in history if "test_metric" in r]
    key = "mAP" if multi_label else "top1"
    metrics = {
        "model": settings["model"]["name"],
        "finished": True,
        "epoch": len(history),
        "train": _train_figures(history[-1]),
        "test": {"loss": result["loss"], **{k: v for k, v in test.items()
                                            if isinstance(v, float)}},
        "val": chosen["val"],
        "selected_epoch": chosen["epochs"][-1],  # average: the last of the averaged epochs
        "selection": {"rule": rule, "window": selection.window, **figures},
        "epochs": len(history),
        "test_final_epoch": {key: evaluated[-1]["test_metric"]},
        "test_best_over_evaluations_paper_style": {
            key: max(r["test_metric"] for r in evaluated)
        },
        "precision": precision_info,
        "splits": {role: settings["splits"][role] for role in ("train", "test")},
        "validation": {"videos": len(val_idx), "grouped_by": settings["train"].get("val_group")},
    }
    for name, dataset in extra_sets.items():
        extra = evaluate(model, _loader(dataset, batch, False, workers, 0), dev, multi_label,
                         precision)  # fmt: skip
        figures = score(extra, multi_label, class_names, ap)
        metrics.setdefault("also_test", {})[name] = {
            "loss": extra["loss"], **{k: v for k, v in figures.items() if isinstance(v, float)}}
    if rank != 0:
        return metrics
    per_class = {k: v for k, v in test.items() if k.startswith("per_class")}
    write_json(metrics_path, metrics)
    write_json(per_class_path, per_class)
    save_torch(model_path, {"model": model.state_dict(), "settings": settings,
                            "class_names": class_names, "joint_names": joint_names,
                            "selected_epoch": chosen["epochs"][-1], "selection_rule": rule,
                            # the rows of the training split held out for model selection
                            "model_selection_rows": torch.as_tensor(val_idx)})  # fmt: skip
    _write_plots(Path(plots_dir), history, result, class_names, joint_names)
    return metrics


def _write_history(plots_dir: Path, history: list[dict]) -> None:
    """history.csv: loss and metrics of every epoch so far (rewritten after each epoch)."""
    columns = ["epoch", "train_loss", "train_cls_loss", "jcl_weight", "lr", "val_loss",
               "val_metric", "test_loss", "test_metric"]  # fmt: skip
    with atomic_path(plots_dir / "history.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for record in history:
            writer.writerow({c: record.get(c, "") for c in columns})


def _write_plots(plots_dir: Path, history, result, class_names, joint_names) -> None:
    """history.csv, confusion.json, joint_weights.csv/.png."""
    _write_history(plots_dir, history)
    # Confusion: one row per (true label, predicted class) pair; for multi-label videos every
    # true label is paired with the top-scoring class.
    video, actual = np.nonzero(result["targets"] > 0.5)
    predicted = result["scores"].argmax(1)[video]
    write_json(plots_dir / "confusion.json",
               [{"actual": class_names[a], "predicted": class_names[p]}
                for a, p in zip(actual, predicted, strict=True)])  # fmt: skip
    if result["joint_weights"] is None:  # PoTion: there is no selector to show
        write_joint_weights_png(plots_dir / "joint_weights.png", None, class_names, joint_names)
        return
    weights, labels = result["joint_weights"], result["targets"]
    per_class = (labels.T @ weights) / np.maximum(labels.sum(0), 1)[:, None]  # (K, V)
    with atomic_path(plots_dir / "joint_weights.csv") as tmp, open(tmp, "w") as f:
        f.write("class," + ",".join(joint_names) + "\n")
        for name, row in zip(class_names, per_class, strict=True):
            f.write(name + "," + ",".join(f"{w:.4f}" for w in row) + "\n")
    write_joint_weights_png(plots_dir / "joint_weights.png", per_class, class_names, joint_names)
