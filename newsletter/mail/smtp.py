"""The SMTP mailer: reused connections, pipelined, all driven by the thread that pushes.

Contract:
- `SmtpConnection(host, port, security=, user=, password=, timeout=, ssl_context=)`: one
  connection, opened on first use (smtplib: the greeting, EHLO, STARTTLS or implicit TLS, login
  when a user is set) and kept from message to message (opened again after it was lost); every
  socket operation bounded by `timeout`. `send(sender, recipient, data)` sends one message and
  raises a `MailError` whose type says its scope (see `classify`), nothing else.
- `SmtpConnection.from_settings(smtp)`: the connection `SmtpSettings` (NEWSLETTER_SMTP_*) say.
- `SmtpMailer(smtp, sender, report, workers=)`: `smtp` is `SmtpSettings`, `sender` the envelope
  sender of a message that names none. `workers` connections, every one driven by the thread
  that calls `push`, `flush` and `close` (no threads: each `report` is made in that thread). With
  one worker, `push` returns once the message is reported and recorded (the confirmation
  queue); with more, `push` returns at once while fewer than `workers` messages wait for a
  connection, else it first moves on what is ready (announcements; see Overlap). `flush`
  returns once every message pushed is reported and recorded. Each message waits its turn under one
  `RateLimiter` (NEWSLETTER_SMTP_RATE per second; 0: no limit); new messages go to the
  connections in turn.
- PIPELINING (RFC 2920), when the server offers it: a message's data, its end, and the next
  message's MAIL FROM, RCPT TO and DATA leave in one write, and their replies come back in one
  read; without it, each command waits for its reply.
- The record first: a connection sends the end of a message's data (the moment the server takes
  it) only after the message before it on that connection was reported, and the record that
  `report` returned (`base.Pending`) is done. The replies read in one round are reported
  together: every accepted message of the round in one `report` call. So a crash leaves at most
  one message per connection accepted and not recorded.
- Together: when `push` or `flush` waits for answers and the first ones come, the others are
  waited for a moment more (`GATHER`, 0.3 ms), so that answers that come close together make
  one report and one record, not one each.
- Overlap: while a record is on its way, or the servers have not answered yet, `push` returns
  (the caller makes the next messages meanwhile) as long as fewer than `AHEAD` times `workers`
  messages wait; each `push` then moves on what is ready without waiting (`poll`).
- Fewer connections than `workers`, when that is what the server takes: a connection that
  cannot be opened for a temporary reason (a 421 greeting such as "too many connections", a
  refused or reset connection, a timeout) while another one is open is set aside for the
  mailer's life, logged once, and its message waits for the open ones, untried (no failure, no
  retry). With no connection open, a refusal fails the message temporarily (the caller's
  retries and breaker), and the connections set aside may be tried again.
- A lost connection (closed, reset, no answer within `timeout`) fails the oldest message on it
  (temporarily); the messages behind it, whose data never left, wait for a connection again,
  untried. A 421 is that message's temporary failure, then the connection is dropped the same
  way. After a refused MAIL FROM, RCPT TO or DATA the next message starts with RSET.
- `classify(error)`: 4xx, timeouts and dropped or refused connections are temporary; a 5xx to
  RCPT TO refuses the recipient; a 5xx to MAIL FROM or DATA, or a refused login, refuses the
  message (our account or our content: bounce nobody).
"""

from __future__ import annotations

import logging
import re
import select
import smtplib
import ssl
import time
from collections import deque
from collections.abc import Callable

from newsletter.mail import base
from newsletter.ratelimit import Rate, RateLimiter
from newsletter.settings import SMTP_SECURITY, SmtpSettings

log = logging.getLogger(__name__)
CRLF = b"\r\n"
AHEAD = 4  # messages per connection made ahead while records and replies are on their way
GATHER = 0.0003  # seconds the first answers of a round wait for the others' (one record for all)
MAX_REPLY = 65536  # bytes of one reply (all its lines): more is not an SMTP server
_LINE_DOT = re.compile(rb"\n\.")  # faster than `in` or (?m)^ over a whole message


class _Flight:
    """One message on its way: which reply it waits for, and its first refusal."""

    __slots__ = ("outgoing", "sender", "error", "body_sent", "rcpt", "record")

    def __init__(self, outgoing: base.Outgoing, sender: str):
        self.outgoing, self.sender = outgoing, sender
        self.error: Exception | None = None
        self.body_sent = False
        self.rcpt = b""  # without PIPELINING: RCPT TO, sent once MAIL FROM is accepted
        self.record: base.Pending | None = None  # what `report` returned for it, if anything


