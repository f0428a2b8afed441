"""LZF encoding of mostly-zero HDF5 chunks, for the heatmaps stage's writer (numba).

A heatmap row is ~98 % zeros (the blobs of a video cover a few percent of the grid).
Compressing it with h5py's own lzf filter means handing 0.6 MB per video to HDF5, which
costs ~2.4 ms per video: more than rendering it. This encoder writes a valid LZF stream in
one pass, spending work only where the data is non-zero: non-zero stretches become literal
runs, and each zero run one or more back-references to the byte before (offset 1), which
the decoder expands into zeros. The bytes go into the file with ``write_direct_chunk``, and
any reader decodes them with the standard lzf filter (h5py's), as if h5py had compressed
them; only the compressed bytes differ from what liblzf would have chosen.

The LZF format (liblzf's lzf_d.c): a control byte c < 32 is followed by c + 1 literal bytes;
otherwise len = c >> 5 (7 means: add the next byte), the offset is ((c & 31) << 8) + the
next byte + 1, and len + 2 bytes are copied from that far back (3 to 264 bytes).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_LITERAL = 32  # bytes in one literal run
MAX_COPY = 264  # bytes in one back-reference: 7 + 255 + 2
MIN_ZERO_RUN = 8  # shorter zero runs stay literal (a reference costs 2-3 bytes)


@njit(cache=True, nogil=True)
def _put_literals(data, start, end, out, o):
    """Copy data[start:end] to out[o:] as literal runs; return the new output position."""
    while start < end:
        n = min(end - start, MAX_LITERAL)
        out[o] = n - 1
        out[o + 1:o + 1 + n] = data[start:start + n]
        o += n + 1
        start += n
    return o


@njit(cache=True, nogil=True)
def _encode(data, words, out):
    """Encode ``data`` (uint8) into ``out``; return the encoded length, or -1 when it would
    not be shorter than the input (the caller then stores the chunk uncompressed).
    ``words`` is the same memory seen as uint64, to skip zero runs 8 bytes at a time."""
    n = data.shape[0]
    limit = out.shape[0]
    o = 0
    literal = 0  # first byte not yet written
    i = 0
    while i < n:
        if data[i] != 0:
            i += 1
            continue
        j = i + 1  # the zero run [i, j)
        while j < n and j % 8 != 0 and data[j] == 0:
            j += 1
        while j + 8 <= n and j % 8 == 0 and words[j // 8] == 0:
            j += 8
        while j < n and data[j] == 0:
            j += 1
        if j - i < MIN_ZERO_RUN:
            i = j
            continue
        # the run's first zero goes out as a literal: the references copy the byte before
        if o + (i + 1 - literal) + (i + 1 - literal) // MAX_LITERAL + 1 >= limit:
            return -1
        o = _put_literals(data, literal, i + 1, out, o)
        k = i + 1
        while j - k >= 3:
            copy = min(j - k, MAX_COPY)
            if o + 3 >= limit:
                return -1
            if copy - 2 < 7:
                out[o], out[o + 1] = (copy - 2) << 5, 0
                o += 2
            else:
                out[o], out[o + 1], out[o + 2] = 7 << 5, copy - 2 - 7, 0
                o += 3
            k += copy
        literal = k  # 0-2 zeros left over: literals with what follows
        i = j
    if o + (n - literal) + (n - literal) // MAX_LITERAL + 1 >= limit:
        return -1
    return _put_literals(data, literal, n, out, o)


def lzf_encode(data: np.ndarray) -> bytes | None:
    """The LZF stream of a C-contiguous array's bytes, or None if it does not compress."""
    raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    words = raw[: len(raw) // 8 * 8].view(np.uint64)
    out = np.empty(len(raw), np.uint8)
    size = _encode(raw, words, out)
    return None if size < 0 else out[:size].tobytes()
