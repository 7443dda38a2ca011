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
A missing page is answered with the theme's 404 page (output/404.html) and status 404; a broken
build prints one line per problem after "Build failed, still serving the last good site:", never
a traceback, and not Pelican's own "ERROR: Could not process FILE" for a file that line names
(kept when the line refers to "the error above"); livereload's log lines are printed once.
`serving(settings)` is the block in which `invoke serve` records what it builds with (its site
address, comments, form) in var/serve.json, so that `invoke build` meanwhile builds the same
(`serve_settings()`: those settings while that `invoke serve` is alive, else None).
`preview()` is `invoke preview`: publishconf.py built into output-preview/ (never output/) with the
address it is served at, http://localhost:PORT, then served there until Ctrl-C.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from livereload.handlers import StaticFileHandler
from livereload.watcher import Watcher

from blog.build import ROOT, BuildError, build, load_settings
from blog.comments import IssoServer, start_local_isso
from blog.ports import port_in_use

log = logging.getLogger(__name__)
WATCHED = ["content", "theme", "plugins", "pelicanconf.py"]
STOP_SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
STATE = ROOT / "var" / "serve.json"  # what a running `invoke serve` builds with
PREVIEW = ROOT / "output-preview"  # `invoke preview`'s own folder (gitignored)
NOT_FOUND_PAGE = "404.html"  # the theme's 404 page, in the output folder


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
        held: list[logging.LogRecord] = []
        hold = HoldCouldNotProcess(held)
        PELICAN_GENERATORS.addFilter(hold)
        failure = None
        try:
            rebuild()
        except BuildError as error:
            failure = error
        finally:
            PELICAN_GENERATORS.removeFilter(hold)
            for record in held:  # said again by our line: dropped; else shown, as "above"
                if not reported(record, str(failure or "")):
                    PELICAN_GENERATORS.handle(record)
        if failure is not None:
            print(failure_message(failure), flush=True)

    watcher = EventWatcher()
    try:
        safe_rebuild()
        server = Server(watcher=watcher)
        server.SFH = ThemeNotFoundHandler
        for name in ("livereload", "tornado"):  # their own handler prints; the root's would again
            logging.getLogger(name).propagate = False
        for path in watched or WATCHED:
            server.watch(str(ROOT / path), safe_rebuild, delay=0.5)
        print(f"Serving {output}/ at http://localhost:{port}/ (Ctrl-C to stop)")
        server.serve(root=str(ROOT / output), host=host, port=port, open_url_delay=None)
    finally:
        watcher.stop()
        stop_helpers(helpers or [])


