"""Batched, device-side augmentations of PoTion representations (method.md §3, §10 items 8–12).

Every function takes a batch ``x`` of shape ``(B, C, V, H, W)`` (C temporal channels, V joints,
already normalised) on any device and works with batched tensor ops on that device: no Python
loop over samples, joints or pixels. All randomness comes from the ``torch.Generator`` passed
in, which must live on ``x``'s device (CUDA generators draw on the GPU), so a seed reproduces
an augmentation exactly on a given device (CPU and CUDA streams differ from each other).

Decisions (each one deliberate; see method.md for the sources):

* **Order** (:func:`augment`, method.md §3.1): translation → global rotation → groupwise
  rotation → horizontal flip → CutMix of joints. Rotation and CutMix are the supplementary's
  variants (§3.6), absent from the official code; they are off unless their settings are > 0.
* **β and γ are the paper's values**, i.e. the maximal shift in grid cells. The official CLI
  value is one more (``--max_motion`` = β + 1, because numpy's ``randint`` excludes the upper
  bound; JHMDB 7 ↔ β 6, HMDB 5 ↔ 4, Charades 9 ↔ 8; γ: JHMDB 3, Charades 4, HMDB 0).
* **Shift law** (§3.2, §10.8): per axis a magnitude uniform in {1, …, β} and an independent
  random sign, i.e. one of four quadrants uniformly; a shift is **never zero** on either axis.
  β = 0 (γ = 0) disables that part (and draws nothing from the generator).
* **Zero padding, no wrap-around**: content leaving the grid is lost, vacated cells are 0
  (the official code pads the background slot with 1; it is dropped by the model, §10.12, and
  our layouts have no background slot).
* **Global + groupwise** (the paper's setting): in :func:`augment` the global shift is applied
  first and the groupwise shift second, each with its own zero fill, exactly like the official
  ``GlobalTranslation`` then ``GroupWiseTranslation`` (computed as one gather with the combined
  validity mask). Applying the summed shift of :func:`paa_shifts` once would differ only near
  the border: the sequential version also loses what the first shift pushed out and the second
  would bring back. :func:`paa_shifts` returns the sum, as specified; both draw the same
  numbers in the same order. The summed shift of a grouped joint can be 0 on an axis (global
  +2, group −2), as in the official code; only each part is never zero.
* **Groups** come from the layout (method.md §3.3: head, both arms, both lower legs); joints in
  no group (hips, neck) move only with the global shift/rotation. ``"groupwise"`` alone uses γ
  (the official ``group_wise`` type used ``max_motion``; a caller wanting that passes β as γ).
  ``"jointwise"`` moves every joint independently with β (the variant found unhelpful).
* **Flip** (§3.4, §10.9): per sample with probability ``flip_p``, mirror W and swap left/right
  joints with the layout's ``flip_permutation()``, identical to :func:`jmrn.heatmaps.hflip`.
  Each view draws its own coin (the caller calls :func:`augment` once per view with the same
  generator), so the two contrastive views may differ in flip, as in the official training.
* **Rotation** (supplementary, angles unspecified there): angle uniform in ``[-max, max]``
  degrees, bilinear ``grid_sample`` with zero padding and ``align_corners=False``, computed in
  pixel units (aspect-correct for H ≠ W). Positive angles turn clockwise on screen (y points
  down). Global rotation: one angle per sample about the grid centre ((W-1)/2, (H-1)/2) in
  pixel indices. Groupwise rotation: one angle per (sample, group) about the centroid of that
  group's heat (weights = the positive part of the maps, summed over channels and the group's
  joints; the grid centre when the group has no positive heat); joints in no group are left
  bit-exactly unchanged. Bilinear resampling blurs slightly and mass near the border is lost.
* **CutMix of joints** (supplementary, P unspecified there): each sample gets one partner
  (a random single-cycle permutation of the batch, so nobody is paired with itself when
  B ≥ 2); P distinct random joints of the sample are replaced by the partner's maps of the same
  joints; targets are mixed as ``(1 - P/V) * own + (P/V) * partner``.
* **Evaluation** uses no augmentation at all: simply do not call :func:`augment`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from jmrn.layouts import Layout

TRANSLATION_MODES = ("none", "global", "groupwise", "global_and_groupwise", "jointwise")

__all__ = [
    "TRANSLATION_MODES",
    "augment",
    "cutmix_joints",
    "hflip",
    "paa_shifts",
    "rotate",
    "shift",
]


def _check_batch(x: torch.Tensor) -> None:
    if x.dim() != 5:
        raise ValueError(f"expected a (B, C, V, H, W) batch, got shape {tuple(x.shape)}")


def _check_generator(generator: torch.Generator, device: torch.device) -> None:
    gdev = torch.device(generator.device)
    device = torch.device(device)
    if gdev.type != device.type or (
        gdev.type != "cpu" and gdev.index is not None and device.index is not None
        and gdev.index != device.index
    ):  # fmt: skip
        raise ValueError(
            f"the generator lives on {gdev} but the data on {device}; "
            f"create it with torch.Generator(device=x.device)"
        )


def _group_of(groups: Sequence[Sequence[int]], joints: int, device) -> torch.Tensor:
    """(V,) int64: the group index of each joint, ``len(groups)`` for joints in no group."""
    group_of = np.full(joints, len(groups), dtype=np.int64)
    for g, members in enumerate(groups):
        for j in members:
            j = int(j)
            if not 0 <= j < joints:
                raise ValueError(f"group {g} names joint {j}, outside 0..{joints - 1}")
            if group_of[j] != len(groups):
                raise ValueError(f"joint {j} is in groups {group_of[j]} and {g}")
            group_of[j] = g
    return torch.as_tensor(group_of, device=device)


# --------------------------------------------------------------------------- translation


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Translate each (sample, joint) map by an integer shift, zero fill, no wrap-around.

    ``out[b, :, v, y, x] = x[b, :, v, y - dy[b, v], x - dx[b, v]]`` where the source lies inside
    the grid, 0 elsewhere. ``dy``/``dx`` are integer tensors of shape (B, V) (any magnitude:
    a shift of at least the grid size empties the map).
    """
    return _shift_chain(x, [(dy, dx)])


