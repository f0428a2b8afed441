"""The heatmaps stage's writer: the LZF encoder, stored chunks and the whole file, read back
through h5py's own lzf filter, must give exactly the rendered values cast to the stored dtype."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from jmrn import heatmaps_file
from jmrn.heatmaps import Grid, aggregate
from jmrn.heatmaps_file import HeatmapsFile, build_heatmaps, stored_chunk
from jmrn.keypoints_file import KeypointsFile

lzf = pytest.importorskip("jmrn.lzf")  # needs numba, a dependency


def write_rows(path: Path, rows: list[np.ndarray], chunks: list[tuple[int, bytes]],
               dtype, compression: str | None) -> np.ndarray:  # fmt: skip
    """Write stored chunks as the stage does, close the file, and read the rows back.
    (Closed first: HDF5 2.0 reads a direct chunk's filter mask as 0 until the file is
    flushed, so a raw chunk read back in the same session would be 'decompressed'.)"""
    shape = rows[0].shape
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("rows", shape=(len(rows), *shape), dtype=dtype,
                              chunks=(1, *shape), compression=compression)  # fmt: skip
        for i, (mask, data) in enumerate(chunks):
            ds.id.write_direct_chunk((i, *(0,) * len(shape)), data, mask)
    with h5py.File(path, "r") as f:
        return f["rows"][:]


def sparse_bytes(rng, n: int) -> np.ndarray:
    data = np.zeros(n, np.uint8)
    for _ in range(int(rng.integers(0, 8))):
        start, length = int(rng.integers(0, n)), int(rng.integers(1, 300))
        data[start:start + length] = rng.integers(0, 256, len(data[start:start + length]))
    return data


def test_lzf_streams_decode_to_the_input_through_h5pys_filter(tmp_path):
    """Random lengths (not multiples of 8), zero runs of every length around the encoder's
    thresholds (a run too short to reference, one reference, the longest one and one byte
    more, leftovers of 1-2 bytes), all-zero, and incompressible data stored raw."""
    rng = np.random.default_rng(0)
    rows = [sparse_bytes(rng, int(rng.integers(1, 3000))) for _ in range(300)]
    for run in (lzf.MIN_ZERO_RUN - 1, lzf.MIN_ZERO_RUN, lzf.MIN_ZERO_RUN + 1, 1 + 264,
                1 + 264 + 1, 1 + 264 + 2, 1 + 264 + 3, 1 + 2 * 264, 5000):  # fmt: skip
        for lead in (0, 1, 7, 33):
            row = np.concatenate([rng.integers(1, 256, lead), np.zeros(run),
                                  rng.integers(1, 256, 3)]).astype(np.uint8)  # fmt: skip
            rows.append(row)
    size = 6001  # one shape for all: the rows above end in zeros up to it
    rows = [np.pad(r, (0, size - len(r))) for r in rows]
    rows += [np.zeros(size, np.uint8), rng.integers(0, 256, size).astype(np.uint8)]
    encoded = [lzf.lzf_encode(r) for r in rows]
    assert encoded[-2] is not None and len(encoded[-2]) < 200  # zeros shrink ~100x
    assert encoded[-1] is None  # random bytes do not shrink: stored raw
    chunks = [(1, r.tobytes()) if e is None else (0, e) for r, e in zip(rows, encoded,
                                                                        strict=True)]  # fmt: skip
    back = write_rows(tmp_path / "rows.h5", rows, chunks, np.uint8, "lzf")
    np.testing.assert_array_equal(back, np.stack(rows))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("compression", ["lzf", None])
@pytest.mark.parametrize("encoder", ["numba", "h5py"])
def test_stored_chunks_hold_the_rendered_values_exactly(tmp_path, monkeypatch, dtype,
                                                        compression, encoder):  # fmt: skip
    """Rendered rows, an empty row, a dense row (stored raw) and values that round to 0 in
    float16: read back equal to ``row.astype(dtype)`` bit for bit, with its non-zero count
    and its maps' maxima."""
    if encoder == "h5py":  # the fallback without numba
        monkeypatch.setattr(heatmaps_file, "_lzf_encoder", lambda: None)
        monkeypatch.setattr(heatmaps_file, "_float16_rounder", lambda: None)
    rng = np.random.default_rng(1)
    grid = Grid(height=16, width=22)
    rows = []
    for persons in (1, 2, 3):
        kp = np.zeros((20, persons, 5, 3), np.float32)
        kp[..., 0] = rng.uniform(0, 320, kp.shape[:3])
        kp[..., 1] = rng.uniform(0, 240, kp.shape[:3])
        kp[..., 2] = rng.uniform(0.1, 1, kp.shape[:3])
        rows.append(aggregate(kp, (240, 320), grid))
    rows.append(np.zeros_like(rows[0]))
    rows.append(rng.uniform(0, 9, rows[0].shape).astype(np.float32))  # incompressible
    tiny = np.zeros_like(rows[0])
    tiny[0, 0, :3, :3] = [[1e-9, 2.0, 1e-8], [3e-5, 0.5, 6e-8], [1.0, 1e-30, 0.25]]
    rows.append(tiny)
    stored = [stored_chunk(row, dtype, compression) for row in rows]
    back = write_rows(tmp_path / "h.h5", rows, [s[:2] for s in stored], dtype, compression)
    for row, got, (_, _, nonzero, peaks) in zip(rows, back, stored, strict=True):
        expected = row.astype(dtype)
        np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))
        assert nonzero == np.count_nonzero(expected)
        assert peaks.dtype == np.float32
        np.testing.assert_array_equal(peaks, row.max(axis=(2, 3)))
    if compression == "lzf":
        assert stored[-2][0] == 1 and stored[0][0] == 0  # raw (filter skipped) / compressed


def test_the_stage_stores_exactly_the_rendered_videos(tmp_path, tiny_heatmaps):
    """build_heatmaps with two workers: every row of the file is aggregate() of its video,
    cast to float16, and max_norm is its float32 maximum."""
    keypoints = tiny_heatmaps.parent / "keypoints.h5"
    grid = Grid(height=16, width=22)
    build_heatmaps(keypoints, tmp_path / "h.h5", grid, n_jobs=2, chunk_videos=4)
    with KeypointsFile(keypoints) as kf, HeatmapsFile(tmp_path / "h.h5") as hf:
        assert len(hf) == len(kf) > 8  # several chunks, several tasks per worker
        for i in range(len(kf)):
            direct = aggregate(kf.keypoints(i), tuple(kf.image_size[i]), grid)
            np.testing.assert_array_equal(hf.heatmaps[i], direct.astype(np.float16))
            np.testing.assert_array_equal(hf.max_norm[i], direct.max(axis=(2, 3)))
