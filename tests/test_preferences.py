"""The reader's preferences page and the change of address, through create_app over a real
SQLite file (and the real SMTP test server for the change of address), with bad input."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import subprocess
import time

import pytest
from bs4 import BeautifulSoup

from newsletter.announcements.emails import Composer
from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import Announcement, Delivery
from newsletter.database import ERRORS
from newsletter.ratelimit import Rate
from newsletter.subscriptions import addresses, topics
from newsletter.subscriptions.address_changes import ADDRESS_CHANGE, AddressChanges
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.choices import Choice, Choices
from newsletter.subscriptions.emails import preferences_url, unsubscribe_url
from newsletter.subscriptions.preferences_views import ADDRESS_RATE
from newsletter.subscriptions.sender import Sender
from newsletter.subscriptions.subscribers import Status
from newsletter.subscriptions.tokens import Tokens
from tests import backends
from tests.conftest import ROOT, SECRET_KEY, newsletter_settings, serve_folder
from tests.newsletter_helpers import wait_for_emails
from tests.smtp_server import SmtpSink

SITE = "https://walkagain.example"
BASE = SITE + "/newsletter"
TOPICS = [{"slug": "knees", "name": "Knee pain"}, {"slug": "hips", "name": "Hips"}]
VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"


@pytest.fixture
def blog(tmp_path):
    """What the blog publishes for the endpoint: feeds/topics.json, served on 127.0.0.1."""
    folder = tmp_path / "site"
    (folder / "feeds").mkdir(parents=True)
    document = {"version": 1, "site": SITE, "topics": TOPICS}
    (folder / "feeds" / "topics.json").write_text(json.dumps(document), encoding="utf-8")
    server = serve_folder(folder)
    topics.forget_cache()
    yield server.url + "/feeds/all.rss.xml"
    server.stop()
    topics.forget_cache()


@pytest.fixture
def settings(tmp_path, blog, backend):
    return newsletter_settings(
        tmp_path,
        backend=backend,
        site_url=SITE,
        base_url=BASE,
        feed_url=blog,
        rate_limit=Rate(1000, 60),
    )


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["newsletter"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def nl(app):
    return app.extensions["newsletter"]


def reader(app, address="reader@example.com", status=Status.CONFIRMED):
    return nl(app).subscribers.add(*addresses.normalize(address), status=status)


def page_of(app, subscriber) -> str:
    """The path of the reader's preferences page (the link in every email's footer)."""
    url = preferences_url(nl(app).settings, nl(app).tokens, subscriber.public_id)
    assert url.startswith(BASE + "/preferences/")
    return url.removeprefix(BASE)


def choice(app, subscriber) -> Choice:
    return Choices(nl(app).database).get(subscriber.id)


def soup(response):
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def alert(response) -> str:
    found = soup(response).select_one("[role=alert]")
    assert found is not None, response.get_data(as_text=True)[:500]
    return found.get_text(" ", strip=True)


def snapshot(app) -> list:
    """Every row of every table but the rate limits: what a request may have changed."""
    found = backends.contents(nl(app).settings.core.database, skip=("rate_limits",))
    return sorted(found.items())


# The page -------------------------------------------------------------------------------------
def test_the_page_shows_address_topics_and_frequency_and_a_get_changes_nothing(client, app):
    subscriber = reader(app)
    before = snapshot(app)
    shown = client.get(page_of(app, subscriber))
    assert shown.status_code == 200 and shown.mimetype == "text/html"
    page = soup(shown)
    assert page.h1.get_text() == "Your preferences"
    assert "reader@example.com" in page.get_text()
    boxes = page.select("input[type=checkbox][name=topics]")
    assert [(b["value"], b.has_attr("checked")) for b in boxes] == [
        ("knees", True),
        ("hips", True),
    ]
    assert [b.parent.get_text(strip=True) for b in boxes] == ["Knee pain", "Hips"]
    radios = page.select("input[type=radio][name=frequency]")
    assert [(r["value"], r.has_attr("checked")) for r in radios] == [
        ("each", True),
        ("weekly", False),
    ]
    unsubscribe = unsubscribe_url(nl(app).settings, nl(app).tokens, subscriber.public_id)
    assert page.find("button", string="Unsubscribe").find_parent("form")["action"] == unsubscribe
    # Neither a GET with the form's fields, nor HEAD, nor OPTIONS changes anything.
    path = page_of(app, subscriber)
    assert (
        client.get(path + "?topics=knees&frequency=weekly&email=x@example.com").status_code == 200
    )
    assert client.head(path).status_code == 200
    client.options(path)
    assert snapshot(app) == before
    assert choice(app, subscriber) == Choice(None, "each")


def test_a_get_runs_read_only_even_if_a_view_tried_to_write(app):
    """The app's one rule: a non-POST request has a read-only connection (the page's GET and
    the address link's GET rely on it)."""
    with app.test_request_context(page_of(app, reader(app)), method="GET"):
        app.preprocess_request()
        with pytest.raises(ERRORS, match="readonly|read-only|read only"):
            nl(app).database.db.execute("UPDATE subscribers SET frequency = 'weekly'")


