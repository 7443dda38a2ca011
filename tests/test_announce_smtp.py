"""Announcements through SMTP to a real aiosmtpd server on 127.0.0.1: the headers as received,
one-click unsubscribe against the running endpoint, a misbehaving server, a SIGKILL mid-send,
and a message refused by the server (the run stops, nobody is bounced)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from html import escape
from pathlib import Path

import pytest
import requests

from newsletter.announcements import run as announce
from newsletter.announcements.ledger import Ledger
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.announce_helpers import (
    ATTACKER_DEK,
    HOSTILE_TEXTS,
    add_confirmed_bulk,
    add_subscribers,
    archive,
    as_words,
    assert_whole_email,
    build,
    recent,
    write_feed,
)
from tests.conftest import newsletter_settings, write_article
from tests.newsletter_helpers import start_endpoint
from tests.smtp_server import SmtpSink

pytestmark = [
    pytest.mark.slow,  # an SMTP server, announcers in subprocesses
    pytest.mark.usefixtures("backend"),  # on both databases
]

ROOT = Path(__file__).resolve().parent.parent


def smtp_settings(tmp_path, sink, **changes):
    return newsletter_settings(
        tmp_path,
        transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_security="none",
        smtp_timeout=5,
        **changes,
    )


def environment(settings) -> dict[str, str]:
    """The same settings as NEWSLETTER_* variables, for `invoke announce` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE=str(settings.database),
        NEWSLETTER_OUTBOX=str(settings.outbox),
        NEWSLETTER_SECRET_KEY=settings.secret_key,
        NEWSLETTER_TRANSPORT="smtp",
        NEWSLETTER_SMTP_HOST="127.0.0.1",
        NEWSLETTER_SMTP_PORT=str(settings.smtp_port),
        NEWSLETTER_SMTP_SECURITY="none",
        NEWSLETTER_SMTP_WORKERS=str(settings.smtp_workers),
        NEWSLETTER_FROM=settings.sender,
        NEWSLETTER_SITE_URL=settings.site_url,
        NEWSLETTER_BASE_URL=settings.base_url,
        NEWSLETTER_POSTAL_ADDRESS=settings.postal_address,
        NEWSLETTER_ANNOUNCE_RETRY_DELAY="0.05",
        NEWSLETTER_ANNOUNCE_RETRIES="3",
    )
    return env


def invoke_announce(settings, feed, *extra, **popen):
    command = [sys.executable, "-m", "invoke", "announce", "--feed-url", str(feed), *extra]
    return subprocess.Popen(command, cwd=ROOT, env=environment(settings), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)  # fmt: skip


def first_article(content, output):
    write_article(content, "first", "The first article", recent(48))
    return build(content, output)


@pytest.mark.both_backends  # a promise to keep on PostgreSQL too
def test_headers_as_received_and_one_click_unsubscribe(tmp_path, content_dir):
    output = tmp_path / "output"
    endpoint = start_endpoint(tmp_path)  # the same database, key and site as the announcer's
    try:
        with SmtpSink() as sink:
            settings = smtp_settings(tmp_path, sink, base_url=endpoint.url)
            add_subscribers(settings, {"ann@example.com": Status.CONFIRMED,
                                       "bob@example.com": Status.CONFIRMED})  # fmt: skip
            announce.run(settings, feed_url=first_article(content_dir, output))
            write_article(content_dir, "two", "Second article", recent(2), subtitle="Dek")
            summary = announce.run(settings, feed_url=build(content_dir, output))
            assert summary.ok and summary.tally.sent == 2
            by_reader = {str(m["To"]): m for m in sink.messages}
            assert sorted(by_reader) == ["ann@example.com", "bob@example.com"]
            message = by_reader["ann@example.com"]
            assert message["Subject"] == "Second article"
            assert message["From"] == "Walk Again <news@walkagain.example>"
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert message["List-Id"] == "Walk Again <newsletter.walkagain.example>"
            assert message["Message-ID"].endswith(".announce@walkagain.example>")
            url = str(message["List-Unsubscribe"]).strip("<>")
            assert url.startswith(f"{endpoint.url}/unsubscribe/")
            html = message.get_body(("html",)).get_content()
            assert f'href="{url}"' in html  # the visible link is the same

            # RFC 8058: what a mail provider POSTs when the reader clicks "Unsubscribe".
            answer = requests.post(url, data="List-Unsubscribe=One-Click", allow_redirects=False,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"},
                                   timeout=5)  # fmt: skip
            assert answer.status_code == 200
            store = Subscribers.open(settings.database)
            try:
                assert store.find("ann@example.com").status == Status.UNSUBSCRIBED
            finally:
                store.close()

            write_article(content_dir, "three", "Third article", recent(1))
            later = announce.run(settings, feed_url=build(content_dir, output))
            assert later.tally.sent == 1
            assert [str(m["To"]) for m in sink.messages[2:]] == ["bob@example.com"]
    finally:
        endpoint.stop()


