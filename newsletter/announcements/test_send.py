"""`invoke announce --test ADDRESS`: the real announcement emails, one of each kind, to one address,
recording nothing.

Contract:
- `recipient(raw)`: the test address, checked and normalised by the one address parser
  (`subscriptions.addresses.normalize`), or `TestSendRefused` with its sentence: nothing is read,
  composed or sent for an address that is not one.
- `one_of_each(announcements)`: the first announcement of each kind of email (`kind_of`: an
  article's email, a video's, a digest), in order, and the rest (the real run sends those too).
- `send(settings, to, announcements, connect=None)` composes each announcement exactly as a
  real one (`emails.Composer`: the same templates, headers and bytes) for a placeholder reader
  whose public id, `TEST_PUBLIC_ID`, names nobody (real ones are 22 random characters), so the
  unsubscribe link in it unsubscribes nobody (the endpoint answers it as "not subscribed"). It
  differs from a reader's email in three places only: the Subject (and the HTML's `<title>`,
  which repeats it) begins with `PREFIX`; the Message-ID and the VERP return path are sealed by
  `mail.proof` with the kind `KIND` ("test") and a key made fresh per test send (so a mail
  program never drops a second test as a duplicate), and name `TEST_PUBLIC_ID`: a bounce or
  complaint quoting them proves nothing about any reader (`Feedback.record` finds nobody). It
  then adds the welcome email a reader gets on confirming (`subscriptions.emails.welcome_email`,
  with the same feed lists, the same prefix and proof), and pushes them all through the live
  transport (`mail.connect(settings, report)`: outbox, smtp or
  mailgun, whatever NEWSLETTER_TRANSPORT says), waits for every answer, and returns one `Sent`
  per email (its subject, the address, the transport, the error or None).
- This module opens no database and writes nothing but the email itself: no ledger row, no
  feed item, no announce state, no outgoing-mail row, no feedback. (What the next run would send
  is decided by `run.run(test=...)`, which only reads the ledger.)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace

from newsletter import mail
from newsletter.announcements.emails import Composer, unsubscribe_url
from newsletter.announcements.ledger import Announcement, Delivery, Draft
from newsletter.mail import message as compose
from newsletter.mail import proof
from newsletter.settings import Settings
from newsletter.subscriptions import articles as feed_articles
from newsletter.subscriptions import emails as subscription_emails
from newsletter.subscriptions.addresses import InvalidAddress, normalize
from newsletter.subscriptions.subscribers import Status, Subscriber
from newsletter.subscriptions.tokens import Tokens

PREFIX = "[Test] "
KIND = "test"  # the proof's kind in the Message-ID and VERP address: never "announce"
TEST_PUBLIC_ID = "test-send"  # a placeholder reader: no real public id has this shape


class TestSendRefused(Exception):
    """Nothing was sent: the address is not one, or there is nothing to show; str() says why."""

    __test__ = False  # not a pytest class


def recipient(raw: object) -> str:
    """The test address, normalised; `TestSendRefused` when it is not an address."""
    try:
        address, _key = normalize(raw)
    except InvalidAddress as problem:
        raise TestSendRefused(f"--test {raw!r}: {problem}") from None
    return address


def kind_of(announcement: Announcement) -> str:
    """The kind of email: "digest", or the item's own ("article", "video")."""
    return "digest" if announcement.kind == "digest" else announcement.items[0].kind


def one_of_each(
    announcements: list[Announcement],
) -> tuple[list[Announcement], list[Announcement]]:
    """(the first of each kind, in order; the others)."""
    chosen: dict[str, Announcement] = {}
    rest = []
    for announcement in announcements:
        if kind_of(announcement) in chosen:
            rest.append(announcement)
        else:
            chosen[kind_of(announcement)] = announcement
    return list(chosen.values()), rest


def from_draft(draft: Draft) -> Announcement:
    """A draft as the unsaved announcement a test send composes."""
    return Announcement(0, draft.kind, draft.key, draft.subject, draft.items, "", None)


def transport(settings: Settings) -> str:
    """The live transport in words: `outbox (folder)`, `smtp (host:port)`, `mailgun (domain)`."""
    name = settings.mail.transport
    if name == "smtp":
        port = f":{settings.smtp.port}" if settings.smtp.port else ""
        return f"smtp ({settings.smtp.host}{port})"
    if name == "mailgun":
        return f"mailgun ({settings.mailgun.domain})"
    return f"outbox ({settings.mail.outbox})"


class TestComposer(Composer):
    """A real announcement's composer, for the placeholder reader, with the test's proof."""

    __test__ = False

    def __init__(self, settings: Settings, tokens: Tokens, announcement: Announcement):
        tested = replace(announcement, subject=PREFIX + announcement.subject)
        super().__init__(settings, tokens, tested)
        self.test_key = f"{announcement.key}:{secrets.token_hex(8)}"  # fresh per test send

    def message_id(self, delivery: Delivery) -> str:
        return proof.message_id(self.settings, KIND, self.test_key, delivery.public_id)

    def outgoing(self, delivery: Delivery, *, with_data: bool = True) -> mail.Outgoing:
        outgoing = super().outgoing(delivery, with_data=with_data)
        return replace(
            outgoing,
            batch=replace(outgoing.batch, key=f"{KIND}:{self.test_key}"),
            envelope_from=proof.return_path(self.settings, KIND, self.test_key, delivery.public_id),
        )


