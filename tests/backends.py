"""The database backends the newsletter's tests run on: SQLite (a file under the test's
tmp_path) and PostgreSQL (a fresh database per test on the server the test run started,
created from a migrated template so that it costs a copy, not a migration).

`target(tmp_path, backend)` gives what `NEWSLETTER_DATABASE` takes for that backend."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

TEMPLATE = "newsletter_template"
BACKENDS = ("sqlite", "postgresql")


def binaries() -> Path | None:
    """Where PostgreSQL's initdb and pg_ctl are (Debian keeps them out of PATH), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    return None


class PostgresServer:
    """A PostgreSQL server of the test run's own: initdb in a temporary folder, listening only
    on a Unix socket there (no TCP port), run as an unprivileged user when the tests run as
    root (initdb refuses root). `stop()` ends it; nothing is left running."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.data = folder / "data"
        self.bin = binaries()
        self._template_ready = False
        self._lock = threading.Lock()
        self.user = "nobody" if os.geteuid() == 0 else None

    def _run(self, *command: str) -> None:
        subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            check=True,
            capture_output=True,
            user=self.user,
            cwd=self.folder,
            timeout=120,
        )

    def start(self, *, durable: bool = False) -> PostgresServer:
        """initdb and start; `durable` keeps fsync on (benchmarks), else off (tests)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.folder, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        options = (
            f"-c listen_addresses='' -c unix_socket_directories={self.folder}"
            " -c max_connections=200"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "server.log"), "-w", "start")  # fmt: skip
        return self

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (its first line of postmaster.pid)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop it (immediate: test data is thrown away) and be sure it is gone."""
        pid = self.pid
        if pid is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        except subprocess.SubprocessError:
            pass
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def url(self, name: str = "postgres") -> str:
        return f"postgresql://postgres@/{name}?host={self.folder}"

    def _admin(self):
        import psycopg

        return psycopg.connect(self.url(), autocommit=True)

    def fresh(self) -> str:
        """A new, migrated database: its URL (a copy of a migrated template)."""
        with self._lock:
            if not self._template_ready:
                from newsletter.database import Database

                with self._admin() as admin:
                    admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
                Database(self.url(TEMPLATE)).close()
                self._template_ready = True
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return self.url(name)

    def empty(self) -> str:
        """A new database with nothing in it (not even the schema): its URL."""
        name = f"e_{uuid.uuid4().hex[:16]}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


SERVER: PostgresServer | None = None  # set by the session's fixture (tests/conftest.py)
CURRENT = "sqlite"  # the backend of the test running now (the `backend` fixture sets it)


def target(tmp_path: Path, backend: str) -> Path | str:
    """What NEWSLETTER_DATABASE takes for `backend`: a file under tmp_path, or a fresh database
    on the test run's server."""
    if backend == "postgresql":  # one folder, one database, as one folder holds one file
        assert SERVER is not None, "the postgresql backend needs the postgres_server fixture"
        key = str(Path(tmp_path).resolve())
        if key not in _DATABASES:
            _DATABASES[key] = SERVER.fresh()
        return _DATABASES[key]
    return tmp_path / "var" / "newsletter.sqlite3"


_DATABASES: dict[str, str] = {}  # tmp_path -> its database on the server


# The database seen from outside (either backend) ------------------------------------------------
def connect(target):
    """A plain connection to the database at `target` (no migration, nothing created), with
    `execute(sql, args)` in SQLite's parameter spelling on both backends."""
    if isinstance(target, str):
        from newsletter.postgres import connect as postgres

        return postgres(target)
    return sqlite3.connect(target)


def query(target, sql: str, *args) -> list[tuple]:
    db = connect(target)
    try:
        return [tuple(row) for row in db.execute(sql, args).fetchall()]
    finally:
        db.close()


def table_names(target) -> list[str]:
    if isinstance(target, str):
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    return [name for (name,) in query(target, sql) if name != "alembic_version"]


def rows(target, table: str) -> list[tuple]:
    """Every row of `table`, in a stable order."""
    return sorted(query(target, f'SELECT * FROM "{table}"'), key=repr)


def contents(target, *, skip: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Every row of every table (but `skip`): the whole database's content."""
    return {t: rows(target, t) for t in table_names(target) if t not in skip}
