"""The Mailgun mailer against a local HTTP server that checks the request Mailgun documents
for batch sending: URL, basic auth, multipart form fields, recipient-variables, batch size."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

import pytest
from bs4 import BeautifulSoup
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from newsletter import mail
from newsletter.announcements import run as announce
from newsletter.announcements.ledger import Ledger
from newsletter.mail.mailgun import MailgunMailer
from newsletter.mail.message import message_id, new_message, wire
from newsletter.settings import ConfigError, MailgunSettings, Settings
from newsletter.subscriptions.subscribers import Status, Subscribers
from newsletter.subscriptions.tokens import Tokens
from tests.announce_helpers import (
    ATTACKER_DEK,
    HOSTILE_TEXTS,
    add_confirmed_bulk,
    add_subscribers,
    as_words,
    write_feed,
)
from tests.conftest import newsletter_settings
from tests.newsletter_helpers import QuietHandler

KEY, DOMAIN = "key-0123456789abcdef", "mg.walkagain.example"


class FakeMailgun:
    """Records each call; answers from `answers` (status codes, in turn, then 200), and 400
    for any batch that contains an address in `invalid`."""

    def __init__(self):
        self.calls: list[dict] = []
        self.answers: list[int] = []
        self.invalid: set[str] = set()
        app = Flask("fake-mailgun")
        app.config["MAX_FORM_PARTS"] = 5000  # Mailgun takes 1,000 `to` fields and more

        @app.post("/v3/<domain>/<endpoint>")
        def messages(domain, endpoint):
            call = {
                "path": request.path,
                "auth": request.headers.get("Authorization", ""),
                "content_type": request.mimetype,
                "form": request.form.to_dict(flat=False),
                "files": {k: f.read() for k, f in request.files.items()},
            }
            self.calls.append(call)
            if self.answers:
                status = self.answers.pop(0)
                return jsonify(message=f"answer {status}"), status
            if self.invalid & set(call["form"].get("to", [])):
                return jsonify(message="'to' parameter is not a valid address"), 400
            return jsonify(id=f"<{len(self.calls)}@{domain}>", message="Queued. Thank you.")

        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mailgun():
    fake = FakeMailgun()
    yield fake
    fake.stop()


def when(hours_ago: int) -> str:
    return format_datetime(datetime.now(UTC) - timedelta(hours=hours_ago))


def feed_file(path, *items):
    """A minimal RSS feed as the blog writes it (guid, link, title, date, summary)."""
    entries = "".join(
        f"<item><title>{escape(title)}</title><link>https://walkagain.example/2026/{n}/</link>"
        f'<guid isPermaLink="false">urn:uuid:{n}</guid><description>&lt;p&gt;About {n}'
        f"&lt;/p&gt;</description><pubDate>{when(n)}</pubDate></item>"
        for n, title in items
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Walk Again'
        f"</title><link>https://walkagain.example/</link><description>d</description>{entries}"
        "</channel></rss>",
        encoding="utf-8",
    )
    return path


def mailgun_settings(tmp_path, fake, **changes):
    return newsletter_settings(
        tmp_path,
        transport="mailgun",
        mailgun_api_key=KEY,
        mailgun_domain=DOMAIN,
        mailgun_base_url=fake.url,
        reply_to="mark@walkagain.example",
        **changes,
    )


def announce_second_article(settings, tmp_path):
    feed = feed_file(tmp_path / "feed.xml", (9, "Old one"))
    announce.run(settings, feed_url=feed)  # first run: records, sends nothing
    feed_file(feed, (1, "Knees & Hips <Part 1>"), (9, "Old one"))
    return announce.run(settings, feed_url=feed)


def test_the_documented_batch_request(tmp_path, mailgun):
    settings = mailgun_settings(tmp_path, mailgun)
    add_confirmed_bulk(settings, 2500)
    summary = announce_second_article(settings, tmp_path)
    assert summary.ok and summary.tally.sent == 2500
    assert [len(call["form"]["to"]) for call in mailgun.calls] == [1000, 1000, 500]
    tokens = Tokens(settings.secret_key)
    everyone = set()
    for call in mailgun.calls:
        form = {name: values for name, values in call["form"].items()}
        assert call["path"] == f"/v3/{DOMAIN}/messages"
        assert call["auth"] == "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
        assert call["content_type"] == "multipart/form-data"
        assert form["from"] == ["Walk Again <news@walkagain.example>"]
        assert form["subject"] == ["Knees & Hips <Part 1>"]
        assert form["h:Reply-To"] == ["mark@walkagain.example"]
        assert form["h:List-Unsubscribe"] == ["<%recipient.unsubscribe_url%>"]
        assert form["h:List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
        assert form["h:List-Id"] == ["Walk Again <newsletter.walkagain.example>"]
        assert form["h:Message-Id"] == ["%recipient.message_id%"]
        assert form["o:tracking"] == ["no"]
        assert "%recipient.unsubscribe_url%" in form["text"][0]
        assert 'href="%recipient.unsubscribe_url%"' in form["html"][0]
        assert "Knees &amp; Hips &lt;Part 1&gt;" in form["html"][0]
        variables = json.loads(form["recipient-variables"][0])
        assert set(variables) == set(form["to"])  # every recipient has its own variables
        for address in form["to"]:
            n = int(address.removeprefix("reader").split("@")[0])
            token = tokens.unsubscribe_token(f"pub-{n:07d}")
            assert variables[address]["unsubscribe_url"] == (
                f"{settings.base_url}/unsubscribe/{token}"
            )
            assert variables[address]["message_id"].endswith(".announce@walkagain.example>")
        everyone |= set(form["to"])
    assert len(everyone) == 2500


def test_429_is_retried_and_an_invalid_address_is_found_and_bounced(tmp_path, mailgun):
    settings = mailgun_settings(tmp_path, mailgun, mailgun_batch_size=4)
    readers = [f"r{n}@example.com" for n in range(7)]
    add_subscribers(settings, {address: Status.CONFIRMED for address in readers})
    mailgun.answers = [429]  # the first call: too many requests
    mailgun.invalid = {"r5@example.com"}
    summary = announce_second_article(settings, tmp_path)
    assert summary.tally.sent == 6 and summary.tally.bounced == 1 and summary.pending == 0
    assert not summary.ok  # a failed delivery: exit code 1
    store = Subscribers.open(settings.database)
    try:
        assert [s.email for s in store.list(Status.BOUNCED)] == ["r5@example.com"]
        rows = {r["email"]: r["status"] for r in Ledger(store.database).deliveries()}
        assert rows == {a: ("failed" if a == "r5@example.com" else "sent") for a in readers}
    finally:
        store.close()
    sizes = [len(call["form"]["to"]) for call in mailgun.calls]
    assert sizes[0] == 4 and max(sizes) <= 4  # 429 on the first batch, then halves around r5


def test_a_server_error_leaves_the_batch_pending(tmp_path, mailgun):
    settings = mailgun_settings(tmp_path, mailgun, announce_retries=1)
    add_subscribers(settings, {"a@example.com": Status.CONFIRMED})
    mailgun.answers = [503, 503]
    summary = announce_second_article(settings, tmp_path)
    assert summary.pending == 1 and summary.tally.sent == 0
    assert any("Mailgun answered 503" in error for error in summary.tally.errors)


def test_regions_and_required_settings():
    base = dict(mailgun_api_key=KEY, mailgun_domain=DOMAIN, transport="mailgun")
    assert Settings(**base).mailgun_url == "https://api.mailgun.net"
    assert Settings(**base, mailgun_region="eu").mailgun_url == "https://api.eu.mailgun.net"
    env = {"NEWSLETTER_TRANSPORT": "mailgun", "NEWSLETTER_MAILGUN_API_KEY": KEY,
           "NEWSLETTER_MAILGUN_DOMAIN": DOMAIN, "NEWSLETTER_MAILGUN_REGION": "EU"}  # fmt: skip
    assert Settings.from_env(env).mailgun_url == "https://api.eu.mailgun.net"
    with pytest.raises(ConfigError, match="NEWSLETTER_MAILGUN_API_KEY and NEWSLETTER_MAILGUN_DOM"):
        Settings(transport="mailgun")
    with pytest.raises(ConfigError, match="NEWSLETTER_MAILGUN_BATCH_SIZE=1001"):
        Settings(mailgun_batch_size=1001)
    assert isinstance(mail.connect(Settings(**base), mail.Collect()), MailgunMailer)


def test_the_mailer_takes_its_concern_and_the_http_timeout():
    """Mailgun is an HTTP API: its timeout is 3 x NEWSLETTER_HTTP_TIMEOUT (30 s by default),
    whatever NEWSLETTER_SMTP_TIMEOUT says."""
    base = dict(mailgun_api_key=KEY, mailgun_domain=DOMAIN, transport="mailgun")
    assert mail.connect(Settings(**base), mail.Collect()).timeout == 30
    mailer = mail.connect(Settings(**base, http_timeout=4, smtp_timeout=1), mail.Collect())
    assert mailer.timeout == 12 and mailer.url == f"https://api.mailgun.net/v3/{DOMAIN}"
    alone = MailgunMailer(MailgunSettings(api_key=KEY, domain=DOMAIN, region="eu"), mail.Collect())
    assert alone.url == f"https://api.eu.mailgun.net/v3/{DOMAIN}" and alone.batch_size == 1000
    assert alone.session.auth == ("api", KEY)


def test_one_ready_message_goes_to_the_mime_endpoint(tmp_path, mailgun):
    settings = mailgun_settings(tmp_path, mailgun)
    message = new_message(settings, "reader@example.com", "Confirm", message_id(settings, "t", 1))
    message.set_content("Hello")
    results = mail.Collect()
    mailer = MailgunMailer(settings.mailgun, results)
    mailer.push(mail.Outgoing("reader@example.com", str(message["Message-ID"]), wire(message)))
    mailer.flush()
    assert list(results.results.values()) == [None]
    (call,) = mailgun.calls
    assert call["path"] == f"/v3/{DOMAIN}/messages.mime"
    assert call["form"]["to"] == ["reader@example.com"]
    sent = email.message_from_bytes(call["files"]["message"], policy=email.policy.default)
    assert sent["Subject"] == "Confirm" and sent.get_content().strip() == "Hello"


@pytest.mark.parametrize("status", [400, 401, 402, 403])
def test_a_refusal_of_the_message_or_account_stops_the_run_and_bounces_nobody(
    tmp_path, mailgun, status
):
    """Today's defect: a 400 refusing every call was bisected down to single recipients, each
    reported bounced, so the whole list ended bounced. Now: at most one level of halves."""
    settings = mailgun_settings(tmp_path, mailgun)
    readers = [f"r{n}@example.com" for n in range(8)]
    add_subscribers(settings, {address: Status.CONFIRMED for address in readers})
    feed = feed_file(tmp_path / "feed.xml", (9, "Old one"))
    announce.run(settings, feed_url=feed)  # first run: records, sends nothing
    feed_file(feed, (1, "Knees & Hips <Part 1>"), (9, "Old one"))
    mailgun.answers = [status] * 100  # every call refused, whatever it holds
    summary = announce.run(settings, feed_url=feed)
    assert len(mailgun.calls) <= 3  # the batch, then its two halves at most
    assert summary.tally.bounced == 0 and summary.tally.sent == 0
    assert summary.tally.stopped and not summary.ok  # `invoke announce` exits 1
    assert summary.pending == 8
    assert any(f"Mailgun answered {status}: answer {status}" in line for line in summary.lines())
    store = Subscribers.open(settings.database)
    try:
        assert store.list(Status.BOUNCED) == []
        statuses = {r["status"] for r in Ledger(store.database).deliveries()}
        assert statuses == {"queued"}
    finally:
        store.close()
    mailgun.answers = []  # fixed (a new key, a verified domain): the next run sends them all
    again = announce.run(settings, feed_url=feed)
    assert again.ok and again.tally.sent == 8 and again.resumed


def test_one_recipient_alone_refused_without_naming_them_is_not_bounced(tmp_path, mailgun):
    settings = mailgun_settings(tmp_path, mailgun)
    add_subscribers(settings, {"only@example.com": Status.CONFIRMED})
    feed = feed_file(tmp_path / "feed.xml", (9, "Old one"))
    announce.run(settings, feed_url=feed)
    feed_file(feed, (1, "New"), (9, "Old one"))
    mailgun.answers = [400]  # "answer 400": says nothing about the recipient
    summary = announce.run(settings, feed_url=feed)
    assert summary.tally.bounced == 0 and summary.pending == 1 and summary.tally.stopped


def as_mailgun_sends(text: str, variables: dict) -> str:
    """Mailgun's batch sending: each %recipient.<name>% becomes that recipient's value."""
    return re.sub(r"%recipient\.(\w+)%", lambda m: variables.get(m[1], m[0]), text)


def test_feed_text_is_never_a_mailgun_variable(tmp_path, mailgun):
    """Issue 17: Mailgun substitutes %recipient.x% anywhere in the fields; a title, dek or summary
    holding one reaches the reader as those words, never as their unsubscribe URL or
    Message-ID, and nothing from the feed becomes a header."""
    settings = mailgun_settings(tmp_path, mailgun, announce_max_items=0)
    add_subscribers(settings, {"ann@example.com": Status.CONFIRMED})
    items = [(n, text, ATTACKER_DEK, f"<p>{escape(text)}</p>")
             for n, text in enumerate(HOSTILE_TEXTS, 1)]  # fmt: skip
    feed = write_feed(tmp_path / "hostile.xml", [], old=True)
    announce.run(settings, feed_url=feed)
    summary = announce.run(settings, feed_url=write_feed(feed, items, old=True))
    assert summary.ok and summary.tally.sent == len(items) == len(mailgun.calls)
    texts = {as_words(text): text for text in HOSTILE_TEXTS}
    for call in mailgun.calls:
        form = {name: values[0] for name, values in call["form"].items()}
        mine = json.loads(form["recipient-variables"])["ann@example.com"]
        sent = {name: as_mailgun_sends(value, mine) for name, value in form.items()}
        seen = {name: value.replace("\u200b", "") for name, value in sent.items()}  # invisible
        text = texts.pop(seen["subject"])  # the words, not the reader's values
        assert mine["unsubscribe_url"] not in sent["subject"]
        assert mine["message_id"] not in sent["subject"]
        headers = sorted(name for name in form if name.startswith("h:"))
        assert headers == ["h:List-Id", "h:List-Unsubscribe", "h:List-Unsubscribe-Post",
                           "h:Message-Id", "h:Reply-To"]  # fmt: skip
        assert sent["h:List-Unsubscribe"] == f"<{mine['unsubscribe_url']}>"
        assert sent["h:Message-Id"] == mine["message_id"]
        assert sent["h:Reply-To"] == settings.reply_to
        for shown in (text, ATTACKER_DEK):
            assert as_words(shown) in as_words(seen["text"])
            html = BeautifulSoup(sent["html"], "html.parser")
            assert as_words(shown) in as_words(html.get_text())
        # The reader's own link is where the template puts it, and only there.
        assert sent["text"].count(mine["unsubscribe_url"]) == 1
        assert html.find("a", string="Unsubscribe")["href"] == mine["unsubscribe_url"]
        assert sent["html"].count(mine["unsubscribe_url"]) == 1
    assert texts == {}  # one email for each
