"""`invoke bounces.fetch` end to end (mailbox -> parser -> applying) over a real IMAP server
(tests/imap_server.py, TLS on 127.0.0.1) and a real SQLite file: every sample in
tests/dsn_samples/ (real bounces and reports, see docs/bounces.md) ends as the right event for
the subscriber its proof names (our Message-ID or VERP return path), is kept for review when it
proves nothing, or is left alone; reading the mailbox again changes nothing; forged reports
change nobody; a hostile report is one warning line. The parser alone: test_reports.py; the
IMAP client alone: test_mailbox.py; applying: test_report_feedback.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from blog.build import ROOT
from newsletter.mail import proof
from newsletter.subscriptions import bounces
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.feedback import Feedback, Kind
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.announce_helpers import add_subscribers
from tests.conftest import newsletter_settings
from tests.feedback_helpers import (
    SAMPLES,
    VERP_DOMAIN,
    VERP_SAMPLE,
    arf,
    dsn,
    exim,
    imap_tls,
    verp_sample,
)
from tests.imap_server import ImapServer

pytestmark = pytest.mark.slow  # real IMAP/HTTP servers and many reports

HARD, SOFT, COMPLAINT = Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.COMPLAINT
# sample -> {subscriber: the event it records}; {} when the message stays in the folder
EXPECTED = {
    "postfix-alias-user-unknown.eml": {"rosa@example.org": HARD},  # by VERP (delivered to it)
    "postfix-mailbox-full.eml": {"tom@example.com": SOFT},
    "postfix-delayed-quota.eml": {"yuki@example.net": SOFT},
    "postfix-forwarded-policy-refusal.eml": {"ines@example.com": SOFT},
    "gmail-address-not-found.eml": {"omar@example.com": HARD},
    "gmail-delayed.eml": {"lena@example.org": SOFT},
    "office365-recipient-not-found.eml": {"kenji@example.net": HARD},
    "exim-two-recipients.eml": {"paul@example.com": HARD},  # nora is named, not proven
    "qmail-unknown-user.eml": {"sam@example.org": HARD},  # our Message-ID quoted in the text
    "yahoo-arf-abuse.eml": {"eva@example.com": COMPLAINT},
    "returnpath-arf-abuse.eml": {"li@example.org": COMPLAINT},
    "verp-forwarded.eml": {"max@example.com": HARD},  # by the return path's proof alone
    # left alone: junk
    "dmarc-auth-failure-report.eml": {},
    "vacation-auto-reply.eml": {},
    "office365-truncated-ndr.eml": {},
    "not-a-bounce.eml": {},
    # left alone: proven, but about someone no longer on the list
    "postfix-stranger.eml": {},
    # left alone and kept for review: no proof that we mailed whom they name
    "exchange2007-recipient-not-found.eml": {},  # ana: no Message-ID of ours, no VERP
    "postfix-foreign-message.eml": {},  # carla: about the author's own message
}
REVIEW = {"exchange2007-recipient-not-found.eml": "ana@example.com",
          "postfix-foreign-message.eml": "carla@example.com"}  # fmt: skip
LEFT = {name for name, events in EXPECTED.items() if not events}
BYSTANDERS = ["ana@example.com", "carla@example.com", "dora@example.com", "finn@example.com",
              "gus@example.com", "nora@example.com"]  # fmt: skip
SUBSCRIBERS = [a for events in EXPECTED.values() for a in events] + BYSTANDERS
STATUS_AFTER = {HARD: Status.BOUNCED, SOFT: Status.CONFIRMED, COMPLAINT: Status.COMPLAINED}
JOINED = datetime(2000, 1, 1, tzinfo=UTC)  # the samples are real, and years old: readers before
OLD_ID = re.compile(rb"<[0-9a-f]{32}\.announce@walkagain\.example>")


# The world: certificates, the IMAP server, the settings, the subscribers --------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return imap_tls(tmp_path_factory.mktemp("imap-tls"))


@pytest.fixture
def imap(tls):
    with ImapServer(tls[0]) as server:
        yield server


@pytest.fixture
def world(tmp_path, imap, backend):
    settings = newsletter_settings(
        tmp_path,
        backend=backend,
        imap_host="127.0.0.1",
        imap_port=imap.port,
        imap_user=imap.user,
        imap_password=imap.password,
        verp_domain=VERP_DOMAIN,
    )
    people = add_subscribers(settings, dict.fromkeys(SUBSCRIBERS, Status.CONFIRMED), since=JOINED)
    return settings, people


def sent_to(settings, email: str, people) -> str:
    """The Message-ID of an announcement we sent to `email` (a reader no longer on the list when
    `people` does not know them)."""
    public_id = people[email].public_id if email in people else "erased-reader-0000000000"
    return proof.message_id(settings, "announce", "tag:walkagain.example,2014:1", public_id)


def sample(name: str, settings, people) -> bytes:
    """A sample as it arrives for these subscribers: the original's Message-ID (where the sample
    has one of ours) made for the reader it is about; the VERP sample's return path for max;
    rosa's report, whose returned message was cut off, delivered to her VERP address."""
    if name == VERP_SAMPLE:  # that one proves itself by its return path alone
        return verp_sample(settings, people["max@example.com"].public_id)
    data = (SAMPLES / name).read_bytes()
    about = next(iter(EXPECTED[name]), "stranger@example.com")
    data = OLD_ID.sub(sent_to(settings, about, people).encode(), data)
    if name == "postfix-alias-user-unknown.eml":
        verp = proof.verp_address(settings, "announce", "k", people["rosa@example.org"].public_id)
        data = f"Delivered-To: {verp}\n".encode() + data
    return data