class _Lost(Exception):
    """The connection is gone (or must go). `blame`: its oldest unfinished message fails with
    `error` (False: a message was refused already, the ones behind it were never tried)."""

    def __init__(self, error: Exception, *, blame: bool = True):
        super().__init__(str(error))
        self.error, self.blame = error, blame


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
        self._sock = None
        self.pipelining = self._size = self._utf8 = False
        self._flights: deque[_Flight] = deque()  # oldest first: at most two
        self._replies: deque[tuple[str, _Flight | None]] = deque()  # awaited, in order
        self._ready: _Flight | None = None  # DATA answered 354: its data goes at the next write
        self._ended: _Flight | None = None  # the last message that ended here (its record gates)
        self._out: list[bytes] = []
        self._buffer = b""
        self._lines: list[bytes] = []  # the lines so far of a reply that goes on
        self._rset = False  # the last transaction was refused half-way: RSET first
        self._deadline = 0.0
        self.set_aside = False  # the server would not open it while others were open

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

    # Opening and closing ------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._smtp is not None

    def open(self) -> None:
        """Connect, EHLO, TLS and login (smtplib); raises what smtplib or the socket raise."""
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
                try:
                    smtp.login(self.user, self.password)
                except smtplib.SMTPNotSupportedError as error:  # our setting, not the reader
                    raise smtplib.SMTPAuthenticationError(0, str(error)) from None
            smtp.ehlo_or_helo_if_needed()
        except BaseException:
            _quietly_close(smtp)
            raise
        self._smtp, self._sock = smtp, smtp.sock
        self.pipelining = smtp.has_extn("pipelining")
        self._size, self._utf8 = smtp.has_extn("size"), smtp.has_extn("smtputf8")

    def close(self) -> None:
        """QUIT when nothing is under way, else just hang up (a message whose data did not end
        is dropped by the server)."""
        smtp, self._smtp, self._sock = self._smtp, None, None
        quiet = not (self._flights or self._replies or self._ready)
        self._flights.clear()
        self._replies.clear()
        self._ready, self._out, self._buffer, self._lines, self._rset = None, [], b"", [], False
        if smtp is None:
            return
        try:
            if quiet:
                smtp.quit()
                return
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass
        _quietly_close(smtp)

    def drop(self, lost: _Lost) -> tuple[list[_Flight], list[_Flight]]:
        """The connection is lost: (the messages it finished: refused already, or the oldest
        one blamed with the error; the ones behind them, never tried). Hangs up."""
        flights = list(self._flights)
        self._flights.clear()
        self.close()
        finished = [flight for flight in flights if flight.error is not None]
        untried = [flight for flight in flights if flight.error is None]
        if lost.blame and untried:
            untried[0].error = classify(lost.error)
            finished.append(untried.pop(0))
        return finished, untried

    # Sending -----------------------------------------------------------------------------------
    @property
    def waiting(self) -> bool:
        """Replies are awaited."""
        return bool(self._replies)

    def can_take(self) -> bool:
        """A new message can start: with PIPELINING, behind one whose envelope was answered;
        without, when nothing else is under way; never on a connection set aside."""
        if self.set_aside:
            return False
        flights = self._flights
        if not flights:
            return True
        return self.pipelining and len(flights) == 1 and flights[0].body_sent

    def start(self, flight: _Flight) -> None:
        """Queue the message's envelope (MAIL FROM, and with PIPELINING RCPT TO and DATA)."""
        outgoing = flight.outgoing
        options = ""
        if self._size:
            options += f" SIZE={len(outgoing.data)}"
        ascii_only = outgoing.to.isascii() and flight.sender.isascii()
        try:
            if not ascii_only:
                if not self._utf8:
                    raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
                options += " SMTPUTF8"
            mail = _line(f"MAIL FROM:{_quote(flight.sender)}{options}")
            rcpt = _line(f"RCPT TO:{_quote(outgoing.to)}")
        except (smtplib.SMTPNotSupportedError, UnicodeError) as error:
            flight.error = classify(error)  # refused before a word is sent
            return
        if self._rset:
            self._out.append(b"RSET\r\n")
            self._replies.append(("RSET", None))
            self._rset = False
        self._flights.append(flight)
        self._command("MAIL", flight, mail)
        if self.pipelining:
            self._command("RCPT", flight, rcpt)
            self._command("DATA", flight, b"DATA\r\n")
        else:
            flight.rcpt = rcpt

    def _command(self, name: str, flight: _Flight, line: bytes) -> None:
        self._out.append(line)
        self._replies.append((name, flight))

    def gate(self) -> base.Pending | None:
        """The record of the message that ended here last (the next may end once it is done);
        None when there is nothing to wait for."""
        ended = self._ended
        return None if ended is None else ended.record

    def put_data(self) -> None:
        """The message whose DATA was answered 354: its data and end (the server takes it as
        the end arrives)."""
        flight, self._ready = self._ready, None
        data = flight.outgoing.data
        if _LINE_DOT.search(data) is not None:  # a line that starts with a dot: doubled
            data = _LINE_DOT.sub(b"\n..", data)
        if data[:1] == b".":
            data = b"." + data
        self._out.append(data if data[-2:] == CRLF else data + CRLF)
        self._out.append(b".\r\n")
        flight.body_sent = True
        self._replies.append(("END", flight))

    def write(self) -> None:
        """Send what is queued; raises `_Lost`."""
        if not self._out:
            return
        out, self._out = b"".join(self._out), []
        try:
            self._sock.sendall(out)
        except OSError as error:
            raise _Lost(_disconnected(error)) from None
        self._deadline = time.monotonic() + self.timeout

    def fileno(self) -> int:
        return self._sock.fileno()

    def pending(self) -> bool:
        """TLS has read more than was taken: readable without waiting."""
        return isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0

    def expired(self, now: float) -> bool:
        return bool(self._replies) and now >= self._deadline

    def read(self) -> list[_Flight]:
        """Take what the server said; the messages it finished (accepted: `error` None).
        Raises `_Lost`; the messages finished before it are then in `done`."""
        self.done: list[_Flight] = []
        try:
            chunk = self._sock.recv(65536)
        except OSError as error:
            raise _Lost(_disconnected(error)) from None
        if not chunk:
            raise _Lost(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))
        self._deadline = time.monotonic() + self.timeout
        lines = (self._buffer + chunk).split(CRLF)
        self._buffer = lines.pop()
        for line in lines:
            code = line[:3]
            self._lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] == b"-":
                continue
            text, self._lines = b"\n".join(self._lines), []
            if not code.isdigit():
                raise _Lost(smtplib.SMTPResponseException(-1, text))
            self._reply(int(code), text)
        if (self._lines or len(self._buffer) > 1024) and (
            sum(map(len, self._lines)) + len(self._buffer) > MAX_REPLY
        ):
            raise _Lost(smtplib.SMTPResponseException(-1, b"a reply longer than 64 KB"))
        return self.done

    def _reply(self, code: int, text: bytes) -> None:
        if not self._replies:
            raise _Lost(smtplib.SMTPResponseException(code, text))  # nothing was asked
        name, flight = self._replies.popleft()
        if name == "RSET":
            if code == 421:
                raise _Lost(smtplib.SMTPResponseException(code, text), blame=False)
            return
        if name == "MAIL" and code != 250:
            self._refuse(flight, smtplib.SMTPSenderRefused(code, text, flight.sender))
        elif name == "RCPT" and code not in (250, 251):
            refused = smtplib.SMTPRecipientsRefused({flight.outgoing.to: (code, text)})
            self._refuse(flight, refused)
        elif name == "DATA" and code != 354:
            self._refuse(flight, smtplib.SMTPDataError(code, text))
        elif name == "END":
            self._flights.popleft()
            self._ended = flight
            if code != 250:
                flight.error = classify(smtplib.SMTPDataError(code, text))
            self.done.append(flight)
        elif name == "DATA":
            if flight.error is not None:  # 354 after a refusal: the transaction is not ours
                raise _Lost(smtplib.SMTPResponseException(code, text))
            self._ready = flight
        elif not self.pipelining:  # MAIL or RCPT accepted: the next command
            if name == "MAIL":
                self._command("RCPT", flight, flight.rcpt)
            else:
                self._command("DATA", flight, b"DATA\r\n")
        if code == 421:  # the server closes: what is behind this message waits for another
            raise _Lost(smtplib.SMTPServerDisconnected("421 from the server"), blame=False)

    def _refuse(self, flight: _Flight, error: Exception) -> None:
        """The first refusal of a transaction is its message's; once its DATA was answered (or,
        without PIPELINING, at once), the message is finished with it."""
        if flight.error is None:
            flight.error = classify(error)
        if self.pipelining and self._replies and self._replies[0][1] is flight:
            return  # more replies of this transaction to come
        self._flights.remove(flight)
        self._rset = True
        self.done.append(flight)

    def send(self, sender: str, recipient: str, data: bytes) -> None:
        """Wire bytes (CRLF) to one recipient, now."""
        errors: list[base.MailError | None] = []
        pool = _Pool([self], lambda outgoings, error: errors.append(error))
        pool.waiting.append(_Flight(base.Outgoing(to=recipient, message_id="", data=data), sender))
        pool.run(lambda: bool(errors))
        if errors[0] is not None:
            raise errors[0]


