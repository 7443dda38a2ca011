"""The bounce mailbox: bounces and spam complaints that come back by email, for plain SMTP senders.

Contract:
- `fetch(settings, ssl_context=None) -> Report` logs in to NEWSLETTER_IMAP_HOST over IMAPS
  (`ssl.create_default_context()` unless a context is given: tests pass one that trusts their
  own certificate), reads every message of NEWSLETTER_IMAP_FOLDER not flagged \\Deleted without
  marking it read (BODY.PEEK[]), and hands each one to `parse`, then `apply`. A message that gave
  at least one event `Feedback` recorded (or had recorded before) is moved to
  NEWSLETTER_IMAP_DONE_FOLDER (created when missing; UID MOVE where the server has it, else
  COPY, \\Deleted and EXPUNGE). Everything else stays where it is, untouched and unread, for a
  person to look at: junk (auto-replies, other mail, malformed MIME), reports without proof
  (also kept for `invoke bounces.review`) and reports about someone no longer on the list.
- `parse(raw, settings) -> Notice` reads one message: an abuse report (ARF, RFC 5965:
  multipart/report; report-type=feedback-report, Feedback-Type: abuse) is a complaint about
  Original-Rcpt-To (or the original's To); a delivery status notification (RFC 3464) gives one
  failure per recipient block whose Action is failed or delayed, its kind from Status (see
  `classify`) and its reason from Diagnostic-Code; any other bounce format is left to
  flufl.bounce's detectors (`all_failures`: permanent -> hard, temporary -> soft). The original
  message's Message-ID comes from the returned message or headers (message/rfc822,
  text/rfc822-headers), X-Original-Message-ID, In-Reply-To, or a copy quoted in the text.
- `apply(notice, feedback, settings) -> [(Failure, Applied)]` acts only on proof that we mailed
  the subscriber (`mail.proof`): a VERP return path of ours the report was sent to (or that the
  returned message carries), or a Message-ID of ours that the report quotes, each checked by
  recomputing its seal with the secret key. The event goes to the one subscriber the proof names
  (provider "mailbox", key "mailbox:<the report's own Message-ID>", so reading a report twice
  changes nothing): the failure that names their address, else (a forward) the worst one; other
  addresses the report lists are never touched. A report without proof, or whose proofs name
  several subscribers, changes nobody: it is kept for review (`Feedback.review`, listed by
  `invoke bounces.review`) and left in the folder. A notice's `junk` says why a message is no
  report at all. At most `MAX_FAILURES` failures are read from one report.
- A detector of flufl.bounce that raises on a hostile message logs one warning line naming the
  report, not a traceback.
Each event is its own short transaction (`Feedback.record`), never held across the network, so
a fetch runs safely beside an announcement that is sending, or beside another fetch.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.parser
import email.utils
import hashlib
import imaplib
import logging
import re
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message

from flufl.bounce import all_failures

from newsletter.database import Database
from newsletter.mail import proof
from newsletter.settings import Settings
from newsletter.subscriptions.addresses import InvalidAddress, normalize
from newsletter.subscriptions.feedback import Applied, Claim, Event, Feedback, Kind

log = logging.getLogger(__name__)
PROVIDER = "mailbox"
MAX_FAILURES = 50  # failures read from one report; the rest are not looked at
MAX_CANDIDATES = 20  # Message-IDs and return paths tried as proof, per report
IMAP_TIMEOUT_S = 60.0
# 5.x.x that say nothing about the address itself: counted as soft bounces. Mailbox full, message
# too big, and 5.7.x (refused by policy: spam filters, our sender's reputation, DMARC).
SOFT_PERMANENT = ("5.2.2", "5.3.4", "5.7.")
ENVELOPE_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
HEADER_PARTS = ("text/rfc822-headers", "message/rfc822-headers")
AUTO_REPLY_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|autorespon|vacation|away from|"
    r"abwesen|absence|r[ée]ponse automatique|risposta automatica|respuesta autom",
    re.IGNORECASE,
)
DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery|mail system", re.IGNORECASE)
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_REPLY = re.compile(r"\b[45]\d\d[ -]\S.*")


class BounceError(Exception):
    """The bounce mailbox cannot be read (not configured, unreachable, login refused); str()
    says which, for the person running the task."""


@dataclass(frozen=True)
class Failure:
    """One recipient's failure, as the report tells it: `addresses` are the candidates for who
    it was, the likeliest first (Original-Recipient, then Final-Recipient)."""

    kind: Kind
    addresses: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True)
class Notice:
    """One message of the mailbox, read."""

    report_id: str  # its own Message-ID, or a digest of its bytes
    failures: tuple[Failure, ...] = ()
    original_message_id: str | None = None  # the message it reports on, when it says
    proven: frozenset[str] = frozenset()  # public ids our Message-IDs / VERP paths in it prove
    occurred_at: datetime | None = None
    junk: str = ""  # why it is not a report we act on ("" when it is one)
    subject: str = ""


@dataclass
class Report:
    """What one `fetch` did, for the task to print."""

    folder: str
    done_folder: str
    read: int = 0  # messages looked at
    moved: int = 0  # handled, moved to the done folder
    not_moved: int = 0  # handled, but the move failed: read again (as duplicates) next time
    applied: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    duplicate: int = 0  # events recorded by an earlier fetch
    unknown: int = 0  # proven, but about nobody on the list now (erased since): left alone
    stale: int = 0  # proven, but dated before the subscriber's current subscription
    review: int = 0  # reports without proof: changed nobody, kept for review, left alone
    junk: int = 0  # messages that are not a bounce or complaint: left alone
    left: list[str] = field(default_factory=list)  # one line per message left alone

    def lines(self) -> list[str]:
        applied = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in
                            self.applied.items())  # fmt: skip
        lines = [
            f"Bounce mailbox {self.folder}: {self.read} message(s) read, {self.moved} moved to "
            f"{self.done_folder}.",
            f"Recorded: {applied}; {self.duplicate} already recorded before"
            + (f", {self.stale} dated before the subscription they name" if self.stale else "")
            + ".",
            f"Left in {self.folder}: {self.review} without proof that we mailed whom they name "
            f"(kept for review: invoke bounces.review), {self.unknown} about someone no longer "
            f"on the list, {self.junk} not a bounce or complaint.",
        ]
        if self.not_moved:
            lines.append(
                f"{self.not_moved} handled message(s) could not be moved: they are read again "
                "next time and change nothing."
            )
        return lines


# Reading one message -----------------------------------------------------------------------------
def parse(raw: bytes, settings: Settings) -> Notice:
    """What one message of the bounce mailbox says. Never raises: a message that cannot be read
    is junk."""
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()[:32]
    try:
        message = email.message_from_bytes(raw)  # compat32: the Message flufl.bounce reads
    except Exception as error:  # noqa: BLE001 - MIME beyond what the email package forgives
        return Notice(report_id=digest, junk=f"unreadable ({type(error).__name__}: {error})")
    report_id = _message_id(message.get("Message-ID")) or digest
    with _QuietDetectors() as quiet:
        try:
            notice = _parse(message, report_id, settings)
        except Exception as error:  # noqa: BLE001 - MIME beyond what the email package forgives
            notice = Notice(report_id=report_id, junk=f"unreadable ({type(error).__name__})")
    if quiet.failed:
        log.warning(
            "bounce mailbox: report %s (%r): %s failed on it (%s); left for a person",
            report_id[:200], _text(message.get("Subject"))[:100], ", ".join(quiet.failed),
            "; ".join(quiet.errors),
        )  # fmt: skip
    return notice


class _Proof:
    """What a report offers as proof that we sent the message it is about: return paths and
    Message-IDs, checked later (`proven`); at most `MAX_CANDIDATES` of each."""

    def __init__(self):
        self.paths: list[str] = []
        self.ids: list[str] = []

    def path(self, *addresses: str) -> None:
        self.paths += [a for a in addresses if a][: MAX_CANDIDATES - len(self.paths)]

    def message_id(self, *values) -> None:
        found = [i for v in values if (i := _message_id(v))]
        self.ids += found[: MAX_CANDIDATES - len(self.ids)]

    def proven(self, settings: Settings) -> frozenset[str]:
        return frozenset(
            [p for a in self.paths if (p := proof.proven_by_verp(settings, a))]
            + [p for i in self.ids if (p := proof.proven_by_message_id(settings, i))]
        )


def _parse(message: Message, report_id: str, settings: Settings) -> Notice:
    evidence = _Proof()
    evidence.path(*_header_addresses(message, ENVELOPE_HEADERS))
    base = dict(
        report_id=report_id,
        occurred_at=_date(message.get("Date")),
        subject=_text(message.get("Subject")),
    )
    feedback = _first_part(message, "message/feedback-report")
    report_type = str(message.get_param("report-type") or "").lower()
    if feedback is not None or report_type == "feedback-report":
        return _complaint(message, feedback, base, evidence, settings)
    original = _original(message)
    if original is not None:
        evidence.message_id(original.get("Message-ID"))
        evidence.path(*_header_addresses(original, ("Return-Path",)))
    evidence.message_id(message.get("X-Original-Message-ID"), message.get("In-Reply-To"))
    text = _body_text(message)
    quoted = re.findall(r"^[ \t>]*Message-ID:\s*(<[^<>\s]+>)", text[:200_000],
                        re.IGNORECASE | re.MULTILINE)  # fmt: skip
    statuses = [part for part in message.walk() if part.get_content_type() in
                ("message/delivery-status", "message/global-delivery-status")]  # fmt: skip
    if statuses:
        blocks = [block for part in statuses for block in _blocks(part)]
        failures = tuple(failure for block in blocks if (failure := _block_failure(block)))
        evidence.message_id(*(block.get("X-Original-Message-ID") for block in blocks), *quoted)
        if not failures:
            return Notice(**base, junk="a delivery report without a failure (delivered, relayed)")
        return _notice(base, failures, evidence, settings)
    if _auto_reply(message):
        return Notice(**base, junk="an auto-reply")
    temporary, permanent = all_failures(message)
    if not (temporary or permanent):
        return Notice(**base, junk="no failed recipient found: not a bounce, or one not understood")

    def failure(kind: Kind, address: str) -> Failure:
        # the SMTP reply that follows the address in the notice, else the first one, else the
        # subject; a reply with an enhanced status code can make a permanent failure soft
        at = text.casefold().find(address.casefold())
        reply = SMTP_REPLY.search(text, at if at >= 0 else 0) or SMTP_REPLY.search(text)
        if reply is None:
            return Failure(kind, (address,), base["subject"])
        if kind == Kind.HARD_BOUNCE:
            kind = classify("failed", reply.group(0)) or kind
        return Failure(kind, (address,), _squash(reply.group(0))[:300])

    failures = tuple(
        [failure(Kind.HARD_BOUNCE, address) for address in _decoded(permanent)[:MAX_FAILURES]]
        + [failure(Kind.SOFT_BOUNCE, address) for address in _decoded(temporary)[:MAX_FAILURES]]
    )
    evidence.message_id(*quoted)
    return _notice(base, failures, evidence, settings)


def _notice(base: dict, failures, evidence: _Proof, settings: Settings) -> Notice:
    return Notice(
        **base,
        failures=tuple(failures)[:MAX_FAILURES],
        original_message_id=evidence.ids[0] if evidence.ids else None,
        proven=evidence.proven(settings),
    )


def classify(action: str, status: str) -> Kind | None:
    """A DSN recipient block's kind: failed with 5.x.x is a hard bounce, except the codes that
    say nothing about the address (mailbox full, message too big, refused by policy 5.7.x);
    those, 4.x.x, and delayed are soft. Any other action (delivered, relayed, expanded): None."""
    action = action.strip().lower()
    if action.startswith("delayed"):
        return Kind.SOFT_BOUNCE
    if not action.startswith(("fail", "error")):  # opensmtpd writes "error"
        return None
    code = STATUS.search(status or "")
    if code and code.group(1) == "4":
        return Kind.SOFT_BOUNCE
    if code and code.group(0).startswith(SOFT_PERMANENT):
        return Kind.SOFT_BOUNCE
    return Kind.HARD_BOUNCE


def _complaint(message: Message, part: Message | None, base: dict, evidence: _Proof,
               settings: Settings) -> Notice:  # fmt: skip
    fields = _fields(part) if part is not None else Message()
    feedback_type = (fields.get("Feedback-Type") or "").strip().lower()
    if feedback_type != "abuse":
        return Notice(**base, junk=f"a feedback report of type {feedback_type or 'none'!r}")
    original = _original(message, skip=part)
    addresses = [_address(value) for value in fields.get_all("Original-Rcpt-To", [])]
    evidence.path(*map(_address, fields.get_all("Original-Mail-From", [])))
    if original is not None:
        addresses += [address for _, address in email.utils.getaddresses(
            [_text(value) for value in original.get_all("To", [])])]  # fmt: skip
        evidence.path(*map(_address, original.get_all("Return-Path", [])))
        evidence.message_id(original.get("Message-ID"))
    evidence.message_id(fields.get("Message-ID"))  # some reporters copy it here
    reason = f"abuse report ({_text(fields.get('User-Agent')) or 'ARF'})"
    occurred = _date(fields.get("Arrival-Date") or fields.get("Received-Date"))
    base = {**base, "occurred_at": occurred or base["occurred_at"]}
    failure = Failure(Kind.COMPLAINT, _unique(addresses)[:MAX_FAILURES], reason)
    return _notice(base, (failure,), evidence, settings)


def _block_failure(block: Message) -> Failure | None:
    kind = classify(block.get("Action") or "", block.get("Status") or "")
    if kind is None:
        return None
    addresses = _unique(
        _address(block.get(name) or "")
        for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient")
    )
    if not addresses:
        return None
    diagnostic = _squash(_text(block.get("Diagnostic-Code")))
    kind_of, _, words = diagnostic.partition(";")
    reason = (words if words and " " not in kind_of.strip() else diagnostic).strip()
    status = _squash(_text(block.get("Status")))
    return Failure(kind, addresses, reason or f"{block.get('Action', '').strip()} {status}".strip())


def _blocks(part: Message) -> list[Message]:
    """A delivery-status part's header blocks (per message, then per recipient). The email
    package splits message/delivery-status itself; the global variant, or a part it could not
    split, is split here."""
    payload = part.get_payload(decode=False)
    if isinstance(payload, list) and part.get_content_type() == "message/delivery-status":
        return [block for block in payload if isinstance(block, Message)]
    text = str(payload[0]) if isinstance(payload, list) and payload else str(payload or "")
    if part.get("Content-Transfer-Encoding", "").lower() in ("base64", "quoted-printable"):
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    parser = email.parser.HeaderParser()
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.replace("\r\n", "\n"))
    return [parser.parsestr(chunk.strip("\n") + "\n") for chunk in chunks if chunk.strip()]


def _original(message: Message, skip: Message | None = None) -> Message | None:
    """The headers of the message the report is about (message/rfc822 or rfc822-headers part)."""
    for part in message.walk():
        kind = part.get_content_type()
        if part is skip or part is message:
            continue
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            if isinstance(payload, str) and payload.strip():
                return email.message_from_string(payload)
        elif kind in HEADER_PARTS:
            data = part.get_payload(decode=True) or b""
            return email.parser.BytesHeaderParser().parsebytes(data)
    return None


def _fields(part: Message) -> Message:
    """The fields of a message/feedback-report part (the email package parses the part's body
    as a message of headers; a part it did not parse is parsed here)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    data = part.get_payload(decode=True) or b""
    return email.parser.BytesHeaderParser().parsebytes(data)


