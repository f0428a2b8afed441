"""The maths of the representation: both fast renderers (compiled, numpy) = the per-frame
reference, weights, normalisation."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from jmrn import heatmaps
from jmrn.heatmaps import (
    Grid,
    TooShortError,
    aggregate,
    aggregate_numpy,
    aggregate_reference,
    hflip,
    normalise,
    temporal_weights,
    to_grid,
)
from jmrn.heatmaps_file import HeatmapsFile, clip_windows
from jmrn.keypoints_file import KeypointsFile
from jmrn.layouts import get_layout

IMAGE = (240, 320)
# ``aggregate`` runs the compiled kernel where numba is installed (a dependency: always in CI)
RENDERERS = [pytest.param(aggregate, id="compiled"), pytest.param(aggregate_numpy, id="numpy")]


def source_xy(cell_x: int, cell_y: int) -> tuple[float, float]:
    """Source-pixel coordinates of a grid cell's centre (64x86 grid, 320x240 frame)."""
    scale = 64 / 240
    x_off = (86 - 320 * scale) / 2
    return (cell_x + 0.5 - x_off) / scale, (cell_y + 0.5) / scale


def random_keypoints(rng, frames, persons, joints, missing=0.2):
    kp = np.zeros((frames, persons, joints, 3), np.float32)
    kp[..., 0] = rng.uniform(-20, 340, kp.shape[:3])
    kp[..., 1] = rng.uniform(-20, 260, kp.shape[:3])
    kp[..., 2] = rng.uniform(0.05, 1.0, kp.shape[:3]) * (rng.random(kp.shape[:3]) > missing)
    return kp


@pytest.mark.parametrize("discretisation", ["code", "continuous"])
@pytest.mark.parametrize("frames,persons", [(3, 1), (17, 1), (40, 2), (25, 4)])
@pytest.mark.parametrize("render", RENDERERS)
def test_fast_path_equals_per_frame_reference(frames, persons, discretisation, render):
    rng = np.random.default_rng(frames * 10 + persons)
    kp = random_keypoints(rng, frames, persons, 18)
    if persons > 1:  # make persons overlap heavily so that max != sum in many places
        kp[:, 1:, :, :2] = kp[:, :1, :, :2] + rng.normal(0, 4, kp[:, 1:, :, :2].shape)
    grid = Grid(height=64, width=86, sigma=1.3)
    fast = render(kp, IMAGE, grid, 3, discretisation)
    slow = aggregate_reference(kp, IMAGE, grid, 3, discretisation)
    assert fast.shape == (3, 18, 64, 86)
    np.testing.assert_allclose(fast, slow, atol=2e-5 * slow.max())
    if persons > 1:  # the overlap correction matters: a plain sum over persons is wrong
        summed = sum(render(kp[:, m:m + 1], IMAGE, grid, 3, discretisation)
                     for m in range(persons))  # fmt: skip
        assert np.abs(summed - slow).max() > 0.1


@pytest.mark.parametrize("frames,persons,joints,sigma", [(300, 3, 17, 1.0), (60, 6, 5, 2.0),
                                                         (12, 2, 3, 0.4)])  # fmt: skip
def test_compiled_renderer_is_exact_to_float32_rounding(frames, persons, joints, sigma):
    """Long Kinetics-like videos and crowds, overlapping persons, missing joints, wide and
    narrow blobs: the compiled kernel sums in float64, so it agrees with the float64
    reference to float32 rounding (1e-6 of the peak), far inside the 1e-5 asked of it."""
    rng = np.random.default_rng(frames + persons)
    kp = random_keypoints(rng, frames, persons, joints, missing=0.3)
    kp[:, 1:, :, :2] = kp[:, :1, :, :2] + rng.normal(0, 6, kp[:, 1:, :, :2].shape)
    grid = Grid(height=64, width=86, sigma=sigma)
    slow = aggregate_reference(kp, IMAGE, grid)
    np.testing.assert_allclose(aggregate(kp, IMAGE, grid), slow, rtol=0, atol=1e-6 * slow.max())


def test_the_compiled_renderer_runs_where_numba_is_installed():
    """numba is a dependency: a silent fall back to the 4-15x slower numpy path would only
    show as a slow stage, so the installed package must take the compiled path."""
    pytest.importorskip("numba")
    assert heatmaps.compiled_kernel() is not None
    assert heatmaps.renderer().startswith("numba ")


