"""The test run's own PostgreSQL server (tests/backends.py, the `postgres_server` fixture): it
answers psycopg on its Unix socket, takes no TCP port, and is gone once the session ends, also
when a test failed."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from blog.build import ROOT
from tests.backends import binaries

psycopg = pytest.importorskip("psycopg", reason="the postgres extra: bin/setup --test")

pytestmark = pytest.mark.slow


def test_the_server_answers_psycopg_on_its_own_socket(postgres_server):
    url = postgres_server.url()
    assert url.startswith("postgresql://postgres@/postgres?host=")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE readers (id serial PRIMARY KEY, email text UNIQUE)")
        connection.execute("INSERT INTO readers (email) VALUES (%s), (%s)", ("a@x.org", "b@x.org"))
        rows = connection.execute("SELECT email FROM readers ORDER BY id").fetchall()
        assert rows == [("a@x.org",), ("b@x.org",)]
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute("INSERT INTO readers (email) VALUES ('a@x.org')")
        socket_dir, port = connection.execute(
            "SELECT current_setting('unix_socket_directories'), current_setting('listen_addresses')"
        ).fetchone()
        connection.execute("DROP TABLE readers")
    assert socket_dir == str(postgres_server.folder) and port == ""  # no TCP port taken


INNER = """
import json, os
from tests.conftest import postgres_server  # noqa: F401

def test_inner(postgres_server):
    with open(os.environ["REPORT"], "w") as out:
        json.dump({"pid": postgres_server.pid, "folder": str(postgres_server.folder)}, out)
    assert os.environ["OUTCOME"] == "pass"
"""


@pytest.mark.parametrize("outcome", ["pass", "fail"])
def test_the_server_is_gone_after_the_session_even_when_a_test_failed(tmp_path, outcome):
    if binaries() is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are needed: bin/setup --test installs them")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER))
    report = tmp_path / "report.json"
    env = dict(os.environ, REPORT=str(report), OUTCOME=outcome, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == (0 if outcome == "pass" else 1), done.stdout + done.stderr
    seen = json.loads(report.read_text())
    assert isinstance(seen["pid"], int)  # it was running during the test
    with pytest.raises(ProcessLookupError):
        os.kill(seen["pid"], 0)
    assert not os.path.exists(seen["folder"])
