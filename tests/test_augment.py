"""Batched augmentations: PAA shifts, flip, rotation, CutMix of joints (method.md §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jmrn import heatmaps
from jmrn.augment import (
    _rotate_maps,
    _shift_chain,
    augment,
    cutmix_joints,
    hflip,
    paa_shifts,
    rotate,
    shift,
)
from jmrn.layouts import get_layout

LAYOUT = get_layout("coco17_neck")
GROUPS = [list(g) for g in LAYOUT.group_indices().values()]
UNGROUPED = [j for j in range(LAYOUT.num_joints) if not any(j in g for g in GROUPS)]
B, C, V, H, W = 6, 3, 18, 16, 20


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def batch(seed: int = 0, b: int = B) -> torch.Tensor:
    return torch.rand(b, C, V, H, W, generator=gen(seed))


def settings(**kw) -> dict:
    base = {"type": "global_and_groupwise", "beta": 4, "gamma": 3, "flip_p": 0.5}
    return {**base, **kw}


# --------------------------------------------------------------------------- shift


def axis_slices(s: int, n: int) -> tuple[slice, slice]:
    """(source, destination) slices of a shift by s along an axis of length n (|s| < n)."""
    return (slice(0, n - s), slice(s, n)) if s >= 0 else (slice(-s, n), slice(0, n + s))


def shift_reference(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    for b in range(x.shape[0]):
        for v in range(x.shape[2]):
            sy, sx = int(dy[b, v]), int(dx[b, v])
            if abs(sy) >= h or abs(sx) >= w:
                continue  # everything leaves the grid
            (ys, yd), (xs, xd) = axis_slices(sy, h), axis_slices(sx, w)
            out[b, :, v, yd, xd] = x[b, :, v, ys, xs]
    return out


def test_shift_matches_loop_reference():
    x = batch()
    choices = torch.tensor([0, 1, -1, 3, -5, H - 1, -(H - 1), H, -W, W + 7, -(W + 30)])
    g = gen(1)
    dy = choices[torch.randint(len(choices), (B, V), generator=g)]
    dx = choices[torch.randint(len(choices), (B, V), generator=g)]
    dy[0, 0], dx[0, 0] = 0, 0  # make sure the identity, pure-axis and far cases are present
    dy[0, 1], dx[0, 1] = 2, 0
    dy[0, 2], dx[0, 2] = 0, -3
    dy[0, 3], dx[0, 3] = 100, 0
    out = shift(x, dy, dx)
    np.testing.assert_array_equal(out.numpy(), shift_reference(x.numpy(), dy.numpy(), dx.numpy()))
    assert torch.equal(out[0, :, 0], x[0, :, 0])
    assert out[0, :, 3].abs().sum() == 0


def test_shift_does_not_wrap_around():
    x = torch.zeros(1, 1, 2, H, W)
    x[0, 0, 0, H - 1, W - 1] = 1.0  # bottom-right corner
    x[0, 0, 1, 0, 0] = 1.0  # top-left corner
    out = shift(x, torch.tensor([[1, -1]]), torch.tensor([[2, 0]]))
    assert out.sum() == 0  # both pushed out of the grid: lost, not reappearing at the far edge
    y = batch()
    moved = shift(y, torch.full((B, V), 3), torch.full((B, V), -4))
    assert torch.all(moved[..., :3, :] == 0) and torch.all(moved[..., :, W - 4 :] == 0)
    assert torch.all(moved.sum((1, 3, 4)) <= y.sum((1, 3, 4)))  # mass is only ever lost
    np.testing.assert_array_equal(moved[..., 3:, : W - 4].numpy(), y[..., : H - 3, 4:].numpy())


def test_chained_shifts_lose_what_left_the_grid_in_between():
    x = batch()
    there = torch.full((B, V), 3), torch.full((B, V), -2)
    back = torch.full((B, V), -3), torch.full((B, V), 2)
    chained = _shift_chain(x, [there, back])
    assert torch.equal(chained, shift(shift(x, *there), *back))
    assert not torch.equal(chained, x)  # the summed shift (0, 0) would keep the border rows
    np.testing.assert_array_equal(chained[..., : H - 3, 2:].numpy(), x[..., : H - 3, 2:].numpy())


# --------------------------------------------------------------------------- PAA shifts


def draw(mode, beta=4, gamma=3, seed=0, b=300):
    return paa_shifts(b, V, beta, gamma, GROUPS, mode, gen(seed), "cpu")


@pytest.mark.parametrize("mode", ["global", "jointwise", "groupwise"])
def test_shift_law_magnitudes_signs_and_quadrants(mode):
    limit = 3 if mode == "groupwise" else 4
    dy, dx = draw(mode)
    assert dy.dtype == torch.long and dy.shape == (300, V)
    moved = [j for j in range(V) if j not in UNGROUPED] if mode == "groupwise" else list(range(V))
    for d in (dy[:, moved], dx[:, moved]):
        assert set(d.abs().unique().tolist()) == set(range(1, limit + 1))  # never 0, all of 1..max
    signs = dy[:, moved].sign().flatten().tolist(), dx[:, moved].sign().flatten().tolist()
    quadrants = set(zip(*signs, strict=True))
    assert quadrants == {(1, 1), (1, -1), (-1, 1), (-1, -1)}


def test_global_shift_is_shared_by_all_joints():
    dy, dx = draw("global")
    assert torch.all(dy == dy[:, :1]) and torch.all(dx == dx[:, :1])
    assert len(set(dy[:, 0].tolist())) > 1  # but differs across samples


def test_groupwise_shift_is_shared_within_groups_and_independent_across():
    dy, dx = draw("groupwise")
    for group in GROUPS:
        assert torch.all(dy[:, group] == dy[:, group[:1]])
        assert torch.all(dx[:, group] == dx[:, group[:1]])
    firsts = torch.stack([dy[:, g[0]] for g in GROUPS], 1)
    assert (firsts != firsts[:, :1]).any(1).float().mean() > 0.5  # groups drawn separately
    assert torch.all(dy[:, UNGROUPED] == 0) and torch.all(dx[:, UNGROUPED] == 0)
    assert {LAYOUT.index(n) for n in ("left_hip", "right_hip", "neck")} == set(UNGROUPED)


def test_global_and_groupwise_is_global_plus_group_part():
    gy, gx = draw("global", seed=5)
    ty, tx = draw("global_and_groupwise", seed=5)
    assert torch.equal(ty[:, UNGROUPED], gy[:, UNGROUPED])  # hips and neck: only the global shift
    assert torch.equal(tx[:, UNGROUPED], gx[:, UNGROUPED])
    grouped = [j for j in range(V) if j not in UNGROUPED]
    extra = torch.cat([(ty - gy)[:, grouped], (tx - gx)[:, grouped]])
    assert set(extra.abs().unique().tolist()) == {1, 2, 3}  # the group part follows the γ law


def test_jointwise_shifts_are_independent_per_joint():
    dy, _ = draw("jointwise")
    assert (dy != dy[:, :1]).any(1).all()


def test_zero_beta_or_gamma_disables_that_part():
    for mode in ("global", "jointwise"):
        dy, dx = draw(mode, beta=0)
        assert dy.abs().sum() == 0 and dx.abs().sum() == 0
    dy, dx = draw("groupwise", gamma=0)
    assert dy.abs().sum() == 0 and dx.abs().sum() == 0
    for only, mode in (({"gamma": 0}, "global"), ({"beta": 0}, "groupwise")):
        both = draw("global_and_groupwise", seed=3, **only)
        single = draw(mode, seed=3)
        assert torch.equal(both[0], single[0]) and torch.equal(both[1], single[1])
    dy, dx = draw("none")
    assert dy.abs().sum() == 0 and dx.abs().sum() == 0


def test_shifts_are_reproducible_from_the_seed():
    a, b, c = draw("global_and_groupwise", seed=7), draw("global_and_groupwise", seed=7), draw(
        "global_and_groupwise", seed=8)  # fmt: skip
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown translation"):
        draw("group_wise")
    with pytest.raises(ValueError, match="is in groups"):
        paa_shifts(2, V, 2, 2, [[0, 1], [1, 2]], "groupwise", gen(), "cpu")
    with pytest.raises(ValueError, match=">= 0"):
        draw("global", beta=-1)


# --------------------------------------------------------------------------- flip


def test_hflip_matches_numpy_flip_per_sample():
    x = batch()
    perm = LAYOUT.flip_permutation()
    out = hflip(x, perm, 0.5, gen(2))
    reference = heatmaps.hflip(x.numpy(), perm)
    flipped = [torch.equal(out[i], torch.from_numpy(reference[i].copy())) for i in range(B)]
    kept = [torch.equal(out[i], x[i]) for i in range(B)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each is exactly one of two
    assert any(flipped) and any(kept)


def test_hflip_extremes_and_involution():
    x = batch()
    perm = LAYOUT.flip_permutation()
    assert torch.equal(hflip(x, perm, 0.0, gen()), x)
    once = hflip(x, perm, 1.0, gen())
    np.testing.assert_array_equal(once.numpy(), heatmaps.hflip(x.numpy(), perm))
    assert torch.equal(hflip(once, perm, 1.0, gen()), x)


# --------------------------------------------------------------------------- rotation


def test_rotation_by_zero_is_identity():
    x = batch()
    torch.testing.assert_close(rotate(x, 0.0, gen()), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(x, 0.0, gen(), groups=GROUPS), x, atol=1e-5, rtol=0)


def test_half_turn_maps_a_pixel_to_its_centre_mirror():
    maps = torch.zeros(1, 1, H, W, dtype=torch.float64)
    maps[0, 0, 3, 5] = 1.0
    centre = (
        torch.tensor([(H - 1) / 2], dtype=torch.float64),
        torch.tensor([(W - 1) / 2], dtype=torch.float64),
    )
    out = _rotate_maps(maps, torch.tensor([math.pi], dtype=torch.float64), *centre)
    expected = torch.zeros_like(maps)
    expected[0, 0, H - 1 - 3, W - 1 - 5] = 1.0
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_quarter_turn_is_aspect_correct_in_pixel_units():
    # about the centre (x 9.5, y 7.5) of a 16x20 grid, pixel (x 11, y 7) is at offset (1.5, -0.5);
    # a +90 degree turn (clockwise on screen, y down) sends it to offset (0.5, 1.5): (x 10, y 9)
    maps = torch.zeros(1, 1, H, W, dtype=torch.float64)
    maps[0, 0, 7, 11] = 1.0
    out = _rotate_maps(maps, torch.tensor([math.pi / 2], dtype=torch.float64),
                       torch.tensor([7.5], dtype=torch.float64),
                       torch.tensor([9.5], dtype=torch.float64))  # fmt: skip
    assert out[0, 0, 9, 10] == pytest.approx(1.0, abs=1e-6)
    assert out.sum() == pytest.approx(1.0, abs=1e-6)


def blob(cy: float, cx: float, sigma: float = 1.5) -> torch.Tensor:
    ys = torch.arange(H, dtype=torch.float64)[:, None]
    xs = torch.arange(W, dtype=torch.float64)[None, :]
    return torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2))


def test_small_rotation_conserves_mass_away_from_the_border():
    x = torch.zeros(B, C, V, H, W, dtype=torch.float64)
    x[:] = blob(6.0, 11.0)
    out = rotate(x, 15.0, gen(3))
    torch.testing.assert_close(out.sum((3, 4)), x.sum((3, 4)), rtol=0.02, atol=0)
    per_sample = out[:, 0, 0]
    assert not torch.allclose(per_sample[0], per_sample[1])  # each sample has its own angle
    assert torch.allclose(out[:, :, :1].expand_as(out), out)  # but all joints of a sample share it


def test_groupwise_rotation_leaves_other_joints_and_pivots_on_the_centroid():
    x = batch(4).double()
    x[:, :, GROUPS[1]] = 0.0
    x[:, :, GROUPS[1], 5, 8] = 1.0  # a group whose heat sits on one cell: its centroid
    x[:, :, GROUPS[2]] = 0.0  # a group with no heat at all
    out = rotate(x, 40.0, gen(5), groups=GROUPS)
    assert torch.equal(out[:, :, UNGROUPED], x[:, :, UNGROUPED])  # bit-exact, not resampled
    # rotating about the centroid keeps the heat's peak in place (bilinear sampling spreads a
    # little of it to the neighbours); rotating about the grid centre (7.5, 9.5) would move it
    peak = out[:, :, GROUPS[1]]
    torch.testing.assert_close(peak[..., 5, 8], torch.ones_like(peak[..., 5, 8]))
    assert torch.equal(peak.flatten(-2).argmax(-1), torch.full(peak.shape[:3], 5 * W + 8))
    assert torch.equal(out[:, :, GROUPS[2]], x[:, :, GROUPS[2]]) and torch.isfinite(out).all()
    assert not torch.allclose(out[:, :, GROUPS[0]], x[:, :, GROUPS[0]])


# --------------------------------------------------------------------------- CutMix


def test_cutmix_replaces_exactly_p_joints_with_the_partners():
    x = batch(6)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    targets = torch.nn.functional.one_hot(labels, 5).float()
    p = 4
    out, mixed = cutmix_joints(x, targets, p, gen(7))
    for i in range(B):
        changed = [v for v in range(V) if not torch.equal(out[i, :, v], x[i, :, v])]
        assert len(changed) == p
        partners = [
            k for k in range(B) if all(torch.equal(out[i, :, v], x[k, :, v]) for v in changed)
        ]
        assert len(partners) == 1 and partners[0] != i
        k = partners[0]
        torch.testing.assert_close(mixed[i], (1 - p / V) * targets[i] + p / V * targets[k])
    torch.testing.assert_close(mixed.sum(1), torch.ones(B))


def test_cutmix_with_zero_joints_is_a_no_op():
    x, t = batch(), torch.eye(B)
    out, mixed = cutmix_joints(x, t, 0, gen())
    assert torch.equal(out, x) and torch.equal(mixed, t)


# --------------------------------------------------------------------------- one view


def test_augment_none_without_flip_is_identity():
    x, t = batch(), torch.eye(B)
    out, mixed = augment(x, t, {"type": "none", "flip_p": 0.0}, LAYOUT, gen())
    assert torch.equal(out, x) and torch.equal(mixed, t)


def test_augment_two_views_differ_and_are_reproducible():
    x = batch()
    g = gen(11)
    v1, _ = augment(x, None, settings(), LAYOUT, g)
    v2, _ = augment(x, None, settings(), LAYOUT, g)
    assert v1.shape == x.shape and not torch.equal(v1, v2)
    g = gen(11)
    assert torch.equal(augment(x, None, settings(), LAYOUT, g)[0], v1)
    assert torch.equal(augment(x, None, settings(), LAYOUT, g)[0], v2)


def test_augment_applies_global_then_groupwise_shift():
    x = batch()
    out, _ = augment(x, None, settings(flip_p=0.0), LAYOUT, gen(12))
    g = gen(12)
    gy, gx = paa_shifts(B, V, 4, 3, GROUPS, "global", g, "cpu")
    qy, qx = paa_shifts(B, V, 4, 3, GROUPS, "groupwise", g, "cpu")
    assert torch.equal(out, shift(shift(x, gy, gx), qy, qx))


def test_augment_with_every_option():
    x, t = batch(), torch.nn.functional.one_hot(torch.arange(B) % 4, 4).float()
    s = settings(rotation_degrees=10, group_rotation_degrees=10, cutmix_joints=3)
    out, mixed = augment(x, t, s, LAYOUT, gen(13))
    assert out.shape == x.shape and torch.isfinite(out).all()
    torch.testing.assert_close(mixed.sum(1), torch.ones(B))
    with pytest.raises(ValueError, match="joints"):
        augment(x[:, :, :17], t, s, LAYOUT, gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_augment_runs_on_cuda():
    x = batch().cuda()
    t = torch.eye(B, device="cuda")
    s = settings(rotation_degrees=10, group_rotation_degrees=10, cutmix_joints=3)
    out, mixed = augment(x, t, s, LAYOUT, gen(14, "cuda"))
    again, _ = augment(x, t, s, LAYOUT, gen(14, "cuda"))
    assert out.device == x.device and mixed.device == x.device and torch.equal(out, again)
    with pytest.raises(ValueError, match="generator"):
        augment(x, t, s, LAYOUT, gen(14))
    ref, _ = augment(x, None, {"type": "global", "beta": 3, "flip_p": 1.0}, LAYOUT, gen(1, "cuda"))
    g = gen(1, "cuda")
    dy, dx = paa_shifts(B, V, 3, 0, GROUPS, "global", g, "cuda")
    expected = heatmaps.hflip(shift(x.cpu(), dy.cpu(), dx.cpu()).numpy(), LAYOUT.flip_permutation())
    np.testing.assert_array_equal(ref.cpu().numpy(), expected)