def deliver_samples(imap: ImapServer, people, settings) -> dict[bytes, str]:
    """Every sample into INBOX (see `sample`); their bytes -> their names."""
    delivered = {}
    for name in sorted(EXPECTED):
        data = sample(name, settings, people)
        imap.deliver(data)
        delivered[data] = name
    return delivered


def reviews(settings) -> list[tuple[str, str]]:
    store = Subscribers.open(settings.database)
    try:
        return [(r.provider, ", ".join(r.addresses)) for r in Feedback(store.database).reviews()]
    finally:
        store.close()


def events(settings) -> list[tuple[str, str, str, str | None, str]]:
    store = Subscribers.open(settings.database)
    try:
        rows = store.database.db.execute(
            "SELECT s.email, e.kind, e.provider, e.message_id, e.event_key FROM feedback_events e"
            " JOIN subscribers s ON s.id = e.subscriber_id ORDER BY e.id"
        ).fetchall()
        return [tuple(row) for row in rows]
    finally:
        store.close()


def statuses(settings) -> dict[str, Status]:
    store = Subscribers.open(settings.database)
    try:
        return {s.email: s.status for s in store.list()}
    finally:
        store.close()


def names(imap: ImapServer, folder: str, delivered: dict[bytes, str]) -> list[str]:
    """The samples in a folder, by name (a sample twice is listed twice)."""
    return sorted(delivered[data] for data in imap.messages(folder))