def _first_part(message: Message, content_type: str) -> Message | None:
    return next((p for p in message.walk() if p.get_content_type() == content_type), None)


def _auto_reply(message: Message) -> bool:
    """A vacation message or other auto-reply (RFC 3834), not a bounce: bounces come from a mail
    system (MAILER-DAEMON, postmaster) or name the failed recipients (X-Failed-Recipients)."""
    if message.get("X-Failed-Recipients") or DAEMON.search(_text(message.get("From"))):
        return False
    auto = (message.get("Auto-Submitted") or "").strip().lower()
    precedence = (message.get("Precedence") or "").strip().lower()
    return (
        auto.startswith("auto-replied")
        or precedence == "auto_reply"
        or bool(message.get("X-Autoreply") or message.get("X-Autorespond"))
        or bool(AUTO_REPLY_SUBJECT.search(_text(message.get("Subject"))))
    )


def _body_text(message: Message) -> str:
    """The plain text a person would read first (the notice of a text bounce)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            data = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            try:
                return data.decode(charset, "replace")
            except LookupError:
                return data.decode("utf-8", "replace")
    return ""


# Small readers -----------------------------------------------------------------------------------
def _text(value) -> str:
    """A header's value as text (RFC 2047 words decoded), or ""."""
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        return str(value)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _message_id(value) -> str | None:
    found = re.search(r"<[^<>\s]+@[^<>\s]+>", str(value or ""))
    return found.group(0) if found else None


