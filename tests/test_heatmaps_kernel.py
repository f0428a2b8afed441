"""The compiled renderer's own arithmetic (``jmrn.heatmaps_kernel``); its agreement with the
reference renderer is tested in test_heatmaps.py."""

import numpy as np
import pytest

from jmrn.heatmaps import temporal_weights

kernel = pytest.importorskip("jmrn.heatmaps_kernel")


def ulps_from_numpy(x: np.ndarray) -> np.ndarray:
    """|kernel exp - numpy exp| in units in the last place of numpy's value."""
    values = x.copy()
    kernel.exp_inplace(values, np.empty_like(values))
    expected = np.exp(x)
    return np.abs(values - expected) / np.spacing(expected)


def test_exp_is_within_two_ulp_of_numpy_everywhere_it_is_used():
    """The window Gaussians take exp of arguments in a few units around 0; a dense sweep
    there and a sparse one over the whole clipped range, plus the points where the range
    reduction switches n (odd multiples of ln 2 / 2)."""
    rng = np.random.default_rng(0)
    near = np.linspace(-20, 20, 400_001)
    wide = rng.uniform(-708, 709, 200_000)
    switches = (np.arange(-1021, 1023) + 0.5) * np.log(2)
    switches = np.concatenate([np.nextafter(switches, -np.inf), switches,
                               np.nextafter(switches, np.inf)])  # fmt: skip
    for x in (near, wide, switches[(switches > -708) & (switches < 709)]):
        assert ulps_from_numpy(x).max() <= 2


def test_exp_of_zero_and_small_integers_is_exact_to_rounding():
    x = np.array([0.0, 1.0, -1.0, 2.0, -0.5])
    values = x.copy()
    kernel.exp_inplace(values, np.empty_like(values))
    assert values[0] == 1.0
    np.testing.assert_allclose(values, np.exp(x), rtol=4e-16)


def test_exp_clips_its_argument_instead_of_overflowing():
    """Documented: arguments are clipped to [-708, 709], so no inf and no subnormals."""
    values = np.array([-1e6, -708.0, 709.0, 1e6])
    kernel.exp_inplace(values, np.empty_like(values))
    assert np.isfinite(values).all()
    np.testing.assert_allclose(values, np.exp([-708.0, -708.0, 709.0, 709.0]), rtol=1e-15)


def test_render_overwrites_whatever_its_output_held():
    """``aggregate`` hands ``render`` uninitialised memory, which it clears itself (without
    the GIL): a buffer of old values must give the same heatmaps as a zeroed one."""
    rng = np.random.default_rng(3)
    kp = np.zeros((20, 2, 5, 3), np.float32)
    kp[..., 0], kp[..., 1] = rng.uniform(0, 320, (20, 2, 5)), rng.uniform(0, 240, (20, 2, 5))
    kp[..., 2] = rng.uniform(0.2, 1, (20, 2, 5))
    weights = temporal_weights(20, 3)
    args = (kp, weights, 64 / 240, (86 - 320 * 64 / 240) / 2, 0.0, 1.0, 3.0, 0.0)
    clean, dirty = np.zeros((3, 5, 64, 86), np.float32), np.full((3, 5, 64, 86), 7.0, np.float32)
    kernel.render(*args, clean)
    kernel.render(*args, dirty)
    assert clean.max() > 0
    np.testing.assert_array_equal(dirty, clean)


@pytest.mark.parametrize("discretisation", ["code", "continuous"])
@pytest.mark.parametrize("channels", [2, 3, 4, 7])
def test_frame_pairs_hold_every_non_zero_weight_and_move_forward(channels, discretisation):
    """The kernel keeps one channel pair (p, p + 1) per frame: every frame's non-zero
    weights must lie in it, and p must never fall (the carry to the next pair)."""
    for frames in (channels, channels + 1, 17, 100):
        weights = temporal_weights(frames, channels, discretisation)
        pair = kernel.frame_pairs(weights)
        assert (np.diff(pair) >= 0).all() and pair.min() >= 0 and pair.max() <= channels - 2
        held = np.zeros_like(weights)
        held[pair, np.arange(frames)] = weights[pair, np.arange(frames)]
        held[pair + 1, np.arange(frames)] = weights[pair + 1, np.arange(frames)]
        np.testing.assert_array_equal(held, weights)


def test_render_refuses_weights_outside_one_adjacent_pair():
    """Weights on channels 0 and 2 at once (or a pair moving back in time) cannot be kept in
    one pair buffer: a clear error, not a silently wrong heatmap."""
    kp = np.full((4, 1, 1, 3), 1.0, np.float32)
    out = np.empty((3, 1, 8, 8), np.float32)
    skipping = np.array([[0.5, 1, 0, 0], [0, 0, 1, 0], [0.5, 0, 0, 1]])
    backwards = np.array([[1.0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    for weights in (skipping, backwards):
        with pytest.raises(ValueError, match="adjacent"):
            kernel.render(kp, weights, 1.0, 0.0, 0.0, 1.0, 3.0, 0.0, out)
