"""Private files: the instance folder (0700) and SQLite databases (0600), like the keys kept beside them.

SQLite creates a database with the process umask (usually 0644) and gives its -wal, -shm and -journal files the
database file's own mode, so creating the database file 0600 before SQLite opens it covers all of them; files an
older release left readable are tightened at start-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700 when it is ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)


def private_sqlite_file(path: Path) -> None:
    """Make sure the SQLite database at `path` (and its -wal/-shm/-journal files) exist only as 0600 files."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_COMPANIONS)):
        _tighten(file, 0o600)


def _tighten(path: Path, mode: int) -> None:
    """chmod to `mode` if the file is looser; a file we do not own is left alone (and said so)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode:
        try:
            path.chmod(mode)
        except PermissionError:
            log.warning("%s is mode %o and not ours to change; make it %o", path, current, mode)