def test_without_numba_aggregate_falls_back_to_the_numpy_path(monkeypatch):
    """Where numba cannot be imported, ``compiled_kernel`` says so and ``aggregate`` runs the
    numpy renderer, with the same values."""
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    monkeypatch.delitem(sys.modules, "jmrn.heatmaps_kernel", raising=False)
    heatmaps.compiled_kernel.cache_clear()
    try:
        assert heatmaps.compiled_kernel() is None and heatmaps.renderer() == "numpy"
        kp = random_keypoints(np.random.default_rng(5), 20, 2, 6)
        grid = Grid(height=32, width=43)
        np.testing.assert_array_equal(aggregate(kp, IMAGE, grid), aggregate_numpy(kp, IMAGE, grid))
    finally:
        heatmaps.compiled_kernel.cache_clear()  # the next caller imports the real kernel


@pytest.mark.parametrize("render", RENDERERS)
def test_missing_joints_draw_nothing_and_peak_is_confidence(render):
    kp = np.zeros((5, 1, 3, 3), np.float32)
    kp[:, 0, 0] = (*source_xy(43, 32), 0.7)  # joint 0 sits still on one cell, confidence 0.7
    kp[:, 0, 1] = (0, 0, 0)  # joint 1 missing everywhere: must not draw at the origin
    kp[:, 0, 2] = (100, 50, 0.0)  # joint 2 has coordinates but confidence 0
    grid = Grid(height=64, width=86)
    heat = render(kp, IMAGE, grid)
    assert heat[:, 1].max() == 0 and heat[:, 2].max() == 0
    summed = heat[:, 0].sum(axis=0)  # channels sum to one per frame: 5 frames x 0.7 at peak
    assert summed.max() == pytest.approx(5 * 0.7, rel=1e-5)
    assert np.unravel_index(summed.argmax(), summed.shape) == (32, 43)
    assert summed[32, 44] == pytest.approx(5 * 0.7 * np.exp(-0.5), rel=1e-5)  # sigma = 1 cell
    assert summed[32, 47] == 0  # 4 cells away: beyond the 3-sigma support


@pytest.mark.parametrize("render", RENDERERS)
def test_min_conf_drops_low_confidence_joints(render):
    kp = np.zeros((4, 1, 1, 3), np.float32)
    kp[..., :] = (160, 120, 0.2)
    assert render(kp, IMAGE, Grid(min_conf=0.3)).max() == 0
    assert render(kp, IMAGE, Grid(min_conf=0.1)).max() > 0


@pytest.mark.parametrize("discretisation", ["code", "continuous"])
@pytest.mark.parametrize("frames", [3, 4, 10, 11, 40, 121])
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_temporal_weights_partition_of_unity(frames, channels, discretisation):
    if frames < channels:
        with pytest.raises(TooShortError):
            temporal_weights(frames, channels, discretisation)
        return
    w = temporal_weights(frames, channels, discretisation)
    assert w.shape == (channels, frames)
    assert (w >= 0).all() and (w <= 1).all()
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    assert w[0, 0] == 1 and w[-1, -1] == 1  # first frame all early, last frame all late


@pytest.mark.parametrize("frames,expected", [(10, (3, 4.5, 2.5)), (11, (3, 5, 3)),
                                             (40, (10.5, 19.5, 10))])  # fmt: skip
def test_code_weights_sums_match_method_spec(frames, expected):
    # method.md §2.2: sums (s+1)/2, (T-1)/2, (T-s)/2 with s = floor(T/2)
    np.testing.assert_allclose(temporal_weights(frames, 3, "code").sum(axis=1), expected)
    s = frames // 2
    assert temporal_weights(frames, 3, "code")[:, s].tolist() == [0, 1, 0]


def test_too_short_video_is_a_clear_error():
    for frames in (0, 1, 2):
        with pytest.raises(TooShortError, match="too short"):
            temporal_weights(frames, 3)
    kp = np.ones((2, 1, 17, 3), np.float32)
    with pytest.raises(TooShortError):
        aggregate(kp, IMAGE, Grid())


def test_area_normalisation_in_unit_range_and_one_for_still_joint():
    rng = np.random.default_rng(3)
    frames = 23
    kp = random_keypoints(rng, frames, 2, 4, missing=0.0)
    # joint 0 of person 0 sits exactly on a cell centre with confidence 1 for the whole video
    grid = Grid(height=64, width=86)
    kp[:, 0, 0] = (*source_xy(40, 30), 1.0)
    kp[:, 1, 0, 2] = 0
    heat = aggregate(kp, IMAGE, grid)
    area = temporal_weights(frames).sum(axis=1)
    normed = normalise(heat, area, heat.max(axis=(2, 3)), "area")
    assert normed.min() >= 0 and normed.max() <= 1 + 1e-6
    np.testing.assert_allclose(normed[:, 0, 30, 40], 1.0, rtol=1e-5)
    maxed = normalise(heat, area, heat.max(axis=(2, 3)), "max")
    np.testing.assert_allclose(maxed.max(axis=(2, 3))[heat.max(axis=(2, 3)) > 0], 1.0)
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(heat, area, heat.max(axis=(2, 3)), "softmax")