def _address(value: str) -> str:
    """The address in a DSN or ARF field: 'rfc822; user@example.com', '<user@example.com>'."""
    kind, separator, address = str(value).partition(";")
    if separator and kind.strip().lower() not in ("rfc822", "utf-8"):
        return ""
    address = (address if separator else kind).strip().strip("<>").strip()
    return address if "@" in address and not any(c.isspace() for c in address) else ""


def _header_addresses(message: Message, names: Iterable[str]) -> list[str]:
    values = [_text(value) for name in names for value in message.get_all(name, [])]
    return [address for _, address in email.utils.getaddresses(values) if address]


def _decoded(addresses: Iterable[bytes]) -> list[str]:
    return sorted(address.decode("ascii", "replace") for address in addresses)


def _unique(addresses: Iterable[str]) -> tuple[str, ...]:
    seen, result = set(), []
    for address in addresses:
        if address and address.casefold() not in seen:
            seen.add(address.casefold())
            result.append(address)
    return tuple(result)


def _date(value) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Applying ----------------------------------------------------------------------------------------
def apply(notice: Notice, feedback: Feedback, settings: Settings) -> list[tuple[Failure, Applied]]:
    """Act on a report (see the module's contract): [(the failure applied, what
    `Feedback.record` did)] when the report proves whom we mailed; [(each failure, REVIEW)] when
    it proves nothing (kept for review, nobody changed); [] for junk."""
    if notice.junk or not notice.failures:
        return []
    if len(notice.proven) != 1:
        why = ("no Message-ID or return path of ours proves whom it is about" if not notice.proven
               else "its proofs name several subscribers")  # fmt: skip
        result = feedback.review(
            Claim(
                provider=PROVIDER,
                report_key=f"{PROVIDER}:{notice.report_id}",
                kind=_worst(notice.failures).kind,
                addresses=tuple(a for f in notice.failures for a in f.addresses[:1]),
                why=why,
                reason=_worst(notice.failures).reason,
                subject=notice.subject,
                message_id=notice.original_message_id,
            )
        )
        return [(failure, result) for failure in notice.failures]
    (public_id,) = notice.proven
    subscriber = feedback.subscribers.get(public_id)
    failure = _about(notice.failures, subscriber.email_key if subscriber else "")
    now = feedback.database.clock()
    occurred = notice.occurred_at
    if occurred is None or occurred > now + timedelta(days=1):
        occurred = now  # no date, or one in the future
    key = f"{PROVIDER}:{notice.report_id}:{subscriber.email_key if subscriber else public_id}"
    event = Event(
        kind=failure.kind,
        public_id=public_id,
        provider=PROVIDER,
        occurred_at=occurred,
        reason=failure.reason,
        message_id=notice.original_message_id,
        key=key,
    )
    return [(failure, feedback.record(event))]


