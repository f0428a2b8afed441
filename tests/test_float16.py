"""jmrn.float16: the heatmaps writer's compiled float32 -> float16 rounding must give numpy's
float16 bit for bit (round to nearest, ties to even, subnormals, overflow), and each map's
float32 maximum. (Every one of the 2^32 float32 values: ``python -m jmrn.float16``.)"""

from __future__ import annotations

import numpy as np
import pytest

float16 = pytest.importorskip("jmrn.float16")  # needs numba, a dependency


def all_half_bits(bits: np.ndarray) -> np.ndarray:
    out = np.empty(len(bits), np.int64)
    for i, b in enumerate(bits):
        out[i] = float16.half_bits(np.uint32(b))
    return out


def test_every_exponent_rounds_as_numpy():
    """Every float32 exponent, both signs, with random significands and the ones where
    rounding is decided: ties (even and odd), just above and below a tie, all ones (the
    carry into the exponent) and zero."""
    rng = np.random.default_rng(0)
    low = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2FFF, 0x3000, 0x3001,
                    0x7FFFFF, 0x7FE000, 0x7FF000, 0x7FEFFF, 0x400000, 0x401000],
                   dtype=np.uint32)  # fmt: skip
    significands = np.concatenate([low, rng.integers(0, 1 << 23, 200, dtype=np.uint32)])
    # subnormal float16 results lose 1-11 more bits: ties at every one of those positions
    ties = np.array([1 << k for k in range(24)] + [(1 << k) | (1 << (k + 1)) for k in range(22)],
                    dtype=np.uint32) & 0x7FFFFF  # fmt: skip
    significands = np.concatenate([significands, ties, ties + 1, ties - 1]) & 0x7FFFFF
    exponents = np.arange(0, 255, dtype=np.uint32) << 23  # every finite exponent
    bits = (exponents[:, None] | significands[None, :]).reshape(-1)
    bits = np.concatenate([bits, bits | 0x80000000])
    values = bits.view(np.float32)
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16).view(np.uint16).astype(np.int64)
    got = all_half_bits(bits)
    wrong = np.flatnonzero(got != expected)
    assert len(wrong) == 0, [(hex(bits[i]), hex(got[i]), hex(expected[i])) for i in wrong[:5]]
    # the cases that matter are there: subnormal, rounding to zero, overflow to infinity
    half = expected & 0x7FFF
    assert ((half > 0) & (half < 0x400)).sum() > 100 and (half == 0).sum() > 100
    assert (half == 0x7C00).sum() > 100


def test_nan_and_infinity_are_refused():
    for value in (np.inf, -np.inf, np.nan):
        assert float16.half_bits(np.array([value], np.float32).view(np.uint32)[0]) == -1
    row = np.zeros((1, 2, 3, 5), np.float32)
    row[0, 1, 2, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or an infinity"):
        float16.to_float16(row)


@pytest.mark.parametrize("shape", [(3, 4, 16, 22), (2, 3, 5, 7), (1, 1, 1, 1)])
def test_rows_round_as_numpy_with_their_maxima(shape):
    """Sparse rows (an odd number of values too), a map that is all zeros, one with no zero
    at all and only negative values, and values that round to zero: the stored bits, the
    non-zero count and each map's maximum are numpy's."""
    rng = np.random.default_rng(sum(shape))
    row = rng.uniform(0, 3, shape).astype(np.float32) * (rng.random(shape) < 0.1)
    row[0, 0] = 0.0
    if shape[1] > 1:
        row[0, 1] = -rng.uniform(1, 2, shape[2:])  # negative everywhere: max below 0
    row.reshape(-1)[-1] = 1e-9  # rounds to float16 zero: stored, but not counted
    stored, peaks, nonzero = float16.to_float16(row)
    expected = row.astype(np.float16)
    np.testing.assert_array_equal(stored.view(np.uint16), expected.view(np.uint16))
    np.testing.assert_array_equal(peaks, row.max(axis=(2, 3)))
    assert peaks.dtype == np.float32 and stored.shape == shape
    assert nonzero == np.count_nonzero(expected)


def test_a_reused_buffer_holding_old_values_is_cleared():
    """``quantise_row`` clears ``stored`` itself (the writer passes uninitialised memory):
    a buffer full of another row's bits must come out as this row's, zeros included."""
    row = np.zeros((2, 3, 4, 5), np.float32)
    row[1, 2, 3, 4] = 0.75
    stored = np.full(row.size, 0x3C00, np.uint16)  # float16 1.0 everywhere
    peaks = np.empty(6, np.float32)
    nonzero = float16.quantise_row(row.reshape(-1).view(np.uint64), 6, stored, peaks)
    np.testing.assert_array_equal(stored.view(np.float16), row.reshape(-1).astype(np.float16))
    assert nonzero == 1 and peaks[-1] == np.float32(0.75) and peaks[0] == 0
