"""Files only the service can read: every data file that names subscribers (the database and
its lock files, the outbox, previews, exports) is made here, 0600 in 0700 folders, whatever the
umask.

Contract:
- `private_folder(path, ours=False)` makes the folder and any missing parents, each one it
  creates 0700; a folder that already exists is left as it is, unless `ours` (the outbox and its
  preview folder), which is tightened to 0700.
- `open_private(path, mode, ...)` is `open()` for a data file: created 0600; an existing regular
  file readable or writable by group or others is tightened to 0600 (a terminal or a pipe, such
  as /dev/stdout, is left alone). It never creates folders.
- `create_private(path)` creates (or tightens) the file without writing to it; `tighten(path)`
  tightens a file only if it exists (SQLite's `-wal` and `-shm` of an older database).
- `write_private(path, data)` replaces the file atomically (a 0600 temporary file in the same
  folder, then a rename), so a reader never sees half a file.
A file or folder owned by someone else, which we may not chmod, is left as it is.
Standard library only: the base of the newsletter.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: str | Path, *, ours: bool = False) -> Path:
    path = Path(path)
    missing = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:  # made meanwhile by another process: theirs to set
            continue
        _chmod(folder, FOLDER_MODE)  # mkdir's mode went through the umask
    if ours and path not in missing:
        _tighten(path, FOLDER_MODE)
    return path


def open_private(path: str | Path, mode: str = "w", **options):
    return open(path, mode, opener=_opener, **options)  # noqa: SIM115 - the caller closes it


def create_private(path: str | Path) -> Path:
    with open_private(path, "ab"):
        pass
    return Path(path)


def tighten(path: str | Path) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
        _chmod(Path(path), FILE_MODE)


def write_private(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _tighten_fd(f.fileno(), new=True)
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path


def _opener(path: str, flags: int) -> int:
    fd = os.open(path, flags, FILE_MODE)
    try:
        _tighten_fd(fd, new=bool(flags & os.O_CREAT))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _tighten_fd(fd: int, new: bool = False) -> None:
    """0600 for a regular file with group or other bits, or for one that may be `new` (still
    empty: its mode went through the umask, which may also have taken the owner's bits)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return
    current = stat.S_IMODE(info.st_mode)
    if current & 0o077 or (new and info.st_size == 0 and current != FILE_MODE):
        try:
            os.fchmod(fd, FILE_MODE)
        except PermissionError:  # not ours: the owner decides
            pass


def _tighten(folder: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(os.stat(folder).st_mode)
    except FileNotFoundError:
        return
    if current != mode:
        _chmod(folder, mode)


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except PermissionError:  # not ours: the owner decides
        pass


__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "create_private",
    "open_private",
    "private_folder",
    "tighten",
    "write_private",
]