def _about(failures: tuple[Failure, ...], key: str) -> Failure:
    """The failure that names the subscriber's address, else (forwarded) the worst."""
    for failure in failures:
        for candidate in failure.addresses:
            try:
                if normalize(candidate)[1] == key:
                    return failure
            except InvalidAddress:
                continue
    return _worst(failures)


def _worst(failures: Iterable[Failure]) -> Failure:
    order = {Kind.COMPLAINT: 0, Kind.HARD_BOUNCE: 1, Kind.SOFT_BOUNCE: 2}
    return min(failures, key=lambda failure: order[failure.kind])


class _QuietDetectors(logging.Filter):
    """While a report is parsed: a flufl.bounce detector's exception becomes a note (which
    detector, which error) instead of a logged traceback; `parse` logs one line for the report."""

    _logger = logging.getLogger("flufl.bounce")
    _local = threading.local()

    def __enter__(self) -> _QuietDetectors:
        self.failed: list[str] = []
        self.errors: list[str] = []
        self._local.current = self
        self._logger.addFilter(self)
        return self

    def __exit__(self, *_exc) -> None:
        self._logger.removeFilter(self)
        self._local.current = None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(self._local, "current", None) is not self:
            return True  # another thread's parse, or none
        if record.exc_info:
            name = getattr(record.args[0], "__name__", str(record.args[0])) if record.args else "?"
            error = record.exc_info[1]
            self.failed.append(f"detector {name}")
            self.errors.append(f"{type(error).__name__}: {str(error)[:80]}")
            return False
        return True