# The whole path ----------------------------------------------------------------------------------
def test_every_sample_ends_as_the_right_event_or_is_left_alone(world, imap, tls):
    settings, people = world
    delivered = deliver_samples(imap, people, settings)

    report = bounces.fetch(settings, ssl_context=tls[1])

    expected = Counter(kind for found in EXPECTED.values() for kind in found.values())
    assert report.read == len(EXPECTED)
    assert report.applied == {HARD: expected[HARD], SOFT: expected[SOFT],
                              COMPLAINT: expected[COMPLAINT]}  # fmt: skip
    assert (report.unknown, report.junk, report.review, report.duplicate) == (1, 4, 2, 0)
    assert report.moved == len(EXPECTED) - len(LEFT) and report.not_moved == 0
    recorded = events(settings)
    assert sorted((email, kind) for email, kind, *_ in recorded) == sorted(
        (email, str(kind)) for found in EXPECTED.values() for email, kind in found.items()
    )
    assert {provider for _, _, provider, _, _ in recorded} == {"mailbox"}
    # key: the report's own Message-ID (or a digest of its bytes: qmail sends none) + recipient
    assert all(key.startswith(("mailbox:<", "mailbox:sha256:")) and key.endswith(":" + email)
               for email, _, _, _, key in recorded)  # fmt: skip
    # The original's Message-ID is kept when the report carries it: the proof it gave.
    ids = {email: mid for email, _, _, mid, _ in recorded}
    assert ids["rosa@example.org"] is None  # the returned message was cut off: VERP proved it
    assert ids["omar@example.com"] == sent_to(settings, "omar@example.com", people)
    assert ids["eva@example.com"] == sent_to(settings, "eva@example.com", people)
    now = statuses(settings)
    for found in EXPECTED.values():
        for email, kind in found.items():
            assert now[email] == STATUS_AFTER[kind], email
    assert all(now[email] == Status.CONFIRMED for email in BYSTANDERS)  # nora, ana, carla too
    assert "stranger@example.com" not in now
    # Handled reports moved; the rest left in INBOX, unread (BODY.PEEK), for a person to see.
    assert names(imap, "INBOX", delivered) == sorted(LEFT)
    assert names(imap, "Processed", delivered) == sorted(set(EXPECTED) - LEFT)
    assert all("\\Seen" not in flags for flags in imap.flags("INBOX"))
    assert any("auto-reply" in line for line in report.left)
    assert sum("no proof that we mailed" in line for line in report.left) == 2
    assert any("no longer on the list" in line for line in report.left)
    # Kept for review: what they claimed, once each
    assert sorted(names_ for _, names_ in reviews(settings)) == sorted(REVIEW.values())

    again = bounces.fetch(settings, ssl_context=tls[1])

    assert (again.read, again.moved, again.junk, again.unknown, again.review) == (
        len(LEFT), 0, 4, 1, 2,
    )  # fmt: skip
    assert sum(again.applied.values()) == 0 and again.duplicate == 0
    assert events(settings) == recorded and statuses(settings) == now
    assert names(imap, "INBOX", delivered) == sorted(LEFT)
    assert len(reviews(settings)) == 2


def test_a_failed_move_is_read_again_and_changes_nothing(world, imap, tls):
    settings, people = world
    delivered = deliver_samples(imap, people, settings)
    imap.refuse_moves = True

    first = bounces.fetch(settings, ssl_context=tls[1])
    handled = len(EXPECTED) - len(LEFT)
    assert (first.moved, first.not_moved) == (0, handled)
    recorded, now = events(settings), statuses(settings)
    assert len(recorded) == sum(len(found) for found in EXPECTED.values())

    second = bounces.fetch(settings, ssl_context=tls[1])
    assert sum(second.applied.values()) == 0
    assert second.duplicate == len(recorded) and second.not_moved == handled
    assert events(settings) == recorded and statuses(settings) == now
    assert "could not be moved" in "\n".join(second.lines())

    imap.refuse_moves = False
    third = bounces.fetch(settings, ssl_context=tls[1])
    assert (third.moved, third.duplicate, sum(third.applied.values())) == (
        handled,
        len(recorded),
        0,
    )
    assert events(settings) == recorded
    assert names(imap, "INBOX", delivered) == sorted(LEFT)


@pytest.mark.parametrize("capabilities", [("MOVE", "UIDPLUS"), ("UIDPLUS",), ()])
def test_handled_reports_move_with_or_without_the_move_command(
    tmp_path, tls, capabilities, backend
):
    with ImapServer(tls[0], capabilities=capabilities) as imap:
        settings = newsletter_settings(tmp_path, backend=backend, imap_host="127.0.0.1",
                                       imap_port=imap.port, imap_user=imap.user,
                                       imap_password=imap.password,
                                       imap_done_folder="Bounces/Done 2026")  # fmt: skip
        people = add_subscribers(settings, {"omar@example.com": Status.CONFIRMED}, since=JOINED)
        imap.deliver(sample("gmail-address-not-found.eml", settings, people))
        imap.deliver((SAMPLES / "vacation-auto-reply.eml").read_bytes())
        report = bounces.fetch(settings, ssl_context=tls[1])
        assert (report.moved, report.junk, report.applied[HARD]) == (1, 1, 1)
        assert len(imap.messages("Bounces/Done 2026")) == 1  # created, though the name has a space
        assert len(imap.messages("INBOX")) == 1
        sent = " ".join(imap.commands)
        assert ('CREATE "Bounces/Done 2026"' in sent) and ("UID FETCH" in sent)
        if "MOVE" in capabilities:
            assert "UID MOVE" in sent and "UID COPY" not in sent
        else:
            assert "UID COPY" in sent and "+FLAGS.SILENT (\\Deleted)" in sent
            assert ("UID EXPUNGE" in sent) == ("UIDPLUS" in capabilities)