def test_a_post_changes_topics_and_frequency(client, app):
    subscriber, other = reader(app), reader(app, "other@example.com")
    path = page_of(app, subscriber)
    saved = client.post(path, data={"topics": ["", "knees"], "frequency": "weekly"})
    assert saved.status_code == 200 and "Saved" in saved.get_data(as_text=True)
    assert choice(app, subscriber) == Choice(frozenset({"knees"}), "weekly")
    assert choice(app, other) == Choice(None, "each")  # another reader's choice is untouched
    page = soup(client.get(path))
    assert [b.has_attr("checked") for b in page.select("input[name=topics][type=checkbox]")] == [
        True,
        False,
    ]
    assert page.select_one("input[name=frequency][checked]")["value"] == "weekly"
    # All ticked is everything (topics that appear later included); replaying a POST is harmless.
    for _ in range(2):
        client.post(path, data={"topics": ["", "knees", "hips"], "frequency": "each"})
        assert choice(app, subscriber) == Choice(None, "each")


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"topics": ["", "elbows"], "frequency": "each"}, "Unknown topic 'elbows'"),
        ({"topics": [""], "frequency": "each"}, "at least one topic"),
        ({"frequency": "each"}, "at least one topic"),
        ({"topics": ["", "knees"], "frequency": "daily"}, "Choose how often"),
        ({"topics": ["", "knees"]}, "Choose how often"),
        ({"topics": ["", "knees"], "frequency": "weekly\u202e"}, "Choose how often"),
        ({"topics": ["", "knee\u0301s"], "frequency": "each"}, "Unknown topic"),
        ({"topics": ["", "knees\x00"], "frequency": "each"}, "Unknown topic"),
        ({"topics": ["", "ｋｎｅｅｓ"], "frequency": "each"}, "Unknown topic"),
        ({"topics": ["", "k" * 5000], "frequency": "each"}, "too long"),
        ({"topics": ["knees"] * 10_000, "frequency": "each"}, "too many"),
    ],
)
def test_bad_values_are_a_400_with_the_reason_and_store_nothing(client, app, fields, words):
    subscriber = reader(app)
    before = snapshot(app)
    answer = client.post(page_of(app, subscriber), data=fields)
    assert answer.status_code in (400, 413)
    if answer.status_code == 400:
        assert words.lower() in alert(answer).lower()
    else:
        assert "too large" in alert(answer).lower()
    assert snapshot(app) == before


