"""The training input pipeline of issue 14 (batched reads, the prefetching loader, PAA's shift
and flip in one gather) gives exactly what the per-item pipeline gave, in the same order, and
a damaged file stops it with an error instead of a hang."""

from __future__ import annotations

import shutil
import threading

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_SETTINGS
from torch.utils.data import DataLoader

from jmrn import train as train_module
from jmrn.augment import _draw_flips, _shift_chain, _shift_parts, augment, hflip
from jmrn.data import HeatmapDataset, Prefetcher, collate, crop_offsets
from jmrn.heatmaps import normalise
from jmrn.heatmaps_file import HeatmapsFile
from jmrn.layouts import get_layout


class PerItemDataset(HeatmapDataset):
    """The dataset before issue 14, verbatim: one read, conversion, normalisation and padding
    per item, which the DataLoader's default collate stacks (``__getitems__`` = None makes the
    DataLoader call ``__getitem__`` item by item)."""

    __getitems__ = None

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._file is None:
            self._file = HeatmapsFile(self.path)
        video = int(self.indices[item])
        rng = np.random.default_rng((self.seed, self.epoch, video))
        (h, w), (ch, cw) = self.grid, self.crop
        y0, x0 = crop_offsets(h, ch, self.train, rng), crop_offsets(w, cw, self.train, rng)
        heat = self._file.heatmaps[video, :, :, y0:y0 + ch, x0:x0 + cw].astype(np.float32)
        crop_max = heat.max(axis=(-2, -1)) if self.normalisation == "max" else None
        heat = normalise(heat, self.area_norm[item], crop_max, self.normalisation)
        if heat.shape[-2:] != (ch, cw):
            pad_h, pad_w = ch - heat.shape[-2], cw - heat.shape[-1]
            heat = np.pad(heat, ((0, 0), (0, 0), (pad_h // 2, pad_h - pad_h // 2),
                                 (pad_w // 2, pad_w - pad_w // 2)))  # fmt: skip
        return torch.from_numpy(np.ascontiguousarray(heat)), torch.from_numpy(self.targets[item])


ROWS = np.arange(3, 29, 2)  # 13 of the 30 videos, not starting at 0 (the grid is 16 x 22)
CROPS = [(16, 22), (12, 17), (20, 26), (13, 25)]  # the grid; inside it; padded; one axis each


@pytest.mark.parametrize("crop", CROPS)
@pytest.mark.parametrize("normalisation", ["area", "max", "none"])
@pytest.mark.parametrize("train", [True, False])
def test_batched_items_equal_the_per_item_items(tiny_heatmaps, crop, normalisation, train):
    new = HeatmapDataset(tiny_heatmaps, ROWS, crop, normalisation, train=train, seed=4)
    old = PerItemDataset(tiny_heatmaps, ROWS, crop, normalisation, train=train, seed=4)
    for epoch in (0, 3):
        new.set_epoch(epoch)
        old.set_epoch(epoch)
        batch = new.__getitems__([5, 0, 12, 5, 7])  # any order, repeats included
        for (x, t), item in zip(batch, [5, 0, 12, 5, 7], strict=True):
            x_old, t_old = old[item]
            assert x.dtype == x_old.dtype == torch.float32 and x.shape == (3, 18, *crop)
            assert torch.equal(x, x_old) and torch.equal(t, t_old)
            assert torch.equal(new[item][0], x_old)  # one item: the same code, a batch of one
        x, t = collate(batch)  # the batch as jmrn.train's loader hands it on
        assert torch.equal(x, torch.stack([old[item][0] for item in [5, 0, 12, 5, 7]]))
        assert torch.equal(t, torch.stack([old[item][1] for item in [5, 0, 12, 5, 7]]))


def test_known_answer_padding_and_normalisation(tiny_heatmaps):
    """A crop larger than the 16 x 22 map: the map normalised, centred, in zeros."""
    with h5py.File(tiny_heatmaps) as f:
        raw = f["heatmaps"][7].astype(np.float32)  # (3, 18, 16, 22)
        area = f["area_norm"][7]
    area_set = HeatmapDataset(tiny_heatmaps, [7], (20, 27), "area", train=False)
    max_set = HeatmapDataset(tiny_heatmaps, [7], (20, 27), "max", train=True, seed=1)
    x_area, x_max = area_set[0][0].numpy(), max_set[0][0].numpy()
    inside = (slice(None), slice(None), slice(2, 18), slice(2, 24))  # 4 = 2 + 2, 5 = 2 + 3
    np.testing.assert_array_equal(x_area[inside], raw / area[:, None, None, None])
    peaks = raw.max(axis=(-2, -1))
    divisor = np.where(peaks > 0, peaks, 1)[..., None, None]
    np.testing.assert_array_equal(x_max[inside], raw / divisor)
    for x in (x_area, x_max):
        outside = np.ones(x.shape, bool)
        outside[inside] = False
        assert not x[outside].any()
    assert np.allclose(x_max.max(axis=(-2, -1)), (peaks > 0).astype(np.float32))


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_gives_the_same_batches_in_the_same_order(tiny_heatmaps, workers):
    """jmrn.train's loader against the DataLoader it replaced, over the per-item dataset."""
    new = HeatmapDataset(tiny_heatmaps, ROWS, (12, 17), "area", train=True, seed=2)
    old = PerItemDataset(tiny_heatmaps, ROWS, (12, 17), "area", train=True, seed=2)
    new.set_epoch(1)
    old.set_epoch(1)
    for shuffle, seed in ((True, 1_000_004), (True, 7), (False, 0)):
        loader = train_module._loader(new, 4, shuffle, workers, seed)
        before = DataLoader(old, batch_size=4, shuffle=shuffle, num_workers=0,
                            generator=torch.Generator().manual_seed(seed))  # fmt: skip
        got, expected = list(loader), list(before)
        assert len(loader) == len(got) == len(expected) == 4
        for (x, t), (x_old, t_old) in zip(got, expected, strict=True):
            assert torch.equal(x, x_old) and torch.equal(t, t_old)
    orders = [torch.cat([t.argmax(1) for _, t in train_module._loader(new, 4, True, 0, s)])
              for s in (1, 2)]  # fmt: skip
    assert not torch.equal(*orders)  # the seed does shuffle


def test_a_predict_style_dataloader_still_stacks_items(tiny_heatmaps):
    """Any DataLoader over the dataset (jmrn.predict's, default collate) gets the same."""
    new = HeatmapDataset(tiny_heatmaps, ROWS, (16, 22), "max", train=False)
    old = PerItemDataset(tiny_heatmaps, ROWS, (16, 22), "max", train=False)
    for (x, t), (x_old, t_old) in zip(DataLoader(new, batch_size=5), DataLoader(old, batch_size=5),
                                      strict=True):  # fmt: skip
        assert torch.equal(x, x_old) and torch.equal(t, t_old)


def damaged_copy(path, out, row: int):
    """A copy of a heatmaps.h5 whose chunk ``row`` is overwritten from its start (lzf then
    fails; garbage further in can decode silently)."""
    shutil.copy(path, out)
    with h5py.File(out) as f:
        chunk = f["heatmaps"].id.get_chunk_info_by_coord((row, 0, 0, 0, 0))
    with open(out, "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * (chunk.size // 2))
    return out


def consume(loader) -> dict:
    """Iterate ``loader`` in a thread, so that a hang fails the test instead of stalling it."""
    result: dict = {"batches": 0}

    def run() -> None:
        try:
            for _ in loader:
                result["batches"] += 1
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the loader hangs"
    return result


@pytest.mark.parametrize("workers", [0, 1])
def test_a_damaged_file_raises_in_the_training_loop(tiny_heatmaps, tmp_path, workers):
    path = damaged_copy(tiny_heatmaps, tmp_path / "heatmaps.h5", row=int(ROWS[6]))
    dataset = HeatmapDataset(path, ROWS, (16, 22), "area", train=False)
    result = consume(train_module._loader(dataset, 4, False, workers, 0))
    assert result["batches"] == 1  # the second batch holds row ROWS[6]
    assert isinstance(result["error"], OSError)
    assert f"{path}: cannot read the heatmaps of video" in str(result["error"])
    assert f"(row {ROWS[6]})" in str(result["error"])


def test_prefetcher_passes_batches_errors_and_stops_when_abandoned():
    assert list(Prefetcher(range(7), depth=2)) == list(range(7))
    assert len(Prefetcher(range(7))) == 7
    with pytest.raises(ValueError, match="depth must be >= 1"):
        Prefetcher(range(3), depth=0)

    def failing():
        yield 1
        raise KeyError("broken batch")

    result = consume(Prefetcher(failing()))
    assert result["batches"] == 1 and isinstance(result["error"], KeyError)

    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    before = threading.active_count()
    batches = iter(Prefetcher(endless(), depth=2))
    assert [next(batches) for _ in range(3)] == [0, 1, 2]
    batches.close()  # what a break or an error in the training loop does
    assert threading.active_count() == before  # the thread has stopped ...
    assert len(produced) <= 3 + 2 + 1  # ... no more than depth (+ one in hand) ahead


def test_prefetch_thread_leaves_the_models_threads_alone(tiny_heatmaps):
    threads = torch.get_num_threads()
    dataset = HeatmapDataset(tiny_heatmaps, ROWS, (16, 22), "area", train=True)
    seen = []

    class Watch:
        def __len__(self):
            return 1

        def __iter__(self):
            seen.append(torch.get_num_threads())
            yield from DataLoader(dataset, batch_size=13, collate_fn=collate)

    assert len(list(Prefetcher(Watch()))) == 1
    assert torch.get_num_threads() == threads
    if "parallel backend: OpenMP" in torch.__config__.parallel_info():
        assert seen == [1]


LAYOUT = get_layout("coco17_neck")


def shift_then_flip(x, targets, settings, layout, generator):
    """``augment`` before issue 14 for settings without rotation or CutMix: the translation
    and the flip as separate passes."""
    b, _, v, _, _ = x.shape
    groups = [list(g) for g in layout.group_indices().values()]
    mode = settings["type"]
    beta = settings["beta"] if mode in ("global", "global_and_groupwise", "jointwise") else 0
    gamma = settings["gamma"] if mode in ("groupwise", "global_and_groupwise") else 0
    parts = _shift_parts(b, v, beta, gamma, groups, mode, generator, x.device)
    if parts:
        x = _shift_chain(x, parts)
    return hflip(x, layout.flip_permutation(), settings["flip_p"], generator), targets


@pytest.mark.parametrize("mode", ["none", "global", "groupwise", "global_and_groupwise",
                                  "jointwise"])  # fmt: skip
@pytest.mark.parametrize("flip_p", [0.0, 0.5, 1.0])
def test_shift_and_flip_in_one_gather_equal_the_two_passes(mode, flip_p):
    x = torch.rand(7, 3, LAYOUT.num_joints, 11, 14, generator=torch.Generator().manual_seed(0))
    x[x < 0.4] = 0
    targets = torch.eye(7)
    settings = {"type": mode, "beta": 3, "gamma": 2, "flip_p": flip_p}
    fused, separate = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for _ in range(4):  # several draws from the same generators
        got, _ = augment(x, targets, settings, LAYOUT, fused)
        expected, _ = shift_then_flip(x, targets, settings, LAYOUT, separate)
        assert torch.equal(got, expected)
    assert torch.equal(fused.get_state(), separate.get_state())  # the same draws, too
    shifts = [(torch.full((7, LAYOUT.num_joints), 30), torch.zeros(7, LAYOUT.num_joints))]
    coin, perm = _draw_flips(x, LAYOUT.flip_permutation(), 1.0, torch.Generator())
    assert not _shift_chain(x, shifts, (coin, perm)).any()  # shifted off the grid, then flipped


def test_training_iterates_the_prefetching_loader(tiny_heatmaps, tmp_path, monkeypatch):
    loaders = []
    real = train_module._loader

    def watched(*args, **kwargs):
        loaders.append(real(*args, **kwargs))
        return loaders[-1]

    monkeypatch.setattr(train_module, "_loader", watched)
    settings = {**TINY_SETTINGS, "train": {**TINY_SETTINGS["train"], "epochs": 1}}
    train_module.train(tiny_heatmaps, settings, model_path=tmp_path / "m.pt",
                       checkpoint_path=tmp_path / "c.pt", metrics_path=tmp_path / "m.json",
                       per_class_path=tmp_path / "p.json", plots_dir=tmp_path / "plots",
                       progress=False)  # fmt: skip
    # the epoch, its evaluation (validation, test), the averaged weights' evaluation
    # (validation, test: jmrn.selection's `average` rule) and the final test evaluation
    assert len(loaders) == 6 and all(isinstance(x, Prefetcher) for x in loaders)
    assert not [t for t in threading.enumerate() if t.name == "jmrn-prefetch"]
