"""End to end: an article announced to 100 subscribers; back come 3 hard bounces, 1 complaint and
3 soft bounces for one address, through each way in (the Mailgun webhook, signed; the SES webhook
through SNS, signed, its certificate fetched over HTTPS; the bounce mailbox over IMAPS, real DSN
and ARF samples addressed to the messages those subscribers received); the next announcement
goes to exactly the 95 that remain, and the stats count the feedback against the first one."""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from datetime import UTC, datetime

import pytest

from newsletter.announcements import run as announce
from newsletter.announcements.ledger import Ledger
from newsletter.announcements.stats import stats
from newsletter.database import Database
from newsletter.subscriptions import bounces
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.feedback import Kind
from tests import backends
from tests import test_webhooks_mailgun as mailgun_tests
from tests import test_webhooks_ses as ses_tests
from tests.announce_helpers import add_confirmed_bulk, outbox_messages, recipients
from tests.feedback_helpers import SAMPLES, TOPIC, imap_tls, serve_sns, trust_local_sns
from tests.imap_server import ImapServer
from tests.test_mail_mailgun import feed_file
from tests.test_stats import run_task

pytestmark = pytest.mark.slow  # real IMAP/HTTP servers and many reports

EVERYONE = [f"reader{n}@example.com" for n in range(100)]  # tests.announce_helpers' bulk names
OLD, FIRST, SECOND = "The back catalogue", "Stairs without knee pain", "Hips that help knees"
HARD = {"mailgun": "reader3@example.com", "ses": "reader14@example.com",
        "mailbox": "reader27@example.com"}  # fmt: skip
COMPLAINER = "reader42@example.com"  # an abuse report (ARF) in the bounce mailbox
SOFT = "reader58@example.com"  # one temporary failure through each way in
GONE = {*HARD.values(), COMPLAINER, SOFT}
DATE_FIELD = re.compile(rb"^(Date|Arrival-Date|Received-Date):[^\r\n]*", re.MULTILINE)


@pytest.fixture
def local_sns(tmp_path_factory):
    sns = serve_sns(tmp_path_factory.mktemp("sns-pki"))
    yield sns
    sns.stop()


@pytest.fixture
def imap(tmp_path_factory):
    server_tls, client_tls, _cert = imap_tls(tmp_path_factory.mktemp("imap-tls"))
    with ImapServer(server_tls) as server:
        yield server, client_tls


# What comes back, addressed to the message one subscriber received -----------------------------
def readdressed(template: dict, address: str) -> dict:
    """A documented payload of the webhook tests, about `address` instead of alice."""
    return json.loads(json.dumps(template).replace("alice@example.com", address))


def mailgun_failure(template: dict, address: str, message_id: str, event_id: str) -> dict:
    payload = readdressed(template, address)
    data = payload["event-data"]
    data.update(id=event_id, timestamp=time.time())
    data["message"]["headers"]["message-id"] = message_id.strip("<>")  # Mailgun drops the <>
    return mailgun_tests.sign(payload)


def ses_bounce(template: dict, address: str, message_id: str) -> dict:
    content = readdressed(template, address)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    content["bounce"]["timestamp"] = now
    content["mail"]["commonHeaders"]["messageId"] = message_id
    return content


def mailbox_report(sample: str, was: str, address: str, was_id: str, message_id: str) -> bytes:
    """A sample of tests/dsn_samples about `address` and the message it received, dated now
    (whole seconds, rounded up: the report comes after the message it answers)."""
    data = (SAMPLES / sample).read_bytes()
    assert was.encode() in data and was_id.encode() in data
    data = data.replace(was.encode(), address.encode())
    data = data.replace(was_id.encode(), message_id.strip("<>").encode())
    now = email.utils.format_datetime(datetime.fromtimestamp(math.ceil(time.time()), UTC))
    return DATE_FIELD.sub(lambda field: field.group(1) + b": " + now.encode(), data)


def events(settings) -> list[tuple[str, str, str, str]]:
    return sorted(backends.query(settings.database,
        "SELECT s.email, e.kind, e.provider, e.message_id FROM feedback_events e"
        " JOIN subscribers s ON s.id = e.subscriber_id"))  # fmt: skip


def statuses(settings) -> dict[str, str]:
    return dict(backends.query(settings.database, "SELECT email, status FROM subscribers"))


