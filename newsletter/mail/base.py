"""The one mail interface, in the spirit of listmonk's messengers: `push`, `flush`, `close`.

Contract:
- An `Outgoing` is one message to one recipient: the address, the Message-ID, the message as
  wire bytes (CRLF, headers included) and, optionally, a shared `Batch` (one body for many
  recipients, with placeholders filled from the recipient's `variables`) for providers that send
  one call to many (Mailgun). `ref` is the caller's own handle, handed back untouched.
- A `Mailer` takes messages with `push(outgoing)` and reports every one, exactly once, to the
  `report(outgoings, error)` callback it was made with: `error` is None (accepted) or a
  `MailError` whose type says its scope:
  - `TemporaryFailure`: not sent now, may go later (4xx, 429, 5xx from an HTTP API, timeouts,
    dropped or refused connections, a full disk);
  - `RecipientRefused`: this address, for good (5xx to RCPT TO, a provider's refusal of one
    recipient): bounce it;
  - `MessageRefused`: this message or our account (5xx to MAIL FROM or DATA, a login refused, an
    API key or domain refused, a request every recipient gets refused for): stop, bounce nobody.
  `report` may be called from another thread, and for several messages at once (a batch). It
  may return a `Pending`: the record of what it was told, still on its way; the mailer waits
  for it (`done()`, `wait()`, which raises if the record failed) before anything that must
  follow the record: the SMTP pool before it ends the next message on a connection, the
  others at once (`settle`).
- `flush()` returns when everything pushed so far has been reported. `close()` ends the session;
  anything pushed but not yet sent is dropped unreported (the caller still holds it as pending).
- `batches` is True when the mailer uses `Outgoing.batch` (then `data` may be empty).
The mailers: `outbox` (.eml files), `smtp` (a pool of reused connections, paced) and `mailgun`
(the HTTP API); `newsletter.mail.connect(settings, report)` makes the one the settings name.
The mail room knows no feature: callers hand it finished values (addresses, bytes, headers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class MailError(Exception):
    """The message was not sent; the subclass says what to do about it."""


class TemporaryFailure(MailError):
    """Not sent now; the same message may go through later."""


class RecipientRefused(MailError):
    """This recipient's address is refused for good: bounce it, keep sending to the others."""


class MessageRefused(MailError):
    """The message itself or our account is refused: stop sending it, bounce nobody."""


@dataclass(frozen=True)
class Batch:
    """One body for many recipients: `placeholders` maps a marker text found in the bodies and
    header values to the name of the recipient variable that replaces it."""

    key: str  # what makes two pushes part of the same batch (e.g. an announcement's key)
    sender: str
    subject: str
    text: str
    html: str
    headers: tuple[tuple[str, str], ...] = ()
    placeholders: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    to: str
    message_id: str
    data: bytes = b""  # the whole message, CRLF line ends
    batch: Batch | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    ref: object = None
    envelope_from: str = ""  # the SMTP return path ("": the From address), e.g. a VERP address


class Pending(Protocol):
    """What a `report` may return: its record, on its way. One that also has `fileno()` (the
    socket its answer arrives on) is waited for in the same `select` as the mail servers."""

    def done(self) -> bool: ...

    def wait(self) -> object: ...


Report = Callable[[list[Outgoing], "MailError | None"], "Pending | None"]


def settle(pending: Pending | None) -> None:
    """Wait for the record a `report` returned (raises if it failed)."""
    if pending is not None:
        pending.wait()


class Mailer(Protocol):
    batches: bool

    def push(self, outgoing: Outgoing) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Collect:
    """A `report` that keeps what it is told: `results[message_id] = error or None`. For callers
    that send a few messages and look at each result (the confirmation queue, tests)."""

    def __init__(self):
        self.results: dict[str, MailError | None] = {}

    def __call__(self, outgoings: list[Outgoing], error: MailError | None) -> None:
        for outgoing in outgoings:
            self.results[outgoing.message_id] = error
