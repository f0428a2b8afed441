"""Small helpers shared by the readers."""

from __future__ import annotations

from pathlib import Path

from jmrn.records import ReadError


def class_names_from_file(path: str | Path) -> list[str]:
    """Class names, one per line (index = 0-based line); blank lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"class list {path} does not exist")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ReadError(f"class list {path} is empty")
    if len(set(names)) != len(names):
        raise ReadError(f"class list {path} names a class twice")
    return names


def find_single_file(raw_dir: Path, name: str | None, pattern: str) -> Path:
    """``raw_dir/name`` if given, else the only file matching ``pattern`` in ``raw_dir``."""
    raw_dir = Path(raw_dir)
    if name:
        path = raw_dir / name
        if not path.is_file():
            raise ReadError(f"{path} does not exist")
        return path
    found = sorted(raw_dir.glob(pattern))
    if len(found) != 1:
        raise ReadError(f"expected exactly one {pattern} in {raw_dir}, found "
                        f"{[p.name for p in found] or 'none'}; set the dataset's source.file")
    return found[0]
