"""Small I/O helpers: atomic writes, so that nothing already written is lost on a crash."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary keeps ``path``'s suffix so that writers which key on it (imageio, open3d) work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files: give the result the mode a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically. Returns ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def check_output_path(path: str | os.PathLike[str], suffixes: tuple[str, ...] = (), directory: bool = False,
                      what: str = "output") -> Path:  # fmt: skip
    """Check, before any work, that ``path`` can be written: a file path that is not a folder and
    ends in one of ``suffixes`` (when given), or a folder path that is not a file; the nearest
    existing ancestor a writable folder. Raises ``ValueError`` naming the path and what is wrong."""
    p = Path(path)
    if directory and p.exists() and not p.is_dir():
        raise ValueError(f"{what} {str(p)!r} must be a folder, but it is a file")
    if not directory:
        if p.is_dir():
            raise ValueError(f"{what} {str(p)!r} is a folder; give a file path")
        if suffixes and p.suffix.lower() not in suffixes:
            raise ValueError(f"{what} {str(p)!r} must end in {' or '.join(suffixes)} (got {p.suffix or 'no suffix'!r})")
    ancestor = p if directory and p.exists() else p.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{what} {str(p)!r} cannot be written: {str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(p)!r} cannot be written: no write permission in {str(ancestor)!r}")
    return p