def _shift_chain(
    x: torch.Tensor, parts: Sequence[tuple[torch.Tensor, torch.Tensor]],
    flip: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:  # fmt: skip
    """Apply several shifts one after the other (each with its zero fill) in one gather.

    The result equals ``shift(shift(x, *parts[0]), *parts[1])...``: the summed shift, except
    that a cell is 0 when its content left the grid at any intermediate step. ``flip`` =
    (coin (B,) bool, permutation (V,)) then mirrors W and permutes the joints of the samples
    whose coin is set, as :func:`hflip` would after the shifts, within the same gather: the
    same values, without hflip's three passes over the batch.
    """
    _check_batch(x)
    b, c, v, h, w = x.shape
    src_y = torch.arange(h, device=x.device).expand(b, v, h)[..., None]  # (B, V, H, 1)
    src_x = torch.arange(w, device=x.device).expand(b, v, w)[..., None, :]  # (B, V, 1, W)
    inside_y = torch.ones_like(src_y, dtype=torch.bool)
    inside_x = torch.ones_like(src_x, dtype=torch.bool)
    for dy, dx in reversed(parts):  # walk back from the output to the input
        if dy.shape != (b, v) or dx.shape != (b, v):
            raise ValueError(
                f"shifts must have shape {(b, v)}, got {tuple(dy.shape)} and {tuple(dx.shape)}"
            )
        src_y = src_y - dy.to(device=x.device, dtype=torch.long)[:, :, None, None]
        src_x = src_x - dx.to(device=x.device, dtype=torch.long)[:, :, None, None]
        inside_y = inside_y & (src_y >= 0) & (src_y < h)
        inside_x = inside_x & (src_x >= 0) & (src_x < w)
    joint = torch.arange(v, device=x.device).expand(b, v)
    if flip is not None:  # a flipped sample's joint j, column k: joint perm[j], column W-1-k
        coin, perm = flip
        joint = torch.where(coin[:, None], perm[None, :], joint)
        src_y, inside_y = (t.gather(1, joint[:, :, None, None].expand(b, v, h, 1))
                           for t in (src_y, inside_y))  # fmt: skip
        src_x, inside_x = (t.gather(1, joint[:, :, None, None].expand(b, v, 1, w))
                           for t in (src_x, inside_x))  # fmt: skip
        mirrored = coin[:, None, None, None]
        src_x = torch.where(mirrored, src_x.flip(-1), src_x)
        inside_x = torch.where(mirrored, inside_x.flip(-1), inside_x)
    inside = (inside_y & inside_x).reshape(b, 1, v * h * w)
    index = (joint[:, :, None, None] * (h * w) + src_y.clamp(0, h - 1) * w
             + src_x.clamp(0, w - 1)).reshape(b, 1, v * h * w)  # fmt: skip
    out = torch.gather(x.reshape(b, c, v * h * w), 2, index.expand(b, c, v * h * w))
    return out.masked_fill_(~inside, 0).reshape(b, c, v, h, w)  # in place: no second batch


def _draw_shifts(shape: tuple[int, ...], max_shift: int, generator: torch.Generator,
                 device) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """PAA law: per axis magnitude uniform in {1..max_shift}, random sign; zeros if max is 0."""
    if max_shift < 0:
        raise ValueError(f"maximal shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        zero = torch.zeros(shape, dtype=torch.long, device=device)
        return zero, zero.clone()
    magnitude = torch.randint(1, max_shift + 1, (2, *shape), generator=generator, device=device)
    sign = torch.randint(0, 2, (2, *shape), generator=generator, device=device) * 2 - 1
    d = magnitude * sign
    return d[0], d[1]


def _shift_parts(batch: int, joints: int, beta: int, gamma: int,
                 groups: Sequence[Sequence[int]], mode: str, generator: torch.Generator,
                 device) -> list[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """The (dy, dx) parts of a translation, in the order they are applied."""
    if mode not in TRANSLATION_MODES:
        raise ValueError(f"unknown translation type {mode!r}; known: {TRANSLATION_MODES}")
    _check_generator(generator, torch.device(device))
    parts = []
    if mode in ("global", "global_and_groupwise"):
        dy, dx = _draw_shifts((batch, 1), beta, generator, device)
        parts.append((dy.expand(batch, joints), dx.expand(batch, joints)))
    if mode in ("groupwise", "global_and_groupwise"):
        group_of = _group_of(groups, joints, device)
        dy, dx = _draw_shifts((batch, len(groups)), gamma, generator, device)
        pad = torch.zeros(batch, 1, dtype=torch.long, device=device)  # "no group" column
        parts.append((torch.cat([dy, pad], 1)[:, group_of], torch.cat([dx, pad], 1)[:, group_of]))
    if mode == "jointwise":
        parts.append(_draw_shifts((batch, joints), beta, generator, device))
    return parts


def paa_shifts(batch: int, joints: int, beta: int, gamma: int, groups: Sequence[Sequence[int]],
               mode: str, generator: torch.Generator,
               device=None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Pose-aware translation shifts ``(dy, dx)``, each int64 of shape (batch, joints).

    ``beta``/``gamma`` are the paper's maximal shifts in grid cells (0 disables that part).
    ``mode``: ``none`` (zeros), ``global`` (one draw per sample with β, all joints),
    ``groupwise`` (one draw per (sample, group) with γ; joints in no group get 0),
    ``global_and_groupwise`` (the sum of both; the paper's setting), ``jointwise`` (one draw
    per (sample, joint) with β). ``groups`` is a list of lists of joint indices (disjoint).
    """
    device = torch.device(device) if device is not None else torch.device(generator.device)
    dy = torch.zeros(batch, joints, dtype=torch.long, device=device)
    dx = torch.zeros_like(dy)
    for py, px in _shift_parts(batch, joints, beta, gamma, groups, mode, generator, device):
        dy = dy + py
        dx = dx + px
    return dy, dx


# --------------------------------------------------------------------------- flip


def hflip(x: torch.Tensor, flip_permutation, p: float,
          generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """Per sample with probability ``p``: mirror W and permute joints (``x[:, :, perm]``).

    Flipped samples equal :func:`jmrn.heatmaps.hflip`; the others are returned unchanged.
    """
    coin, perm = _draw_flips(x, flip_permutation, p, generator)
    return torch.where(coin[:, None, None, None, None], x[:, :, perm].flip(-1), x)


def _draw_flips(x: torch.Tensor, flip_permutation, p: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(coin (B,) bool: flip this sample, the joint permutation (V,) on x's device)."""
    _check_batch(x)
    _check_generator(generator, x.device)
    perm = torch.as_tensor(np.asarray(flip_permutation), dtype=torch.long, device=x.device)
    if perm.shape != (x.shape[2],):
        raise ValueError(f"flip permutation of length {perm.numel()} for {x.shape[2]} joints")
    return torch.rand(x.shape[0], generator=generator, device=x.device) < p, perm


# --------------------------------------------------------------------------- rotation


def _rotate_maps(maps: torch.Tensor, angle: torch.Tensor, cy: torch.Tensor,
                 cx: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Rotate (N, C, H, W) maps by ``angle`` radians (N,) about pixel (cx, cy) (N,) each.

    Works in pixel units: out(p) = in(R(-angle) (p - c) + c), then converted to the normalised
    coordinates of ``affine_grid`` (align_corners=False: pixel i ↔ (2 i + 1) / size - 1).
    """
    n, _, h, w = maps.shape
    cos, sin = torch.cos(angle), torch.sin(angle)
    # centre in normalised units, then A = S^-1 R(-a) S with S = diag(W/2, H/2)
    ncx = (2 * cx + 1) / w - 1
    ncy = (2 * cy + 1) / h - 1
    a00, a01 = cos, sin * h / w
    a10, a11 = -sin * w / h, cos
    theta = torch.stack([
        torch.stack([a00, a01, ncx - a00 * ncx - a01 * ncy], -1),
        torch.stack([a10, a11, ncy - a10 * ncx - a11 * ncy], -1),
    ], 1).to(maps.dtype)  # fmt: skip
    grid = F.affine_grid(theta, [n, maps.shape[1], h, w], align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _uniform_angles(shape, max_degrees: float, generator: torch.Generator, device,
                    dtype) -> torch.Tensor:  # fmt: skip
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return (2 * u - 1) * math.radians(max_degrees)


def rotate(x: torch.Tensor, max_degrees: float, generator: torch.Generator,
           groups: Sequence[Sequence[int]] | None = None) -> torch.Tensor:  # fmt: skip
    """Pose-aware rotation (supplementary): angles uniform in [-max_degrees, max_degrees].

    ``groups=None``: one angle per sample, about the grid centre. With ``groups``: one angle per
    (sample, group), about the centroid of that group's (positive) heat over its joints and
    channels, or the grid centre if it has none; joints in no group are returned untouched.
    """
    _check_batch(x)
    _check_generator(generator, x.device)
    b, c, v, h, w = x.shape
    dev, dtype = x.device, x.dtype
    if not x.is_floating_point():
        raise TypeError("rotate needs a floating-point batch")
    if groups is None:
        angle = _uniform_angles((b,), max_degrees, generator, dev, dtype)
        maps = x.transpose(1, 2).reshape(b * v, c, h, w)
        centre_y = torch.full((b * v,), (h - 1) / 2, device=dev, dtype=dtype)
        centre_x = torch.full((b * v,), (w - 1) / 2, device=dev, dtype=dtype)
        out = _rotate_maps(maps, angle.repeat_interleave(v), centre_y, centre_x)
        return out.reshape(b, v, c, h, w).transpose(1, 2)

    group_of = _group_of(groups, v, dev)
    moved = torch.nonzero(group_of < len(groups)).flatten()  # joints that belong to a group
    if moved.numel() == 0:
        return x
    g = group_of[moved]  # (Vg,)
    membership = F.one_hot(g, len(groups)).to(dtype)  # (Vg, G)
    selected = x[:, :, moved]  # (B, C, Vg, H, W)
    heat = selected.clamp(min=0).sum(1)  # (B, Vg, H, W)
    mass = heat.sum((2, 3))  # (B, Vg)
    ys = torch.arange(h, device=dev, dtype=dtype)
    xs = torch.arange(w, device=dev, dtype=dtype)
    moment_y = (heat.sum(3) * ys).sum(2) @ membership  # (B, G)
    moment_x = (heat.sum(2) * xs).sum(2) @ membership
    group_mass = mass @ membership
    has_heat = group_mass > 0
    safe = torch.where(has_heat, group_mass, torch.ones_like(group_mass))
    centre_y = torch.where(has_heat, moment_y / safe, torch.full_like(safe, (h - 1) / 2))
    centre_x = torch.where(has_heat, moment_x / safe, torch.full_like(safe, (w - 1) / 2))
    angle = _uniform_angles((b, len(groups)), max_degrees, generator, dev, dtype)

    vg = moved.numel()
    maps = selected.transpose(1, 2).reshape(b * vg, c, h, w)
    out = _rotate_maps(maps, angle[:, g].reshape(-1), centre_y[:, g].reshape(-1),
                       centre_x[:, g].reshape(-1))  # fmt: skip
    result = x.clone()
    result[:, :, moved] = out.reshape(b, vg, c, h, w).transpose(1, 2)
    return result


# --------------------------------------------------------------------------- CutMix


def cutmix_joints(x: torch.Tensor, targets: torch.Tensor, num_joints: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """CutMix of joints (supplementary): replace P = ``num_joints`` random joints by a partner's.

    Each sample's partner comes from a random single-cycle permutation of the batch (never the
    sample itself when B >= 2); the P distinct joints are drawn per sample. ``targets`` (B, K)
    one-hot or multi-hot are mixed as ``(1 - P/V) * own + (P/V) * partner``.
    """
    _check_batch(x)
    _check_generator(generator, x.device)
    b, _, v, _, _ = x.shape
    if not 0 <= num_joints <= v:
        raise ValueError(f"cutmix_joints must be in 0..{v}, got {num_joints}")
    if targets.shape[0] != b:
        raise ValueError(f"targets have {targets.shape[0]} rows for a batch of {b}")
    if not targets.is_floating_point():
        targets = targets.to(x.dtype if x.is_floating_point() else torch.float32)
    if num_joints == 0:
        return x, targets
    order = torch.randperm(b, generator=generator, device=x.device)
    partner = torch.empty_like(order)
    partner[order] = torch.roll(order, -1)  # order[i] is paired with order[i + 1]
    scores = torch.rand(b, v, generator=generator, device=x.device)
    chosen = scores.argsort(dim=1)[:, :num_joints]
    replace = torch.zeros(b, v, dtype=torch.bool, device=x.device)
    replace.scatter_(1, chosen, True)
    mixed = torch.where(replace[:, None, :, None, None], x[partner], x)
    lam = num_joints / v
    targets = (1 - lam) * targets + lam * targets[partner.to(targets.device)]
    return mixed, targets


# --------------------------------------------------------------------------- one view


def augment(x: torch.Tensor, targets: torch.Tensor | None, settings: Mapping,
            layout: Layout,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """One augmented view of a (B, C, V, H, W) batch; call it once per view.

    ``settings``: ``type`` (one of :data:`TRANSLATION_MODES`), ``beta`` / ``gamma`` (paper
    values, required by the types that use them), ``flip_p``, and optionally
    ``rotation_degrees``, ``group_rotation_degrees`` and ``cutmix_joints`` (0 = off).
    Order: translation, global rotation, groupwise rotation, flip, CutMix. ``targets`` may be
    None unless CutMix is on; it is returned (mixed by CutMix, else as given).
    """
    _check_batch(x)
    b, _, v, _, _ = x.shape
    if v != layout.num_joints:
        raise ValueError(f"batch has {v} joints but layout {layout.name!r} has {layout.num_joints}")
    groups = [list(g) for g in layout.group_indices().values()]
    mode = settings["type"]
    beta = settings["beta"] if mode in ("global", "global_and_groupwise", "jointwise") else 0
    gamma = settings["gamma"] if mode in ("groupwise", "global_and_groupwise") else 0
    parts = _shift_parts(b, v, beta, gamma, groups, mode, generator, x.device)
    rotations = settings.get("rotation_degrees", 0) > 0 or \
        settings.get("group_rotation_degrees", 0) > 0  # fmt: skip
    if not rotations:  # shifts and flip in one gather; the same draws in the same order
        flips = _draw_flips(x, layout.flip_permutation(), settings["flip_p"], generator)
        x = _shift_chain(x, parts, flips)
    else:
        if parts:
            x = _shift_chain(x, parts)  # global then groupwise, each with its own zero fill
        if settings.get("rotation_degrees", 0) > 0:
            x = rotate(x, settings["rotation_degrees"], generator)
        if settings.get("group_rotation_degrees", 0) > 0:
            x = rotate(x, settings["group_rotation_degrees"], generator, groups=groups)
        x = hflip(x, layout.flip_permutation(), settings["flip_p"], generator)
    if settings.get("cutmix_joints", 0) > 0:
        if targets is None:
            raise ValueError("CutMix of joints needs targets to mix")
        x, targets = cutmix_joints(x, targets, settings["cutmix_joints"], generator)
    return x, targets