def test_a_form_that_is_not_utf8_is_refused(client, app):
    subscriber = reader(app)
    answer = client.post(
        page_of(app, subscriber),
        data=b"topics=&topics=kn%FFees&frequency=each",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 400 and "UTF-8" in alert(answer)
    assert choice(app, subscriber) == Choice(None, "each")


METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"]


def test_every_route_of_the_page_with_every_method_but_post_changes_nothing(client, app):
    subscriber = reader(app)
    client.post(page_of(app, subscriber) + "/address", data={"email": "new@example.com"})
    pending = AddressChanges(nl(app).database).pending(subscriber.id)
    address = nl(app).tokens.address_token(subscriber.public_id, pending.nonce)
    Sender(nl(app).settings, nl(app).database, nl(app).tokens).drain(10)  # its email is sent
    before = snapshot(app)
    walked = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/preferences/", "/address/")):
            continue
        token = address if rule.rule.startswith("/address/") else page_of(app, subscriber)[13:]
        path = rule.rule.replace("<token>", token)
        for method in METHODS:
            for body in ({}, {"data": {"email": "x@example.com", "topics": ["", "hips"],
                                       "frequency": "weekly"}}):  # fmt: skip
                answer = client.open(path, method=method, **body)
                assert answer.status_code in (200, 204, 405), (method, path, answer.status_code)
                walked.add(rule.rule)
    assert walked == {"/preferences/<token>", "/preferences/<token>/address", "/address/<token>"}
    assert snapshot(app) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_refused(client, app, method):
    answer = client.open(page_of(app, reader(app)), method=method)
    assert answer.status_code == 405 and "Use GET or POST" in alert(answer)


# Links ----------------------------------------------------------------------------------------
def test_forged_tampered_truncated_and_wrong_purpose_links(client, app, settings):
    subscriber = reader(app)
    before = snapshot(app)
    good = page_of(app, subscriber).removeprefix("/preferences/")
    forged = Tokens("another-secret-key-" + "x" * 30).preferences_token(subscriber.public_id)
    unsubscribe = Tokens(SECRET_KEY).unsubscribe_token(subscriber.public_id)
    made_up = Tokens(SECRET_KEY).preferences_token("not-a-reader-0000")
    value, signature = good.rsplit(".", 1)  # a changed first character of the signature
    tampered = f"{value}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    for token, status in [
        (forged, 400),
        (good[:-3], 400),
        (tampered, 400),
        (unsubscribe, 400),  # the unsubscribe link's token does not open this page
        ("x" * 5000, 400),
        ("%00%0a", 400),
        (made_up, 404),
    ]:
        for method in ("GET", "POST"):
            answer = client.open(
                f"/preferences/{token}",
                method=method,
                data={"topics": ["", "knees"], "frequency": "weekly"},
            )
            assert answer.status_code == status, (token, method)
            assert len(alert(answer)) > 20
    assert snapshot(app) == before


def test_a_cross_site_form_cannot_change_a_reader(client, app):
    """A form on another site posting here needs the reader's token, which only the emails to
    that reader carry: with anything else it is refused and nothing changes."""
    subscriber = reader(app)
    before = snapshot(app)
    evil = {"Origin": "https://evil.example", "Referer": "https://evil.example/page"}
    for path in ("/preferences/guess", "/preferences/guess/address", "/address/guess"):
        answer = client.post(
            path, data={"topics": ["", "hips"], "frequency": "weekly",
                        "email": "thief@evil.example"}, headers=evil,
        )  # fmt: skip
        assert answer.status_code == 400
    assert snapshot(app) == before
    assert choice(app, subscriber) == Choice(None, "each")


def test_a_reader_who_left_sees_the_way_back_and_can_change_nothing(client, app):
    subscriber = reader(app)
    nl(app).subscribers.unsubscribe(subscriber.public_id)
    path = page_of(app, subscriber)
    shown = client.get(path)
    page = soup(shown)
    assert shown.status_code == 200 and page.h1.get_text() == "You’re not subscribed"
    form = page.select_one("form.subscribe-form")
    assert form["action"] == BASE + "/subscribe"  # a new sign-up: confirmed by email again
    assert form.select_one("input[name=email]")["value"] == "reader@example.com"
    before = snapshot(app)
    for target in (path, path + "/address"):
        answer = client.post(target, data={"topics": ["", "knees"], "frequency": "weekly",
                                           "email": "new@example.com"})  # fmt: skip
        assert answer.status_code == 409 and "Nothing was changed" in alert(answer)
    assert snapshot(app) == before
    unconfirmed = reader(app, "later@example.com", status=Status.UNCONFIRMED)
    assert "not confirmed yet" in client.get(page_of(app, unconfirmed)).get_data(as_text=True)


def test_unsubscribe_from_the_page(client, app):
    subscriber = reader(app)
    form = soup(client.get(page_of(app, subscriber))).find("button", string="Unsubscribe")
    done = client.post(form.find_parent("form")["action"].removeprefix(BASE))
    assert done.status_code == 200 and soup(done).h1.get_text() == "You’re unsubscribed"
    assert nl(app).subscribers.get(subscriber.public_id).status == Status.UNSUBSCRIBED


# The change of address ------------------------------------------------------------------------
def address_link(message) -> str:
    text = message.get_body(("plain",)).get_content()
    (url,) = [word for word in text.split() if "/address/" in word]
    return url.removeprefix(BASE)


def ask(client, app, subscriber, new):
    return client.post(page_of(app, subscriber) + "/address", data={"email": new})