def failure_message(error: BuildError) -> str:
    """One line per problem: 'Build failed, still serving the last good site: PROBLEM'."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [repr(error)]
    if len(lines) == 2 and lines[0].endswith(":"):  # "1 content problem(s), ...:" and the one
        lines = lines[1:]
    head = "Build failed, still serving the last good site: "
    return head + "\n  ".join(lines)


PELICAN_GENERATORS = logging.getLogger("pelican.generators")
COULD_NOT_PROCESS = "Could not process %s"  # Pelican's record for a file it skipped


class HoldCouldNotProcess(logging.Filter):
    """Holds back Pelican's "Could not process FILE" records during one of serve's rebuilds."""

    def __init__(self, held: list[logging.LogRecord]):
        super().__init__()
        self.held = held

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == COULD_NOT_PROCESS and record.args:
            self.held.append(record)
            return False
        return True


def reported(record: logging.LogRecord, error: str) -> bool:
    """Whether the build's error says what is wrong with the record's file itself (a line
    "FILE: problem"; not "FILE: could not be read (see the error above)", which needs it)."""
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    name = str(args[0])
    return any(
        line.strip().startswith(f"{name}:") and "see the error above" not in line
        for line in error.splitlines()
    )


class ThemeNotFoundHandler(StaticFileHandler):
    """livereload's static files; a missing one gets the theme's 404 page with status 404."""

    def write_error(self, status_code, **kwargs):
        page = Path(self.root, NOT_FOUND_PAGE)
        if status_code != 404 or not page.is_file():
            return super().write_error(status_code, **kwargs)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(None if self.request.method == "HEAD" else page.read_bytes())


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


# What `invoke serve` builds with, for `invoke build` meanwhile -----------------------------------
def site_settings(port: int, endpoint_port: int) -> dict:
    """The settings `invoke serve` builds with: its address, its endpoint, its comments (Isso's
    URL, set in the environment once Isso is up; NEWSLETTER_URL from the environment wins)."""
    return {
        "SITEURL": f"http://localhost:{port}",
        "ISSO_URL": os.environ.get("ISSO_URL", ""),
        "NEWSLETTER_URL": os.environ.get("NEWSLETTER_URL")
        or f"http://127.0.0.1:{endpoint_port}/subscribe",
    }


@contextmanager
def serving(settings: dict, state: Path = STATE) -> Iterator[None]:
    """Record `settings` as what this process serves with, for as long as the block runs."""
    state.parent.mkdir(parents=True, exist_ok=True)
    temporary = state.with_name(f".{state.name}.{os.getpid()}")
    recorded = {"pid": os.getpid(), "started": _started(os.getpid()), "settings": settings}
    temporary.write_text(json.dumps(recorded), encoding="utf-8")
    os.replace(temporary, state)
    try:
        yield
    finally:
        if _recorded(state).get("pid") == os.getpid():
            state.unlink(missing_ok=True)


def serve_settings(state: Path = STATE) -> dict | None:
    """The settings of the `invoke serve` running now, or None if none is."""
    recorded = _recorded(state)
    pid = recorded.get("pid")
    if not isinstance(pid, int) or not isinstance(recorded.get("settings"), dict):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # it ended without cleaning up (SIGKILL)
    except PermissionError:
        pass  # alive, another user's
    if recorded.get("started") != _started(pid):
        return None  # that process ended; another one has its pid now
    return recorded["settings"]


def _started(pid: int) -> str | None:
    """When the process started (Linux: clock ticks since boot), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _recorded(state: Path) -> dict:
    try:
        recorded = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


# `invoke preview` -------------------------------------------------------------------------------
class PreviewError(Exception):
    """The preview cannot be served (its port is taken); the message says what to do."""


class _PreviewHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; a missing one gets the theme's 404 page with status 404. Quiet."""

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory, NOT_FOUND_PAGE)
        if code != 404 or not page.is_file():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def preview_server(output: Path, port: int = 8001) -> http.server.ThreadingHTTPServer:
    """A server for `output` bound on 127.0.0.1:port (0: any free port), not yet serving."""
    handler = functools.partial(_PreviewHandler, directory=str(output))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def build_preview(
    url: str, output: Path = PREVIEW, config: str = "publishconf.py", **overrides
) -> dict:
    """Build `config` (the production settings) into `output` for a preview served at `url`:
    the pages' address is `url`, the form posts where the served site's does (the endpoint of a
    running `invoke serve`, else pelicanconf.py's NEWSLETTER_URL)."""
    output = Path(output).resolve()
    if output == (ROOT / "output").resolve():
        raise BuildError("the preview is never built into output/ (what `invoke serve` serves)")
    form = (serve_settings() or {}).get("NEWSLETTER_URL")
    if not form:
        form = load_settings("pelicanconf.py").get("NEWSLETTER_URL", "")
    settings = {"SITEURL": url, "NEWSLETTER_URL": form, **overrides, "OUTPUT_PATH": output}
    return build(config, **settings)


def preview(port: int = 8001, *, serve: bool = True, output: Path = PREVIEW) -> None:
    """`invoke preview`: build the production settings into `output`, then serve it at
    http://localhost:PORT until Ctrl-C (or, without `serve`, say where it is)."""
    try:
        server = preview_server(output, port) if serve else None  # ours before the build
    except OSError as error:
        raise PreviewError(f"port {port}: {error.strerror}; choose another: --port N") from None
    try:
        url = f"http://localhost:{server.server_address[1] if server else port}"
        build_preview(url, output)
        where = os.path.relpath(output, ROOT) if Path(output).is_relative_to(ROOT) else output
        if server is None:
            print(f"Preview built in {where}/ (for {url}); serve it with `invoke preview`")
            return
        print(f"Preview of the production build: {where}/ at {url}/ (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    finally:
        if server is not None:
            server.server_close()
