"""Self-hosted comments with Isso: write its config and run it on 127.0.0.1.

Contract: `isso_config()` writes an Isso config for a site origin, a SQLite file and a listen
address; `start_isso()` runs Isso (the `isso` package, optional) as a subprocess and returns once
it answers HTTP, or raises `CommentsError`; `start_local_isso()` does that for `invoke serve`
with the database under var/, and returns None when Isso is not installed.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from blog.build import ROOT


class CommentsError(Exception):
    """Isso could not be started."""


@dataclass
class IssoServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def isso_config(path: Path, *, site_origins: list[str], dbpath: Path, listen: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[general]\n"
        f"dbpath = {dbpath}\n"
        "host =\n" + "".join(f"    {origin}\n" for origin in site_origins) + "\n"
        "[server]\n"
        f"listen = {listen}\n"
        "\n[moderation]\nenabled = false\n"
        "\n[guard]\nenabled = true\nratelimit = 10\ndirect-reply = 3\nreply-to-self = false\n"
        "require-author = false\nrequire-email = false\n",
        encoding="utf-8",
    )
    return path


def start_isso(
    folder: Path, site_origins: list[str], port: int | None = None, timeout: float = 15
) -> IssoServer:
    if importlib.util.find_spec("isso") is None:
        raise CommentsError("the isso package is not installed (pip install -e '.[comments]')")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    config = isso_config(
        folder / "isso.cfg", site_origins=site_origins, dbpath=folder / "comments.db", listen=url
    )
    log = open(folder / "isso.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-c", "import isso; isso.main()", "-c", str(config), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = IssoServer(url=url, process=process)
    try:  # stopped on any way out but success, a Ctrl-C or SIGTERM during the wait included
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CommentsError(f"Isso exited at start; see {folder / 'isso.log'}")
            try:
                with urllib.request.urlopen(f"{url}/info", timeout=1):
                    return server
            except OSError:
                time.sleep(0.2)
        raise CommentsError(f"Isso did not answer on {url} within {timeout} s")
    except BaseException:
        server.stop()
        raise


def start_local_isso(site_url: str, port: int = 8080) -> IssoServer | None:
    if importlib.util.find_spec("isso") is None:
        return None
    origins = [site_url, site_url.replace("localhost", "127.0.0.1")]
    try:
        return start_isso(ROOT / "var" / "isso", origins, port=port)
    except CommentsError as error:
        print(f"Comments are off: {error}")
        return None