def test_a_misbehaving_server(tmp_path, content_dir):
    """421 and 451 for some messages, 550 for some addresses, dropped connections: every good
    address gets exactly one email, the 550s end bounced, and the summary and exit code say so."""
    good = [f"reader{n}@example.com" for n in range(16)]
    refused = ["nobody@example.com", "gone@example.com"]
    temporary = {
        good[1]: ["421"],
        good[3]: ["451", "451"],
        good[5]: ["drop"],
        good[7]: ["421", "drop", "451"],
        good[9]: ["drop"],
    }
    with SmtpSink(refuse=refused, temporary=temporary) as sink:
        settings = smtp_settings(tmp_path, sink, smtp_workers=3)
        add_subscribers(settings, {a: Status.CONFIRMED for a in good + refused})
        feed = first_article(content_dir, tmp_path / "output")
        assert invoke_announce(settings, feed).wait(60) == 0  # first run: records, sends nothing
        write_article(content_dir, "two", "Second article", recent(2))
        feed = build(content_dir, tmp_path / "output")
        run = invoke_announce(settings, feed)
        out, _ = run.communicate(timeout=60)
        assert run.returncode == 1, out
        assert "Sending 'Second article': 18 email(s)" in out  # progress, then the summary
        assert "sent: 16, skipped: 0, failed: 2 (2 bounced), still pending: 0" in out
        assert "550 5.1.1 No such user here" in out
        assert "Not every email went out" in out
        assert sink.accepted == {address: 1 for address in good}
        store = Subscribers.open(settings.database)
        try:
            assert {s.email for s in store.list(Status.BOUNCED)} == set(refused)
            rows = {r["email"]: r for r in Ledger(store.database).deliveries()}
            assert rows[good[7]]["attempts"] == 4 and rows[good[7]]["status"] == "sent"
        finally:
            store.close()
        # A re-run has nothing left to send, and says all is well.
        again = invoke_announce(settings, feed)
        out, _ = again.communicate(timeout=60)
        assert again.returncode == 0, out
        assert sum(sink.accepted.values()) == 16


def test_a_server_that_takes_fewer_connections_than_the_workers_gets_every_email_once(
    tmp_path, content_dir
):
    """NEWSLETTER_SMTP_WORKERS=6 against a server that keeps 2 connections open: the run says
    so once per connection set aside, and every reader gets one email on the first attempt
    (nothing failed, retried or left pending)."""
    readers = [f"reader{n}@example.com" for n in range(60)]
    with SmtpSink(parse=False, max_connections=2) as sink:
        settings = smtp_settings(tmp_path, sink, smtp_workers=6)
        add_subscribers(settings, {a: Status.CONFIRMED for a in readers})
        feed = first_article(content_dir, tmp_path / "output")
        assert invoke_announce(settings, feed).wait(60) == 0  # first run: records, sends nothing
        write_article(content_dir, "two", "Second article", recent(2))
        run = invoke_announce(settings, build(content_dir, tmp_path / "output"))
        out, _ = run.communicate(timeout=60)
        assert run.returncode == 0, out
        assert "sent: 60, skipped: 0, failed: 0 (0 bounced), still pending: 0" in out
        assert out.count("would not open connection") == 4, out
        assert sink.accepted == {address: 1 for address in readers}
        store = Subscribers.open(settings.database)
        try:
            rows = list(Ledger(store.database).deliveries())
            assert len(rows) == 60 and {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
        finally:
            store.close()


def test_a_message_the_server_refuses_stops_the_run_and_bounces_nobody(tmp_path, content_dir):
    """554 at DATA refuses the message itself (content policy, our account): the run stops at
    once with the server's words, nobody is bounced, everything stays pending; once fixed, the
    next run sends them all."""
    readers = [f"reader{n}@example.com" for n in range(6)]
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, smtp_workers=1)
        add_subscribers(settings, {address: Status.CONFIRMED for address in readers})
        announce.run(settings, feed_url=first_article(content_dir, tmp_path / "output"))
        write_article(content_dir, "two", "Second article", recent(2))
        feed = build(content_dir, tmp_path / "output")
        sink.faults = ["554"]  # the first message of the announcement is refused
        summary = announce.run(settings, feed_url=feed)
        assert summary.tally.stopped and not summary.ok
        assert summary.tally.bounced == 0 and summary.tally.sent == 0 and summary.pending == 6
        assert any("554 5.7.1 Message refused by policy" in line for line in summary.lines())
        assert sink.transactions == 1  # stopped at the first refusal
        store = Subscribers.open(settings.database)
        try:
            assert store.list(Status.BOUNCED) == []
        finally:
            store.close()
        again = announce.run(settings, feed_url=feed)
        assert again.ok and again.tally.sent == 6 and sorted(sink.accepted) == readers


