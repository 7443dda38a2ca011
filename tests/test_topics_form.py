"""`POST /subscribe` with the reader's choice (issue 20): `topics` (repeated) and `frequency`,
stored with the sign-up; bad values (unknown, repeated 10,000 times, oversized, odd Unicode, the
wrong type) get a 4xx that says what is wrong, and nothing is stored. The endpoint learns the
topics from the blog's `feeds/topics.json`, served here over HTTP as the live blog would."""

from __future__ import annotations

import json
import time

import pytest
from bs4 import BeautifulSoup
from werkzeug.datastructures import MultiDict

from newsletter.ratelimit import Rate
from newsletter.subscriptions import topics
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.subscribers import Status
from tests.conftest import serve_folder
from tests.test_views import HTML, JSON, SITE, Checked

TOPICS = [{"slug": "knees", "name": "Knee pain"}, {"slug": "hips", "name": "Hip pain"}]


@pytest.fixture
def blog(tmp_path):
    root = tmp_path / "blog"
    (root / "feeds").mkdir(parents=True)
    document = {"version": 1, "site": SITE, "topics": TOPICS}
    (root / "feeds" / "topics.json").write_text(json.dumps(document), encoding="utf-8")
    server = serve_folder(root)
    topics.forget_cache()
    yield server
    server.stop()
    topics.forget_cache()


@pytest.fixture
def app(make_settings, blog):
    settings = make_settings(
        site_url=SITE,
        base_url=SITE + "/newsletter",
        rate_limit=Rate(1000, 60),
        feed_url=f"{blog.url}/feeds/all.rss.xml",
    )
    app = create_app(settings)
    yield app
    app.extensions["newsletter"].close()


@pytest.fixture
def client(app):
    return Checked(app.test_client())


def multi(pairs):
    """Form fields as the browser sends them: a field may repeat."""
    return MultiDict(pairs)


def stored(app, address: str, timeout: float = 10.0):
    """The subscriber the background sender made of the request (waiting for it)."""
    nl = app.extensions["newsletter"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = nl.database.db.execute(
            "SELECT topics, frequency, status, consent_source FROM subscribers WHERE email = ?",
            (address,),
        ).fetchone()
        if row is not None:
            return dict(row)
        time.sleep(0.02)
    raise AssertionError(f"{address} was never stored")


def said(response) -> str:
    """The message a refusal shows: JSON's, or the page's alert."""
    if response.is_json:
        return response.json["message"]
    page = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    return page.select_one("[role=alert]").get_text(" ", strip=True)


def nothing_stored(app) -> bool:
    db = app.extensions["newsletter"].database.db
    return (
        db.execute(
            "SELECT (SELECT count(*) FROM subscribers) + (SELECT count(*) FROM signup_requests)"
        ).fetchone()[0]
        == 0
    )


def test_the_choice_is_stored_with_the_signup(app, client):
    form = [("email", "k@example.com"), ("topics", ""), ("topics", "knees"),
            ("frequency", "weekly"), ("source", SITE + "/")]  # fmt: skip
    response = client.open("POST", "/subscribe", data=multi(form), headers=JSON)
    assert response.status_code == 200 and response.json["ok"]
    assert stored(app, "k@example.com") == {
        "topics": '["knees"]', "frequency": "weekly", "status": Status.UNCONFIRMED,
        "consent_source": SITE + "/",
    }  # fmt: skip


def test_all_ticked_or_absent_is_everything_at_the_default(app, client):
    form = [("email", "all@example.com"), ("topics", ""), ("topics", "knees"), ("topics", "hips")]
    assert client.open("POST", "/subscribe", data=multi(form), headers=JSON).status_code == 200
    assert stored(app, "all@example.com")["topics"] is None
    old_form = {"email": "old@example.com"}  # a form from before topics
    assert client.open("POST", "/subscribe", data=old_form, headers=JSON).status_code == 200
    assert {k: stored(app, "old@example.com")[k] for k in ("topics", "frequency")} == {
        "topics": None, "frequency": "each"
    }  # fmt: skip


def test_the_site_default_frequency_is_the_announce_mode(make_settings, blog):
    settings = make_settings(site_url=SITE, announce_mode="digest",
                             feed_url=f"{blog.url}/feeds/all.rss.xml")  # fmt: skip
    app = create_app(settings)
    try:
        client = Checked(app.test_client())
        assert client.open("POST", "/subscribe", data={"email": "d@example.com"}).status_code == 200
        assert stored(app, "d@example.com")["frequency"] == "weekly"
        page = client.open("GET", "/subscribe", headers=HTML).get_data(as_text=True)
        assert 'value="weekly" checked' in page
    finally:
        app.extensions["newsletter"].close()


def test_json_clients_send_a_list(app, client):
    body = {"email": "j@example.com", "topics": ["hips"], "frequency": "each"}
    assert client.open("POST", "/subscribe", json=body).status_code == 200
    assert stored(app, "j@example.com")["topics"] == '["hips"]'


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            [("topics", ""), ("topics", "ankles")],
            "Unknown topic 'ankles'; choose among: knees, hips.",
        ),
        ([("topics", "")], "Choose at least one topic"),
        ([("topics", ""), ("topics", "k" * 5000)], "too long"),
        ([("topics", ""), ("topics", "kn\u00e9es")], "Unknown topic 'kn\\xe9es'"),
        ([("topics", ""), ("topics", "\u202eknees")], "Unknown topic '\\u202eknees'"),
        ([("topics", ""), ("topics", "knees"), ("frequency", "daily")], "'daily' is not a choice"),
        ([("frequency", "WEEKLY\u0000")], "is not a choice"),
        ([("topics", "")] + [("topics", "knees")] * 300, "Too many topics sent (301)"),
    ],
)
def test_bad_choices_are_refused_with_a_reason_and_nothing_is_stored(app, client, fields, words):
    form = [("email", "bad@example.com"), *fields]
    for headers in (JSON, HTML):
        response = client.open("POST", "/subscribe", data=multi(form), headers=headers)
        assert response.status_code == 400
        assert words in said(response)
    assert nothing_stored(app)