def test_change_of_address_end_to_end_over_smtp(tmp_path, blog, backend):
    with SmtpSink() as server:
        settings = newsletter_settings(
            tmp_path, backend=backend, site_url=SITE, base_url=BASE, feed_url=blog,
            transport="smtp", smtp_host="127.0.0.1", smtp_port=server.port,
            smtp_security="none", smtp_timeout=5,
        )  # fmt: skip
        app = create_app(settings)
        try:
            client = app.test_client()
            subscriber = reader(app, "old@example.com")
            old_page = page_of(app, subscriber)
            asked = ask(client, app, subscriber, "New.Reader@Example.com")
            assert asked.status_code == 200 and soup(asked).h1.get_text() == "Check the new inbox"
            assert "New.Reader@example.com" in asked.get_data(as_text=True)
            (message,) = server.wait_for(1)
            assert message["To"] == "New.Reader@example.com"
            assert message["Subject"] == "Confirm your new address for Walk Again"
            assert message["List-Unsubscribe"] is None  # not a list email: its reader is not on it
            assert "/unsubscribe/" not in message.get_body(("plain",)).get_content()
            # Not yet: the old address gets the emails until the new one confirms.
            assert nl(app).subscribers.get(subscriber.public_id).email == "old@example.com"
            assert "Waiting" in client.get(old_page).get_data(as_text=True)
            link = address_link(message)
            Sender(settings, nl(app).database, nl(app).tokens).drain(10)  # recorded as sent
            before = snapshot(app)
            shown = client.get(link)  # a link scanner's GET changes nothing
            assert shown.status_code == 200 and "New.Reader@example.com" in soup(shown).get_text()
            assert soup(shown).find("button", string="Yes, use this address") is not None
            assert snapshot(app) == before
            done = client.post(link)
            assert done.status_code == 200 and soup(done).h1.get_text() == "Your address is changed"
            (moved,) = nl(app).subscribers.list()
            assert (moved.email, moved.email_key) == ("New.Reader@example.com",
                                                      "new.reader@example.com")  # fmt: skip
            assert moved.id == subscriber.id and moved.status == Status.CONFIRMED
            # Every link in the emails to the old address stops working (a new public id) ...
            assert moved.public_id != subscriber.public_id
            assert client.get(old_page).status_code == 404
            # ... and the page's new link is the one the next email carries.
            new_page = soup(done).find("a", string="Your preferences")["href"]
            assert new_page == BASE + page_of(app, moved)
            assert client.post(link).status_code == 410  # replayed: nothing more happens
            assert AddressChanges(nl(app).database).pending(moved.id) is None
        finally:
            nl(app).close()


def test_the_new_address_must_confirm_before_it_takes_over_and_the_newest_request_wins(
    client, app, settings, monkeypatch
):
    nl(app).sender.stop()  # both requests are in before the sender looks
    monkeypatch.setattr(nl(app).sender, "start", lambda: None)
    subscriber = reader(app, "old@example.com")
    ask(client, app, subscriber, "first@example.com")
    ask(client, app, subscriber, "second@example.com")
    Sender(settings, nl(app).database, nl(app).tokens).drain(10)
    sent = {m["To"]: m for m in wait_for_emails(settings.outbox, 1)}
    assert list(sent) == ["second@example.com"]  # the replaced request's email never went
    rows = nl(app).sender.ledger.rows(ADDRESS_CHANGE)
    assert sorted(r["status"] for r in rows) == ["sent", "skipped"]
    assert nl(app).subscribers.get(subscriber.public_id).email == "old@example.com"
    # A link for another nonce (an older request's) is stale.
    stale = nl(app).tokens.address_token(subscriber.public_id, "older-nonce")
    assert client.post(f"/address/{stale}").status_code == 410
    assert nl(app).subscribers.get(subscriber.public_id).email == "old@example.com"
    assert client.post(address_link(sent["second@example.com"])).status_code == 200
    assert nl(app).subscribers.list()[0].email == "second@example.com"


