"""Every route of the endpoint through create_app, over a real SQLite file, with bad input."""

import socket
import time
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup

from newsletter.database import stamp, utcnow
from newsletter.ratelimit import Rate
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.subscribers import Status
from newsletter.subscriptions.tokens import Tokens
from newsletter.subscriptions.views import THANKS
from newsletter.subscriptions.web import ip_hash as _ip_hash
from newsletter.subscriptions.web import network as _network
from tests import backends
from tests.newsletter_helpers import link, path_of, wait_for_emails

SITE = "https://walkagain.example"
ARTICLE = SITE + "/2026/the-best-muscle-to-train-for-knee-pain/"
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def settings(make_settings):
    return make_settings(site_url=SITE, base_url=SITE + "/newsletter", rate_limit=Rate(1000, 60))


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["newsletter"].close()


@pytest.fixture
def client(app):
    return Checked(app.test_client())


class Checked:
    """A test client that checks what every answer must be: never a 500, and every 4xx says
    what was wrong (a JSON message, or a page with an alert)."""

    def __init__(self, client):
        self.client = client

    def open(self, method, path, **kwargs):
        response = self.client.open(path, method=method, **kwargs)
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        if 400 <= response.status_code < 500 and method != "HEAD":
            if response.is_json:
                assert response.json["ok"] is False and len(response.json["message"]) > 15
            else:
                alert = BeautifulSoup(response.get_data(as_text=True), "html.parser").select_one(
                    "[role=alert]"
                )
                assert alert is not None and len(alert.get_text(strip=True)) > 15
        return response

    def get(self, path, **kwargs):
        return self.open("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.open("POST", path, **kwargs)


def nl(app):
    return app.extensions["newsletter"]


def settle(app):
    """Apply the stored sign-up requests now (the background sender does it soon anyway)."""
    nl(app).sender.apply_requests()


def stored(app):
    """(subscribers and sign-up requests, queued emails): what any input left behind."""
    # One statement, one snapshot: the background sender turns a request into a subscriber
    # between two separate reads.
    (subscribers,) = (
        nl(app)
        .database.db.execute(
            "SELECT (SELECT count(*) FROM subscribers) + (SELECT count(*) FROM signup_requests)"
        )
        .fetchone()
    )
    return subscribers, len(nl(app).sender.ledger.rows())


def soup(response):
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def test_the_subscribed_page_says_when_a_weekly_reader_hears_and_links_their_preferences(
    client, app, settings
):
    """A reader who chose the weekly digest is told so (not "each time a new article is
    out"), and finds their preferences page from the page that welcomes them."""
    answer = client.post(
        "/subscribe",
        data={"email": "weekly@example.com", "source": ARTICLE, "website": "",
              "frequency": "weekly"},
        headers=HTML,
    )  # fmt: skip
    assert answer.status_code == 200, answer.get_data(as_text=True)
    (message,) = wait_for_emails(settings.outbox, 1)
    confirm = path_of(link(message, "confirm")).removeprefix("/newsletter")
    confirmed = soup(client.post(confirm, headers=HTML))
    assert confirmed.h1.get_text() == "You’re subscribed"
    text = " ".join(confirmed.get_text().split())
    assert "one email from" in text and "a week, on Mondays, with what is new" in text
    assert "each time a new article is out" not in text
    # a reader who just joined is not asked to subscribe (the footer's "Stay tuned" form)
    assert confirmed.select(".stay-tuned, form.subscribe-form") == []
    again = soup(client.post(confirm, headers=HTML))  # the button pressed twice
    assert again.h1.get_text() == "Already subscribed" and again.select(".stay-tuned") == []
    forged = soup(client.post("/confirm/forged-token", headers=HTML))  # no reader behind it:
    assert forged.select_one("footer .stay-tuned form.subscribe-form") is not None  # it stays
    preferences = confirmed.find("a", string="your preferences")["href"]
    shown = client.get(path_of(preferences).removeprefix("/newsletter"), headers=HTML)
    assert shown.status_code == 200
    weekly = soup(shown).find("input", attrs={"name": "frequency", "value": "weekly"})
    assert weekly is not None and weekly.has_attr("checked")


def test_subscribe_confirm_unsubscribe_without_javascript(client, app, settings):
    answer = client.post(
        "/subscribe",
        data={"email": "Reader@Example.com", "source": ARTICLE, "website": ""},
        headers=HTML,
    )
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = soup(answer)
    assert page.h1.get_text() == "Check your inbox"
    assert page.find("a", string="Back to the article")["href"] == ARTICLE
    (message,) = wait_for_emails(settings.outbox, 1)
    assert message["To"] == "Reader@example.com"

    confirm = path_of(link(message, "confirm")).removeprefix("/newsletter")
    shown = client.get(confirm)  # a link scanner's GET (or HEAD) confirms nothing
    assert shown.status_code == 200 and soup(shown).h1.get_text() == "Confirm your subscription"
    assert soup(shown).find("button", string="Yes, subscribe me") is not None
    assert client.open("HEAD", confirm).status_code == 200
    assert nl(app).subscribers.list()[0].status == Status.UNCONFIRMED
    confirmed = client.post(confirm, headers=HTML)  # the button
    assert confirmed.status_code == 200 and soup(confirmed).h1.get_text() == "You’re subscribed"
    assert "each time a new article is out" in confirmed.get_data(as_text=True)
    assert soup(confirmed).find("a", string="your preferences") is not None
    (subscriber,) = nl(app).subscribers.list()
    assert subscriber.status == Status.CONFIRMED and subscriber.consent_source == ARTICLE
    assert subscriber.consent_ip_hash and "127.0.0.1" not in subscriber.consent_ip_hash

    unsubscribe = path_of(link(message, "unsubscribe")).removeprefix("/newsletter")
    shown = client.get(unsubscribe)  # a link scanner's GET changes nothing
    assert soup(shown).find("button", string="Unsubscribe") is not None
    assert "R•••@example.com" in shown.get_data(as_text=True)
    assert nl(app).subscribers.list()[0].status == Status.CONFIRMED
    done = client.post(unsubscribe, headers=HTML)
    assert done.status_code == 200 and soup(done).h1.get_text() == "You’re unsubscribed"
    assert nl(app).subscribers.list()[0].status == Status.UNSUBSCRIBED
    assert "not subscribed" in client.get(unsubscribe).get_data(as_text=True)


def test_json_answers_for_the_enhanced_form_and_json_bodies(client, app):
    form = client.post("/subscribe", data={"email": "a@example.com"}, headers=JSON)
    assert form.status_code == 200 and form.json == {"ok": True, "message": THANKS}
    body = client.post("/subscribe", json={"email": "b@example.com", "source": ARTICLE})
    assert body.status_code == 200 and body.json["ok"] is True
    settle(app)
    assert [s.email for s in nl(app).subscribers.list()] == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize(
    "fields, words",
    [
        ({}, "Please enter your email address"),
        ({"email": ""}, "Please enter your email address"),
        ({"email": "   "}, "Please enter your email address"),
        ({"email": "reader.example.com"}, "must have an @-sign"),
        ({"email": "reader@"}, "not a valid email address"),
        ({"email": "x" * 288 + "@example.com"}, "too long (300 bytes"),
        ({"email": "a@b.c\r\nBcc: x@y.z"}, "cannot contain line breaks"),
        ({"email": "a@b.c\nBcc: x@y.z"}, "cannot contain line breaks"),
        ({"email": "<script>@example.com"}, "not a valid email address"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_bad_addresses_are_refused_and_nothing_is_stored(
    client, app, settings, fields, words, as_json
):
    if as_json:
        answer = client.post("/subscribe", json=fields)
        assert answer.json["error"] == "bad_request" and words in answer.json["message"]
    else:
        answer = client.post("/subscribe", data=fields, headers=HTML)
        page = soup(answer)
        assert words in page.select_one("[role=alert]").get_text()
        # The form is shown again, with what was typed, to fix it.
        assert page.select_one("form.subscribe-form input[name=email]") is not None
    assert answer.status_code == 400
    assert stored(app) == (0, 0)
    assert not settings.outbox.exists() or not list(settings.outbox.iterdir())


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"data": "{not json", "content_type": "application/json"}, "JSON object"),
        ({"json": ["a@example.com"]}, "JSON object"),
        ({"json": {"email": 42}}, "must be text"),
        ({"json": {"email": ["a@example.com"]}}, "must be text"),
        ({"data": b"email=a%00b@example.com", "content_type": "application/x-www-form-urlencoded"},
         "control characters"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_clear_400s(client, app, kwargs, words):
    answer = client.post("/subscribe", headers=JSON, **kwargs)
    assert answer.status_code == 400 and words in answer.json["message"]
    assert stored(app) == (0, 0)


def test_a_100_kb_body_is_refused_with_its_limit(client, app):
    big = "a" * 100_000 + "@example.com"
    for kwargs in ({"data": {"email": big}}, {"json": {"email": big}}):
        answer = client.post("/subscribe", headers=JSON, **kwargs)
        assert answer.status_code == 413
        assert answer.json["message"] == "The request is too large: at most 16 KB is accepted."
    page = client.post("/subscribe", data={"email": "a@example.com", "x": big}, headers=HTML)
    assert page.status_code == 413 and "too large" in soup(page).select_one("[role=alert]").text
    assert stored(app) == (0, 0)


def test_honeypot_gets_the_usual_answer_and_nothing_happens(client, app, settings):
    answer = client.post(
        "/subscribe",
        data={"email": "bot@example.com", "website": "http://spam.example"},
        headers=JSON,
    )
    assert answer.status_code == 200 and answer.json == {"ok": True, "message": THANKS}
    time.sleep(0.2)
    assert stored(app) == (0, 0)
    assert not settings.outbox.exists() or not list(settings.outbox.iterdir())


def test_same_answer_whether_the_address_is_known_or_not(client, app, settings):
    def ask(address, headers):
        return client.post(
            "/subscribe", data={"email": address, "source": ARTICLE}, headers=headers
        ).get_data()

    for name, headers in (("json", JSON), ("html", HTML)):
        fresh = ask(f"new-{name}@example.com", headers)
        assert ask(f"new-{name}@example.com", headers) == fresh  # known now, unconfirmed
    store = nl(app).subscribers
    (message, _) = wait_for_emails(settings.outbox, 2)
    client.post(path_of(link(message, "confirm")).removeprefix("/newsletter"))
    assert any(s.status == Status.CONFIRMED for s in store.list())
    confirmed = next(s for s in store.list() if s.status == Status.CONFIRMED)
    assert ask(confirmed.email, JSON) == ask("someone-else@example.com", JSON)


def test_one_confirmation_per_address_per_ten_minutes_and_resubscribe(client, app, settings):
    for _ in range(3):
        client.post("/subscribe", data={"email": "a@example.com"}, headers=JSON)
    assert len(wait_for_emails(settings.outbox, 1)) == 1
    time.sleep(0.3)
    assert len(wait_for_emails(settings.outbox, 1)) == 1
    store = nl(app).subscribers
    backdate = stamp(utcnow() - timedelta(minutes=11))
    store.database.db.execute("UPDATE subscribers SET confirmation_sent_at = ?", (backdate,))
    client.post("/subscribe", data={"email": "A@EXAMPLE.com"}, headers=JSON)
    first, second = wait_for_emails(settings.outbox, 2)
    tokens = nl(app).tokens
    opt_in = tokens.read_confirm(link(first, "confirm").rsplit("/", 1)[1])
    assert tokens.read_confirm(link(second, "confirm").rsplit("/", 1)[1]) == opt_in
    # Unsubscribed, then back later: a new confirmation with a new link.
    client.post(path_of(link(first, "unsubscribe")).removeprefix("/newsletter"), headers=JSON)
    store.database.db.execute("UPDATE subscribers SET confirmation_sent_at = ?", (backdate,))
    client.post("/subscribe", data={"email": "a@example.com"}, headers=JSON)
    third = wait_for_emails(settings.outbox, 3)[-1]
    assert tokens.read_confirm(link(third, "confirm").rsplit("/", 1)[1]) != opt_in
    for method in ("GET", "POST"):
        old = client.open(
            method, path_of(link(first, "confirm")).removeprefix("/newsletter"), headers=JSON
        )
        assert old.status_code == 410 and "no longer valid" in old.json["message"]
    assert (
        client.post(path_of(link(third, "confirm")).removeprefix("/newsletter")).status_code == 200
    )
    assert store.list()[0].status == Status.CONFIRMED


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PUT", "/subscribe", "GET or POST"),
        ("DELETE", "/subscribe", "GET or POST"),
        ("PUT", "/confirm/abc", "GET or POST"),
        ("PUT", "/unsubscribe/abc", "GET or POST"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_wrong_methods_say_which_are_allowed(client, method, path, allowed):
    for headers in (JSON, HTML):
        answer = client.open(method, path, headers=headers)
        assert answer.status_code == 405
        text = answer.json["message"] if answer.is_json else soup(answer).text
        assert f"does not accept {method} requests. Use {allowed}." in text


def test_unknown_paths_are_404_pages(client):
    answer = client.get("/admin", headers=HTML)
    assert answer.status_code == 404 and "nothing at this address" in answer.get_data(as_text=True)


def test_tampered_forged_and_expired_links(client, app, settings):
    client.post("/subscribe", data={"email": "a@example.com"}, headers=JSON)
    (message,) = wait_for_emails(settings.outbox, 1)
    confirm = path_of(link(message, "confirm")).removeprefix("/newsletter")
    unsubscribe = path_of(link(message, "unsubscribe")).removeprefix("/newsletter")
    subscriber = nl(app).subscribers.list()[0]
    forged = Tokens("someone-elses-key-" + "y" * 20)
    expired = Tokens(settings.secret_key, clock=lambda: time.time() - 49 * 3600)
    cases = [
        (confirm[:-4] + "AAAA", 400, "not valid"),
        (confirm.replace(".", "x", 1), 400, "not valid"),
        ("/confirm/" + forged.confirm_token(subscriber.public_id, subscriber.confirm_nonce), 400,
         "not valid"),
        ("/confirm/" + expired.confirm_token(subscriber.public_id, subscriber.confirm_nonce), 410,
         "expired"),
        ("/confirm/" + unsubscribe.rsplit("/", 1)[1], 400, "not valid"),
        ("/confirm/" + "x" * 300, 400, "not valid"),
        ("/unsubscribe/" + forged.unsubscribe_token(subscriber.public_id), 400, "not valid"),
        (unsubscribe[:-3], 400, "not valid"),
    ]  # fmt: skip
    for path, status, words in cases:
        for method in ("GET", "POST"):
            answer = client.open(method, path, headers=JSON)
            assert (answer.status_code, words in answer.json["message"]) == (status, True), path
        page = client.get(path, headers=HTML)
        assert page.status_code == status and words in soup(page).select_one("[role=alert]").text
    assert nl(app).subscribers.list()[0].status == Status.UNCONFIRMED  # nothing changed


def test_replayed_confirmation_is_harmless(client, app, settings):
    client.post("/subscribe", data={"email": "a@example.com"}, headers=JSON)
    (message,) = wait_for_emails(settings.outbox, 1)
    confirm = path_of(link(message, "confirm")).removeprefix("/newsletter")
    assert client.post(confirm, headers=JSON).json["message"].startswith("Thank you")
    for again in (client.post(confirm, headers=HTML), client.get(confirm, headers=HTML)):
        assert again.status_code == 200 and soup(again).h1.text == "Already subscribed"
    nl(app).subscribers.forget("a@example.com")
    for method in ("GET", "POST"):
        gone = client.open(method, confirm, headers=JSON)
        assert gone.status_code == 404 and "no subscription for this link" in gone.json["message"]


def test_rfc8058_one_click_unsubscribe(client, app, settings):
    client.post("/subscribe", data={"email": "a@example.com"}, headers=JSON)
    (message,) = wait_for_emails(settings.outbox, 1)
    target = message["List-Unsubscribe"].strip("<>")
    assert target == link(message, "unsubscribe")
    # What Gmail or Yahoo send: a POST with this exact body, following no redirect.
    answer = client.post(
        path_of(target).removeprefix("/newsletter"),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 200 and "Location" not in answer.headers
    assert nl(app).subscribers.list()[0].status == Status.UNSUBSCRIBED
    one_click = {
        "data": "List-Unsubscribe=One-Click",
        "content_type": "application/x-www-form-urlencoded",
    }
    assert client.post(path_of(target).removeprefix("/newsletter"), **one_click).status_code == 200
    nl(app).subscribers.forget("a@example.com")  # even a forgotten subscriber's link answers 200
    assert client.post(path_of(target).removeprefix("/newsletter"), **one_click).status_code == 200


def test_a_flood_from_one_ip_is_limited(settings):
    app = create_app(settings.replace(rate_limit=Rate(5, 60)))
    client = Checked(app.test_client())
    try:
        for n in range(5):
            answer = client.post("/subscribe", data={"email": f"u{n}@example.com"}, headers=JSON)
            assert answer.status_code == 200
        for n in range(5, 8):
            limited = client.post("/subscribe", data={"email": f"u{n}@example.com"}, headers=JSON)
            assert limited.status_code == 429
            assert "Too many requests" in limited.json["message"]
            assert 1 <= int(limited.headers["Retry-After"]) <= 12
        page = client.post("/subscribe", data={"email": "u9@example.com"}, headers=HTML)
        assert page.status_code == 429 and "try again in" in soup(page).text
        other = client.post("/subscribe", data={"email": "v@example.com"}, headers=JSON,
                            environ_base={"REMOTE_ADDR": "203.0.113.9"})  # fmt: skip
        assert other.status_code == 200
        settle(app)
        assert sorted(s.email for s in nl(app).subscribers.list()) == [
            "u0@example.com", "u1@example.com", "u2@example.com", "u3@example.com",
            "u4@example.com", "v@example.com",
        ]  # fmt: skip
    finally:
        nl(app).close()


def test_behind_a_proxy_the_limit_applies_to_the_forwarded_client(settings):
    app = create_app(settings.replace(rate_limit=Rate(1, 60), proxy_count=1))
    client = Checked(app.test_client())
    try:
        for ip in ("198.51.100.1", "198.51.100.2"):
            headers = {**JSON, "X-Forwarded-For": ip}
            assert client.post("/subscribe", data={"email": f"{ip}@example.com"},
                               headers=headers).status_code == 200  # fmt: skip
        again = {**JSON, "X-Forwarded-For": "198.51.100.1"}
        assert client.post("/subscribe", data={"email": "z@example.com"},
                           headers=again).status_code == 429  # fmt: skip
    finally:
        nl(app).close()


def test_the_rate_limit_key_is_the_ipv4_client_inside_an_ipv6_address():
    assert _network("::ffff:1.2.3.4") == "1.2.3.4"  # how a dual-stack socket shows IPv4
    assert _network("1.2.3.4") == "1.2.3.4"
    assert _network("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert _network("2002:c000:204::1") == "192.0.2.4"  # 6to4: one IPv4 address owns the /48
    assert _network("2001:0:4136:e378:8000:63bf:3fff:fdd2") == "192.0.2.45"  # Teredo's client
    assert _network("not an address") == "not an address"
    secret = "k" * 40
    assert _ip_hash(secret, "::ffff:1.2.3.4") == _ip_hash(secret, "1.2.3.4")
    assert _ip_hash(secret, "2001:db8::1") != _ip_hash(secret, "2001:db8::2")


def test_on_a_dual_stack_socket_one_ipv4_client_does_not_limit_the_others(settings):
    """Today's defect: every `::ffff:a.b.c.d` was one key, ::/64: one client spent the limit of
    every IPv4 client. Proxies on a dual-stack socket forward the same form."""
    app = create_app(settings.replace(rate_limit=Rate(2, 60)))
    client = Checked(app.test_client())
    try:
        first = {"REMOTE_ADDR": "::ffff:198.51.100.1"}
        for n in range(2):
            assert client.post("/subscribe", data={"email": f"a{n}@example.com"}, headers=JSON,
                               environ_base=first).status_code == 200  # fmt: skip
        assert client.post("/subscribe", data={"email": "a9@example.com"}, headers=JSON,
                           environ_base=first).status_code == 429  # fmt: skip
        for n, other in enumerate(("::ffff:198.51.100.2", "198.51.100.3")):
            assert client.post("/subscribe", data={"email": f"b{n}@example.com"}, headers=JSON,
                               environ_base={"REMOTE_ADDR": other}).status_code == 200  # fmt: skip
        # ... and the same IPv4 client is one client, whichever way the socket shows it
        plain = {"REMOTE_ADDR": "198.51.100.1"}
        assert client.post("/subscribe", data={"email": "a8@example.com"}, headers=JSON,
                           environ_base=plain).status_code == 429  # fmt: skip
        settle(app)
        hashes = {s.email: s.consent_ip_hash for s in nl(app).subscribers.list()}
        assert hashes["a0@example.com"] == _ip_hash(settings.secret_key, "198.51.100.1")
    finally:
        nl(app).close()


def test_two_workers_on_one_database_share_the_limit(settings):
    """Two apps on one database file, as two gunicorn workers (or hosts) have: 'five a minute'
    is five in all, whichever answers. Today's defect: each process had its own five."""
    workers = [create_app(settings.replace(rate_limit=Rate(5, 60))) for _ in range(2)]
    try:
        clients = [Checked(worker.test_client()) for worker in workers]
        answers = [
            clients[n % 2].post("/subscribe", data={"email": f"w{n}@example.com"}, headers=JSON)
            for n in range(12)
        ]
        assert [answer.status_code for answer in answers] == [200] * 5 + [429] * 7
        assert all(1 <= int(answer.headers["Retry-After"]) <= 12 for answer in answers[5:])
        settle(workers[0])
        assert len(nl(workers[0]).subscribers.list()) == 5
    finally:
        for worker in workers:
            nl(worker).close()


def test_other_endpoints_get_a_shared_limiter_of_their_own_scope(settings):
    """What the webhooks count refusals with: shared like the form's, but not the form's."""
    workers = [create_app(settings.replace(rate_limit=Rate(1, 60))) for _ in range(2)]
    try:
        hooks = [nl(worker).shared_limiter("webhooks") for worker in workers]
        assert hooks[0] is nl(workers[0]).shared_limiter("webhooks")  # made once per scope
        assert nl(workers[0]).shared_limiter("subscribe") is nl(workers[0]).limiter
        assert hooks[0].peek("198.51.100.5") is None
        assert hooks[0].hit("198.51.100.5") is None
        assert hooks[1].peek("198.51.100.5") is not None  # the other worker sees it
        assert hooks[1].hit("198.51.100.5") is not None
        answer = Checked(workers[1].test_client()).post(
            "/subscribe", data={"email": "h@example.com"}, headers=JSON,
            environ_base={"REMOTE_ADDR": "198.51.100.5"},
        )  # fmt: skip
        assert answer.status_code == 200  # the form's own limit is untouched
    finally:
        for worker in workers:
            nl(worker).close()


def test_the_limits_table_holds_no_client_address(settings):
    app = create_app(settings.replace(rate_limit=Rate(5, 60)))
    client = Checked(app.test_client())
    try:
        for n, ip in enumerate(("198.51.100.77", "2001:db8:77::1")):
            assert client.post("/subscribe", data={"email": f"c{n}@example.com"}, headers=JSON,
                               environ_base={"REMOTE_ADDR": ip}).status_code == 200  # fmt: skip
        limits = backends.rows(settings.database, "rate_limits")
        assert len(limits) == 2
        dumped = repr(limits) + repr([bytes(row[1]).hex() for row in limits])
        assert "198.51.100" not in dumped and "2001:db8" not in dumped
    finally:
        nl(app).close()


def test_cors_only_for_the_sites_origin(client):
    ok = client.open("OPTIONS", "/subscribe", headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})  # fmt: skip
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    post = client.post(
        "/subscribe", data={"email": "a@example.com"}, headers={**JSON, "Origin": SITE}
    )
    assert post.headers["Access-Control-Allow-Origin"] == SITE and "Origin" in post.headers["Vary"]
    for origin in ("https://evil.example", "https://walkagain.example.evil.example", "null"):
        preflight = client.open("OPTIONS", "/subscribe", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in preflight.headers
        answer = client.post("/subscribe", data={"email": "b@example.com"},
                             headers={**JSON, "Origin": origin})  # fmt: skip
        assert "Access-Control-Allow-Origin" not in answer.headers


def test_source_outside_the_site_is_not_recorded(client, app):
    client.post("/subscribe", data={"email": "a@example.com", "source": "https://evil.example/"})
    client.post("/subscribe", data={"email": "b@example.com", "source": "x" * 2000})
    settle(app)
    assert [s.consent_source for s in nl(app).subscribers.list()] == [None, None]


def test_healthz(client, app):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json == {
        "status": "ok",
        "database": "ok",
        "sender": "running",
    }  # no count that moves with one address


def test_pages_wear_the_blog_theme_and_are_locked_down(client):
    page = client.get("/subscribe?source=" + ARTICLE, headers=HTML)
    html = soup(page)
    assert html.select_one("header.site-header .site-name")["href"] == SITE + "/"
    assert html.select_one("main.wrap section.stay-tuned form.subscribe-form") is not None
    assert html.select_one("input[name=website]").find_parent(class_="hp") is not None
    assert html.select_one("input[name=source]")["value"] == ARTICLE
    stylesheet = html.find("link", rel="stylesheet")["href"]
    assert stylesheet == SITE + "/newsletter/static/css/style.css"
    css = client.get("/static/css/style.css")
    assert css.status_code == 200 and css.mimetype == "text/css" and b".stay-tuned" in css.data
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"  # tokens never leak via Referer
    assert page.headers["Cache-Control"] == "no-store"


# Only a POST changes state (HEAD, scanners, odd methods) ---------------------------------------
def snapshot(app):
    """Every row of every table: what any request could have changed."""
    return backends.contents(nl(app).settings.core.database)


def links_of(app, settings):
    """A real confirmation and unsubscribe token for an unconfirmed subscriber."""
    client = app.test_client()
    client.post("/subscribe", data={"email": "walker@example.com"}, headers=JSON)
    nl(app).sender.drain(timeout=10)  # applied and mailed: nothing left for the background
    (subscriber,) = nl(app).subscribers.list()
    tokens = nl(app).tokens
    return {
        "token": tokens.confirm_token(subscriber.public_id, subscriber.confirm_nonce),
        "unsubscribe": tokens.unsubscribe_token(subscriber.public_id),
    }


METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"]


def test_every_route_with_every_method_but_post_changes_nothing(client, app, settings):
    tokens = links_of(app, settings)
    before = snapshot(app)
    walked = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith(("/plans/", "/preferences/",
                                                              "/address/")):  # fmt: skip
            continue  # walked with their own tokens: test_plan_follow_views, test_preferences
        token = tokens["unsubscribe"] if "unsubscribe" in rule.rule else tokens["token"]
        path = rule.rule.replace("<token>", token)
        for method in METHODS:
            for body in ({}, {"data": {"email": "x@example.com"}}, {"json": {"email": "y@e.com"}}):
                answer = client.open(method, path, headers=JSON, **body)
                assert answer.status_code in (200, 204, 405), (method, path, answer.status_code)
                walked.append((method, rule.rule))
    assert {rule for _, rule in walked} >= {"/subscribe", "/confirm/<token>",
                                            "/unsubscribe/<token>", "/healthz"}  # fmt: skip
    time.sleep(0.2)  # whatever the background sender might have been woken for
    assert snapshot(app) == before
    assert nl(app).subscribers.list()[0].status == Status.UNCONFIRMED


def test_head_on_the_links_changes_nothing_and_spends_no_rate_limit(settings):
    """Today's defect: HEAD ran the POST branch: a HEAD on an unsubscribe link unsubscribed."""
    app = create_app(settings.replace(rate_limit=Rate(1, 60)))
    client = app.test_client()
    try:
        tokens = links_of(app, settings)  # spends the one POST of this minute
        nl(app).subscribers.confirm(*nl(app).tokens.read_confirm(tokens["token"]))
        for path in (f"/unsubscribe/{tokens['unsubscribe']}", f"/confirm/{tokens['token']}"):
            answer = client.head(path)
            assert answer.status_code == 200 and answer.get_data() == b""
        assert nl(app).subscribers.list()[0].status == Status.CONFIRMED
        other = {"REMOTE_ADDR": "203.0.113.7"}  # a client with its own, untouched, minute
        for _ in range(3):
            assert client.head("/subscribe", environ_base=other).status_code == 200
        answer = client.post("/subscribe", data={"email": "z@example.com"}, environ_base=other)
        assert answer.status_code == 200
    finally:
        nl(app).close()


# Bodies that try to hurt the parser --------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000,
        b'{"email": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b'{"email": "a@example.com", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
    ],
)
def test_deeply_nested_json_is_a_400_not_a_traceback(client, app, body):
    answer = client.post("/subscribe", data=body, content_type="application/json")
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert "nested too deeply" in answer.json["message"] or "JSON object" in answer.json["message"]
    assert stored(app) == (0, 0)


def test_json_nested_a_little_is_fine(client, app):
    body = {"email": "a@example.com", "extra": [[[{"k": ["v"]}]]]}
    assert client.post("/subscribe", json=body).status_code == 200


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"data": b'{"email": "\xff\xfe@example.com"}', "content_type": "application/json"},
         "UTF-8"),
        ({"data": b"email=%FF%FE%40example.com", "content_type":
          "application/x-www-form-urlencoded"}, "UTF-8"),
        ({"json": {"email": "a" * 65 + "@example.com"}}, "too long"),
        ({"json": {"email": "é" * 33 + "@example.com"}}, "too long before the @"),
        ({"json": {"email": "a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".é" * 40}},
         "too long"),
    ],
)  # fmt: skip
def test_addresses_beyond_the_standard_limits_or_not_utf8_are_400s(client, app, kwargs, words):
    answer = client.post("/subscribe", headers=JSON, **kwargs)
    assert answer.status_code == 400 and words in answer.json["message"], answer.json
    assert stored(app) == (0, 0)


@pytest.mark.parametrize("trap", [["x"], {"a": 1}, 1, True, "   x"])
def test_the_honeypot_counts_whatever_the_json_type(client, app, trap):
    answer = client.post("/subscribe", json={"email": "bot@example.com", "website": trap})
    assert answer.status_code == 200 and answer.json == {"ok": True, "message": THANKS}
    assert stored(app) == (0, 0)


@pytest.mark.parametrize("empty", [None, "", "  "])
def test_an_empty_honeypot_is_a_person(client, app, empty):
    answer = client.post("/subscribe", json={"email": "person@example.com", "website": empty})
    assert answer.status_code == 200 and stored(app)[0] == 1


def test_healthz_says_nothing_that_moves_with_one_address_when_mail_is_down(settings):
    """Today's defect: with the mail server down, the queued count rose by one for a new address
    and not for a known one."""
    with socket.socket() as sock:  # a port where nobody listens: every send fails
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(settings.replace(transport="smtp", smtp_host="127.0.0.1", smtp_port=port,
                                      smtp_security="none", smtp_timeout=1))  # fmt: skip
    client = app.test_client()
    try:
        client.post("/subscribe", json={"email": "known@example.com"})
        settle(app)
        answers = []
        for address in ("known@example.com", "new@example.com"):
            before = client.get("/healthz").get_data()
            client.post("/subscribe", json={"email": address})
            settle(app)
            answers.append((before, client.get("/healthz").get_data()))
        assert answers[0] == answers[1] and answers[0][0] == answers[0][1]
    finally:
        nl(app).close()
