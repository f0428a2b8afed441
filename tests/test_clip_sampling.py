"""The clip classifier's epochs on a few clips of each video (``clips.per_video``, issue 24 §2):
the draw, the batches it makes, and that a training really sees only those clips."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import TINY_SETTINGS
from test_train import run

import jmrn.train as train_module
from jmrn.data import clips_of_epoch, shuffled_batches
from jmrn.heatmaps_file import HeatmapsFile
from jmrn.train import epoch_batches


def test_at_most_n_clips_of_every_video_drawn_afresh_each_epoch():
    counts = np.array([7, 1, 3, 2, 12])
    clip_video = np.repeat(np.arange(5) * 10, counts)  # video ids need not be 0..n-1
    rows = clips_of_epoch(clip_video, 2, seed=0, epoch=0)
    assert (np.diff(rows) > 0).all()  # sorted, no row twice
    kept = np.bincount(clip_video[rows] // 10, minlength=5)
    assert kept.tolist() == np.minimum(counts, 2).tolist()
    assert rows.tolist() == clips_of_epoch(clip_video, 2, seed=0, epoch=0).tolist()
    draws = {tuple(clips_of_epoch(clip_video, 2, seed=0, epoch=e)) for e in range(20)}
    assert len(draws) > 10  # another epoch, other clips
    # over many epochs every clip of the 12-clip video is drawn, each about equally often
    epochs = 3000
    drawn = [clips_of_epoch(clip_video, 2, 0, e) for e in range(epochs)]
    seen = np.bincount(np.concatenate(drawn), minlength=len(clip_video))
    share = seen[-12:] / (epochs * 2 / 12)  # 1 = its fair share; binomial sd about 0.04
    assert np.abs(share - 1).max() < 0.15
    assert (seen[7] == epochs) and (seen[:7] < epochs).all()  # the one-clip video: every epoch
    assert len(clips_of_epoch(clip_video, 50, 0, 0)) == len(clip_video)
    with pytest.raises(ValueError, match="at least 1"):
        clips_of_epoch(clip_video, 0, 0, 0)


def test_shuffled_batches_cover_the_rows_once():
    rows = np.arange(3, 40, 2)
    batches = shuffled_batches(rows, 8, seed=1, epoch=2)
    assert [len(b) for b in batches] == [8, 8, 3]
    assert sorted(sum(batches, [])) == rows.tolist()
    assert batches == shuffled_batches(rows, 8, seed=1, epoch=2)
    assert batches != shuffled_batches(rows, 8, seed=1, epoch=3)


class _Rows:
    def __init__(self, targets):
        self.targets = targets

    def __len__(self):
        return len(self.targets)


def test_epoch_batches_take_the_drawn_clips_and_split_them_between_ranks():
    rng = np.random.default_rng(0)
    clip_video = np.repeat(np.arange(40), rng.integers(1, 8, 40))
    targets = np.eye(4, dtype=np.float32)[np.arange(40) % 4][clip_video]
    t_set = {"batch_size": 8, "clips_per_video": 2, "videos_per_class": 0}
    drawn = clips_of_epoch(clip_video, 2, seed=5, epoch=3)
    batches = epoch_batches(_Rows(targets), t_set, 5, 3, 0, 1, clip_video)
    assert sorted(sum(batches, [])) == drawn.tolist()
    halves = [epoch_batches(_Rows(targets), t_set, 5, 3, r, 2, clip_video) for r in (0, 1)]
    assert [a + b for a, b in zip(*halves, strict=True)] != batches  # interleaved shares
    assert sorted(sum(halves[0] + halves[1], [])) == drawn.tolist()
    # class-aware batches of the drawn clips only
    balanced = epoch_batches(_Rows(targets), {**t_set, "videos_per_class": 2}, 5, 3, 0, 1,
                             clip_video)  # fmt: skip
    assert set(sum(balanced, [])) <= set(drawn.tolist())
    for b in balanced:
        assert (np.unique(targets[b].argmax(1), return_counts=True)[1] == 2).all()
    assert epoch_batches(_Rows(targets), {**t_set, "clips_per_video": 0}, 5, 3, 0, 1,
                         clip_video) is None  # fmt: skip
    with pytest.raises(ValueError, match="clip heatmaps"):
        epoch_batches(_Rows(targets), t_set, 5, 3, 0, 1, None)


def test_a_clip_training_sees_only_the_drawn_clips(tiny_clip_heatmaps, tmp_path, monkeypatch):
    """Every batch the model trains on holds at most n clips of each video (read from the
    batches' rows), and fewer steps run than with every clip."""
    seen: list[list[int]] = []
    original = train_module.epoch_batches

    def recording(*args, **kwargs):
        batches = original(*args, **kwargs)
        seen.append(args[0].indices[sum(batches, [])])  # the file rows trained on
        return batches

    monkeypatch.setattr(train_module, "epoch_batches", recording)
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["train"].update(epochs=2, clips_per_video=1)
    metrics = run(tiny_clip_heatmaps, tmp_path, settings)
    assert metrics["finished"]
    with HeatmapsFile(tiny_clip_heatmaps) as cf:
        clip_video = cf.clip_video[:]
        train_rows = cf.splits["train"]
    assert len(seen) == 2 and seen[0].tolist() != seen[1].tolist()
    for rows in seen:
        assert set(rows) <= set(train_rows)
        assert np.bincount(clip_video[rows]).max() == 1  # one clip of a video at most
        assert len(rows) < 0.6 * len(train_rows)
