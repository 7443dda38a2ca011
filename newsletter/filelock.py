"""The one file lock: `flock` on a file next to the database, released by the kernel when the
holder closes it or dies (SIGKILL included), so a crashed run never leaves a stale lock.

Contract:
- `FileLock(path)`: `acquire(wait=True)` takes the lock exclusively; with `wait=False` it raises
  `Locked` at once when another process (or another `FileLock` on the same file) holds it,
  and `str()` of that error names the holder's pid and since when ("held by pid 123 since ...").
  `release()` lets go. Use it as a context manager (`with FileLock(path):`, waits).
- With `describe=True` the holder writes its pid and start time into the file, for that message
  only (the database's writer lock, taken per transaction, skips that write); the lock itself is
  the kernel's. Not reentrant: one holder per `FileLock` object; the file stays open between
  acquisitions, so taking the lock again costs one system call.
- The file is private (0600, in a folder made 0700 if missing): `newsletter.private_files`.
- Without `fcntl` (not POSIX) it does nothing: SQLite's busy timeout still orders the writers.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from newsletter.private_files import open_private, private_folder

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None


class Locked(Exception):
    """Someone else holds the lock; str() says who."""


class FileLock:
    def __init__(self, path: str | Path, *, describe: bool = True):
        self.path = Path(path)
        self.describe = describe
        self.held = False
        self._file = None

    def acquire(self, wait: bool = True) -> None:
        if fcntl is None:
            return
        if self._file is None:
            private_folder(self.path.parent)
            self._file = open_private(self.path, "a+")  # kept open, closed by close()
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self.close()
            raise Locked(f"{self.path} is held by {holder}") from None
        self.held = True
        if self.describe:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
            self._file.flush()

    def release(self) -> None:
        if self._file is None or not self.held:
            return
        self.held = False
        fcntl.flock(self._file, fcntl.LOCK_UN)
        if self.describe:
            self.close()

    def close(self) -> None:
        """Close the file (releasing the lock if held)."""
        self.held = False
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["FileLock", "Locked"]