@dataclass(frozen=True)
class Sent:
    subject: str
    to: str
    transport: str
    error: str | None = None
    where: str = ""  # the outbox: the .eml file

    def line(self) -> str:
        via = f"via {self.transport.split(' ')[0]}" + (f" ({self.where})" if self.where else "")
        if self.error:
            return f"  NOT sent: {self.subject!r} to {self.to} {via}: {self.error}"
        return f"  sent: {self.subject!r} to {self.to} {via}"


def welcome_outgoing(
    settings: Settings, tokens: Tokens, to: str, feed: str | None = None
) -> tuple[str, mail.Outgoing]:
    """The welcome email a reader gets on confirming, for the placeholder reader, its lists read
    from `feed` (default: the settings' feed), marked and sealed as a test (subject, email)."""
    reader = Subscriber(
        id=0, public_id=TEST_PUBLIC_ID, email=to, email_key=to, status=Status.CONFIRMED,
        confirm_nonce="", created_at="", status_changed_at="", confirmation_sent_at=None,
        confirmed_at=None, unsubscribed_at=None, bounced_at=None, complained_at=None,
        consent_at=None, consent_source=None, consent_ip_hash=None,
    )  # fmt: skip
    key = f"welcome:{secrets.token_hex(8)}"
    message = subscription_emails.welcome_email(
        settings,
        reader,
        unsubscribe_url=unsubscribe_url(settings, tokens, TEST_PUBLIC_ID),
        preferences_url=subscription_emails.preferences_url(settings, tokens, TEST_PUBLIC_ID),
        message_id=proof.message_id(settings, KIND, key, TEST_PUBLIC_ID),
        articles=feed_articles.latest(settings, source=feed),
        library=feed_articles.exercise_library(settings, source=feed),
    )
    subject = PREFIX + str(message["Subject"])
    message.replace_header("Subject", subject)
    return subject, mail.Outgoing(
        to=to,
        message_id=str(message["Message-ID"]),
        data=compose.wire(message),
        envelope_from=proof.return_path(settings, KIND, key, TEST_PUBLIC_ID),
    )


def send(
    settings: Settings,
    to: str,
    announcements: list[Announcement],
    *,
    connect=None,
    welcome: bool = True,
    feed: str | None = None,
):
    """Compose each announcement for `to` (see the module's contract) and send it through the
    live transport; one `Sent` per email, in order."""
    tokens = Tokens(settings.core.secret_key)
    results = mail.Collect()
    connect = connect or (lambda report: mail.connect(settings, report, workers=1))
    mailer = connect(results)
    pushed = []
    try:
        for announcement in announcements:
            composer = TestComposer(settings, tokens, announcement)
            delivery = Delivery(0, 0, 0, 0, TEST_PUBLIC_ID, to)
            outgoing = composer.outgoing(delivery, with_data=True)
            pushed.append((composer.subject, outgoing))
            mailer.push(outgoing)
        if welcome:
            subject, outgoing = welcome_outgoing(settings, tokens, to, feed)
            pushed.append((subject, outgoing))
            mailer.push(outgoing)
        mailer.flush()
    finally:
        mailer.close()
    path_for = getattr(mailer, "path_for", None)  # the outbox names its file
    out = []
    for subject, outgoing in pushed:
        if outgoing.message_id not in results.results:
            error = "the transport gave no answer"
        elif (failure := results.results[outgoing.message_id]) is not None:
            error = f"{type(failure).__name__}: {failure}"
        else:
            error = None
        where = str(path_for(outgoing.message_id)) if path_for and error is None else ""
        out.append(Sent(subject, to, transport(settings), error, where))
    return out


@dataclass
class TestSend:
    """What `run(test=...)` did: the notes on what the next real run would do, the emails sent."""

    __test__ = False

    feed: str
    to: str
    transport: str
    notes: list[str] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.sent) and all(s.error is None for s in self.sent)

    def lines(self) -> list[str]:
        out = [f"Feed: {self.feed}", f"Test send to {self.to} through {self.transport}:"]
        out += [f"  {note}" for note in self.notes]
        out += [s.line() for s in self.sent]
        done = sum(s.error is None for s in self.sent)
        failed = f", {len(self.sent) - done} NOT sent (see above)" if done < len(self.sent) else ""
        out.append(
            f"Test send: {done} email(s) sent to {self.to}{failed}; nothing was recorded (no "
            "ledger, feed item, outgoing-mail or subscriber row): the next `invoke announce` "
            "sends as if this never happened."
        )
        return out


__all__ = [
    "KIND",
    "PREFIX",
    "TEST_PUBLIC_ID",
    "Sent",
    "TestComposer",
    "TestSend",
    "TestSendRefused",
    "from_draft",
    "kind_of",
    "one_of_each",
    "recipient",
    "send",
    "transport",
    "welcome_outgoing",
]
