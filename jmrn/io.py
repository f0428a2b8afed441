"""Atomic output files: a stage that is killed leaves either the old file or nothing.

Also the faults around them: temporary files a killed stage left behind, an output folder
that cannot be written, and a training checkpoint that cannot be read.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Errors that are about writing whatever the message names (h5py names no file for them).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


class WriteError(OSError):
    """An output cannot be written: "cannot write <path>: <reason>"."""


def _reason(error: OSError) -> str:
    """The short cause ("Permission denied"), not h5py's or pathlib's long wrapping of it."""
    return os.strerror(error.errno) if error.errno else str(error)


def _one_line(error: BaseException, limit: int = 200) -> str:
    """An exception as one short line (torch's messages span several)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this machine; in doubt, True (keep its files)."""
    if pid <= 0:
        return True  # not a pid a writer put there: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's process
        return True
    return True


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Delete the temporary files of ``path`` whose writer is no longer running.

    A stage killed with SIGKILL cannot clean up, so the next write of the same output does it.
    Only files named as ``atomic_path`` names them, with the pid of a dead process, go:
    another live process's write in progress is never touched.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
    removed = []
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match is None or _process_alive(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):  # gone already, or not ours to delete
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    An output that cannot be written raises one ``WriteError`` naming ``path`` (the folder
    cannot be made, the temporary file cannot be created or filled, the rename fails).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:
        raise WriteError(f"cannot write {path}: {error.filename} exists and is not a folder") \
            from error  # fmt: skip
    except OSError as error:
        raise WriteError(f"cannot write {path}: cannot create the folder {error.filename}: "
                         f"{_reason(error)}") from error  # fmt: skip
    remove_stale_temp_files(path)
    # Not mkstemp: the writer creates the file itself, so it gets the usual umask permissions.
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            yield tmp_path
        except OSError as error:
            # Only errors about the output: the body may also read inputs, whose own errors
            # ("no such file") must not be reported as a write failure.
            if str(tmp_path) in f"{error.filename} {error}" or error.errno in _WRITE_ERRNOS:
                raise WriteError(f"cannot write {path}: {_reason(error)}") from error
            raise
        try:
            os.replace(tmp_path, path)
        except OSError as error:
            raise WriteError(f"cannot write {path}: {_reason(error)}") from error
    finally:
        with contextlib.suppress(OSError):  # never a second error over the first
            tmp_path.unlink(missing_ok=True)


def write_json(path: str | Path, obj: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch(path: str | Path, obj: object) -> None:
    """``torch.save`` atomically and byte-reproducibly.

    Saving to a file names the archive's inner folder after the (random) temporary file;
    saving to a buffer names it "archive", so equal contents give equal bytes (and DVC hashes).
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def resume_checkpoint(path: str | Path, modules: dict[str, Any], *, fingerprint: dict,
                      version: int, state_keys: tuple[str, ...], map_location: Any = None,
                      log: Callable[[str], None] | None = print) -> dict | None:  # fmt: skip
    """Load a training checkpoint into ``modules`` (name -> object with ``load_state_dict``).

    Returns the checkpoint, or None when training starts over. The checkpoint
    (checkpoints/, outside DVC) survives a killed run, so one that is truncated (a killed
    save, a full disk), unreadable, of another format, settings or input, or that does not
    fit the model must never block training for good: it is ignored with one line naming it
    (``log``; None for silence), and the next save replaces it. Always ``weights_only``: a
    checkpoint runs no code.
    """
    import torch

    path = Path(path)
    say = log or (lambda line: None)
    if not path.exists():
        return None

    def ignore(why: str) -> None:
        say(f"train: ignoring {path}: {why}; training starts over")

    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated, not a torch file, unsafe pickle: any failure
        ignore(f"cannot read it ({_one_line(error)})")
        return None
    if not isinstance(saved, dict):
        ignore(f"it holds a {type(saved).__name__}, not a checkpoint")
        return None
    missing = [k for k in ("version", "fingerprint", *modules, *state_keys) if k not in saved]
    if missing:
        ignore(f"it lacks {missing}")
        return None
    if saved["version"] != version:
        ignore(f"it has format version {saved['version']!r}, not {version}")
        return None
    theirs = saved["fingerprint"] if isinstance(saved["fingerprint"], dict) else {}
    other = [k for k, v in fingerprint.items() if theirs.get(k) != v]
    if other:
        ignore(f"it was made with other {' and '.join(other)}")
        return None
    # A failed load_state_dict can leave some weights copied: put the fresh ones back.
    fresh = {name: copy.deepcopy(module.state_dict()) for name, module in modules.items()}
    for name, module in modules.items():
        try:
            module.load_state_dict(saved[name])
        except Exception as error:  # e.g. another architecture under the same format version
            for each, fresh_module in modules.items():
                fresh_module.load_state_dict(fresh[each])
            ignore(f"its {name} does not fit ({_one_line(error)})")
            return None
    return saved
