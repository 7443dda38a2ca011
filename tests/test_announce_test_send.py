"""`invoke announce --test ADDRESS`: the emails the next run would send, one of each kind, to one
address through the live transport, "[Test]" in the Subject, and nothing recorded. Over real
Pelican builds, a real SQLite file, the outbox and (once) the real SMTP test server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.announcements import run as announce
from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import Announcement, Ledger
from newsletter.announcements.test_send import TEST_PUBLIC_ID, TestSendRefused, one_of_each
from newsletter.mail import proof
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests import backends
from tests.announce_helpers import add_subscribers, build, recent, recipients
from tests.conftest import write_article
from tests.smtp_server import SmtpSink
from tests.test_mail_mailgun import DOMAIN, KEY, FakeMailgun
from tests.test_run import outbox_names
from tests.test_run import sent_since as all_sent_since

ROOT = Path(__file__).resolve().parent.parent
ME = "author@walkagain.example"
PEOPLE = {
    "ann@example.com": Status.CONFIRMED,
    "bob@example.com": Status.CONFIRMED,
    "una@example.com": Status.UNCONFIRMED,
    "ursula@example.com": Status.UNSUBSCRIBED,
}
CONFIRMED = ["ann@example.com", "bob@example.com"]

WELCOME = "[Test] Welcome to "


DIGEST = re.compile(r"\[Test\] \d+ new (articles?|videos?|articles and videos) on ")


def sent_since(settings, files):
    """The announcement emails a test send wrote (its welcome email, which every test send adds
    last, is checked by `test_every_test_send_adds_the_welcome_email_marked_and_sealed`; its
    weekly digest, by `digest_since`)."""
    return [
        m
        for m in all_sent_since(settings, files)
        if not m["Subject"].startswith(WELCOME) and not DIGEST.match(m["Subject"])
    ]


def digest_since(settings, files):
    """The weekly digest a test send wrote (issue 20: one, as it would go)."""
    (digest,) = [m for m in all_sent_since(settings, files) if DIGEST.match(m["Subject"])]
    return digest


def dump(settings) -> list[str]:
    """Every table's every row (and the schema), as SQL: the whole database's content."""
    return [f"{table}: {row!r}" for table, found in backends.contents(settings.database).items()
            for row in found]  # fmt: skip


def drop_ledger(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("outgoing_mail:")]


def counts(settings) -> dict[str, int]:
    return {t: backends.query(settings.database, f'SELECT count(*) FROM "{t}"')[0][0]
            for t in backends.table_names(settings.database)}  # fmt: skip


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def unsubscribe_of(message) -> str:
    return str(message["List-Unsubscribe"]).strip("<>")


@pytest.fixture
def blog(make_settings, tmp_path, content_dir):
    """A blog announced once (the first run recorded its first article), with one new article
    built since: the next run announces "Knees and hips"."""
    settings = make_settings()
    add_subscribers(settings, PEOPLE)
    output = tmp_path / "output"
    write_article(content_dir, "first", "The first article", recent(48))
    first = announce.run(settings, feed_url=build(content_dir, output))
    assert first.ok and first.announced == []
    write_article(content_dir, "knees", "Knees and hips", recent(1), subtitle="The dek",
                  summary="Why the hip matters.")  # fmt: skip
    return settings, content_dir, output, build(content_dir, output)


def test_the_test_send_reaches_one_address_records_nothing_and_the_run_still_announces(blog):
    settings, _content, _output, feed = blog
    before, rows, files = dump(settings), counts(settings), outbox_names(settings)
    assert rows["feed_items"] == 1 and rows["subscribers"] == len(PEOPLE)

    report = announce.run(settings, feed_url=feed, test=f"  {ME.upper()} ")
    (test,) = sent_since(settings, files)
    assert test["To"] == "AUTHOR@walkagain.example"  # normalised: the domain lowercased
    assert test["Subject"] == "[Test] Knees and hips"
    assert dump(settings) == before and counts(settings) == rows  # nothing recorded at all
    assert report.ok
    lines = report.lines()
    assert (
        "The next run would announce 1 new item(s): 1 email(s) to each of 2 confirmed "
        "subscriber(s)." in "\n".join(lines)
    )
    sent_line = (
        r"  sent: '\[Test\] Knees and hips' to AUTHOR@walkagain\.example via outbox \((.+)\)"
    )
    where = re.fullmatch(sent_line, lines[-4])  # then the digest's and the welcome's lines
    assert where and where.group(1).endswith(".test-send.test_walkagain.example.eml")
    assert (
        lines[-1].startswith("Test send: 3 email(s) sent") and "nothing was recorded" in lines[-1]
    )
    digest = digest_since(settings, files)  # the weekly digest, as it would go: the new one
    assert digest["Subject"] == "[Test] 1 new article on Walk Again: Knees and hips"
    assert "The next weekly digest (" in "\n".join(lines)

    # The Message-ID is sealed like a real one, with the kind "test", for the placeholder
    # reader: a bounce quoting it proves the public id "test-send", which names nobody.
    message_id = str(test["Message-ID"])
    assert re.fullmatch(r"<[0-9a-f]{32}\.test-send\.test@walkagain\.example>", message_id)
    assert proof.proven_by_message_id(settings, message_id) == TEST_PUBLIC_ID
    store = Subscribers.open(settings.database)
    try:
        assert store.get(TEST_PUBLIC_ID) is None
    finally:
        store.close()

    # The real run afterwards announces the article as if the test had never happened ...
    files = outbox_names(settings)
    real = announce.run(settings, feed_url=feed)
    assert real.ok and real.tally.sent == 2
    assert [a.subject for a in real.announced] == ["Knees and hips"]
    sent = sent_since(settings, files)
    assert recipients(sent) == CONFIRMED and {m["Subject"] for m in sent} == {"Knees and hips"}
    # ... and its email is the one the test showed: the same body, but for the reader's own
    # unsubscribe and preferences links.
    ann = next(m for m in sent if m["To"] == "ann@example.com")

    def own_links(text: str, message) -> str:
        text = text.replace(unsubscribe_of(message), "URL")
        return re.sub(r"/preferences/[A-Za-z0-9._~-]+", "/preferences/TOKEN", text)

    assert own_links(body(ann), ann) == own_links(body(test), test)
    assert own_links(test.get_body(("html",)).get_content(), test).replace(
        "<title>[Test] ", "<title>"
    ) == own_links(ann.get_body(("html",)).get_content(), ann)

    # Nothing new now: the test sends the latest announcement again, and says so.
    files, before = outbox_names(settings), dump(settings)
    again = announce.run(settings, feed_url=feed, test=ME)
    (resent,) = sent_since(settings, files)
    assert resent["Subject"] == "[Test] Knees and hips" and resent["To"] == ME
    assert resent["Message-ID"] != test["Message-ID"]  # a fresh one: no mail program drops it
    text = "\n".join(again.lines())
    assert "Nothing is new: the next run would send no new announcement." in text
    assert "Sent again, to show the real email: the latest announcement, 'Knees and hips'" in text
    assert dump(settings) == before


def test_one_email_of_each_kind_and_what_the_real_run_would_hold(blog):
    settings, content, output, _feed = blog
    for n in (2, 3):
        write_article(content, f"more-{n}", f"More {n}", recent(1 + n))
    write_article(content, "quiet", "Housekeeping", recent(1), announce="no")
    feed = build(content, output)
    before = dump(settings)

    files = outbox_names(settings)
    each = announce.run(settings.replace(announce_max_items=2), feed_url=feed, test=ME)
    (email,) = sent_since(settings, files)  # one article email, not three
    assert email["Subject"].startswith("[Test] ") and email["To"] == ME
    text = "\n".join(each.lines())
    assert "The next run would announce 3 new item(s): 3 email(s)" in text
    assert "the real run would send 2 more to each reader" in text
    assert "the next run records, not sends: Housekeeping (opted out (Announce: no))" in text
    assert "more than NEWSLETTER_ANNOUNCE_MAX_ITEMS=2: it needs --yes." in text
    assert "The real run would send nothing and record nothing without --yes" in text

    # The weekly digest as it would go: the three new items in one email (issue 20: the
    # announce mode is only the new readers' default frequency now; each item is announced
    # alone to the readers of "each").
    digest = digest_since(settings, files)
    assert digest["Subject"] == (
        "[Test] 3 new articles on Walk Again: More 3, More 2, Knees and hips"
    )
    assert "The next weekly digest (" in text and "holds 3 item(s) so far." in text
    files = outbox_names(settings)
    weekly = announce.run(settings.replace(announce_mode="digest"), feed_url=feed, test=ME)
    assert len(sent_since(settings, files)) == 1
    assert "3 new item(s): 3 email(s)" in "\n".join(weekly.lines())
    assert dump(settings) == before


def test_a_bad_address_is_refused_and_nothing_is_sent(blog):
    settings, _content, _output, feed = blog
    files, before = outbox_names(settings), dump(settings)
    for bad in ("", "nobody", "me@", "me@example.org\r\nBcc: all@example.org", "a@b@c.org"):
        with pytest.raises(TestSendRefused, match="--test .*"):
            announce.run(settings, feed_url=feed, test=bad)
    with pytest.raises(TestSendRefused, match="use one or the other"):
        announce.run(settings, feed_url=feed, test=ME, dry_run=True)
    assert outbox_names(settings) == files and dump(settings) == before


def test_the_unsubscribe_link_of_a_test_unsubscribes_nobody(blog):
    settings, _content, _output, feed = blog
    files = outbox_names(settings)
    announce.run(settings, feed_url=feed, test="ann@example.com")  # even a reader's own address
    (test,) = sent_since(settings, files)
    path = unsubscribe_of(test).removeprefix(settings.base_url)
    before = dump(settings)
    app = create_app(settings)
    try:
        client = app.test_client()
        shown = client.get(path, headers={"Accept": "application/json"})
        assert shown.status_code == 200 and shown.get_json() == {"ok": True, "subscribed": False}
        assert "not subscribed" in client.get(path).get_data(as_text=True)
        clicked = client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert clicked.status_code == 200
    finally:
        app.extensions["newsletter"].close()
    # ann is still confirmed; nobody changed (the endpoint's sender may meanwhile have sent a
    # confirmation that was queued before: the ledger is not compared here)
    assert drop_ledger(dump(settings)) == drop_ledger(before)


def test_a_running_announce_neither_blocks_nor_is_blocked_by_a_test(blog):
    settings, _content, _output, feed = blog
    store = Subscribers.open(settings.database)
    try:
        with Ledger(store.database).lock():  # a real run is sending
            files = outbox_names(settings)
            assert announce.run(settings, feed_url=feed, test=ME).ok
            assert len(sent_since(settings, files)) == 1  # and its welcome
    finally:
        store.close()


def test_a_missing_database_is_not_created(make_settings, tmp_path, content_dir):
    settings = make_settings(database=tmp_path / "var" / "newsletter.sqlite3")  # a file
    write_article(content_dir, "first", "The first article", recent(2))
    feed = build(content_dir, tmp_path / "output")
    report = announce.run(settings, feed_url=feed, test=ME)
    assert not settings.database.exists()
    text = "\n".join(report.lines())
    assert "The next run is a first run: it records what is in the feed and sends nothing." in text
    assert "the newest item of the feed, 'The first article'" in text
    assert [s.subject for s in report.sent] == [
        "[Test] The first article",
        "[Test] 1 new article on Walk Again: The first article",
        WELCOME + "Walk Again",
    ]


@pytest.mark.slow
def test_through_the_real_smtp_server(blog):
    settings, _content, _output, feed = blog
    before = dump(settings)
    with SmtpSink() as sink:
        smtp = settings.replace(transport="smtp", smtp_host="127.0.0.1", smtp_port=sink.port,
                                smtp_security="none", smtp_timeout=5)  # fmt: skip
        report = announce.run(smtp, feed_url=feed, test=ME)
        message, digest, welcome = sink.wait_for(3)
        assert [rcpt for _from, rcpt in sink.envelopes] == [[ME], [ME], [ME]]  # that one only
        assert DIGEST.match(digest["Subject"])
        assert welcome["Subject"].startswith(WELCOME)
    assert message["Subject"] == "[Test] Knees and hips" and message["To"] == ME
    assert report.ok and re.search(
        rf"  sent: '\[Test\] Knees and hips' to {ME} via smtp$", "\n".join(report.lines()), re.M
    )
    assert "List-Unsubscribe" in message and "Knees and hips" in body(message)
    assert dump(settings) == before


@pytest.mark.slow
def test_invoke_announce_test_through_the_task(blog):
    settings, _content, _output, feed = blog
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE=str(settings.database),
        NEWSLETTER_OUTBOX=str(settings.outbox),
        NEWSLETTER_SECRET_KEY=settings.secret_key,
        NEWSLETTER_FROM=settings.sender,
        NEWSLETTER_SITE_URL=settings.site_url,
        NEWSLETTER_BASE_URL=settings.base_url,
        NEWSLETTER_POSTAL_ADDRESS=settings.postal_address,
    )

    def invoke(*args):
        command = [sys.executable, "-m", "invoke", "announce", "--feed-url", str(feed), *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    files, before = outbox_names(settings), dump(settings)
    bad = invoke("--test", "not-an-address")
    assert bad.returncode == 1 and bad.stdout == ""
    assert "Test not sent: --test 'not-an-address': That is not a valid email address" in (
        bad.stderr
    )
    assert outbox_names(settings) == files

    sent = invoke("--test", ME)
    assert sent.returncode == 0, sent.stderr
    assert f"Test send to {ME} through outbox ({settings.outbox}):" in sent.stdout
    assert f"  sent: '[Test] Knees and hips' to {ME} via outbox (" in sent.stdout
    assert sent.stdout.rstrip().splitlines()[-1].startswith("Test send: 3 email(s) sent to ")
    assert "nothing was recorded" in sent.stdout
    assert [m["To"] for m in all_sent_since(settings, files)] == [ME, ME, ME]
    assert dump(settings) == before


def test_one_of_each_kind_article_video_digest():
    def made(kind, *item_kinds):
        items = [FeedItem(guid=f"g{n}", link=f"https://x.example/{n}/", title=f"T{n}", kind=k)
                 for n, k in enumerate(item_kinds)]  # fmt: skip
        return Announcement(0, kind, "k", "s", items, "", None)

    a1, a2 = made("article", "article"), made("article", "article")
    v1, v2 = made("article", "video"), made("article", "video")
    d1 = made("digest", "article", "video")
    assert one_of_each([a1, v1, a2, v2]) == ([a1, v1], [a2, v2])
    assert one_of_each([d1]) == ([d1], [])
    assert one_of_each([]) == ([], [])


@pytest.mark.slow
def test_through_mailgun_as_the_real_run_sends(blog):
    settings, _content, _output, feed = blog
    before = dump(settings)
    fake = FakeMailgun()
    try:
        mailgun = settings.replace(transport="mailgun", mailgun_api_key=KEY,
                                   mailgun_domain=DOMAIN, mailgun_base_url=fake.url)  # fmt: skip
        report = announce.run(mailgun, feed_url=feed, test=ME)
    finally:
        fake.stop()
    assert report.ok and f"through mailgun ({DOMAIN})" in report.lines()[1]
    calls = {c["path"]: c for c in fake.calls}  # in the order the mailer's answers came
    assert sorted(calls) == [f"/v3/{DOMAIN}/messages", f"/v3/{DOMAIN}/messages.mime"]
    call = calls[f"/v3/{DOMAIN}/messages"]  # the batch endpoint, as the real run uses it
    assert calls[f"/v3/{DOMAIN}/messages.mime"]["form"]["to"] == [ME]  # the welcome, alone
    form = call["form"]
    assert call["path"] == f"/v3/{DOMAIN}/messages" and form["to"] == [ME]
    assert form["subject"] == ["[Test] Knees and hips"]
    variables = json.loads(form["recipient-variables"][0])[ME]
    assert variables["message_id"].endswith(".test-send.test@walkagain.example>")
    assert proof.proven_by_message_id(settings, variables["message_id"]) == TEST_PUBLIC_ID
    assert dump(settings) == before


def test_with_item_it_sends_that_article_and_says_what_a_real_item_would_do(blog):
    settings, _content, _output, feed = blog
    before, files = dump(settings), outbox_names(settings)
    recorded = announce.run(settings, feed_url=feed, test=ME, item="the-first-article")
    (email,) = sent_since(settings, files)
    assert email["Subject"] == "[Test] The first article"
    assert "  A real `--item` would send 'The first article' to every reader." in recorded.lines()
    files = outbox_names(settings)
    new = announce.run(settings, feed_url=feed, test=ME, item="knees-and-hips")
    (email,) = sent_since(settings, files)
    assert email["Subject"] == "[Test] Knees and hips"
    assert any(
        line.startswith("  A real `--item` would refuse it: 'Knees and hips' is new")
        for line in new.lines()
    )
    assert dump(settings) == before


def test_every_test_send_adds_the_welcome_email_marked_and_sealed(blog):
    """The welcome a reader gets on confirming comes with every test send: the same email
    (`subscriptions.emails.welcome_email`, the feed's latest articles), "[Test]" in its Subject,
    the placeholder reader's unsubscribe link and a "test" seal; nothing recorded."""
    settings, _content, _output, feed = blog
    before, files = dump(settings), outbox_names(settings)
    announce.run(settings, feed_url=feed, test=ME)
    (welcome,) = [m for m in all_sent_since(settings, files) if m["Subject"].startswith(WELCOME)]
    assert welcome["To"] == ME and welcome["Subject"] == WELCOME + "Walk Again"
    assert proof.proven_by_message_id(settings, str(welcome["Message-ID"])) == TEST_PUBLIC_ID
    assert (
        "List-Unsubscribe" in welcome
        and "Knees and hips" in welcome.get_body(("plain",)).get_content()
    )
    assert dump(settings) == before
