"""Helpers for the newsletter tests: read the emails the app wrote, run the app in a real server."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from newsletter.subscriptions.app import create_app
from tests.conftest import newsletter_settings


def wait_for_emails(outbox: Path, count: int, timeout: float = 10.0) -> list[EmailMessage]:
    """The .eml files in `outbox`, oldest first, once there are at least `count` (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(Path(outbox).glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        if len(files) >= count or time.monotonic() > deadline:
            return [
                email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files
            ]
        time.sleep(0.02)


def email_to(outbox: Path, address: str, timeout: float = 10.0) -> EmailMessage:
    """The one message in `outbox` addressed to `address` (waiting for it to arrive)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in wait_for_emails(outbox, 0) if m["To"] == address]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"{len(found)} messages to {address}"
            return found[0]
        time.sleep(0.02)


def link(message: EmailMessage, kind: str) -> str:
    """The confirm or unsubscribe URL in the plain-text part of a message."""
    text = message.get_body(("plain",)).get_content()
    return re.search(rf"https?://\S+/{kind}/\S+", text).group(0)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


@dataclass
class LiveEndpoint:
    """The newsletter app in a real threaded HTTP server on 127.0.0.1, port 0."""

    url: str
    app: object
    server: object
    thread: threading.Thread

    @property
    def nl(self):
        return self.app.extensions["newsletter"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.nl.close()


def start_endpoint(tmp_path: Path, **changes) -> LiveEndpoint:
    """The app with `newsletter_settings(tmp_path, **changes)`; its base_url is the server's own
    URL unless `changes` names one."""
    holder = {}
    server = make_server(
        "127.0.0.1",
        0,
        lambda environ, start: holder["app"](environ, start),
        threaded=True,
        request_handler=QuietHandler,
    )
    url = f"http://127.0.0.1:{server.server_port}"
    changes.setdefault("base_url", url)
    holder["app"] = app = create_app(newsletter_settings(tmp_path, **changes))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    return LiveEndpoint(url, app, server, thread)
