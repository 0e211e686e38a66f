"""Files that hold alert state, history or reports: readable by their owner only.

They name every service and its incidents (the mesh's topology and its outage history), so
they are created ``0600`` whatever the umask, in a ``0700`` directory when meshalert creates
the directory.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

PRIVATE_MODE = 0o600
"""Alert state and history name every service and its incidents: owner only."""


def make_private_file(path: str) -> None:
    """Create the file (and its directory) readable by the owner only, whatever the umask,
    and tighten a file an older version left readable to others. For a SQLite database the
    ``-wal`` and ``-shm`` files are tightened too (SQLite creates them with the database
    file's permissions)."""
    parent = Path(path).parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != PRIVATE_MODE:
            os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with suppress(FileNotFoundError):
            os.chmod(path + suffix, PRIVATE_MODE)


def write_private_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, created or truncated, owner-only."""
    make_private_file(str(path))
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