# The mailbox -------------------------------------------------------------------------------------
def fetch(settings: Settings, ssl_context: ssl.SSLContext | None = None) -> Report:
    """Read the bounce mailbox once (see the module's contract): `invoke bounces.fetch`."""
    if not settings.imap_host:
        raise BounceError("NEWSLETTER_IMAP_HOST is not set: there is no bounce mailbox to read")
    folder, done = _mailbox(settings.imap_folder), _mailbox(settings.imap_done_folder)
    report = Report(settings.imap_folder, settings.imap_done_folder)
    database = Database(settings.database)
    try:
        feedback = Feedback.from_settings(database, settings)
        imap = _login(settings, ssl_context)
        try:
            _read(imap, folder, done, settings, feedback, report)
        except (OSError, imaplib.IMAP4.error) as error:
            raise BounceError(f"the bounce mailbox failed while reading: {error}") from None
        finally:
            try:
                imap.logout()
            except (OSError, imaplib.IMAP4.error):
                pass
    finally:
        database.close()
    return report


def _login(settings: Settings, ssl_context: ssl.SSLContext | None) -> imaplib.IMAP4_SSL:
    where = f"{settings.imap_host}:{settings.imap_port}"
    try:
        imap = imaplib.IMAP4_SSL(
            settings.imap_host,
            settings.imap_port,
            ssl_context=ssl_context or ssl.create_default_context(),
            timeout=IMAP_TIMEOUT_S,
        )
    except (OSError, imaplib.IMAP4.error) as error:
        raise BounceError(f"cannot connect to the bounce mailbox at {where}: {error}") from None
    try:
        imap.login(_quote(settings.imap_user), settings.imap_password)
    except (OSError, imaplib.IMAP4.error) as error:
        try:
            imap.shutdown()
        except OSError:
            pass
        raise BounceError(f"{where} refused the login of {settings.imap_user}: {error}") from None
    return imap


