"""The form's rate limit under a real gunicorn: 3 sync workers on a dual-stack socket (`[::]`,
no proxy), a real SQLite file, NEWSLETTER_RATE_LIMIT=20/hour. Clients are loopback addresses of
their own (127.0.0.2, ...), which the socket shows as `::ffff:127.0.0.x`.

Today's defects, found by these tests: the limit lived in each worker's memory (70 sign-ups from
one address let 47 through), and every IPv4 client of a dual-stack socket was one key (`::/64`),
so one client spent the limit of all of them."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

pytestmark = pytest.mark.slow  # gunicorn with 3 workers

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3
LIMIT = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn on [::] at a port the kernel picked (the bound socket is handed over: fd://)."""
    folder = tmp_path_factory.mktemp("rate-limit-workers")
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual stack
    listener.bind(("::", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE=str(folder / "newsletter.sqlite3"),
        NEWSLETTER_OUTBOX=str(folder / "outbox"),
        NEWSLETTER_RATE_LIMIT=f"{LIMIT}/hour",
        NEWSLETTER_PROXY_COUNT="0",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--no-control-socket", "--bind", f"fd://{listener.fileno()}",
         "--workers", str(WORKERS), "--worker-class", "sync", "--timeout", "30",
         "--log-level", "warning", "newsletter.subscriptions.app:create_app()"],
        cwd=ROOT, env=env, pass_fds=[listener.fileno()],
    )  # fmt: skip
    listener.close()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(workers_of(process.pid)) == WORKERS and healthy(port):
                break
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}")
            time.sleep(0.1)
        else:
            pytest.fail("gunicorn and its 3 workers did not start")
        yield port, folder / "newsletter.sqlite3"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def workers_of(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def sign_up(port: int, client: str, email: str) -> tuple[int, dict, dict]:
    """One form POST, as the site's enhanced form sends it, from the address `client`."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=15, source_address=(client, 0)
    )
    try:
        connection.request(
            "POST", "/subscribe", urlencode({"email": email}),
            {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )  # fmt: skip
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), json.loads(answer.read())
    finally:
        connection.close()


def sign_ups(port: int, client: str, emails: list[str]) -> list[tuple[int, dict, dict]]:
    """Several at once (6 connections), so that every worker answers some of them."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(lambda email: sign_up(port, client, email), emails))


def statuses(answers) -> list[int]:
    return sorted(status for status, _, _ in answers)


def stored(database: Path, prefix: str) -> int:
    """Sign-ups kept for addresses starting with `prefix`: requests not applied yet, plus
    subscribers (one statement, so one snapshot while the senders apply requests)."""
    db = sqlite3.connect(database, timeout=30)
    try:
        return db.execute(
            "SELECT (SELECT count(*) FROM signup_requests WHERE email LIKE :p)"
            " + (SELECT count(*) FROM subscribers WHERE email LIKE :p)",
            {"p": prefix + "%"},
        ).fetchone()[0]
    finally:
        db.close()


def assert_refused(answers) -> None:
    for status, headers, body in answers:
        if status == 429:
            assert body["ok"] is False and "Too many requests" in body["message"]
            assert 1 <= int(headers["Retry-After"]) <= 3600


def test_one_ipv4_client_does_not_spend_the_limit_of_another(server):
    port, database = server
    first = sign_ups(port, "127.0.0.2", [f"two-{n}@example.com" for n in range(LIMIT)])
    assert statuses(first) == [200] * LIMIT
    more = sign_ups(port, "127.0.0.2", [f"two-more-{n}@example.com" for n in range(6)])
    assert statuses(more) == [429] * 6  # its hour is spent, whichever worker answers
    assert_refused(more)
    other = sign_ups(port, "127.0.0.3", [f"three-{n}@example.com" for n in range(LIMIT)])
    assert statuses(other) == [200] * LIMIT  # another client: its own 20
    assert stored(database, "two-") == LIMIT
    assert stored(database, "three-") == LIMIT


def test_70_sign_ups_from_one_address_across_3_workers_let_exactly_20_through(server):
    port, database = server
    answers = sign_ups(port, "127.0.0.4", [f"four-{n}@example.com" for n in range(70)])
    assert statuses(answers) == [200] * LIMIT + [429] * (70 - LIMIT)
    assert_refused(answers)
    assert stored(database, "four-") == LIMIT