def test_two_fetches_and_a_busy_writer_at_once_record_each_event_once(world, imap, tls):
    """Cron runs that overlap, while an announcement writes to the same database: every event is
    recorded once, nothing waits forever, nothing fails with "database is locked"."""
    settings, people = world
    delivered = deliver_samples(imap, people, settings)
    errors, reports = [], []

    def fetch():
        try:
            reports.append(bounces.fetch(settings, ssl_context=tls[1]))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def write():
        store = Subscribers.open(settings.database)
        try:
            for n in range(200):
                store.add(*normalize(f"newcomer{n}@example.com"), status=Status.CONFIRMED)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=f) for f in (fetch, fetch, write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(reports) == 2
    recorded = events(settings)
    assert len(recorded) == len({key for *_, key in recorded})
    assert len(recorded) == sum(len(found) for found in EXPECTED.values())
    assert names(imap, "INBOX", delivered) == sorted(LEFT)
    assert len(imap.messages("Processed")) == len(EXPECTED) - len(LEFT)
    assert len(statuses(settings)) == len(SUBSCRIBERS) + 200


# Refusals ----------------------------------------------------------------------------------------
def test_the_mailbox_says_why_it_cannot_be_read(tmp_path, imap, tls, backend):
    with pytest.raises(bounces.MailboxError, match="NEWSLETTER_IMAP_HOST is not set"):
        bounces.fetch(newsletter_settings(tmp_path, backend=backend))
    base = dict(imap_host="127.0.0.1", imap_port=imap.port, imap_user=imap.user)
    wrong = newsletter_settings(tmp_path, backend=backend, **base, imap_password="wrong")
    with pytest.raises(bounces.MailboxError, match="refused the login of bounces@"):
        bounces.fetch(wrong, ssl_context=tls[1])
    right = newsletter_settings(tmp_path, backend=backend, **base, imap_password=imap.password)
    with pytest.raises(bounces.MailboxError, match="cannot connect.*(CERTIFICATE|certificate)"):
        bounces.fetch(right)  # the default context does not trust the test's certificate
    missing = right.replace(imap_folder="Nowhere")
    with pytest.raises(bounces.MailboxError, match="cannot open the folder Nowhere"):
        bounces.fetch(missing, ssl_context=tls[1])
    assert not any(imap.messages(folder) for folder in ("INBOX", "Processed"))


def test_the_task_reads_the_mailbox_with_settings_from_the_environment(world, imap, tls):
    settings, people = world
    deliver_samples(imap, people, settings)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(settings.mail.outbox.parent),
        "SSL_CERT_FILE": str(tls[2]),  # what ssl.create_default_context() trusts, in production
        "NEWSLETTER_DATABASE": str(settings.database),
        "NEWSLETTER_SECRET_KEY": settings.secret_key,
        "NEWSLETTER_FROM": settings.sender,
        "NEWSLETTER_IMAP_HOST": "127.0.0.1",
        "NEWSLETTER_IMAP_PORT": str(imap.port),
        "NEWSLETTER_IMAP_USER": imap.user,
        "NEWSLETTER_IMAP_PASSWORD": imap.password,
        "NEWSLETTER_VERP_DOMAIN": VERP_DOMAIN,
    }
    invoke = Path(sys.executable).parent / "invoke"
    result = subprocess.run([str(invoke), "bounces.fetch", "--verbose"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{len(EXPECTED)} message(s) read, {len(EXPECTED) - len(LEFT)} moved" in result.stdout
    assert "Recorded: 6 hard bounce, 4 soft bounce, 2 complaint" in result.stdout
    assert "2 without proof that we mailed whom they name" in result.stdout
    assert "left: " in result.stdout and "an auto-reply" in result.stdout
    assert statuses(settings)["eva@example.com"] == Status.COMPLAINED
    env["NEWSLETTER_IMAP_PASSWORD"] = "wrong"
    result = subprocess.run([str(invoke), "bounces.fetch"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "Bounce mailbox not read:" in result.stderr


# Forged reports: anyone can mail the bounce mailbox ----------------------------------------------
def test_forged_reports_change_nobody_and_are_kept_for_review(tmp_path, imap, tls, backend):
    """The four forgeries of the issue (a stranger's DSN naming 25 readers without an original,
    an ARF naming a reader, a DSN quoting an invented Message-ID of our shape, a text bounce
    naming two readers), with NEWSLETTER_VERP_DOMAIN set: no subscriber changes, every report
    stays in INBOX and is listed by `invoke bounces.review`. A genuine report that lists 24 other
    readers besides the one it proves bounces exactly that one."""
    settings = newsletter_settings(
        tmp_path, backend=backend, imap_host="127.0.0.1", imap_port=imap.port, imap_user=imap.user,
        imap_password=imap.password, verp_domain=VERP_DOMAIN,
    )  # fmt: skip
    readers = [f"reader{n}@example.com" for n in range(30)]
    people = add_subscribers(settings, dict.fromkeys(readers, Status.CONFIRMED), since=JOINED)
    victim = people["reader0@example.com"].public_id
    invented = [
        "<0123456789abcdef0123456789abcdef.announce@walkagain.example>",  # the old shape
        f"<0123456789abcdef0123456789abcdef.{victim}.announce@walkagain.example>",  # no key
        proof.message_id(
            settings.replace(secret_key="another-key-" + "x" * 30), "announce", "guid", victim
        ),  # signed with another key  # fmt: skip
    ]
    forged = [
        dsn(readers[:25]),
        arf("reader1@example.com"),
        *(
            dsn(
                ["reader2@example.com"],
                f"--b\nContent-Type: text/rfc822-headers\n\n"
                f"To: reader2@example.com\nMessage-ID: {mid}\n\n",
            )
            for mid in invented
        ),  # fmt: skip
        exim("reader3@example.com", "reader4@example.com"),
    ]
    for message in forged:
        imap.deliver(message.encode())

    report = bounces.fetch(settings, ssl_context=tls[1])

    assert report.review == len(forged) and sum(report.applied.values()) == 0
    assert report.moved == 0 and len(imap.messages("INBOX")) == len(forged)
    assert set(statuses(settings).values()) == {Status.CONFIRMED}
    assert events(settings) == []
    kept = reviews(settings)
    assert len(kept) == len(forged)
    assert len(kept[0][1].split(", ")) == 10  # what one report may name is capped
    # The front door lists them, with what they claimed
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "NEWSLETTER_DATABASE": str(settings.database)}  # fmt: skip
    invoke = Path(sys.executable).parent / "invoke"
    listed = subprocess.run([str(invoke), "bounces.review"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert f"{len(forged)} report(s) changed nobody" in listed.stdout
    assert "complaint claimed for reader1@example.com" in listed.stdout
    assert "reader3@example.com, reader4@example.com" in listed.stdout

    # A genuine bounce of reader5's email (our Message-ID), listing 24 others too
    ours = sent_to(settings, "reader5@example.com", people)
    genuine = dsn(
        readers[5:30], f"--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: {ours}\n\n"
    )
    imap.deliver(genuine.encode())
    report = bounces.fetch(settings, ssl_context=tls[1])
    assert report.applied[HARD] == 1 and report.moved == 1
    after = statuses(settings)
    assert after["reader5@example.com"] == Status.BOUNCED
    assert sum(status == Status.BOUNCED for status in after.values()) == 1


@pytest.mark.sqlite_only  # about the report parser's logging, not the database (run once)
def test_a_detector_that_raises_is_one_warning_line(world, imap, tls, caplog, monkeypatch):
    """flufl.bounce logs a detector's exception with its traceback; a hostile report in the
    mailbox makes that one warning naming the report instead, and stays in the folder."""
    from flufl.bounce._detectors import dsn as dsn_detector

    def broken(self, message):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "hostile bytes")

    monkeypatch.setattr(dsn_detector.DSN, "process", broken)
    settings, _people = world
    imap.deliver(exim("reader@example.com").encode())
    caplog.set_level("INFO")
    report = bounces.fetch(settings, ssl_context=tls[1])
    assert (report.read, report.junk, report.moved) == (1, 1, 0)
    assert any("unreadable" in line for line in report.left)
    records = [r for r in caplog.records if r.levelname != "INFO"]
    assert len(records) == 1 and records[0].levelname == "WARNING"
    assert not records[0].exc_info and "Traceback" not in caplog.text
    assert "<exim-forged@mx.stranger.example>" in records[0].getMessage()
    assert "detector DSN" in records[0].getMessage()
