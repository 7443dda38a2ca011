"""The site's search index: Pagefind, run on the published pages of a built output folder.

Contract: `index(output, pages)` runs the Pagefind binary (the pinned PyPI package
`pagefind[bin]`) on `pages`, the output-relative paths of the HTML files of the published
articles and pages that the build wrote (plugins/search collects them; `remember(output,
pages)` keeps them for a later `index_in_background`), and puts its bundle (the index, its
fragments, `pagefind-ui.js`, `pagefind-ui.css`) in `output/pagefind/`. Only those files are
indexed, never whatever else lies in `output/`: a page an earlier build left there (an article
since deleted, or back to draft) is not found. Pagefind reads them from a folder of hard links
that mirrors their paths, so results link to the same URLs. Within each page it indexes the
element the theme marks `data-pagefind-body` (the article, not the menus or the footer). The new
bundle replaces the old one in one rename: never half old, half new, and no stale fragments pile
up. No published page: no bundle (an older one is removed). Pagefind's other UIs (component,
modular, the highlighter), which the search page does not load, are left out. Returns the
bundle's folder (or None), or raises `SearchError` with Pagefind's message; `weigh(folder)` says
what a bundle weighs (files, bytes, bytes gzipped).

`index_while_serving(output)` is `invoke serve`'s: after its first build it indexes at once (the
site is whole when serving starts), after each rebuild it calls `index_in_background(output)`,
which indexes the pages last remembered for `output` in a thread, so a rebuild (and the page's
reload) does not wait for Pagefind; a rebuild while it runs makes it run once more afterwards;
`wait()` waits for it to finish. Work folders (`output/.pagefind-PID-...`) that a process which
has died left behind are removed by the next `index`.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BUNDLE = "pagefind"  # output/pagefind/: the folder the search page loads Pagefind from
# Pagefind's other UIs, which the search page does not load: not published (283 KB less).
UNUSED = ("pagefind-component-ui.js", "pagefind-component-ui.css", "pagefind-modular-ui.js",
          "pagefind-modular-ui.css", "pagefind-highlight.js")  # fmt: skip


class SearchError(Exception):
    """Pagefind could not index the site; the message is Pagefind's."""


@dataclass(frozen=True)
class Bundle:
    files: int
    bytes: int
    gzipped: int


def binary() -> str:
    """The Pagefind executable that the `pagefind_bin` package ships (installed with pagefind)."""
    try:
        from pagefind_bin import get_executable
    except ImportError as error:
        raise SearchError(
            "Pagefind is not installed: run `bash bin/setup` (it installs pagefind[bin])"
        ) from error
    return str(get_executable())


def index(output: str | os.PathLike, pages: Iterable[str]) -> Path | None:
    """Index `pages` of `output` into `output/pagefind/` (see the module's docstring)."""
    output = Path(output)
    target = output / BUNDLE
    pages = sorted({page for page in pages if (output / page).is_file()})
    if not pages:
        shutil.rmtree(target, ignore_errors=True)
        return None
    _remove_abandoned_work(output)
    work = output / f".pagefind-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(work, ignore_errors=True)
    source, fresh = work / "site", work / BUNDLE  # Pagefind makes `fresh`: usual permissions
    try:
        for page in pages:
            (source / page).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(output / page, source / page)
            except OSError:
                shutil.copyfile(output / page, source / page)
        result = subprocess.run(
            [binary(), "--site", str(source), "--output-path", str(fresh), "--quiet"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise SearchError(f"Pagefind failed:\n{result.stdout}{result.stderr}".strip())
        for name in UNUSED:
            (fresh / name).unlink(missing_ok=True)
        _swap(fresh, target, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _swap(fresh: Path, target: Path, work: Path) -> None:
    """Put `fresh` in `target`'s place, the old one into `work`; another process indexing the
    same folder at the same moment (`invoke build` while `invoke serve` runs) may swap in between:
    the last one wins."""
    for attempt in range(10):
        try:
            os.replace(target, work / f"old-{attempt}")
        except FileNotFoundError:
            pass
        try:
            os.replace(fresh, target)
            return
        except OSError as error:  # a bundle came back in between: swap again
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    raise SearchError(f"could not put the new index in {target}: another build keeps writing it")


def _remove_abandoned_work(output: Path) -> None:
    """Remove the work folders of indexing processes that died (a serve stopped with SIGTERM)."""
    for folder in output.glob(".pagefind-*-*"):
        try:
            os.kill(int(folder.name.split("-")[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # another user's process, alive


def weigh(folder: str | os.PathLike) -> Bundle:
    """Files, bytes and bytes gzipped (level 6; Pagefind's index files are gzipped already)."""
    files = [path for path in Path(folder).rglob("*") if path.is_file()]
    raw = [path.read_bytes() for path in files]
    return Bundle(
        files=len(files),
        bytes=sum(len(data) for data in raw),
        gzipped=sum(len(gzip.compress(data, compresslevel=6)) for data in raw),
    )


_remembered: dict[str, list[str]] = {}
_served: set[str] = set()
_lock = threading.Lock()
_again = threading.Event()
_worker: threading.Thread | None = None


def remember(output: str | os.PathLike, pages: Iterable[str]) -> None:
    with _lock:
        _remembered[str(Path(output).resolve())] = list(pages)


def remembered(output: str | os.PathLike) -> list[str]:
    with _lock:
        return list(_remembered.get(str(Path(output).resolve()), ()))


def index_in_background(output: str | os.PathLike) -> None:
    """Index `output` in a thread, one run at a time (see the module's docstring)."""
    global _worker
    with _lock:
        _again.set()
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(
                target=_index_while_asked, args=(Path(output),), name="search-index", daemon=True
            )
            _worker.start()


def index_while_serving(output: str | os.PathLike) -> None:
    """`invoke serve`'s step after each build: the first time, index now (the site is whole when
    serving starts); then in the background. A failure is printed, never stops the serving."""
    key = str(Path(output).resolve())
    with _lock:
        first = key not in _served
        _served.add(key)
    if not first:
        index_in_background(output)
        return
    try:
        index(output, remembered(output))
    except (SearchError, OSError) as error:
        print(f"Search index not updated: {error}", file=sys.stderr)


def wait(timeout: float | None = None) -> bool:
    """Wait for the background indexing to finish; False if it still runs after `timeout` s."""
    with _lock:
        worker = _worker
    if worker is not None:
        worker.join(timeout)
        return not worker.is_alive()
    return True


def _index_while_asked(output: Path) -> None:
    global _worker
    while True:
        with _lock:
            if not _again.is_set():
                _worker = None
                return
            _again.clear()
        try:
            index(output, remembered(output))
        except (SearchError, OSError) as error:
            print(f"Search index not updated: {error}", file=sys.stderr)


__all__ = [
    "BUNDLE",
    "Bundle",
    "SearchError",
    "index",
    "index_in_background",
    "index_while_serving",
    "remember",
    "remembered",
    "wait",
    "weigh",
]