def test_grid_fit_keeps_aspect_and_centres():
    grid = Grid(height=64, width=86)
    corners = np.array([[0, 0, 1], [320, 240, 1]], np.float32)
    mapped = to_grid(corners, (240, 320), grid)
    scale = 64 / 240
    np.testing.assert_allclose(mapped[:, 1], [0, 64], atol=1e-4)
    np.testing.assert_allclose(mapped[1, 0] - mapped[0, 0], 320 * scale, atol=1e-4)
    assert mapped[0, 0] == pytest.approx((86 - 320 * scale) / 2, abs=1e-4)
    tall = to_grid(np.array([[0, 0, 1], [100, 400, 1]], np.float32), (400, 100), grid)
    np.testing.assert_allclose(tall[:, 1], [0, 64], atol=1e-4)  # portrait: fit height
    wide = to_grid(np.array([[0, 0, 1], [1280, 720, 1]], np.float32), (720, 1280), grid)
    np.testing.assert_allclose(wide[:, 0], [0, 86], atol=1e-4)  # 16:9: fit width


def test_flip_of_the_input_mirrors_the_representation():
    """Mirroring x in the source frame mirrors every map about the grid's vertical axis."""
    rng = np.random.default_rng(5)
    kp = random_keypoints(rng, 12, 2, 5)
    mirrored = kp.copy()
    mirrored[..., 0] = np.where(kp[..., 2] > 0, 320 - kp[..., 0], 0)
    grid = Grid(height=64, width=86)
    np.testing.assert_allclose(aggregate(mirrored, IMAGE, grid),
                               aggregate(kp, IMAGE, grid)[..., ::-1], atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("layout_name", ["coco17_neck", "openpose18", "jhmdb15", "ntu25"])
def test_hflip_equals_rendering_the_mirrored_video(layout_name):
    """Mirroring a video swaps which joint is left and right: hflip must do the same."""
    layout = get_layout(layout_name)
    rng = np.random.default_rng(7)
    kp = random_keypoints(rng, 9, 2, layout.num_joints)
    perm = layout.flip_permutation()
    mirrored = kp[:, :, perm].copy()  # the mirrored person's left wrist is the old right one
    mirrored[..., 0] = np.where(mirrored[..., 2] > 0, 320 - mirrored[..., 0], 0)
    grid = Grid(height=64, width=86)
    original = aggregate(kp, IMAGE, grid)
    np.testing.assert_allclose(hflip(original, perm), aggregate(mirrored, IMAGE, grid),
                               atol=1e-5)  # fmt: skip
    # and it really swaps: the left wrist map of the flip is the mirrored right wrist map
    left, right = layout.index("left_wrist"), layout.index("right_wrist")
    np.testing.assert_array_equal(hflip(original, perm)[:, left], original[:, right, :, ::-1])


def test_clip_windows_cover_each_video_at_the_stride():
    rows = clip_windows(np.array([40, 10, 16, 17]), clip_len=16, stride=8)
    assert rows.tolist() == [[0, 0, 16], [0, 8, 24], [0, 16, 32], [0, 24, 40],
                             [1, 0, 10], [2, 0, 16], [3, 0, 16]]  # fmt: skip
    with pytest.raises(ValueError, match="positive"):
        clip_windows(np.array([40]), clip_len=16, stride=0)


def test_clip_file_rows_are_the_clips_of_the_videos(tiny_heatmaps, tiny_clip_heatmaps):
    keypoints_path = tiny_heatmaps.parent / "keypoints.h5"
    with KeypointsFile(keypoints_path) as kf, HeatmapsFile(tiny_clip_heatmaps) as cf, \
            HeatmapsFile(tiny_heatmaps) as vf:  # fmt: skip
        assert vf.unit == "video" and vf.clip_video is None
        assert cf.unit == "clip" and int(cf.file.attrs["clip_len"]) == 16
        expected = clip_windows(kf.num_frames, 16, 8)
        assert cf.clip_video.tolist() == expected[:, 0].tolist()
        assert cf.clip_start.tolist() == expected[:, 1].tolist()
        assert cf.num_frames.tolist() == (expected[:, 2] - expected[:, 1]).tolist()
        assert cf.video_ids[:2] == [f"{kf.video_ids[0]}#0", f"{kf.video_ids[0]}#1"]
        assert (cf.labels == kf.labels[cf.clip_video]).all()
        for name, videos in kf.splits.items():
            assert set(cf.clip_video[cf.splits[name]]) == set(videos)
            assert len(cf.splits[name]) == np.isin(cf.clip_video, videos).sum()
        for row in (0, 1, len(cf) - 1):
            video, first = int(cf.clip_video[row]), int(cf.clip_start[row])
            end = first + int(cf.num_frames[row])
            direct = aggregate(kf.keypoints(video)[first:end], tuple(kf.image_size[video]),
                               Grid(height=16, width=22), 3, "code")  # fmt: skip
            np.testing.assert_allclose(cf.heatmaps[row].astype(np.float32), direct,
                                       rtol=2e-3, atol=2e-3)  # fmt: skip


def write_box_keypoints(path, videos) -> None:
    from jmrn.keypoints_file import KeypointsWriter

    writer = KeypointsWriter(path, dataset="boxes", source_format="test",
                             layout=get_layout("coco17_neck"), class_names=["a", "b"],
                             multi_label=True, flush_rows=7)  # fmt: skip
    for video in videos:
        writer.add(video)
    writer.close({"all": list(range(len(videos)))})


def test_box_context_rows_are_the_actor_and_the_others_in_the_box(tmp_path):
    """Chunks of rows spanning videos of different sizes render each video in its own box."""
    from jmrn.heatmaps_file import build_heatmaps, render_box_with_context
    from jmrn.records import Video

    rng = np.random.default_rng(0)
    videos = []
    for k, (frames, persons) in enumerate([(5, 2), (7, 1), (4, 3), (6, 2), (5, 1)]):
        boxes = np.full((frames, persons, 4), np.nan, np.float32)
        boxes[:, 0] = (20 + 10 * k, 30, 200 - 5 * k, 220)
        videos.append(Video(f"v{k}", random_keypoints(rng, frames, persons, 18), IMAGE,
                            (k % 2,), "test", boxes))  # fmt: skip
    write_box_keypoints(tmp_path / "keypoints.h5", videos)
    grid = Grid(height=12, width=12)
    build_heatmaps(tmp_path / "keypoints.h5", tmp_path / "heatmaps.h5", grid, n_jobs=1,
                   chunk_videos=2, box_margin=0.1, dtype="float32")  # fmt: skip
    with HeatmapsFile(tmp_path / "heatmaps.h5") as hf:
        assert hf.heatmaps.shape == (5, 6, 18, 12, 12) and bool(hf.file.attrs["context"])
        for k, video in enumerate(videos):
            direct = render_box_with_context(video.keypoints, video.boxes[0, 0], grid, 3,
                                             "code", 0.1)  # fmt: skip
            np.testing.assert_allclose(hf.heatmaps[k], direct, rtol=1e-6, atol=1e-6)
        assert not hf.heatmaps[1, 3:].any()  # one person: no context
        assert hf.heatmaps[0, 3:].any() and hf.heatmaps[0, :3].any()


def test_box_context_needs_the_actors_box(tmp_path):
    from jmrn.heatmaps_file import build_heatmaps
    from jmrn.records import Video

    rng = np.random.default_rng(1)
    boxes = np.full((5, 2, 4), np.nan, np.float32)
    boxes[:, 1] = (0, 0, 50, 50)  # a box, but not the actor's (slot 0)
    videos = [Video("no_actor_box", random_keypoints(rng, 5, 2, 18), IMAGE, (0,), "t", boxes)]
    write_box_keypoints(tmp_path / "keypoints.h5", videos)
    with pytest.raises(ValueError, match="'no_actor_box' has no box for person slot 0"):
        build_heatmaps(tmp_path / "keypoints.h5", tmp_path / "h.h5", Grid(height=8, width=8),
                       n_jobs=1, box_margin=0.1)  # fmt: skip
    assert not (tmp_path / "h.h5").exists()
    write_box_keypoints(tmp_path / "keypoints.h5",
                        [Video("v", random_keypoints(rng, 5, 1, 18), IMAGE, (0,), "t")])
    with pytest.raises(ValueError, match="has no person boxes"):
        build_heatmaps(tmp_path / "keypoints.h5", tmp_path / "h.h5", Grid(height=8, width=8),
                       n_jobs=1, box_margin=0.1)  # fmt: skip


@pytest.mark.parametrize("value", [1e30, -1e30, 3e38, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("render", RENDERERS)
def test_an_absurd_coordinate_renders_as_the_joint_missing(value, axis, render):
    """One huge, infinite or NaN coordinate in one joint of one frame: the video renders
    exactly as with that joint missing (it used to overflow the integer window bounds and
    blank or corrupt the whole video), and as the per-frame reference renders it."""
    rng = np.random.default_rng(11)
    kp = random_keypoints(rng, 9, 2, 5, missing=0.0)
    kp[:, 1, :, :2] = kp[:, 0, :, :2] + rng.normal(0, 3, kp[:, 1, :, :2].shape)  # overlap
    grid = Grid(height=16, width=22)
    absurd, missing = kp.copy(), kp.copy()
    absurd[4, 0, 2, axis] = value
    missing[4, 0, 2] = 0
    fast = render(absurd, IMAGE, grid)
    np.testing.assert_array_equal(fast, render(missing, IMAGE, grid))
    np.testing.assert_allclose(fast, aggregate_reference(absurd, IMAGE, grid), atol=1e-5)
    assert np.isfinite(fast).all() and fast[:, 2].max() > 0  # the joint's other frames drew


@pytest.mark.parametrize("render", RENDERERS)
def test_a_joint_outside_the_grid_but_within_reach_still_draws(render):
    """Only joints beyond the blob's reach are dropped: one a cell outside the grid still
    lights the border cells, as the reference renders it."""
    grid = Grid(height=16, width=22, sigma=1.0, truncate=3.0)
    kp = np.zeros((3, 1, 2, 3), np.float32)
    scale = 16 / 240
    x_off = (22 - 320 * scale) / 2
    y = 8.5 / scale  # the centre of row 8
    kp[:, 0, 0] = ((-1.0 - x_off) / scale, y, 1.0)  # grid x = -1: reach 3 touches cells 0, 1
    kp[:, 0, 1] = ((-3.5 - x_off) / scale, y, 1.0)  # grid x = -3.5: beyond the reach
    heat = render(kp, IMAGE, grid)
    np.testing.assert_allclose(heat, aggregate_reference(kp, IMAGE, grid), atol=1e-6)
    # 3 frames, channels summing to 1 per frame; cell 0's centre is 1.5 cells away
    assert heat[:, 0, 8, 0].sum() == pytest.approx(3 * np.exp(-0.5 * 1.5**2), rel=1e-5)
    assert heat[:, 0, :, 2:].max() == 0 and heat[:, 1].max() == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"height": 0}, "Grid.height must be an integer >= 1, got 0"),
    ({"width": 21.5}, "Grid.width must be an integer >= 1, got 21.5"),
    ({"height": True}, "Grid.height must be an integer >= 1, got True"),
    ({"sigma": 0}, "must be > 0"),
    ({"sigma": float("nan")}, "Grid.sigma must be a finite number"),
    ({"truncate": -1.0}, "must be > 0"),
    ({"sigma": "1.0"}, "Grid.sigma must be a finite number"),
    ({"sigma": 0.1}, "Grid.truncate * Grid.sigma = 0.3 is below 0.5: a joint inside the grid "
                     "could draw nothing, not even the cell it lies in"),
    ({"min_conf": 1.0}, "Grid.min_conf must be in [0, 1)"),
])  # fmt: skip
def test_grid_checks_itself(kwargs, message):
    with pytest.raises(ValueError) as caught:
        Grid(**kwargs)
    assert message in str(caught.value)
    Grid(height=np.int64(8), width=9, sigma=0.25, truncate=2.0)  # half a cell: enough


@pytest.mark.parametrize("render", RENDERERS)
def test_at_the_smallest_reach_every_joint_inside_the_grid_draws_its_own_cell(render):
    """truncate * sigma = 0.5 (the least Grid allows): a joint anywhere in a cell, corners
    included, lights that cell; with less, a joint at a corner would draw nothing."""
    grid = Grid(height=8, width=8, sigma=0.25, truncate=2.0)
    corners = np.array([[0.0, 0.0], [0.999, 0.999], [0.5, 0.0], [3.0, 5.999]])  # grid units
    kp = np.zeros((3, 1, len(corners), 3), np.float32)
    kp[..., :2] = corners * 240 / 8  # a square 240x240 frame fills the 8x8 grid
    kp[..., 2] = 1.0
    heat = render(kp, (240, 240), grid).sum(axis=0)  # (V, H, W)
    cells = np.floor(corners).astype(int)
    assert (heat[np.arange(len(corners)), cells[:, 1], cells[:, 0]] > 0).all()