def test_a_server_that_stays_down_leaves_everything_pending(tmp_path, content_dir):
    with SmtpSink(temporary={f"reader{n}@example.com": ["451"] * 99 for n in range(3)}) as sink:
        settings = smtp_settings(tmp_path, sink, announce_retries=2, smtp_workers=1)
        add_subscribers(settings, {f"reader{n}@example.com": Status.CONFIRMED for n in range(3)})
        announce.run(settings, feed_url=first_article(content_dir, tmp_path / "output"))
        write_article(content_dir, "two", "Second article", recent(2))
        summary = announce.run(settings, feed_url=build(content_dir, tmp_path / "output"))
    assert not summary.ok and summary.pending == 3 and summary.tally.sent == 0
    assert summary.tally.retried == 9  # 3 readers x (1 try + 2 retry passes)
    assert "still pending: 3" in "\n".join(summary.lines())


@pytest.mark.both_backends  # a promise to keep on PostgreSQL too
def test_sigkill_in_the_middle_of_2000_emails_then_rerun(tmp_path, content_dir):
    workers = 4
    with SmtpSink(parse=False) as sink:
        settings = smtp_settings(tmp_path, sink, smtp_workers=workers)
        add_confirmed_bulk(settings, 2000)
        feed = first_article(content_dir, tmp_path / "output")
        assert invoke_announce(settings, feed).wait(60) == 0
        write_article(content_dir, "two", "Second article", recent(2))
        feed = build(content_dir, tmp_path / "output")
        run = invoke_announce(settings, feed)
        deadline = time.monotonic() + 60
        while sum(sink.accepted.values()) < 700 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        killed_at = sum(sink.accepted.values())
        assert 700 <= killed_at < 2000, "the run must die in the middle"
        again = invoke_announce(settings, feed)  # the dead run's lock does not block this one
        out, _ = again.communicate(timeout=120)
        assert again.returncode == 0, out
        assert "resumed from an earlier run: Second article" in out
    expected = {f"reader{n}@example.com" for n in range(2000)}
    assert set(sink.accepted) == expected  # everyone has the email
    duplicates = sum(sink.accepted.values()) - 2000
    assert 0 <= duplicates <= workers  # at most the messages in flight at the kill


@pytest.mark.both_backends  # a promise to keep on PostgreSQL too
def test_sigkill_in_the_middle_of_1500_weekly_digests_then_rerun(tmp_path):
    """The crash promise holds for weekly digests (issue 20): a run killed while it sends the
    week's digests, then a re-run, leave each weekly reader with exactly one digest; at most
    the messages in flight at the kill are sent twice (with the same Message-ID)."""
    from datetime import UTC, datetime

    from newsletter.database import Database
    from tests.reader_choices_helpers import topic_feed

    workers, readers = 4, 1500
    with SmtpSink(parse=False) as sink:
        settings = smtp_settings(tmp_path, sink, smtp_workers=workers, timezone="Europe/London")
        feed = topic_feed(tmp_path / "feed.xml", [])
        tuesday, wednesday = "2026-12-01T10:00Z", "2026-12-02T10:00Z"
        monday = "2026-12-07T08:05Z"  # the digest: Mondays at 08:00, London
        assert invoke_announce(settings, feed, "--as-of", tuesday).wait(60) == 0  # the first
        add_confirmed_bulk(settings, readers)
        database = Database(settings.database)
        with database.transaction() as db:
            db.execute("UPDATE subscribers SET frequency = 'weekly'")
        database.close()
        published = datetime(2026, 12, 2, 9, 55, tzinfo=UTC)
        topic_feed(feed, [(1, "Knees one", "knees", published)])
        assert invoke_announce(settings, feed, "--as-of", wednesday).wait(60) == 0
        assert not sink.accepted  # weekly readers wait for Monday
        run = invoke_announce(settings, feed, "--as-of", monday)
        deadline = time.monotonic() + 60
        while sum(sink.accepted.values()) < 500 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        killed_at = sum(sink.accepted.values())
        assert 500 <= killed_at < readers, "the run must die in the middle"
        again = invoke_announce(settings, feed, "--as-of", monday)
        out, _ = again.communicate(timeout=120)
        assert again.returncode == 0, out
    assert set(sink.accepted) == {f"reader{n}@example.com" for n in range(readers)}
    assert 0 <= sum(sink.accepted.values()) - readers <= workers


@pytest.fixture(autouse=True)
def _no_leftover_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("NEWSLETTER_")]:
        monkeypatch.delenv(name)


