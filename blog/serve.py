"""Serve output/ on 127.0.0.1 with live reload, rebuilding when content, theme or settings change.

Contract: `serve()` builds once, then serves the output folder with livereload (the page reloads
itself after each rebuild), alongside the helper servers given (e.g. Isso for comments). A broken
rebuild prints its error and keeps the last good site up. Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable

from blog.build import ROOT, BuildError

log = logging.getLogger(__name__)
WATCHED = ["content", "theme", "plugins", "pelicanconf.py"]


def serve(
    rebuild: Callable[[], object],
    output: str = "output",
    host: str = "127.0.0.1",
    port: int = 8000,
    helpers: list[subprocess.Popen] | None = None,
) -> None:
    from livereload import Server

    def safe_rebuild():
        try:
            rebuild()
        except BuildError as error:
            print(f"\nBuild failed, still serving the last good site:\n{error}\n")

    safe_rebuild()
    server = Server()
    for path in WATCHED:
        server.watch(str(ROOT / path), safe_rebuild, delay=0.5)
    print(f"Serving {output}/ at http://localhost:{port}/ (Ctrl-C to stop)")
    try:
        server.serve(root=str(ROOT / output), host=host, port=port, open_url_delay=None)
    finally:
        for process in helpers or []:
            process.terminate()
