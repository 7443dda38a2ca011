"""The SMTP mailer: smtplib, one send path, a pool of reused connections under one pace.

Contract:
- `SmtpConnection(host, port, security=, user=, password=, timeout=, ssl_context=)`: one
  connection, opened on first use and kept from message to message (reconnecting after a
  failure); STARTTLS, implicit TLS (ssl) or none; login when a user is set; every socket
  operation bounded by `timeout`. `send(sender, recipient, data)` raises a `MailError` whose type
  says its scope (see `classify`), nothing else.
- `SmtpConnection.from_settings(smtp)`: the connection `SmtpSettings` (NEWSLETTER_SMTP_*) say.
- `SmtpMailer(smtp, sender, report, workers=)`: `smtp` is `SmtpSettings`, `sender` the envelope
  sender of a message that names none. With one worker, `push` sends in the caller's thread
  (the confirmation queue); with more, `push` hands the message to `workers` threads, each with
  its own connection (announcements), blocking while they are all busy. Every message waits its
  turn under one `RateLimiter` (NEWSLETTER_SMTP_RATE per second; 0: no limit) and is reported
  by the thread that got the answer.
- `classify(error)`: 4xx, timeouts and dropped or refused connections are temporary; a 5xx to
  RCPT TO refuses the recipient; a 5xx to MAIL FROM or DATA, or a refused login, refuses the
  message (our account or our content: bounce nobody).
"""

from __future__ import annotations

import queue
import smtplib
import ssl
import threading

from newsletter.mail import base
from newsletter.ratelimit import Rate, RateLimiter
from newsletter.settings import SMTP_SECURITY, SmtpSettings


class SmtpConnection:
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
        if security not in SMTP_SECURITY:
            raise ValueError(f"security must be starttls, ssl or none, not {security!r}")
        self.host, self.port, self.security = host, port, security
        self.user, self.password, self.timeout = user, password, timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def from_settings(
        cls, smtp: SmtpSettings, ssl_context: ssl.SSLContext | None = None
    ) -> SmtpConnection:
        """The SMTP server, port, security, login and timeout from NEWSLETTER_SMTP_*."""
        return cls(
            smtp.host,
            smtp.effective_port,
            security=smtp.security,
            user=smtp.user,
            password=smtp.password,
            timeout=smtp.timeout,
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

    def send(self, sender: str, recipient: str, data: bytes) -> None:
        """Wire bytes (CRLF) to one recipient."""
        options = [] if recipient.isascii() else ["SMTPUTF8"]
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.sendmail(sender, [recipient], data, mail_options=options)
        except Exception as error:  # noqa: BLE001 - every failure becomes one of our types
            self.close()
            raise classify(error) from error
        if refused:
            raise classify(smtplib.SMTPRecipientsRefused(refused))

    def close(self) -> None:
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.quit()
            except Exception:  # noqa: BLE001 - the server may be gone already
                _quietly_close(smtp)


class SmtpMailer:
    batches = False

    def __init__(
        self,
        smtp: SmtpSettings,
        sender: str,
        report: base.Report,
        *,
        workers: int = 1,
    ):
        self.sender = sender
        self.report = report
        self.workers = max(1, workers)
        self.pace = RateLimiter(Rate.per_second(smtp.rate), burst=1)
        # One TLS context for all workers: loading the CA certificates costs ~0.2 s each time.
        tls = (
            ssl.create_default_context()
            if smtp.security != "none"
            else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # unused without TLS: no CA loading
        )
        self.connection = lambda: SmtpConnection.from_settings(smtp, tls)
        self._jobs: queue.Queue[base.Outgoing | None] = queue.Queue(maxsize=self.workers * 2)
        self._threads: list[threading.Thread] = []
        self._single: SmtpConnection | None = None
        self._closing = False
        self._errors: list[BaseException] = []

    def push(self, outgoing: base.Outgoing) -> None:
        if self.workers == 1:
            if self._single is None:
                self._single = self.connection()
            self._send(self._single, outgoing)
            return
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._work, name=f"smtp-worker-{n}", daemon=True)
                for n in range(self.workers)
            ]
            for thread in self._threads:
                thread.start()
        self._jobs.put(outgoing)
        self._raise_worker_error()

    def _send(self, connection: SmtpConnection, outgoing: base.Outgoing) -> None:
        self.pace.wait()
        try:
            connection.send(outgoing.envelope_from or self.sender, outgoing.to, outgoing.data)
        except base.MailError as error:
            self.report([outgoing], error)
        else:
            self.report([outgoing], None)

    def _work(self) -> None:
        connection = self.connection()
        try:
            while (job := self._jobs.get()) is not None:
                try:
                    if not self._closing:
                        self._send(connection, job)
                except BaseException as error:  # noqa: BLE001 - re-raised in the pushing thread
                    self._errors.append(error)
                finally:
                    self._jobs.task_done()
        finally:
            self._jobs.task_done()
            connection.close()

    def _raise_worker_error(self) -> None:
        if self._errors:
            raise self._errors[0]

    def flush(self) -> None:
        if self._threads:
            self._jobs.join()
        self._raise_worker_error()

    def close(self) -> None:
        if self._single is not None:
            self._single.close()
            self._single = None
        if self._threads:
            self._closing = True  # what is still queued is dropped, unreported
            for _ in self._threads:
                self._jobs.put(None)
            for thread in self._threads:
                thread.join()
            self._threads = []
            self._closing = False


def classify(error: Exception) -> base.MailError:
    """An smtplib/socket error as one of our failure types, with the server's words."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in error.recipients.items()
        )
        kind = (
            base.TemporaryFailure if all(400 <= c < 500 for c in codes) else base.RecipientRefused
        )
        return kind(f"recipient refused: {detail}")
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return base.MessageRefused(
            f"SMTP login refused: {error.smtp_code} {_text(error.smtp_error)}"
        )
    if isinstance(error, smtplib.SMTPResponseException):
        code, text = error.smtp_code, _text(error.smtp_error)
        if 500 <= code < 600:
            return base.MessageRefused(f"SMTP server refused the message: {code} {text}")
        return base.TemporaryFailure(f"SMTP server said: {code} {text}")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        if isinstance(error.__context__, TimeoutError):
            return base.TemporaryFailure(f"SMTP server did not answer in time: {error}")
        return base.TemporaryFailure(f"SMTP server closed the connection: {error}")
    if isinstance(error, smtplib.SMTPNotSupportedError):  # SMTPUTF8 for a non-ASCII address
        return base.RecipientRefused(f"SMTP server cannot take this address: {error}")
    if isinstance(error, TimeoutError):  # socket.timeout included
        return base.TemporaryFailure(f"SMTP server did not answer in time: {error}")
    if isinstance(error, (OSError, smtplib.SMTPException)):  # refused, reset, DNS, TLS ...
        return base.TemporaryFailure(f"cannot talk to the SMTP server: {error}")
    if isinstance(error, UnicodeError):
        return base.RecipientRefused(f"the server cannot take this address: {error}")
    return base.TemporaryFailure(f"unexpected error while sending: {error!r}")


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except Exception:  # noqa: BLE001
        pass


__all__ = ["SmtpConnection", "SmtpMailer", "classify"]
