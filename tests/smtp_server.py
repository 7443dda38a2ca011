"""The one SMTP sink for tests: a real SMTP server (aiosmtpd on 127.0.0.1, a free port) that
records what it accepts and can misbehave, in two ways that can be combined.

- By transaction order, `SmtpSink(faults=[...])`: each mail transaction (MAIL FROM) takes the next
  fault, then everything is accepted: "421" (refused at MAIL FROM, temporarily), "451" (refused
  at DATA, temporarily), "550" (refused for good at RCPT TO), "554" (the message refused for good
  at DATA), "drop" (the connection closes after
  the message data, with no reply), "slow" (MAIL FROM is answered after SLOW_SECONDS).
- By recipient, `refuse=[addresses]` (550 at RCPT TO, every time) and `temporary={address:
  [codes]}`: each attempt for that address takes the next code ("421" at RCPT TO, "451" or "drop"
  at DATA) until its list is empty.

A transaction's fault is kept in its SMTP session, so concurrent connections never take each
other's. `max_connections=n` greets a connection beyond the n open ones with "421 4.7.0 Too many
connections" and closes it (as Postfix's smtpd_client_connection_count_limit and the big
providers' limits do), or with `over_limit`'s line instead ("" closes it without a word);
`refused` counts those. `credentials=(user, password)` requires AUTH
(over TLS when there is TLS); `tls_context` offers STARTTLS (required), or with
`implicit_tls=True` the whole connection is TLS. It offers
PIPELINING (RFC 2920), as Postfix and the big providers do, unless `pipelining=False`.

Recorded: `envelopes` [(mail_from, rcpt_tos)] and `messages` (parsed; not with `parse=False`,
for thousands of messages) per accepted message, `accepted` (a Counter of accepted messages per
lower-cased recipient), `transactions` (MAIL FROM commands, refused ones included) and
`connections` (opened by clients). `wait_for(n)` waits for n accepted messages and returns the
parsed messages.
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
from collections import Counter
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

SLOW_SECONDS = 3.0
REPLIES = {
    "421": "421 4.3.2 Service not available, closing transmission channel",
    "451": "451 4.3.0 Mailbox busy, try again later",
    "550": "550 5.1.1 No such user here",
    "554": "554 5.7.1 Message refused by policy",
}
ACCEPTED = "250 2.0.0 Message accepted for delivery"


TOO_MANY = "421 4.7.0 Too many connections, try again later"


class _Limited(SMTP):
    """aiosmtpd's SMTP session, counted while open; past the sink's `max_connections`, the
    greeting is a 421 and the connection is closed."""

    def connection_made(self, transport):
        sink = self.event_handler
        with sink.lock:
            sink.open += 1
            self._over = sink.max_connections is not None and sink.open > sink.max_connections
            sink.refused += self._over
        if self._over:  # the greeting is all it gets
            if sink.over_limit:
                transport.write(f"{sink.over_limit}\r\n".encode())
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, error):
        with self.event_handler.lock:
            self.event_handler.open -= 1
        if not self._over:
            super().connection_lost(error)


class _Controller(Controller):
    """aiosmtpd's Controller, able to bind port 0 (it learns the port before its self-check), and
    counting the connections it serves for the sink (one SMTP protocol object per connection)."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def factory(self):
        with self.handler.lock:
            self.handler.connections += 1
        return _Limited(self.handler, **self.SMTP_kwargs)


class SmtpSink:
    def __init__(
        self,
        faults=(),
        *,
        refuse=(),
        temporary: dict[str, list[str]] | None = None,
        parse: bool = True,
        credentials: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        pipelining: bool = True,
        max_connections: int | None = None,
        over_limit: str = TOO_MANY,
    ):
        self.faults = list(faults)
        self.refuse = {address.lower() for address in refuse}
        self.temporary = {k.lower(): list(v) for k, v in (temporary or {}).items()}
        self.parse = parse
        self.pipelining = pipelining
        self.credentials = credentials
        self.lock = threading.Lock()
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.accepted: Counter[str] = Counter()
        self.transactions = 0
        self.connections = 0
        self.max_connections, self.open, self.refused = max_connections, 0, 0
        self.over_limit = over_limit
        kwargs = {}
        if credentials:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
            kwargs["auth_require_tls"] = tls_context is not None
        if tls_context is not None and not implicit_tls:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        self.controller = _Controller(
            self,
            hostname="127.0.0.1",
            port=0,
            ssl_context=tls_context if implicit_tls else None,
            ready_timeout=10,
            **kwargs,
        )

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        with self.lock:
            self.connections = 0  # not the controller's own check that the server is up
            self.refused = 0
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port

    def wait_for(self, count: int, timeout: float = 10.0) -> list[email.message.EmailMessage]:
        """The parsed messages, once at least `count` messages were accepted (or on timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.envelopes) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)

    # aiosmtpd's handler hooks (run in the server's thread) ----------------------------------
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads one command at a time: pipelined ones just wait
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.transactions += 1
            session.fault = self.faults.pop(0) if self.faults else None
        if session.fault == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if session.fault == "421":
            return REPLIES["421"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if getattr(session, "fault", None) == "550" or address.lower() in self.refuse:
            return REPLIES["550"]
        if self._take_temporary(address, "rcpt") == "421":
            return REPLIES["421"]  # the client hangs up after a 421, as smtplib does
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        fault = getattr(session, "fault", None)
        if fault not in ("451", "554", "drop") and envelope.rcpt_tos:
            fault = self._take_temporary(envelope.rcpt_tos[0], "data")
        if fault in ("451", "554"):
            return REPLIES[fault]
        if fault == "drop":
            server.transport.close()
            return "250 never seen"
        message = None
        if self.parse:
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            if message is not None:
                self.messages.append(message)
            for rcpt in envelope.rcpt_tos:
                self.accepted[rcpt.lower()] += 1
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return ACCEPTED

    def _take_temporary(self, address: str, stage: str) -> str | None:
        """The next temporary code for `address`, if it is one for this stage (then used up)."""
        with self.lock:
            codes = self.temporary.get(address.lower())
            if codes and ("rcpt" if codes[0] == "421" else "data") == stage:
                return codes.pop(0)
        return None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == tuple(self.credentials)
        return AuthResult(success=ok, handled=False)


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
