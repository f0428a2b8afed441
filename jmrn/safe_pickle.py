"""Load annotation pickles from the internet without letting them run code.

``pickle.load`` calls any importable function a file names. This unpickler admits only what a
skeleton annotation needs: plain containers (no globals at all) and numpy arrays, dtypes and
scalars, plus ``_codecs.encode``, which protocol-2 pickles use to store bytes.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from jmrn.records import ReadError

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}
_NUMPY_DTYPE_CLASSES = ("numpy.dtypes", "numpy")  # numpy>=1.25 pickles dtypes by class name


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        allowed = (module, name) in _ALLOWED or (
            module in _NUMPY_DTYPE_CLASSES and name.endswith("DType")
        )
        if not allowed:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only plain containers and numpy arrays "
                "are allowed in annotation pickles"
            )
        return super().find_class(module, name)


def load_pickle(path: str | Path) -> object:
    """Unpickle ``path`` with the restricted unpickler; any failure names the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise ReadError(f"{path}: {err}") from err
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise ReadError(f"{path}: not a readable pickle (truncated or corrupt: {err!r})") from err