def test_an_expired_or_forged_address_link_changes_nothing(tmp_path, blog, backend):
    now = [time.time()]
    settings = newsletter_settings(
        tmp_path, backend=backend, site_url=SITE, base_url=BASE, feed_url=blog
    )
    app = create_app(settings)
    try:
        client = app.test_client()
        subscriber = reader(app, "old@example.com")
        ask(client, app, subscriber, "new@example.com")
        pending = AddressChanges(nl(app).database).pending(subscriber.id)
        old = Tokens(SECRET_KEY, clock=lambda: now[0] - 49 * 3600)
        expired = old.address_token(subscriber.public_id, pending.nonce)
        forged = Tokens("x" * 40).address_token(subscriber.public_id, pending.nonce)
        confirm = Tokens(SECRET_KEY).confirm_token(subscriber.public_id, pending.nonce)
        other = reader(app, "other@example.com")
        Sender(settings, nl(app).database, nl(app).tokens).drain(10)  # its email is sent
        before = snapshot(app)
        answer = client.post(f"/address/{expired}")
        assert answer.status_code == 410 and "expired" in alert(answer)
        for token in (forged, confirm, "abc", "x" * 3000):  # another key, another purpose
            assert client.post(f"/address/{token}").status_code == 400
        # Another reader's id with this reader's nonce: no change of theirs is pending.
        theirs = Tokens(SECRET_KEY).address_token(other.public_id, pending.nonce)
        assert client.post(f"/address/{theirs}").status_code == 410
        assert snapshot(app) == before
        assert nl(app).subscribers.get(subscriber.public_id).email == "old@example.com"
        assert nl(app).subscribers.get(other.public_id).email == "other@example.com"
    finally:
        nl(app).close()


def test_an_address_on_the_list_is_told_only_to_its_own_mailbox(client, app, settings):
    subscriber = reader(app, "old@example.com")
    reader(app, "taken@example.com", status=Status.UNSUBSCRIBED)
    free, taken = ask(client, app, subscriber, "free@example.com"), None
    other = reader(app, "another@example.com")
    taken = ask(client, app, other, "taken@example.com")
    # The page's answer is the same either way: it never tells whether an address is listed.
    assert taken.status_code == free.status_code == 200

    def said(answer, new, old):
        shown = soup(answer).select_one("main") or soup(answer)
        for link in shown.select("a[href*='/preferences/']"):
            link["href"] = "(their page)"
        return str(shown).replace(new, "NEW").replace(old, "OLD")

    assert said(taken, "taken@example.com", "another@") == said(free, "free@example.com", "old@")
    nl(app).sender.drain(10)
    sent = {m["To"]: m for m in wait_for_emails(settings.outbox, 2)}
    told = sent["taken@example.com"]
    assert told["Subject"] == "This address is already on Walk Again's list"
    assert "/address/" not in told.get_body(("plain",)).get_content()
    assert "never merged" in told.get_body(("plain",)).get_content()
    assert "Confirm your new address" in sent["free@example.com"]["Subject"]
    # Taken after the request (signed up meanwhile): the link says so, nothing changes.
    reader(app, "free@example.com")
    answer = client.post(address_link(sent["free@example.com"]))
    assert answer.status_code == 409 and "already on the list" in alert(answer)
    assert nl(app).subscribers.get(subscriber.public_id).email == "old@example.com"
    assert [s.email for s in nl(app).subscribers.list() if s.email.startswith("free")] == [
        "free@example.com"
    ]


@pytest.mark.parametrize(
    "typed, words",
    [
        ("", "Please enter your email address"),
        ("not an address", "not a valid email address"),
        ("a@b.example\r\nBcc: x@y.example", "line breaks"),
        ("x" * 300 + "@example.com", "too long"),
        ("reader\u202e@example.com", "not a valid email address"),
    ],
)
def test_a_bad_new_address_is_a_400_and_stores_nothing(client, app, typed, words):
    subscriber = reader(app)
    before = snapshot(app)
    answer = ask(client, app, subscriber, typed)
    assert answer.status_code == 400 and words.lower() in alert(answer).lower()
    assert soup(answer).select_one("#email")["aria-invalid"] == "true"
    assert snapshot(app) == before


def test_the_same_address_changes_nothing(client, app):
    subscriber = reader(app, "Reader@example.com")
    before = snapshot(app)
    answer = ask(client, app, subscriber, "reader@EXAMPLE.com")
    assert answer.status_code == 200 and "already your address" in answer.get_data(as_text=True)
    assert snapshot(app) == before


def test_changes_of_address_are_rate_limited_per_reader(client, app):
    subscriber, other = reader(app), reader(app, "other@example.com")
    for n in range(int(ADDRESS_RATE.count)):
        assert ask(client, app, subscriber, f"n{n}@example.com").status_code == 200
    refused = ask(client, app, subscriber, "one-more@example.com")
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert AddressChanges(nl(app).database).pending(subscriber.id).email == "n4@example.com"
    assert ask(client, app, other, "fine@example.com").status_code == 200  # per reader