# The scenario ----------------------------------------------------------------------------------
def test_feedback_through_every_way_in_leaves_the_next_announcement_to_the_95_who_remain(
    tmp_path, make_settings, local_sns, imap
):
    server, client_tls = imap
    settings = make_settings(
        mailgun_webhook_key=mailgun_tests.KEY,
        ses_topic_arn=TOPIC,
        imap_host="127.0.0.1",
        imap_port=server.port,
        imap_user=server.user,
        imap_password=server.password,
    )
    add_confirmed_bulk(settings, 100)

    # 1. The first run records the back catalogue; a new article then goes to all 100.
    feed = feed_file(tmp_path / "feed.xml", (48, OLD))
    assert not announce.run(settings, feed_url=feed).announced
    feed_file(feed, (2, FIRST), (48, OLD))
    summary = announce.run(settings, feed_url=feed)
    assert summary.ok and summary.tally.sent == 100
    first = [m for m in outbox_messages(settings.outbox) if m["Subject"] == FIRST]
    assert recipients(first) == sorted(EVERYONE)
    received = {str(m["To"]): str(m["Message-ID"]) for m in first}  # address -> its Message-ID
    assert len(set(received.values())) == 100

    # 2. What comes back. The webhooks: Mailgun's and SES's own payloads, signed.
    app = create_app(settings)
    trust_local_sns(local_sns, app)
    try:
        client = app.test_client()
        mailgun = [
            mailgun_failure(mailgun_tests.PERMANENT, HARD["mailgun"], received[HARD["mailgun"]],
                            "e2e-permanent"),
            mailgun_failure(mailgun_tests.TEMPORARY, SOFT, received[SOFT], "e2e-temporary"),
        ]  # fmt: skip
        assert [mailgun_tests.post(client, p).json["applied"] for p in mailgun] == [
            "bounced",
            "counted",
        ]
        ses = [
            ses_bounce(ses_tests.PERMANENT, HARD["ses"], received[HARD["ses"]]),
            ses_bounce(ses_tests.TRANSIENT, SOFT, received[SOFT]),
        ]
        answers = [ses_tests.post(client, local_sns.message(content)) for content in ses]
        assert [(a.status_code, a.json["applied"]) for a in answers] == [
            (200, ["bounced"]),
            (200, ["counted"]),
        ]
    finally:
        app.extensions["newsletter"].close()

    # The bounce mailbox: a Gmail DSN (5.1.1), a Postfix DSN (Action: delayed, 4.3.0), a Yahoo
    # abuse report, each about the message that subscriber received.
    reports = [
        mailbox_report("gmail-address-not-found.eml", "omar@example.com", HARD["mailbox"],
                       "22cecab0edcc6f7264389889eedae3c3.announce@walkagain.example",
                       received[HARD["mailbox"]]),
        mailbox_report("postfix-delayed-quota.eml", "yuki@example.net", SOFT,
                       "dbb1e97f9c65fbb7dd1cd9f81b273628.announce@walkagain.example",
                       received[SOFT]),
        mailbox_report("yahoo-arf-abuse.eml", "eva@example.com", COMPLAINER,
                       "14cc0c53d0853fec9e4d0cd6ed9b0c3d.announce@walkagain.example",
                       received[COMPLAINER]),
    ]  # fmt: skip
    for report in reports:
        server.deliver(report)
    fetched = bounces.fetch(settings, ssl_context=client_tls)
    assert fetched.applied == {Kind.HARD_BOUNCE: 1, Kind.SOFT_BOUNCE: 1, Kind.COMPLAINT: 1}
    assert (fetched.read, fetched.moved, fetched.junk, fetched.unknown) == (3, 3, 0, 0)
    assert server.messages("INBOX") == [] and len(server.messages("Processed")) == 3

    # Every event recorded once, about the message that subscriber received.
    assert events(settings) == sorted(
        [
            (HARD["mailgun"], "hard_bounce", "mailgun", received[HARD["mailgun"]]),
            (HARD["ses"], "hard_bounce", "ses", received[HARD["ses"]]),
            (HARD["mailbox"], "hard_bounce", "mailbox", received[HARD["mailbox"]]),
            (COMPLAINER, "complaint", "mailbox", received[COMPLAINER]),
            *[(SOFT, "soft_bounce", way, received[SOFT]) for way in ("mailgun", "ses", "mailbox")],
        ]
    )
    now = statuses(settings)
    assert {a: now[a] for a in GONE} == {
        **dict.fromkeys(HARD.values(), "bounced"),
        COMPLAINER: "complained",
        SOFT: "bounced",  # the third soft bounce within 30 days
    }
    remaining = sorted(set(EVERYONE) - GONE)
    assert len(remaining) == 95 and all(now[a] == "confirmed" for a in remaining)

    # 3. The next article goes to exactly the 95 who remain.
    feed_file(feed, (1, SECOND), (2, FIRST), (48, OLD))
    summary = announce.run(settings, feed_url=feed)
    assert summary.ok and summary.tally.sent == 95
    [announcement] = summary.announced
    second = [m for m in outbox_messages(settings.outbox) if m["Subject"] == SECOND]
    assert recipients(second) == remaining
    database = Database(settings.database)
    try:
        ledger = Ledger(database)
        deliveries = ledger.deliveries(announcement.id)
        assert sorted(row["email"] for row in deliveries) == remaining
        assert {row["status"] for row in deliveries} == {"sent"}
        assert ledger.counts(announcement.id)["sent"] == 95

        # 4. The stats count what came back against the first announcement, none against the
        # second (sent after it all came back).
        result = stats(database)
    finally:
        database.close()
    one, two = result.announcements
    assert (one.label, one.sent) == (f"#1 {FIRST}", 100)
    assert one.counts == {"hard_bounce": 3, "soft_bounce": 3, "complaint": 1}
    assert (two.label, two.sent) == (f"#{announcement.id} {SECOND}", 95)
    assert two.counts == {"hard_bounce": 0, "soft_bounce": 0, "complaint": 0}
    assert result.window.sent == 195

    printed = run_task(settings, "subscribers.stats")
    assert printed.returncode == 0, printed.stderr
    for status, count in (("confirmed", 95), ("bounced", 4), ("complained", 1)):
        assert re.search(rf"^ +{status} +{count}$", printed.stdout, re.MULTILINE), printed.stdout
    [row] = [line for line in printed.stdout.splitlines() if line.startswith(f"#1 {FIRST}")]
    assert row.split()[-5:] == ["100", "3", "3", "1", "1.00%"]  # sent, hard, soft, compl., %
    assert f"WARNING: #1 {FIRST}: complaint rate 1.00%" in printed.stdout
    assert f"WARNING: #1 {FIRST}: bounce rate 3.00%" in printed.stdout