def test_with_a_verp_domain_each_message_names_its_subscriber_in_the_return_path(
    tmp_path, content_dir
):
    """NEWSLETTER_VERP_DOMAIN: the envelope sender is bounces+<public id>.<seal>@<domain>, so a
    bounce proves whom it is about even when the recipient's server forwarded the message."""
    from newsletter.mail.proof import proven_by_verp

    readers = ["ann@example.com", "bob@example.com"]
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, verp_domain="bounces.walkagain.example")
        people = add_subscribers(settings, {address: Status.CONFIRMED for address in readers})
        announce.run(settings, feed_url=first_article(content_dir, tmp_path / "output"))
        write_article(content_dir, "two", "Second article", recent(2))
        summary = announce.run(settings, feed_url=build(content_dir, tmp_path / "output"))
        assert summary.ok and summary.tally.sent == 2
        paths = {rcpt[0]: mail_from for mail_from, rcpt in sink.envelopes}
    for address in readers:
        local, _, domain = paths[address].partition("@")
        assert domain == "bounces.walkagain.example" and len(local) <= 64  # RFC 5321
        assert local.startswith(f"bounces+{people[address].public_id}.")
        assert proven_by_verp(settings, paths[address]) == people[address].public_id
        forged = local[:-10] + "0" * 10 + "@" + domain  # another seal
        assert proven_by_verp(settings, forged) is None
    for message in sink.messages:  # the From the reader sees is unchanged
        assert message["From"] == "Walk Again <news@walkagain.example>"


def test_feed_text_never_reaches_the_structure_of_the_emails_as_received(tmp_path):
    """Issue 17: titles, deks and summaries holding the composer's old markers, Mailgun's
    variables or header text arrive, through a real SMTP server, as words in whole emails."""
    items = [(n, text, ATTACKER_DEK, f"<p>{escape(text)}</p>")
             for n, text in enumerate(HOSTILE_TEXTS, 1)]  # fmt: skip
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, announce_max_items=0)
        add_subscribers(settings, {"ann@example.com": Status.CONFIRMED})
        feed = write_feed(tmp_path / "feed.xml", [], old=True)
        announce.run(settings, feed_url=feed)  # first run: records, sends nothing
        summary = announce.run(settings, feed_url=write_feed(feed, items, old=True))
        assert summary.ok and summary.tally.sent == len(items)
        received = {message["Subject"]: message for message in sink.messages}
    assert sorted(received) == sorted(as_words(text) for text in HOSTILE_TEXTS)
    for text in HOSTILE_TEXTS:
        message = received[as_words(text)]
        for shows in (text, ATTACKER_DEK):
            assert_whole_email(message, settings, "ann@example.com", subject=as_words(text),
                               shows=shows)  # fmt: skip


def test_a_flood_of_new_items_waits_for_a_person_who_says_yes(tmp_path):
    """300 new guids in the feed: `invoke announce` (from a timer) sends and records nothing,
    lists the items, and exits 1 so the failure shows; --dry-run says --yes is needed; with
    --yes the run sends them as usual."""
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink)
        add_subscribers(settings, {"ann@example.com": Status.CONFIRMED})
        feed = write_feed(tmp_path / "feed.xml", [], old=True)
        assert invoke_announce(settings, feed).wait(60) == 0  # first run: records only
        write_feed(feed, archive(300), old=True)
        held = invoke_announce(settings, feed)
        out, _ = held.communicate(timeout=60)
        assert held.returncode == 1, out
        assert "Not announced: This run would announce 300 new items to every subscriber" in out
        assert "NEWSLETTER_ANNOUNCE_MAX_ITEMS=5" in out and "invoke announce --yes" in out
        assert "  - Archive item 300 <https://walkagain.example/2026/item-300/>" in out
        assert sink.transactions == 0 and sink.messages == []
        dry = invoke_announce(settings, feed, "--dry-run")
        out, _ = dry.communicate(timeout=120)
        assert dry.returncode == 0, out
        assert "it needs --yes" in out and "A run without --yes would send nothing" in out
        assert sink.transactions == 0
        store = Subscribers.open(settings.database)
        try:
            ledger = Ledger(store.database)
            assert len(ledger.items()) == 1 and ledger.latest() is None  # nothing recorded
        finally:
            store.close()
        sent = invoke_announce(settings, feed, "--yes")
        out, _ = sent.communicate(timeout=120)
        assert sent.returncode == 0, out
        assert "sent: 300, skipped: 0, failed: 0" in out
        assert sink.accepted == {"ann@example.com": 300}
        subjects = {str(message["Subject"]) for message in sink.messages}
        assert subjects == {f"Archive item {n}" for n in range(1, 301)}