def test_ten_thousand_repeats_are_too_large(app, client):
    form = [("email", "many@example.com")] + [("topics", "knees")] * 10_000
    response = client.open("POST", "/subscribe", data=multi(form), headers=JSON)
    assert response.status_code == 413
    assert nothing_stored(app)


@pytest.mark.parametrize(
    "body",
    [
        {"email": "t@example.com", "topics": [["knees"]]},
        {"email": "t@example.com", "topics": [1, 2]},
        {"email": "t@example.com", "topics": {"knees": True}},
        {"email": "t@example.com", "frequency": ["weekly"]},
        {"email": "t@example.com", "frequency": 7},
    ],
)
def test_json_of_the_wrong_type_is_refused(app, client, body):
    response = client.open("POST", "/subscribe", json=body)
    assert response.status_code == 400
    assert nothing_stored(app)


def test_a_confirmed_readers_choice_is_not_changed_by_a_new_signup(app, client):
    nl = app.extensions["newsletter"]
    from newsletter.subscriptions.addresses import normalize
    from newsletter.subscriptions.choices import Choice, Choices

    email, key = normalize("reader@example.com")
    reader = nl.subscribers.add(email, key, status=Status.CONFIRMED)
    Choices(nl.database).set(reader.id, Choice(frozenset({"hips"}), "weekly"))
    form = [("email", "reader@example.com"), ("topics", ""), ("topics", "knees")]
    assert client.open("POST", "/subscribe", data=multi(form), headers=JSON).status_code == 200
    deadline = time.monotonic() + 10
    while nl.subscribers.pending_requests() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Choices(nl.database).get(reader.id) == Choice(frozenset({"hips"}), "weekly")


def test_the_subscribe_page_offers_the_blogs_topics(client):
    page = client.open("GET", "/subscribe", headers=HTML).get_data(as_text=True)
    assert '<input type="hidden" name="topics" value="">' in page
    for topic in TOPICS:
        assert f'name="topics" value="{topic["slug"]}" checked>{topic["name"]}' in page
    assert 'name="frequency" value="each" checked' in page
    assert 'name="frequency" value="weekly"' in page


def test_a_refused_form_keeps_what_was_typed(client):
    form = [("email", "typed@example.com"), ("topics", ""), ("topics", "ankles")]
    page = client.open("POST", "/subscribe", data=multi(form), headers=HTML).get_data(as_text=True)
    assert 'value="typed@example.com"' in page and "Knee pain" in page


def test_a_topic_the_blog_published_since_is_known_at_once(app, client, blog, monkeypatch):
    client.open("GET", "/subscribe", headers=HTML)  # the list is read, and kept
    monkeypatch.setattr(topics, "REREAD_SECONDS", 0.0)  # ... long enough ago
    document = {"version": 1, "site": SITE, "topics": [*TOPICS, {"slug": "ankles", "name": "A"}]}
    (blog.root / "feeds" / "topics.json").write_text(json.dumps(document), encoding="utf-8")
    form = [("email", "new@example.com"), ("topics", ""), ("topics", "ankles")]
    assert client.open("POST", "/subscribe", data=multi(form), headers=JSON).status_code == 200
    assert stored(app, "new@example.com")["topics"] == '["ankles"]'
