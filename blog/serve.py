"""Serve output/ on 127.0.0.1 with live reload, rebuilding when content, theme or settings change.

Contract: `serve()` builds once, then serves the output folder with livereload (the page reloads
itself after each rebuild), alongside the helper servers given (e.g. Isso for comments). A broken
rebuild prints its error and keeps the last good site up. Ctrl-C stops everything. `invoke serve`
rebuilds with the content cache (`blog.build.build(cache=...)`): a saved article is read again and
only the pages it touches are rendered; a change under theme/ or plugins/ or to pelicanconf.py
changes the cache's fingerprint, which empties it, so everything is rebuilt. A save is noticed by
the system's file events (`EventWatcher`), not only by livereload's poll every 0.8 s.
`running_helpers()` is the block in which `invoke serve` starts its helper processes and serves:
inside it SIGTERM and SIGHUP stop everything as Ctrl-C does (SystemExit, status 128 + signal),
and on the way out each helper is terminated, killed if it outlives a timeout, and waited for.
`start_comments()` starts Isso for `invoke serve` unless its port is held by another program.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from livereload.watcher import Watcher

from blog.build import ROOT, BuildError
from blog.comments import IssoServer, start_local_isso

log = logging.getLogger(__name__)
WATCHED = ["content", "theme", "plugins", "pelicanconf.py"]
STOP_SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]


def serve(
    rebuild: Callable[[], object],
    output: str = "output",
    host: str = "127.0.0.1",
    port: int = 8000,
    helpers: list[subprocess.Popen] | None = None,
    watched: list[str] | None = None,
) -> None:
    from livereload import Server

    def safe_rebuild():
        try:
            rebuild()
        except BuildError as error:
            print(f"\nBuild failed, still serving the last good site:\n{error}\n")

    watcher = EventWatcher()
    try:
        safe_rebuild()
        server = Server(watcher=watcher)
        for path in watched or WATCHED:
            server.watch(str(ROOT / path), safe_rebuild, delay=0.5)
        print(f"Serving {output}/ at http://localhost:{port}/ (Ctrl-C to stop)")
        server.serve(root=str(ROOT / output), host=host, port=port, open_url_delay=None)
    finally:
        watcher.stop()
        stop_helpers(helpers or [])


class EventWatcher(Watcher):
    """livereload's watcher, also woken by the system's file events (watchfiles: inotify on Linux):
    a save is rebuilt at once instead of at livereload's next poll (every 0.8 s; that poll still
    runs, as a safety net)."""

    def __init__(self):
        super().__init__()
        self._stop = threading.Event()

    def start(self, callback):
        import watchfiles
        from tornado.ioloop import IOLoop

        loop = IOLoop.current()
        paths = [path for path in self._tasks if os.path.exists(path)]

        def wake_on_events():
            changes = watchfiles.watch(
                *paths, debounce=50, step=20, stop_event=self._stop, raise_interrupt=False
            )
            for _ in changes:
                loop.add_callback(callback)  # examine() runs on the server's own thread

        if paths:
            threading.Thread(target=wake_on_events, name="file-events", daemon=True).start()
        return False  # livereload polls as well

    def stop(self):
        self._stop.set()


def stop_helpers(helpers: list[subprocess.Popen], timeout: float = 5.0) -> None:
    """Terminate every helper, kill those still running after `timeout` s, and reap them all."""
    for process in helpers:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in helpers:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exit_on_signal(signum, frame):
    for other in STOP_SIGNALS:  # a second signal must not cut the cleanup short
        signal.signal(other, signal.SIG_IGN)
    raise SystemExit(128 + signum)


@contextmanager
def running_helpers(timeout: float = 5.0) -> Iterator[list[subprocess.Popen]]:
    """A list to put helper processes in; they are stopped on leaving, even on SIGTERM/SIGHUP."""
    helpers: list[subprocess.Popen] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, _exit_on_signal) for signum in STOP_SIGNALS}
    try:
        yield helpers
    finally:
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        try:
            stop_helpers(helpers, timeout)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if another socket holds host:port (a listener, or a bound socket), as a bind shows."""
    with socket.socket() as sock:
        if os.name != "nt":  # a socket left in TIME_WAIT does not count; a listener still does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def start_comments(site_url: str, port: int = 8080) -> IssoServer | None:
    """Isso on 127.0.0.1:port for `invoke serve`; None, after saying why, if it cannot be ours."""
    if importlib.util.find_spec("isso") is None:
        return None
    refused = (
        f"Comments are off: port {port} is in use by another program; "
        "stop it or run `invoke serve --isso-port N`"
    )
    if port_in_use(port):
        print(refused)
        return None
    isso = start_local_isso(site_url, port=port)
    if isso is not None and isso.process.poll() is not None:  # another program answered for it
        isso.stop()
        print(refused)
        return None
    return isso
