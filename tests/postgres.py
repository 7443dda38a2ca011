"""A real PostgreSQL server for the tests, started by the test run itself and gone after it.

Contract: the session fixture `postgres_server` (a `PostgresServer`: `url`, `folder`, `pid`)
runs `initdb` into a new private folder, starts the server with `pg_ctl` listening on a Unix
socket in that folder only (`listen_addresses=''`: no TCP port is taken, so parallel runs never
collide), and yields; at the session's end (also when a test failed or was interrupted) the
server is stopped (`pg_ctl stop -m immediate`, then the postmaster killed if it is still there)
and the folder removed. `postgres_url` is its `postgresql://` URL: the superuser `postgres`, the
database `postgres`, the socket folder as `host` (trust over the socket: only the folder's owner
and root can reach it).

Where the programs are: `initdb` and `pg_ctl` on PATH, else Debian's
`/usr/lib/postgresql/<version>/bin` (the newest), which `bin/setup --test` installs (the
`postgresql` package) when neither is there. Without them, the tests that use it are skipped.
PostgreSQL refuses to run as root: when the tests run as root (a bare CI machine), initdb and the
server run as the unprivileged `nobody` (present on every Debian system), in a folder owned by
it; as any other user, as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"
START_TIMEOUT = 60  # seconds


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's newest version."""
    found = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(found):
        return Path(found[0]).resolve().parent
    versions = sorted(
        (Path(folder) for folder in glob.glob(DEBIAN_BINARIES)),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
    )
    for folder in reversed(versions):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


@dataclass(frozen=True)
class PostgresServer:
    url: str
    folder: Path  # the data folder's parent: the socket, the log
    bin: Path

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs (from postmaster.pid), else None."""
        try:
            pid = int((self.folder / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _as_user() -> dict:
    """subprocess options: as `nobody` (with its own group, no other groups) when we are root."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def _run(command: list[str], folder: Path, **options) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, **_as_user(), **options
    )


def start(bin: Path) -> PostgresServer:
    """initdb and pg_ctl start in a new folder; raises RuntimeError with the server's words."""
    folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    folder.chmod(0o700)
    owner = _as_user()
    if owner:
        os.chown(folder, owner["user"], owner["group"])
    data, log = folder / "data", folder / "server.log"
    done = _run(
        [str(bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
         "--locale=C", "--no-sync"],
        folder,
    )  # fmt: skip
    if done.returncode:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
    options = (
        f"-c listen_addresses='' -c unix_socket_directories='{folder}' -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off"
    )
    done = _run(
        [str(bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
         "-t", str(START_TIMEOUT), "start"],
        folder,
    )  # fmt: skip
    server = PostgresServer(
        url=f"postgresql://{SUPERUSER}@/postgres?host={quote(str(folder), safe='')}",
        folder=folder,
        bin=bin,
    )
    if done.returncode:
        words = log.read_text(errors="replace") if log.exists() else ""
        stop(server)
        raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{words}")
    return server


def stop(server: PostgresServer) -> None:
    """Stop the server (immediate: the test data is thrown away), be sure it is gone, and
    remove its folder."""
    try:
        pid = server.pid
        if pid is not None:
            _run([str(server.bin / "pg_ctl"), "-D", str(server.folder / "data"), "-m",
                  "immediate", "-w", "-t", "30", "stop"], server.folder)  # fmt: skip
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    bin = binaries()
    if bin is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are needed: bin/setup --test installs them")
    server = start(bin)
    try:
        yield server
    finally:
        stop(server)


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    return postgres_server.url