def test_a_refused_new_address_drops_the_change_and_bounces_nobody(tmp_path, blog, backend):
    with SmtpSink(refuse=["nobody@example.com"]) as server:
        settings = newsletter_settings(
            tmp_path, backend=backend, site_url=SITE, base_url=BASE, feed_url=blog,
            transport="smtp", smtp_host="127.0.0.1", smtp_port=server.port,
            smtp_security="none", smtp_timeout=5,
        )  # fmt: skip
        app = create_app(settings)
        try:
            subscriber = reader(app, "old@example.com")
            ask(app.test_client(), app, subscriber, "nobody@example.com")
            nl(app).sender.drain(10)
            (row,) = nl(app).sender.ledger.rows(ADDRESS_CHANGE)
            assert row["status"] == "failed" and "550" in row["last_error"]
            assert AddressChanges(nl(app).database).pending(subscriber.id) is None
            assert nl(app).subscribers.get(subscriber.public_id).status == Status.CONFIRMED
        finally:
            nl(app).close()


# The link in every email's footer ----------------------------------------------------------
def test_every_announcement_carries_its_readers_own_preferences_link(client, app, settings):
    first, second = reader(app, "first@example.com"), reader(app, "second@example.com")
    item = FeedItem(guid="g1", title="Knees", link=SITE + "/knees/", summary="<p>Hi</p>")
    composer = Composer(settings, nl(app).tokens, Announcement(1, "article", "g1", "Knees",
                                                               [item], "", None))  # fmt: skip
    for person in (first, second):
        delivery = Delivery(1, 1, 0, person.id, person.public_id, person.email)
        wire = composer.outgoing(delivery).data
        message = email.message_from_bytes(wire, policy=email.policy.default)
        own = BASE + page_of(app, person)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert own in text and f'href="{own}"' in html
        assert message["List-Unsubscribe"] == f"<{composer.unsubscribe_url(delivery)}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert wire == composer.outgoing(delivery).data  # the fast path writes the same bytes
        reference = composer.message(delivery)
        assert reference.get_body(("plain",)).get_content() == text.replace("\r\n", "\n")
        opened = soup(client.get(own.removeprefix(BASE)))
        assert person.email in opened.get_text()


def test_a_typed_address_is_kept_no_longer_than_its_link_and_forget_erases_it(
    tmp_path, blog, clock, backend
):
    settings = newsletter_settings(
        tmp_path, backend=backend, site_url=SITE, base_url=BASE, feed_url=blog
    )
    app = create_app(settings)
    try:
        nl(app).database.clock = clock
        client = app.test_client()
        first, second = reader(app, "first@example.com"), reader(app, "second@example.com")
        ask(client, app, first, "typed@example.com")
        ask(client, app, second, "other-typed@example.com")
        changes = AddressChanges(nl(app).database)
        assert changes.prune(settings.endpoint.confirm_max_age) == 0
        # `subscribers.forget` of the typed address erases the change that names it.
        nl(app).subscribers.forget(addresses.normalize("typed@example.com")[1])
        assert changes.pending(first.id) is None
        assert changes.pending(second.id).email == "other-typed@example.com"
        clock.advance(hours=48, seconds=1)
        assert "Waiting" not in client.get(page_of(app, second)).get_data(as_text=True)
        Sender(settings, nl(app).database, nl(app).tokens).send_due()  # a pass prunes
        assert changes.pending(second.id) is None
    finally:
        nl(app).close()


def test_a_digest_carries_its_readers_own_preferences_link_too(app, settings):
    person = reader(app)
    items = [
        FeedItem(guid=f"g{n}", title=f"T{n}", link=f"{SITE}/{n}/", summary="<p>x</p>")
        for n in (1, 2)
    ]
    digest = Announcement(1, "digest", "digest:k", "Two new articles", items, "", None)
    composer = Composer(settings, nl(app).tokens, digest)
    delivery = Delivery(1, 1, 0, person.id, person.public_id, person.email)
    message = email.message_from_bytes(
        composer.outgoing(delivery).data, policy=email.policy.default
    )
    own = BASE + page_of(app, person)
    assert own in message.get_body(("plain",)).get_content()
    assert f'href="{own}"' in message.get_body(("html",)).get_content()
    assert composer.outgoing(delivery).variables["preferences_url"] == own  # Mailgun's batches


