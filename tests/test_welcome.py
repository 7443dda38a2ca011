"""The welcome email: owed once per reader in the confirmation's transaction, sent by the web
app's background sender through the one outgoing-mail ledger (real SQLite, the outbox transport,
the endpoint in a real HTTP server, the real SMTP test server once)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import timedelta

import pytest
import requests

from newsletter.database import stamp, utcnow
from newsletter.outgoing.ledger import MailLedger
from newsletter.settings import ConfigError
from newsletter.subscriptions import admin, articles
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.emails import paragraphs
from newsletter.subscriptions.sender import Sender, Welcome
from newsletter.subscriptions.subscribers import WELCOME, Status, Subscribers
from newsletter.subscriptions.tokens import Tokens
from tests.announce_helpers import write_feed
from tests.conftest import ROOT, SITE_URL, newsletter_settings, serve_folder
from tests.newsletter_helpers import link, path_of, start_endpoint, wait_for_emails
from tests.smtp_server import SmtpSink

JSON = {"Accept": "application/json"}
TEXT = "Hello from the author.\n\nA second paragraph, in my own words."
PICKS = f"Why knees hurt on stairs | {SITE_URL}/2026/item-3/\nThe one exercise | {SITE_URL}/x/"


def backdate() -> str:
    return stamp(utcnow() - timedelta(minutes=11))


@pytest.fixture
def feed(tmp_path):
    """The blog's feed, four articles (1 is the newest), and one exercise plan, served on
    127.0.0.1."""
    folder = tmp_path / "site"
    (folder / "feeds").mkdir(parents=True)
    (folder / "exercises").mkdir()
    items = [(n, f"Article <{n}> & knees", "", "<p>x</p>") for n in (1, 2, 3, 4)]
    write_feed(folder / "feeds" / "all.rss.xml", items)
    plans = {"version": 1, "site": SITE_URL, "plans": [{"id": "a-plan", "title": "Squat"}]}
    (folder / "exercises" / "plans.json").write_text(json.dumps(plans), encoding="utf-8")
    server = serve_folder(folder)
    yield server.url + "/feeds/all.rss.xml"
    server.stop()


def welcomes(messages):
    return [m for m in messages if m["Subject"].startswith("Welcome")]


def test_confirming_sends_one_welcome_once_ever(tmp_path, feed):
    endpoint = start_endpoint(tmp_path, feed_url=feed, welcome_text=TEXT, welcome_start_here=PICKS)
    try:
        outbox, url = endpoint.nl.settings.outbox, endpoint.url

        def subscribe():
            answer = requests.post(
                url + "/subscribe", data={"email": "reader@example.com"}, headers=JSON, timeout=5
            )
            assert answer.status_code == 200

        def confirm(message, status=200):
            answer = requests.post(url + path_of(link(message, "confirm")), headers=JSON, timeout=5)
            assert answer.status_code == status, answer.text
            return answer.json()

        subscribe()
        (confirmation,) = wait_for_emails(outbox, 1)
        assert confirm(confirmation)["message"].startswith("Thank you")
        first, welcome = wait_for_emails(outbox, 2)
        assert first["Subject"].startswith("Confirm")  # the welcome comes after it
        assert welcome["Subject"] == "Welcome to Walk Again"
        assert welcome["To"] == "reader@example.com"
        unsubscribe = link(welcome, "unsubscribe")
        assert welcome["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert welcome["List-Id"] and welcome["Auto-Submitted"] == "auto-generated"
        assert ".welcome@walkagain.example>" in welcome["Message-ID"]
        text = welcome.get_body(("plain",)).get_content()
        html = welcome.get_body(("html",)).get_content()
        assert "Hello from the author." in text and "A second paragraph" in text
        # The author's picks, then the latest three articles from the feed (a pick is not
        # listed twice), newest first, titles as plain text; the exercise library.
        assert text.index("Why knees hurt on stairs") < text.index("The latest articles")
        assert f'href="{SITE_URL}/x/"' in html and "The one exercise" in html
        assert [f"Article <{n}> & knees" in text for n in (1, 2, 3, 4)] == [1, 1, 0, 1]
        assert text.index("Article <1>") < text.index("Article <2>")
        assert "Article &lt;2&gt; &amp; knees" in html and "<2>" not in html
        assert f'href="{SITE_URL}/exercises/"' in html and f"{SITE_URL}/exercises/" in text
        assert f'href="{unsubscribe}"' in html and 'style="' in html  # CSS inlined
        assert "<style" not in html.split("<body", 1)[1]  # the body's own style block inlined

        # The link again: already subscribed, no second welcome.
        assert confirm(confirmation)["message"].startswith("You were already")
        time.sleep(0.3)
        assert len(wait_for_emails(outbox, 3, timeout=0.5)) == 2

        # Unsubscribe, sign up again, confirm again: a new confirmation, no second welcome.
        requests.post(url + path_of(unsubscribe), headers=JSON, timeout=5)
        store = endpoint.nl.subscribers
        store.database.db.execute("UPDATE subscribers SET confirmation_sent_at = ?", (backdate(),))
        subscribe()
        third = wait_for_emails(outbox, 3)[-1]
        assert third["Subject"].startswith("Confirm")
        assert confirm(third)["message"].startswith("Thank you")
        time.sleep(0.5)
        assert len(welcomes(wait_for_emails(outbox, 4, timeout=0.5))) == 1
        assert store.list()[0].status == Status.CONFIRMED
        (row,) = MailLedger(store.database).rows(WELCOME)
        assert row["status"] == "sent"
    finally:
        endpoint.stop()


def test_the_welcome_goes_without_the_list_when_the_feed_cannot_be_read(tmp_path, backend):
    settings = newsletter_settings(
        tmp_path, backend=backend, feed_url="http://127.0.0.1:9/feeds/all.rss.xml"
    )
    assert articles.latest(settings) == []
    store = Subscribers.open(settings.database)
    sender = Sender(settings, store.database, Tokens(settings.secret_key))
    admin.add(settings, "reader@example.com", confirmed=True, welcome=True)
    assert sender.drain(timeout=10)["sent"] == 1
    (message,) = wait_for_emails(settings.outbox, 1)
    text = message.get_body(("plain",)).get_content()
    assert message["Subject"] == "Welcome to Walk Again" and "latest articles" not in text
    # A list that raises (a bug) never fails the welcome either.
    welcome = Welcome(settings, store, Tokens(settings.secret_key), articles=lambda: 1 / 0)
    assert welcome._read(welcome.articles, []) == []
    assert articles.exercise_library(settings) == "" and "exercise library" not in text
    store.close()


def test_a_reader_no_longer_confirmed_is_skipped(tmp_path, backend):
    settings = newsletter_settings(tmp_path, backend=backend)
    store = Subscribers.open(settings.database)
    subscriber = store.add(*normalize("reader@example.com"), status=Status.CONFIRMED, welcome=True)
    store.unsubscribe(subscriber.public_id)
    sender = Sender(settings, store.database, Tokens(settings.secret_key))
    counts = sender.drain(timeout=10)
    assert counts["skipped"] == 1 and counts["sent"] == 0
    (row,) = MailLedger(store.database).rows(WELCOME)
    assert row["status"] == "skipped" and "unsubscribed" in row["last_error"]
    store.close()


def test_readers_added_by_the_author_get_a_welcome_only_when_asked(tmp_path, backend):
    settings = newsletter_settings(tmp_path, backend=backend)
    admin.add(settings, "quiet@example.com", confirmed=True)
    admin.add(settings, "greeted@example.com", confirmed=True, welcome=True)
    admin.add(settings, "greeted@example.com", confirmed=True, welcome=True)  # known: nothing
    csv = tmp_path / "in.csv"
    csv.write_text("email\nx@example.com\ny@example.com\n")
    admin.import_csv(settings, csv, confirmed=True)
    csv.write_text("email\nz@example.com\n")
    assert admin.import_csv(settings, csv, confirmed=True, welcome=True).added == ["z@example.com"]
    admin.send_queued(settings, timeout=10)
    messages = wait_for_emails(settings.outbox, 2)
    assert sorted(m["To"] for m in messages) == ["greeted@example.com", "z@example.com"]
    assert all(m["Subject"] == "Welcome to Walk Again" for m in messages)


def test_invoke_subscribers_add_with_and_without_welcome(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "NEWSLETTER_DATABASE": str(tmp_path / "db.sqlite3"),
        "NEWSLETTER_OUTBOX": str(tmp_path / "outbox"),
        "NEWSLETTER_FEED_URL": "http://127.0.0.1:9/feeds/all.rss.xml",  # unreadable: no list
    }

    def invoke(*args):
        result = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "invoke"), *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    invoke("subscribers.add", "quiet@example.com", "--confirmed")
    assert list((tmp_path / "outbox").glob("*.eml")) == []
    invoke("subscribers.add", "greeted@example.com", "--confirmed", "--welcome")
    (tmp_path / "in.csv").write_text("email\nz@example.com\n")
    assert "a welcome email each" in invoke(
        "subscribers.import", str(tmp_path / "in.csv"), "--confirmed", "--welcome"
    )
    messages = wait_for_emails(tmp_path / "outbox", 2)
    assert sorted(m["To"] for m in messages) == ["greeted@example.com", "z@example.com"]


def test_a_refused_address_fails_the_welcome_and_bounces_the_reader(tmp_path, backend):
    with SmtpSink(refuse=["gone@example.com"]) as server:
        settings = newsletter_settings(
            tmp_path,
            backend=backend,
            transport="smtp",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_security="none",
            smtp_timeout=2,
            feed_url="http://127.0.0.1:9/feeds/all.rss.xml",
        )
        admin.add(settings, "gone@example.com", confirmed=True, welcome=True)
        admin.add(settings, "here@example.com", confirmed=True, welcome=True)
        counts = admin.send_queued(settings, timeout=10)
        (received,) = server.wait_for(1)
    assert received["To"] == "here@example.com" and received["Subject"].startswith("Welcome")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (counts["sent"], counts["failed"]) == (1, 1)
    store = Subscribers.open(settings.database)
    failed = [r for r in MailLedger(store.database).rows(WELCOME) if r["status"] == "failed"]
    assert len(failed) == 1 and "550" in failed[0]["last_error"]
    assert [s.email for s in store.list(Status.BOUNCED)] == ["gone@example.com"]
    store.close()


def test_the_authors_text_in_paragraphs():
    assert paragraphs("One\nline.\n\n\nTwo.\\n\\nThree.") == ["One line.", "Two.", "Three."]
    assert paragraphs(newsletter_settings().mail.welcome_text)  # the default says something


def test_the_start_here_setting_is_checked():
    settings = newsletter_settings(welcome_start_here=PICKS.replace("\n", "\\n"))
    assert settings.mail.start_here == (
        ("Why knees hurt on stairs", f"{SITE_URL}/2026/item-3/"),
        ("The one exercise", f"{SITE_URL}/x/"),
    )
    for bad in ("no url here", "| https://a.example/", "Title | javascript:alert(1)"):
        with pytest.raises(ConfigError, match="NEWSLETTER_WELCOME_START_HERE"):
            newsletter_settings(welcome_start_here=bad)


def test_the_latest_articles_from_a_feed_file(tmp_path):
    path = write_feed(tmp_path / "all.rss.xml", [(n, f"T{n}", "", "") for n in range(1, 6)])
    found = articles.latest(newsletter_settings(), count=3, source=path)
    assert [a.title for a in found] == ["T1", "T2", "T3"]
    assert all(a.link.startswith("https://") for a in found)
    assert articles.latest(newsletter_settings(), source=tmp_path / "missing.xml") == []
    # The exercise library: linked only when the blog publishes at least one plan.
    (tmp_path / "feeds").mkdir()
    feed = write_feed(tmp_path / "feeds" / "all.rss.xml", [(1, "T1", "", "")])
    assert articles.exercise_library(newsletter_settings(), source=feed) == ""
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "plans.json").write_text('{"version": 1, "plans": []}')
    assert articles.exercise_library(newsletter_settings(), source=feed) == ""
    (tmp_path / "exercises" / "plans.json").write_text('{"version": 1, "plans": [{}]}')
    assert articles.exercise_library(newsletter_settings(), source=feed) == SITE_URL + "/exercises/"


def test_the_welcome_email_at_360_px(tmp_path, feed, new_context, artifacts, backend):
    """Look at it once: the welcome's HTML in Chromium at 360 px, no horizontal scroll."""
    settings = newsletter_settings(
        tmp_path, backend=backend, feed_url=feed, welcome_text=TEXT, welcome_start_here=PICKS
    )
    admin.add(settings, "reader@example.com", confirmed=True, welcome=True)
    admin.send_queued(settings, timeout=10)
    (message,) = wait_for_emails(settings.outbox, 1)
    page_file = tmp_path / "welcome.html"
    page_file.write_text(message.get_body(("html",)).get_content(), encoding="utf-8")
    context = new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    page.goto(page_file.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(artifacts / "welcome-email-360.png"), full_page=True)