class _Pool:
    """The connections, driven in turn from one thread: write what can go, wait for replies,
    report what was answered (accepted ones together), and again."""

    def __init__(self, connections: list[SmtpConnection], report: base.Report, pace=None):
        self.connections, self.report, self.pace = connections, report, pace
        self.waiting: deque[_Flight] = deque()
        self.finished: list[_Flight] = []
        self.unrecorded: deque[base.Pending] = deque()  # what `report` returned, oldest first
        self.closing = False
        self._turn = 0

    def run(self, done: Callable[[], bool]) -> None:
        while True:
            self._write()
            if done():
                return
            self._round()

    def busy(self) -> bool:
        return bool(self.waiting) or any(c._flights for c in self.connections)

    def recorded(self, *, wait: bool) -> bool:
        """Whether every record `report` returned is done (waiting for them when `wait`);
        raises the error of a record that failed."""
        unrecorded = self.unrecorded
        while unrecorded:
            if not wait and not unrecorded[0].done():
                return False
            unrecorded.popleft().wait()
        return True

    def poll(self) -> None:
        """Move on what needs no waiting: the replies already here (once every connection that
        waits has its answer: one report, one record for them all), the ends of messages whose
        record before them is done, new messages on free connections."""
        self._write()
        listening = [c for c in self.connections if c.is_open and c.waiting]
        if listening:
            ready = [c for c in listening if c.pending()] or select.select(listening, [], [], 0)[0]
            if len(ready) == len(listening):  # all answered: their records go together
                self._read(ready)
                self._write()

    def _write(self) -> None:
        connections = self.connections
        done: dict[int, bool] = {}  # each record asked once (asking may read a socket)
        for connection in connections:
            if connection._ready is None:
                continue
            if self.closing:  # never started: the server drops it when we hang up
                connection._ready = None
                continue
            record = connection.gate()  # the end, once the one before it is recorded
            if record is not None:
                key = id(record)
                if key not in done:
                    done[key] = record.done()
                if not done[key]:
                    continue
            connection.put_data()
        count = len(connections)
        while self.waiting and not self.closing:
            for step in range(count):
                connection = connections[(self._turn + step) % count]
                if connection.can_take():
                    break
            else:
                break
            self._turn = (self._turn + step + 1) % count
            flight = self.waiting.popleft()
            if not connection.is_open:
                try:
                    connection.open()
                except Exception as error:  # noqa: BLE001 - every failure becomes one of ours
                    connection.close()
                    failure = classify(error)
                    if self._set_aside(connection, failure):
                        self.waiting.appendleft(flight)  # untried: an open connection takes it
                        continue
                    flight.error = failure
                    self.finished.append(flight)
                    self.report_finished()
                    continue
            if self.pace is not None:
                self.pace.wait()
            self._guard(connection, connection.start, flight)
            if flight.error is not None and flight not in connection._flights:
                self.finished.append(flight)  # refused before a word was sent (SMTPUTF8)
        for connection in connections:
            if connection._out:
                self._guard(connection, connection.write)
        self.report_finished()

    def _guard(self, connection: SmtpConnection, action, *args) -> None:
        try:
            action(*args)
        except _Lost as lost:
            self._lose(connection, lost)

    def _lose(self, connection: SmtpConnection, lost: _Lost) -> None:
        finished, untried = connection.drop(lost)
        self.finished += finished
        self.waiting.extendleft(reversed(untried))
        if not any(c.is_open for c in self.connections):  # none left: each may be tried again
            for other in self.connections:
                other.set_aside = False

    def _set_aside(self, connection: SmtpConnection, failure: base.MailError) -> bool:
        """Whether a connection the server would not open is set aside (a temporary refusal
        while another connection is open: the server takes fewer than we asked for)."""
        if not isinstance(failure, base.TemporaryFailure):
            return False  # a refused login, say: the message's failure, as always
        if not any(c.is_open for c in self.connections if c is not connection):
            return False
        connection.set_aside = True
        count = len(self.connections)
        log.warning(
            "SMTP server %s:%s would not open connection %d of %d (%s): going on with %d",
            connection.host, connection.port, self.connections.index(connection) + 1, count,
            failure, sum(c.is_open for c in self.connections),
        )  # fmt: skip
        return True

    def _round(self) -> None:
        """Wait for replies (at most until the first connection's time is up), or for the
        oldest record on its way when one is (whichever comes first), read the replies and
        report what they finished."""
        listening = [c for c in self.connections if c.is_open and c.waiting]
        record = None if self.recorded(wait=False) else self.unrecorded[0]
        if record is not None and (not listening or not hasattr(record, "fileno")):
            self.unrecorded.popleft().wait()  # nothing else to wait for, or nothing to select on
            return
        if not listening:
            return
        ready = [c for c in listening if c.pending()]
        if not ready:
            now = time.monotonic()
            wait = max(0.0, min(c._deadline for c in listening) - now)
            waited = select.select(listening + ([record] if record else []), [], [], wait)[0]
            ready = [c for c in waited if c is not record]
            if not waited:
                now = time.monotonic()
                for connection in listening:
                    if connection.expired(now):
                        self._lose(connection, _Lost(TimeoutError("timed out")))
            elif ready and len(ready) < len(listening):  # the others' answers are close behind
                rest = [c for c in listening if c not in ready]
                ready += select.select(rest, [], [], GATHER)[0]
        self._read(ready)

    def _read(self, ready: list[SmtpConnection]) -> None:
        for connection in ready:
            try:
                self.finished += connection.read()
            except _Lost as lost:
                self.finished += connection.done
                self._lose(connection, lost)
        self.report_finished()

    def report_finished(self) -> None:
        """Every finished message reported once: the accepted ones in one call."""
        if not self.finished:
            return
        finished, self.finished = self.finished, []
        accepted = [flight for flight in finished if flight.error is None]
        if accepted:
            pending = self.report([flight.outgoing for flight in accepted], None)
            if pending is not None:
                self.unrecorded.append(pending)
                for flight in accepted:
                    flight.record = pending
        for flight in finished:
            if flight.error is not None:
                base.settle(self.report([flight.outgoing], flight.error))


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
        pace = RateLimiter(Rate.per_second(smtp.rate), burst=1)
        # One TLS context for all connections: loading the CA certificates costs ~0.2 s each.
        tls = (
            ssl.create_default_context()
            if smtp.security != "none"
            else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # unused without TLS: no CA loading
        )
        self.connection = lambda: SmtpConnection.from_settings(smtp, tls)
        self._pool = _Pool(
            [self.connection() for _ in range(self.workers)],
            report,
            None if pace.rate.unlimited else pace,
        )

    def push(self, outgoing: base.Outgoing) -> None:
        pool = self._pool
        pool.waiting.append(_Flight(outgoing, outgoing.envelope_from or self.sender))
        if self.workers == 1:
            self.flush()
        elif len(pool.waiting) >= self.workers:
            pool.poll()
            if len(pool.waiting) >= AHEAD * self.workers:
                pool.run(lambda: len(pool.waiting) < AHEAD * self.workers)

    def flush(self) -> None:
        pool = self._pool
        pool.run(lambda: not pool.busy())
        pool.recorded(wait=True)

    def close(self) -> None:
        """What waits for a connection is dropped, unreported; a message whose data left is
        waited for and reported; then every connection says QUIT (or hangs up)."""
        pool = self._pool
        pool.waiting.clear()
        pool.closing = True
        try:
            pool.report_finished()
            pool.run(lambda: not any(f.body_sent for c in pool.connections for f in c._flights))
            pool.recorded(wait=True)
        finally:
            for connection in pool.connections:
                connection.close()
            pool.closing = False


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


def _line(command: str) -> bytes:
    """A command line; UTF-8 only for an internationalised address (SMTPUTF8)."""
    return command.encode("ascii" if command.isascii() else "utf-8") + CRLF


def _disconnected(error: OSError) -> Exception:
    if isinstance(error, TimeoutError):
        return error
    return smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {error}")


_PLAIN = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


def _quote(address: str) -> str:
    """<address> for MAIL FROM and RCPT TO (smtplib's quoteaddr, fast for a plain address)."""
    return f"<{address}>" if _PLAIN.fullmatch(address) else smtplib.quoteaddr(address)


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