def _read(imap, folder: str, done: str, settings, feedback: Feedback, report: Report) -> None:
    status, data = imap.select(folder)
    if status != "OK":
        raise BounceError(f"cannot open the folder {settings.imap_folder}: {_said(data)}")
    status, data = imap.capability()
    capabilities = set(_said(data).upper().split()) if status == "OK" else set()
    status, data = imap.uid("SEARCH", "UNDELETED")
    if status != "OK":
        raise BounceError(f"cannot search {settings.imap_folder}: {_said(data)}")
    done_ready = False
    for uid in (data[0] or b"").split():
        raw = _message(imap, uid)
        if raw is None:  # gone meanwhile (another fetch moved it)
            continue
        report.read += 1
        notice = parse(raw, settings)
        subject = (notice.subject or "(no subject)")[:200]
        if notice.junk:
            report.junk += 1
            report.left.append(f"{subject}: {notice.junk}")
            continue
        results = apply(notice, feedback, settings)
        if any(result == Applied.REVIEW for _, result in results):
            report.review += 1
            names = ", ".join(a for f in notice.failures[:5] for a in f.addresses[:1])
            report.left.append(f"{subject}: no proof that we mailed whom it names ({names})")
            continue
        for failure, result in results:
            if result == Applied.DUPLICATE:
                report.duplicate += 1
            elif result == Applied.UNKNOWN:
                report.unknown += 1
            elif result == Applied.STALE:
                report.stale += 1
            else:
                report.applied[failure.kind] += 1
        if all(result == Applied.UNKNOWN for _, result in results):
            report.left.append(f"{subject}: about someone no longer on the list")
            continue
        if not done_ready:
            _create(imap, done, settings.imap_done_folder)
            done_ready = True
        if _move(imap, uid, done, capabilities):
            report.moved += 1
        else:
            report.not_moved += 1


