"""Following a plan through the real app (newsletter/subscriptions/plan_views.py): the card's form
post, the confirmation email, the confirm and stop pages, over a real SQLite file, with the seed
site built and served over real HTTP for its exercises/plans.json; and the attacker's inputs."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from bs4 import BeautifulSoup

from newsletter.database import parse_stamp
from newsletter.ratelimit import Rate
from newsletter.subscriptions import plans as plans_module
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.tokens import Tokens
from tests.newsletter_helpers import link, path_of, wait_for_emails
from tests.test_views import Checked

PLAN = "6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30-side-lying-leg-raise"
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ONE_CLICK = {"data": "List-Unsubscribe=One-Click",
             "content_type": "application/x-www-form-urlencoded"}  # fmt: skip


@pytest.fixture
def settings(make_settings, site):
    plans_module.forget_cache()
    return make_settings(site_url=site.url, base_url=site.url + "/newsletter",
                         rate_limit=Rate(1000, 60))  # fmt: skip


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["newsletter"].close()


@pytest.fixture
def client(app):
    return Checked(app.test_client())


def follows(app):
    return app.extensions["plan_follows"]


def soup(response):
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def form(site, **changes):
    fields = {"email": "Reader@Example.com", "plan": PLAN, "weekday": "0", "hour": "8",
              "source": site.url + "/2026/the-best-muscle-to-train-for-knee-pain/",
              "website": ""}  # fmt: skip
    fields.update(changes)
    return {key: value for key, value in fields.items() if value is not None}


def stored(app):
    db = app.extensions["newsletter"].database.db
    return (
        db.execute("SELECT count(*) FROM plan_follows").fetchone()[0],
        db.execute("SELECT count(*) FROM outgoing_mail").fetchone()[0],
        db.execute("SELECT count(*) FROM signup_requests").fetchone()[0],
    )


def local(url):
    return path_of(url).removeprefix("/newsletter")


def test_follow_confirm_and_stop_without_javascript(client, app, settings, site):
    answer = client.post("/plans/follow", data=form(site), headers=HTML)
    assert answer.status_code == 200 and soup(answer).h1.text == "Check your inbox"
    text = soup(answer).get_text(" ")
    assert "What we keep: your email address, which plan you follow" in text
    assert "deleted 30 days after the plan’s last email" in text
    assert soup(answer).find("a", string="Back to the article")["href"].endswith("knee-pain/")
    (message,) = wait_for_emails(settings.outbox, 1)
    assert message["To"] == "Reader@example.com" and "Side lying leg raise" in message["Subject"]

    confirm = local(link(message, "plans/confirm"))
    for method in ("GET", "HEAD"):  # a link scanner confirms nothing
        assert client.open(method, confirm, headers=HTML).status_code == 200
    shown = client.get(confirm, headers=HTML)
    page = soup(shown)
    assert page.find("button", string="Yes, send me the plan") is not None
    assert "Monday at 08:00" in page.get_text(" ") and "R•••@example.com" in page.get_text()
    assert "Reader@example.com" not in shown.get_data(as_text=True)
    public_id = follows(app).tokens.read_plan_confirm(confirm.rsplit("/", 1)[1])[0]
    assert follows(app).get(public_id).status == "unconfirmed"

    done = client.post(confirm, headers=HTML)
    assert done.status_code == 200 and soup(done).h1.text == "Following: Side lying leg raise"
    (follow,) = follows(app).following()
    start = parse_stamp(follow.starts_at)
    assert start.weekday() == 0 and start > datetime.now(UTC)
    assert f"Monday {start.day} {start:%B}" in soup(done).get_text(" ")

    stop = local(link(message, "plans/stop"))
    assert stop == local(message["List-Unsubscribe"].strip("<>"))
    shown = client.get(stop, headers=HTML)
    assert soup(shown).find("button", string="Stop this plan") is not None
    assert follows(app).following() != []  # a GET stops nothing
    stopped = client.post(stop, headers=HTML)
    assert stopped.status_code == 200 and soup(stopped).h1.text == "Plan stopped"
    assert stored(app)[0] == 0  # gone at once, with its emails
    again = client.get(stop, headers=HTML)
    assert again.status_code == 200 and soup(again).h1.text == "Nothing to stop"


def test_the_one_click_stop_and_the_stop_all_link(client, app, site):
    mine = pending_follow(client, app, site, "a@example.com")
    other = pending_follow(client, app, site, "other@example.com")
    store = follows(app)
    # RFC 8058: the provider's POST, no redirect, 200.
    stop = local(store.links(mine)["stop"])
    answer = client.post(stop, **ONE_CLICK)
    assert answer.status_code == 200 and "Location" not in answer.headers
    assert answer.json["stopped"] == 1 and store.get(mine.public_id) is None
    assert client.post(stop, **ONE_CLICK).json["stopped"] == 0  # idempotent
    # Stop all: every plan of that reader (a second one stored directly: the seed has one
    # plan), nobody else's.
    mine = pending_follow(client, app, site, "a@example.com")
    with app.extensions["newsletter"].database.transaction() as db:
        db.execute(
            "INSERT INTO plan_follows (public_id, email, email_key, plan_id, weekday, hour, weeks,"
            " confirm_nonce, created_at) SELECT 'second', email, email_key, 'another-plan',"
            " weekday, hour, weeks, 'n', created_at FROM plan_follows WHERE id = ?",
            (mine.id,),
        )
    every = local(store.links(mine)["stop_all"])
    assert soup(client.get(every, headers=HTML)).find("button", string="Stop all plans")
    assert store.get(mine.public_id) is not None  # a GET stops nothing
    done = client.post(every, headers=HTML)
    assert done.status_code == 200 and soup(done).h1.text == "All plans stopped"
    assert store.get(mine.public_id) is None and store.get("second") is None
    assert store.get(other.public_id) is not None
    assert client.post(every, **ONE_CLICK).json["stopped"] == 0


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"plan": "no-such-plan"}, "no such exercise plan"),
        ({"plan": None}, "no such exercise plan"),
        ({"plan": PLAN + "x" * 2000}, "far too long"),
        ({"weekday": "7"}, "day of the week"),
        ({"weekday": "monday"}, "day of the week"),
        ({"hour": "25"}, "hour"),
        ({"hour": "-1"}, "hour"),
        ({"email": ""}, "enter your email address"),
        ({"email": "reader@"}, "not a valid email address"),
        ({"email": "a@b.c\r\nBcc: x@y.z"}, "line breaks"),
        ({"email": "x" * 1200 + "@example.com"}, "far too long"),
        ({"email": "ｒｅａｄｅｒ@exa\u200bmple.com"}, "not a valid"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_bad_input_is_a_clear_400_and_nothing_is_stored(client, app, settings, site, changes,
                                                        words, as_json):  # fmt: skip
    headers = JSON if as_json else HTML
    answer = client.post("/plans/follow", data=form(site, newsletter="1", **changes),
                         headers=headers)  # fmt: skip
    assert answer.status_code == 400
    message = answer.json["message"] if as_json else soup(answer).select_one("[role=alert]").text
    assert words in message.lower()
    time.sleep(0.1)
    assert stored(app) == (0, 0, 0)
    assert not settings.outbox.exists() or not list(settings.outbox.glob("*.eml"))


def test_the_honeypot_gets_the_usual_answer_and_nothing_happens(client, app, site):
    answer = client.post("/plans/follow", data=form(site, website="http://spam.example"),
                         headers=HTML)  # fmt: skip
    assert answer.status_code == 200 and soup(answer).h1.text == "Check your inbox"
    assert stored(app) == (0, 0, 0)


def test_the_same_answer_whether_new_asked_already_or_following(client, app, site):
    first = client.post("/plans/follow", data=form(site), headers=JSON)
    pending = follows(app).get(
        app.extensions["newsletter"]
        .database.db.execute("SELECT public_id FROM plan_follows")
        .fetchone()[0]
    )
    again = client.post("/plans/follow", data=form(site), headers=JSON)
    follows(app).confirm(pending.public_id, pending.confirm_nonce)
    following = client.post("/plans/follow", data=form(site), headers=JSON)
    assert first.json == again.json == following.json
    assert stored(app)[:2] == (1, 1)  # one follow, one confirmation email owed


def test_ticking_the_newsletter_sends_its_own_confirmation_too(client, app, settings, site):
    client.post("/plans/follow", data=form(site, newsletter="1"), headers=HTML)
    messages = wait_for_emails(settings.outbox, 2)
    subjects = sorted(str(m["Subject"]) for m in messages)
    assert len(messages) == 2
    assert subjects[0].startswith("Confirm your subscription")
    assert "Side lying leg raise" in subjects[1]


def test_unreadable_plans_are_a_503_and_nothing_is_stored(make_settings, site):
    plans_module.forget_cache()
    app = create_app(make_settings(site_url="http://127.0.0.1:9", rate_limit=Rate(1000, 60)))
    try:
        client = Checked(app.test_client())
        fields = form(site, source=None)
        answer = app.test_client().post("/plans/follow", data=fields, headers=JSON)
        assert answer.status_code == 503 and "try again in a few minutes" in answer.json["message"]
        assert answer.headers["Retry-After"] == "60"
        assert stored(app) == (0, 0, 0)
        assert client.get("/healthz").status_code == 200
    finally:
        app.extensions["newsletter"].close()


def test_the_form_shares_the_subscribe_forms_rate_limit(make_settings, site):
    plans_module.forget_cache()
    app = create_app(make_settings(site_url=site.url, rate_limit=Rate(3, 60)))
    try:
        client = app.test_client()
        codes = [client.post("/plans/follow", data=form(site, email=f"r{i}@example.com"),
                             headers=JSON).status_code for i in range(3)]  # fmt: skip
        codes.append(client.post("/subscribe", data={"email": "s@example.com"},
                                 headers=JSON).status_code)  # fmt: skip
        codes.append(client.post("/plans/follow", data=form(site), headers=JSON).status_code)
        assert codes == [200, 200, 200, 429, 429]
    finally:
        app.extensions["newsletter"].close()


# Links from outside -------------------------------------------------------------------------------
def pending_follow(client, app, site, email="a@example.com"):
    client.post("/plans/follow", data=form(site, email=email), headers=JSON)
    db = app.extensions["newsletter"].database.db
    public_id = db.execute("SELECT public_id FROM plan_follows WHERE email = ?",
                           (email,)).fetchone()[0]  # fmt: skip
    return follows(app).get(public_id)


def test_forged_tampered_expired_and_misused_links(client, app, settings, site):
    follow = pending_follow(client, app, site)
    tokens = follows(app).tokens
    confirm = tokens.plan_confirm_token(follow.public_id, follow.confirm_nonce)
    stop = tokens.plan_stop_token(follow.public_id)
    every = tokens.plan_stop_token(follow.public_id, every=True)
    forged = Tokens("someone-elses-key-" + "y" * 20)
    expired = Tokens(settings.secret_key, clock=lambda: time.time() - 49 * 3600)
    cases = [
        (f"/plans/confirm/{confirm[:-4]}AAAA", 400, "not valid"),
        (f"/plans/confirm/{confirm.replace('.', 'x', 1)}", 400, "not valid"),
        ("/plans/confirm/" + forged.plan_confirm_token(follow.public_id, follow.confirm_nonce),
         400, "not valid"),
        ("/plans/confirm/" + expired.plan_confirm_token(follow.public_id, follow.confirm_nonce),
         410, "expired"),
        # A newsletter confirmation link (same key, other purpose) confirms no plan.
        ("/plans/confirm/" + tokens.confirm_token(follow.public_id, follow.confirm_nonce), 400,
         "not valid"),
        ("/plans/confirm/" + "x" * 300, 400, "not valid"),
        ("/plans/stop/" + forged.plan_stop_token(follow.public_id), 400, "not valid"),
        ("/plans/stop/" + every, 400, "not valid"),  # stop-all's token is not a stop token
        ("/plans/stop-all/" + stop, 400, "not valid"),  # ... nor the other way round
        ("/plans/stop/" + tokens.unsubscribe_token(follow.public_id), 400, "not valid"),
        (f"/plans/stop/{stop[:-3]}", 400, "not valid"),
        ("/plans/stop-all/" + forged.plan_stop_token(follow.public_id, every=True), 400,
         "not valid"),
    ]  # fmt: skip
    for path, status, words in cases:
        for method in ("GET", "POST"):
            answer = client.open(method, path, headers=JSON)
            assert (answer.status_code, words in answer.json["message"]) == (status, True), path
        page = client.get(path, headers=HTML)
        assert page.status_code == status and words in soup(page).select_one("[role=alert]").text
    assert follows(app).get(follow.public_id).status == "unconfirmed"  # nothing changed


def test_a_link_acts_on_its_own_follow_only(client, app, site):
    mine = pending_follow(client, app, site, "mine@example.com")
    theirs = pending_follow(client, app, site, "theirs@example.com")
    tokens = follows(app).tokens
    # My nonce with their id (a token made by someone who knows both) is still refused: the
    # signature covers both; and my link confirms me, not them.
    client.post("/plans/confirm/" + tokens.plan_confirm_token(mine.public_id, mine.confirm_nonce))
    assert follows(app).get(mine.public_id).status == "following"
    assert follows(app).get(theirs.public_id).status == "unconfirmed"
    client.post("/plans/stop/" + tokens.plan_stop_token(mine.public_id), headers=JSON)
    assert follows(app).get(mine.public_id) is None
    assert follows(app).get(theirs.public_id) is not None


def test_a_replayed_or_stale_confirmation_is_harmless(client, app, site):
    follow = pending_follow(client, app, site)
    tokens = follows(app).tokens
    path = "/plans/confirm/" + tokens.plan_confirm_token(follow.public_id, follow.confirm_nonce)
    assert client.post(path, headers=JSON).json["status"] == "following"
    starts = follows(app).get(follow.public_id).starts_at
    for again in (client.post(path, headers=HTML), client.get(path, headers=HTML)):
        assert again.status_code == 200 and "already follow" in soup(again).get_text()
    assert follows(app).get(follow.public_id).starts_at == starts
    stale = "/plans/confirm/" + tokens.plan_confirm_token(follow.public_id, "old-nonce")
    assert client.post(stale, headers=JSON).status_code == 410
    follows(app).stop(follow.public_id)
    for method in ("GET", "POST"):
        gone = client.open(method, path, headers=JSON)
        assert gone.status_code == 404 and "no plan to confirm" in gone.json["message"]


METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"]


def test_no_method_but_post_changes_anything(client, app, site):
    follow = pending_follow(client, app, site)
    tokens = follows(app).tokens
    paths = [
        "/plans/follow",
        "/plans/confirm/" + tokens.plan_confirm_token(follow.public_id, follow.confirm_nonce),
        "/plans/stop/" + tokens.plan_stop_token(follow.public_id),
        "/plans/stop-all/" + tokens.plan_stop_token(follow.public_id, every=True),
    ]
    app.extensions["newsletter"].sender.drain(timeout=10)
    db = app.extensions["newsletter"].database.db
    before = db.execute("SELECT * FROM plan_follows").fetchall()
    for path in paths:
        for method in METHODS:
            for body in ({}, ONE_CLICK, {"data": form(site)}):
                answer = client.open(method, path, headers=JSON, **body)
                assert answer.status_code in (200, 204, 405), (method, path, answer.status_code)
    time.sleep(0.2)
    assert [tuple(r) for r in db.execute("SELECT * FROM plan_follows")] == [
        tuple(r) for r in before
    ]


def test_the_cards_own_form_as_built_is_what_the_endpoint_takes(client, app, site):
    """The seed site's card, as pelicanconf.py builds it (the form on): exactly its fields, with
    its defaults (Monday, 08:00) and an address typed, start a follow of its plan."""
    page = BeautifulSoup(site.page("2026/the-best-muscle-to-train-for-knee-pain/"), "html.parser")
    card_form = page.select_one("section.exercise form.exercise-follow")
    assert card_form["action"].endswith("/plans/follow") and card_form["method"] == "post"
    fields = {}
    for field in card_form.select("input, select"):
        if field.name == "select":
            fields[field["name"]] = field.select_one("option[selected]")["value"]
        elif field.get("type") != "checkbox":
            fields[field["name"]] = field.get("value", "")
    assert set(fields) == {"email", "weekday", "hour", "plan", "source", "website"}
    fields["email"] = "reader@example.com"
    answer = client.post("/plans/follow", data=fields, headers=HTML)
    assert answer.status_code == 200 and soup(answer).h1.text == "Check your inbox"
    (row,) = app.extensions["newsletter"].database.db.execute("SELECT * FROM plan_follows")
    assert (row["plan_id"], row["weekday"], row["hour"]) == (PLAN, 0, 8)
    assert row["consent_source"] == site.url + "/2026/the-best-muscle-to-train-for-knee-pain/"
