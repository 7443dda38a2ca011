"""The endpoint under gunicorn, where the framing matters: a chunked body is bounded by the
bytes read, like one with a Content-Length, and a huge one does not hold a worker."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow  # gunicorn

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 16 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE=str(folder / "newsletter.sqlite3"),
        NEWSLETTER_OUTBOX=str(folder / "outbox"),
        NEWSLETTER_RATE_LIMIT="1000/minute",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--no-control-socket", "--bind", f"127.0.0.1:{port}",
         "--workers", "1",
         "--worker-class", "sync", "--timeout", "30", "--log-level", "warning",
         "newsletter.subscriptions.app:create_app()"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("gunicorn did not start")
    yield url, folder / "newsletter.sqlite3"
    process.terminate()
    process.wait(10)


def stored(database: Path) -> int:
    db = sqlite3.connect(database)
    try:
        return sum(
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("subscribers", "signup_requests")
        )
    finally:
        db.close()


def chunked(*pieces: bytes):
    """A generator body: requests sends it with Transfer-Encoding: chunked, no Content-Length."""
    yield from pieces


def post(url, body, content_type="application/x-www-form-urlencoded"):
    return requests.post(
        url + "/subscribe", data=body, timeout=10,
        headers={"Content-Type": content_type, "Accept": "application/json"},
    )  # fmt: skip


def test_a_small_chunked_body_is_read_and_stored(gunicorn):
    url, database = gunicorn
    before = stored(database)
    answer = post(url, chunked(b"email=chunked", b"%40example.com"))
    assert answer.status_code == 200 and answer.json()["ok"] is True
    assert stored(database) in (before, before + 1)  # pending or applied (read once: it moves)
    deadline = time.monotonic() + 5
    while stored(database) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored(database) == before + 1


def test_a_1_mb_chunked_body_is_refused_and_nothing_is_stored(gunicorn):
    url, database = gunicorn
    before = stored(database)
    answer = post(url, chunked(b"email=big%40example.com&pad=", *[b"a" * 65536] * 16))
    assert answer.status_code == 413
    assert answer.json()["message"] == "The request is too large: at most 16 KB is accepted."
    assert stored(database) == before


def test_an_email_after_20_kb_of_padding_is_413_not_a_missing_email(gunicorn):
    url, database = gunicorn
    before = stored(database)
    body = b'{"pad": "' + b"x" * 20_000 + b'", "email": "late@example.com"}'
    answer = post(url, chunked(body[:8000], body[8000:]), "application/json")
    assert answer.status_code == 413, answer.text
    assert stored(database) == before


def test_a_50_mb_chunked_body_gets_its_413_at_once(gunicorn):
    """Today's defect: the same body with a Content-Length got 413 in 0.04 s; chunked, it held
    the sync worker for 107 s. Raw socket: we send chunks until the server answers."""
    url, _ = gunicorn
    host, port = url.removeprefix("http://").split(":")
    chunk = b"a" * 65536
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        sock.settimeout(0.0)
        answer = b""
        while sent < 50 * 1024 * 1024 and time.monotonic() - started < 20:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            except OSError:
                break
            if answer:
                break
            try:
                sock.settimeout(5)
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sock.settimeout(0.0)
                sent += len(chunk)
            except OSError:  # the server answered and closed: the rest is not wanted
                break
        sock.settimeout(5)
        try:
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 5 * 1024 * 1024 and elapsed < 5, (sent, elapsed)
    # The worker is free again at once.
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