def _message(imap, uid: bytes) -> bytes | None:
    status, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    if status != "OK":
        return None
    for item in data or ():
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _create(imap, mailbox: str, name: str) -> None:
    status, data = imap.list('""', mailbox)
    if status == "OK" and any(item for item in data or () if item):
        return
    status, data = imap.create(mailbox)
    if status != "OK" and "ALREADYEXISTS" not in _said(data).upper():
        raise BounceError(f"cannot create the folder {name}: {_said(data)}")


def _move(imap, uid: bytes, mailbox: str, capabilities: set[str]) -> bool:
    """Move one message (RFC 6851 MOVE, else COPY + \\Deleted + EXPUNGE); False if refused."""
    if "MOVE" in capabilities:
        status, _data = imap.uid("MOVE", uid, mailbox)
        return status == "OK"
    status, _data = imap.uid("COPY", uid, mailbox)
    if status != "OK":
        return False
    status, _data = imap.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
    if status != "OK":
        return False  # copied but not deleted: read again next time, a duplicate
    if "UIDPLUS" in capabilities:
        imap.uid("EXPUNGE", uid)
    else:
        imap.expunge()
    return True


def _mailbox(name: str) -> str:
    """A folder name as an IMAP quoted string (imaplib sends arguments as they are)."""
    if not name.isascii() or any(c in name for c in "\r\n"):
        raise BounceError(
            f"folder {name!r}: give its IMAP name in ASCII (modified UTF-7 for other letters)"
        )
    return _quote(name)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _said(data) -> str:
    """An IMAP response's text, for a message."""
    parts = [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
             for item in data or () if item is not None]  # fmt: skip
    return " ".join(parts)


__all__ = [
    "BounceError",
    "Failure",
    "Notice",
    "Report",
    "apply",
    "classify",
    "fetch",
    "parse",
]