def test_when_the_blogs_topics_cannot_be_read_the_page_still_works(tmp_path, backend):
    topics.forget_cache()
    settings = newsletter_settings(
        tmp_path,
        backend=backend,
        site_url=SITE,
        base_url=BASE,
        feed_url="http://127.0.0.1:9/feeds/all.rss.xml",
    )
    app = create_app(settings)
    try:
        client = app.test_client()
        everything, chosen = reader(app), reader(app, "knees@example.com")
        Choices(nl(app).database).set(chosen.id, Choice(frozenset({"knees"}), "each"))
        page = soup(client.get(page_of(app, everything)))
        assert page.select("input[type=checkbox]") == [] and "every new" in page.get_text()
        saved = client.post(page_of(app, everything), data={"frequency": "weekly"})
        assert saved.status_code == 200
        assert choice(app, everything) == Choice(None, "weekly")
        # A reader with topics sees their own; ticking all of them is not "everything".
        boxes = soup(client.get(page_of(app, chosen))).select("input[type=checkbox]")
        assert [b["value"] for b in boxes] == ["knees"]
        client.post(page_of(app, chosen), data={"topics": ["", "knees"], "frequency": "each"})
        assert choice(app, chosen) == Choice(frozenset({"knees"}), "each")
        refused = client.post(page_of(app, chosen), data={"topics": [""], "frequency": "each"})
        assert refused.status_code == 400 and choice(app, chosen).topics == {"knees"}
    finally:
        nl(app).close()
        topics.forget_cache()


@pytest.mark.parametrize(
    "body, status",
    [
        ({"topics": ["", "knees"], "frequency": "weekly"}, 200),
        ({"topics": "knees", "frequency": "weekly"}, 400),
        ({"topics": [1, 2], "frequency": "weekly"}, 400),
        ({"topics": ["", "knees"], "frequency": ["weekly"]}, 400),
        ({"topics": {"a": 1}, "frequency": None}, 400),
        ([1, 2, 3], 400),
    ],
)
def test_a_json_body_is_read_or_refused_never_a_500(client, app, body, status):
    subscriber = reader(app)
    answer = client.post(page_of(app, subscriber), json=body)
    assert answer.status_code == status, answer.get_data(as_text=True)[:300]
    expected = Choice(frozenset({"knees"}), "weekly") if status == 200 else Choice(None, "each")
    assert choice(app, subscriber) == expected
    moved = client.post(page_of(app, subscriber) + "/address", json={"email": ["x@example.com"]})
    assert moved.status_code == 400 and "must be text" in alert(moved)


@pytest.mark.slow  # the Nu HTML Checker (Java)
def test_the_pages_are_valid_html(client, app, settings, tmp_path):
    if not VNU.is_file() or not shutil.which("java"):
        pytest.fail("the Nu HTML Checker is not installed: run `bash bin/setup --test`")
    subscriber = reader(app)
    path = page_of(app, subscriber)
    answers = {
        "page": client.get(path),
        "saved": client.post(path, data={"topics": ["", "knees"], "frequency": "weekly"}),
        "error": client.post(path, data={"topics": [""], "frequency": "each"}),
        "asked": client.post(path + "/address", data={"email": "new@example.com"}),
        "bad-address": client.post(path + "/address", data={"email": "nope"}),
    }
    pending = AddressChanges(nl(app).database).pending(subscriber.id)
    token = nl(app).tokens.address_token(subscriber.public_id, pending.nonce)
    answers["address"] = client.get(f"/address/{token}")
    answers["moved"] = client.post(f"/address/{token}")
    nl(app).subscribers.unsubscribe(nl(app).subscribers.list()[0].public_id)
    moved = nl(app).subscribers.list()[0]
    answers["left"] = client.get(page_of(app, moved))
    files = []
    for name, answer in answers.items():
        files.append(tmp_path / f"{name}.html")
        files[-1].write_bytes(answer.data)
    result = subprocess.run(
        ["java", "-Xss4m", "-jar", str(VNU), "--errors-only", "--format", "json",
         "--exit-zero-always", *map(str, files)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stderr or result.stdout)
    errors = [f"{m.get('url', '')}:{m.get('lastLine')}: {m['message']}" for m in report["messages"]]
    assert errors == [], "\n".join(errors)
