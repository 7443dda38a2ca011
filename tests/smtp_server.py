"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, a free port), that can misbehave.

`SmtpServer(faults=[...])` answers each mail transaction in turn with the next fault, then
accepts everything: "421" and "451" (temporary refusals at MAIL FROM and DATA), "550" (refused
for good at RCPT TO), "drop" (closes the connection after the message data, without a reply),
"slow" (waits 3 s before answering MAIL FROM). Accepted messages are parsed into `messages`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SLOW_SECONDS = 3.0


class _Handler:
    def __init__(self, faults, credentials):
        self.faults = list(faults)
        self.credentials = credentials
        self.messages = []
        self.envelopes = []
        self.transactions = 0
        self.lock = threading.Lock()
        self._current = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.transactions += 1
            self._current = self.faults.pop(0) if self.faults else None
        if self._current == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if self._current == "421":
            return "421 4.3.2 Service not available, closing transmission channel"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self._current == "550":
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._current == "451":
            return "451 4.3.0 Mailbox busy, try again later"
        if self._current == "drop":
            server.transport.close()
            return "250 never seen"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            )
            == self.credentials
        )
        return AuthResult(success=ok, handled=False)


class _Controller(Controller):
    """aiosmtpd's Controller, able to bind port 0: it learns the port before its self-check."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    def __init__(
        self,
        faults=(),
        *,
        credentials: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ):
        self.handler = _Handler(faults, credentials)
        kwargs = {}
        if credentials:
            kwargs.update(authenticator=self.handler.authenticate, auth_required=True)
            kwargs["auth_require_tls"] = tls_context is not None
        if tls_context is not None and not implicit_tls:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        self.controller = _Controller(
            self.handler,
            hostname="127.0.0.1",
            port=0,
            ssl_context=tls_context if implicit_tls else None,
            ready_timeout=10,
            **kwargs,
        )

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def messages(self):
        return self.handler.messages

    def wait_for(self, count: int, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl command (None if it is missing)."""
    if shutil.which("openssl") is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
