"""Where email goes. One small interface (like listmonk's messengers): `send(message)`,
`flush()`, `close()`.

Contract:
- `send(message)` hands one `EmailMessage` to the transport, or raises `TemporaryFailure`
  (try again later: 4xx replies, timeouts, dropped or refused connections, a full disk) or
  `PermanentFailure` (5xx: this message will never go through as it is). Nothing else escapes.
- `flush()` pushes out anything buffered (nothing, for these two); `close()` ends the session.
  A transport is used from one thread at a time; after a failure, the next `send` reconnects.
- `OutboxTransport(folder)`: writes each message to `folder/<message-id>.eml` (atomically; the
  same Message-ID overwrites its file, so a resend never makes a second file).
- `SmtpTransport(...)`: smtplib with STARTTLS, implicit TLS (ssl) or none; login when a user is
  set; every socket operation bounded by `timeout` seconds.
- `get_transport(settings)` builds the one the settings name (NEWSLETTER_TRANSPORT).
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from newsletter.config import Settings


class TransportError(Exception):
    """The message was not sent."""


class TemporaryFailure(TransportError):
    """Not sent now; the same message may go through later."""


class PermanentFailure(TransportError):
    """Refused for good (5xx); retrying the same message is pointless."""


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class OutboxTransport:
    """Development and tests: each message becomes an .eml file any mail program opens."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path_for(self, message_id: str) -> Path:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", message_id.strip("<> "))[:150]
        return self.folder / f"{name}.eml"

    def send(self, message: EmailMessage) -> None:
        message_id = str(message.get("Message-ID", "")).strip("<> ")
        if not message_id:
            raise PermanentFailure("the message has no Message-ID")
        self.write(message_id, message.as_bytes())

    def write(self, message_id: str, data: bytes) -> None:
        """Write the bytes of one message atomically (a re-send overwrites its file)."""
        target = self.path_for(message_id)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".tmp", delete=False) as f:
                f.write(data)
            os.replace(f.name, target)
        except OSError as error:
            raise TemporaryFailure(f"cannot write {target}: {error}") from error

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SmtpTransport:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        user: str = "",
        password: str = "",
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ):
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"security must be starttls, ssl or none, not {security!r}")
        self.host, self.port, self.security = host, port, security
        self.user, self.password, self.timeout = user, password, timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, ssl_context: ssl.SSLContext | None = None
    ) -> SmtpTransport:
        """The SMTP server, port, security, login and timeout from NEWSLETTER_SMTP_*."""
        return cls(
            settings.smtp_host,
            settings.effective_smtp_port,
            security=settings.smtp_security,
            user=settings.smtp_user,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout,
            ssl_context=ssl_context,
        )

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.ssl_context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=self.ssl_context)
            if self.user:
                smtp.login(self.user, self.password)
        except BaseException:
            _quietly_close(smtp)
            raise
        return smtp

    def send(self, message: EmailMessage) -> None:
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.send_message(message)
        except Exception as error:  # noqa: BLE001 - every failure becomes one of our two types
            self.close()
            raise classify(error) from error
        if refused:  # some recipients refused, others accepted: only one recipient here
            raise classify(smtplib.SMTPRecipientsRefused(refused))

    def send_raw(self, sender: str, recipient: str, data: bytes) -> None:
        """Wire bytes already made (CRLF), to one recipient: the bulk announcements' path, with
        the same connection reuse and the same two failure types as `send`."""
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.sendmail(sender, [recipient], data)
        except Exception as error:  # noqa: BLE001 - every failure becomes one of our two types
            self.close()
            raise classify(error) from error
        if refused:
            raise classify(smtplib.SMTPRecipientsRefused(refused))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.quit()
            except Exception:  # noqa: BLE001 - the server may be gone already
                _quietly_close(smtp)


def classify(error: Exception) -> TransportError:
    """An smtplib/socket error as a temporary or permanent failure, with the server's words."""
    if isinstance(error, TransportError):
        return error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in error.recipients.items()
        )
        kind = TemporaryFailure if all(400 <= c < 500 for c in codes) else PermanentFailure
        return kind(f"recipient refused: {detail}")
    if isinstance(error, smtplib.SMTPAuthenticationError):
        # Our credentials, not this message: keep it queued until someone fixes the settings.
        return TemporaryFailure(f"SMTP login refused: {error.smtp_code} {_text(error.smtp_error)}")
    if isinstance(error, smtplib.SMTPResponseException):
        code, text = error.smtp_code, _text(error.smtp_error)
        if 500 <= code < 600:
            return PermanentFailure(f"SMTP server refused the message: {code} {text}")
        return TemporaryFailure(f"SMTP server said: {code} {text}")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        if isinstance(error.__context__, TimeoutError):
            return TemporaryFailure(f"SMTP server did not answer in time: {error}")
        return TemporaryFailure(f"SMTP server closed the connection: {error}")
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return PermanentFailure(f"SMTP server cannot take this message: {error}")
    if isinstance(error, (TimeoutError, socket.timeout)):
        return TemporaryFailure(f"SMTP server did not answer in time: {error}")
    if isinstance(error, (OSError, smtplib.SMTPException)):  # refused, reset, DNS, TLS ...
        return TemporaryFailure(f"cannot talk to the SMTP server: {error}")
    return TemporaryFailure(f"unexpected error while sending: {error!r}")


def get_transport(settings: Settings) -> Transport:
    if settings.transport == "smtp":
        return SmtpTransport.from_settings(settings)
    if settings.transport == "mailgun":  # the HTTP API (announcements issue): newsletter.mailgun
        from newsletter.mailgun import MailgunTransport

        return MailgunTransport(settings)
    return OutboxTransport(settings.outbox)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except Exception:  # noqa: BLE001
        pass


__all__ = [
    "OutboxTransport",
    "PermanentFailure",
    "SmtpTransport",
    "TemporaryFailure",
    "Transport",
    "TransportError",
    "classify",
    "get_transport",
]
