"""Private files and folders: 0700 folders and 0600 files, whatever the process umask.

Everything corral keeps at rest (the store, the master key, run folders with screenshots, traces,
downloads and results) is readable by its owner only. ``mkdir(mode=...)`` and ``open(..., mode)``
honour the umask, which can only take bits away (and with umask 0o777 leaves the owner locked out
of their own files), so each helper sets the exact mode explicitly after creating.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "append_private",
    "private_dir",
    "tighten",
    "write_private",
]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its missing parents) as 0700 folders; returns ``path``.

    Existing parents are left alone: they may be the user's own (``/tmp``, ``~``).
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        # Another process of this user may create it meanwhile: tightened below like ours.
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR)
        os.chmod(folder, PRIVATE_DIR)
    if not missing:
        os.chmod(path, PRIVATE_DIR)
    return path


def tighten(path: Path, mode: int) -> bool:
    """Take away every permission ``path`` has beyond ``mode``; True if it had any."""
    try:
        current = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return False
    if current & ~mode == 0:
        return False
    os.chmod(path, current & mode)
    return True


def _open(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file (replacing its content)."""
    with os.fdopen(_open(path, os.O_WRONLY | os.O_TRUNC), "wb") as fh:
        fh.write(data)


def append_private(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path``, created 0600 if missing."""
    with os.fdopen(_open(path, os.O_WRONLY | os.O_APPEND), "ab") as fh:
        fh.write(data)
