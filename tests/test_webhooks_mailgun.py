"""POST /webhooks/mailgun through create_app, over a real SQLite file: Mailgun's documented
`failed` and `complained` payloads, signed with the test's webhook key and about a message whose
Message-ID proves we mailed that reader, apply; one without that proof changes nobody and is kept
for review; every request that cannot be trusted or read gets a 4xx and changes no subscriber."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import sqlite3
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.mail import proof
from newsletter.ratelimit import Rate
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.subscribers import Status
from tests.announce_helpers import add_subscribers
from tests.conftest import newsletter_settings
from tests.feedback_helpers import (
    JSONISH,
    events_of,
    public_id,
    reviews_of,
    snapshot,
    status_of,
)

KEY = "key-" + "3ax6" * 8  # Mailgun's "HTTP webhook signing key", as the test's own
URL = "/webhooks/mailgun"

# Mailgun's documented webhook payloads (user manual, "Webhook payloads"), the parts we read and
# the parts around them, as Mailgun sends them: a `signature` block and the `event-data`.
PERMANENT = {
    "event-data": {
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1521233195.375624,
        "log-level": "error",
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "envelope": {
            "sender": "news@walkagain.example",
            "transport": "smtp",
            "targets": "alice@example.com",
        },
        "flags": {"is-routed": False, "is-authenticated": True, "is-test-mode": False},
        "delivery-status": {
            "tls": True,
            "mx-host": "smtp-in.example.com",
            "attempt-no": 1,
            "description": "",
            "session-seconds": 0.4331989288330078,
            "code": 550,
            "message": "5.1.1 The email account that you tried to reach does not exist.",
            "certificate-verified": True,
        },
        "message": {
            "headers": {
                "to": "alice@example.com",
                "message-id": "20130503192659.13651.20287@walkagain.example",
                "from": "Walk Again <news@walkagain.example>",
                "subject": "A new article",
            },
            "attachments": [],
            "size": 111,
        },
        "recipient": "alice@example.com",
        "recipient-domain": "example.com",
        "storage": {"url": "https://se.api.mailgun.net/v3/domains/x/messages/y", "key": "y"},
        "campaigns": [],
        "tags": [],
        "user-variables": {},
    }
}
TEMPORARY = {
    "event-data": {
        "id": "Fs7-5t81S2ms-EM1ulgN0w",
        "timestamp": 1521472262.908181,
        "log-level": "warn",
        "event": "failed",
        "severity": "temporary",
        "reason": "generic",
        "delivery-status": {
            "attempt-no": 1,
            "message": "4.2.2 The email account that you tried to reach is over quota.",
            "code": 452,
            "description": "",
            "session-seconds": 1.0,
            "retry-seconds": 600,
        },
        "message": {"headers": {"message-id": "<20180319153257.1.A@walkagain.example>"}},
        "recipient": "alice@example.com",
        "recipient-domain": "example.com",
    }
}
COMPLAINED = {
    "event-data": {
        "id": "-Agny091SquKnsrW2NEKUA",
        "timestamp": 1521233123.501324,
        "log-level": "warn",
        "event": "complained",
        "envelope": {"sending-ip": "173.193.210.33"},
        "flags": {"is-test-mode": False},
        "message": {
            "headers": {
                "to": "Alice <alice@example.com>",
                "message-id": "20110215055645.25246.63817@walkagain.example",
                "from": "Walk Again <news@walkagain.example>",
                "subject": "A new article",
            },
            "attachments": [],
            "size": 111,
        },
        "recipient": "alice@example.com",
        "campaigns": [],
        "tags": [],
        "user-variables": {},
    }
}


def suppressed(code: int, reason: str, description: str) -> dict:
    """A `failed` event for an address on one of Mailgun's own suppression lists."""
    payload = copy.deepcopy(PERMANENT)
    data = payload["event-data"]
    data["id"], data["reason"] = f"suppressed-{code}", reason
    data["delivery-status"] = {
        "attempt-no": 1,
        "code": code,
        "description": description,
        "message": "",
        "session-seconds": 0.0,
    }
    return payload


def sign(payload: dict, key: str = KEY, *, timestamp: int | None = None, token=None) -> dict:
    """The payload with Mailgun's signature block: HMAC-SHA256(key, timestamp + token), hex."""
    payload = copy.deepcopy(payload)
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    payload["signature"] = {"timestamp": timestamp, "token": token, "signature": digest}
    return payload


def event(template: dict, **changes) -> dict:
    payload = copy.deepcopy(template)
    payload["event-data"].update(changes)
    return payload


def proven(template: dict, settings, email="alice@example.com", *, brackets=False, **changes):
    """The event about a message we sent to `email`: its Message-ID is our proof for them (as
    Mailgun reports it, without <>), dated now unless `changes` say otherwise."""
    payload = event(template, **{"timestamp": time.time(), **changes})
    made = proof.message_id(
        settings, "announce", "tag:walkagain.example,2026:1", public_id(settings, email)
    )
    data = payload["event-data"]
    data.setdefault("message", {}).setdefault("headers", {})["message-id"] = (
        made if brackets else made.strip("<>")
    )
    return payload


@pytest.fixture
def settings_(make_settings):
    made = make_settings(mailgun_webhook_key=KEY, rate_limit=Rate(1000, 60))
    add_subscribers(
        made, {"alice@example.com": Status.CONFIRMED, "bob@example.com": Status.CONFIRMED}
    )
    return made


@pytest.fixture
def client(settings_):
    app = create_app(settings_)
    yield app.test_client()
    app.extensions["newsletter"].close()


def post(client, payload, **kwargs):
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    response = client.post(URL, data=body, content_type="application/json", **kwargs)
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    if response.status_code >= 400:
        assert response.json["ok"] is False and len(response.json["message"]) > 15
    return response


# What applies ----------------------------------------------------------------------------------
def test_a_permanent_failure_bounces_the_subscriber(client, settings_):
    payload = proven(PERMANENT, settings_, timestamp=int(time.time()) + 1.375)
    response = post(client, sign(payload))
    assert response.status_code == 200 and response.json["applied"] == "bounced"
    assert status_of(settings_, "alice@example.com") == "bounced"
    assert status_of(settings_, "bob@example.com") == "confirmed"
    [(kind, provider, reason, message_id, occurred_at, key)] = events_of(settings_)
    assert (kind, provider, key) == ("hard_bounce", "mailgun", "mailgun:G9Bn5sl1TC6nu79C8C0bwg")
    assert reason.startswith("5.1.1 The email account")
    sent = payload["event-data"]["message"]["headers"]["message-id"]
    assert message_id == f"<{sent}>"  # wrapped in <>
    assert occurred_at.endswith(".375000Z")  # event-data.timestamp, not now


def test_a_complaint_marks_the_subscriber_complained(client, settings_):
    response = post(client, sign(proven(COMPLAINED, settings_)))
    assert response.status_code == 200 and response.json["applied"] == "complained"
    assert status_of(settings_, "alice@example.com") == "complained"
    [(kind, _, _, message_id, _, key)] = events_of(settings_)
    assert kind == "complaint" and key == "mailgun:-Agny091SquKnsrW2NEKUA"
    assert message_id.endswith(".announce@walkagain.example>")


def test_three_temporary_failures_make_a_bounce(client, settings_):
    applied = []
    for n in range(3):
        payload = proven(TEMPORARY, settings_, brackets=True, id=f"temp-{n}",
                         timestamp=time.time() + n)  # fmt: skip
        applied.append(post(client, sign(payload)).json["applied"])
        if n < 2:
            assert status_of(settings_, "alice@example.com") == "confirmed"
    assert applied == ["counted", "counted", "bounced"]
    assert status_of(settings_, "alice@example.com") == "bounced"
    assert [row[0] for row in events_of(settings_)] == ["soft_bounce"] * 3
    # the message id had its <> already: kept as it is
    assert events_of(settings_)[0][3].startswith("<") and not events_of(settings_)[0][3].startswith(
        "<<"
    )


@pytest.mark.parametrize(
    "code, reason, description, status, kind",
    [
        (605, "suppress-bounce", "Not delivering to previously bounced address", "bounced",
         "hard_bounce"),
        (607, "suppress-complaint", "Not delivering to a user who marked your messages as spam",
         "complained", "complaint"),
    ],
)  # fmt: skip
def test_mailguns_own_suppressions_are_honoured(client, settings_, code, reason, description,
                                                 status, kind):  # fmt: skip
    response = post(client, sign(proven(suppressed(code, reason, description), settings_)))
    assert response.status_code == 200 and response.json["applied"] == status
    assert status_of(settings_, "alice@example.com") == status
    [row] = events_of(settings_)
    assert row[0] == kind and row[2] == description


def test_the_code_alone_is_enough(client, settings_):
    """607 with a reason Mailgun did not spell out: still a complaint, never a mere bounce."""
    payload = suppressed(607, "", "Not delivering to a user who marked your messages as spam")
    assert post(client, sign(proven(payload, settings_))).json["applied"] == "complained"


def test_mailguns_unsubscribe_list_is_not_a_bounce(client, settings_):
    before = snapshot(settings_, tokens=False)
    payload = suppressed(606, "suppress-unsubscribe", "Not delivering to unsubscribed address")
    response = post(client, sign(proven(payload, settings_)))
    assert response.status_code == 200 and response.json["applied"] == "ignored"
    assert snapshot(settings_, tokens=False) == before


def test_an_event_sent_again_with_a_new_signature_changes_nothing(client, settings_):
    payload = proven(COMPLAINED, settings_)
    assert post(client, sign(payload)).json["applied"] == "complained"
    before = snapshot(settings_, tokens=False)
    response = post(client, sign(payload))  # Mailgun's retry: new token, same event id
    assert response.status_code == 200 and response.json["applied"] == "duplicate"
    assert snapshot(settings_, tokens=False) == before


def test_an_address_we_do_not_know_is_not_stored(client, settings_):
    before = snapshot(settings_, tokens=False)
    payload = proven(PERMANENT, settings_, recipient="stranger@example.com")
    response = post(client, sign(payload))
    assert response.status_code == 200 and response.json["applied"] == "unknown"
    assert snapshot(settings_, tokens=False) == before


# Proof: a report acts on the reader our Message-ID names, and on nobody else ---------------------
@pytest.mark.parametrize(
    "message_id",
    [
        None,  # no Message-ID at all
        "20130503192659.13651.20287@walkagain.example",  # someone else's message
        "0123456789abcdef0123456789abcdef.announce@walkagain.example",  # our old shape
        "0123456789abcdef0123456789abcdef.PUBLIC.announce@walkagain.example",  # forged seal
    ],
)
def test_an_event_without_our_proof_changes_nobody_and_is_kept_for_review(
    client, settings_, message_id
):
    """Mailgun signs only timestamp + token: whoever holds one unused signature could write any
    event. Without a Message-ID of ours for that reader, nobody changes."""
    payload = event(PERMANENT, timestamp=time.time())
    headers = payload["event-data"]["message"]["headers"]
    if message_id is None:
        del headers["message-id"]
    else:
        headers["message-id"] = message_id.replace(
            "PUBLIC", public_id(settings_, "alice@example.com")
        )
    response = post(client, sign(payload))
    assert response.status_code == 200 and response.json["applied"] == "review"
    assert status_of(settings_, "alice@example.com") == "confirmed"
    assert events_of(settings_) == []
    [(provider, kind, why, names)] = reviews_of(settings_)
    assert (provider, kind, names) == ("mailgun", "hard_bounce", "alice@example.com")
    assert "Message-ID" in why


def test_a_proof_for_one_reader_does_not_reach_another(client, settings_):
    """Bob's own Message-ID (he received that email) in an event about Alice: Alice is untouched,
    and so is Bob, whose address the event does not name."""
    payload = proven(PERMANENT, settings_, "bob@example.com", recipient="alice@example.com")
    response = post(client, sign(payload))
    assert response.json["applied"] == "review"
    assert status_of(settings_, "alice@example.com") == "confirmed"
    assert status_of(settings_, "bob@example.com") == "confirmed"
    assert "someone else" in reviews_of(settings_)[0][2]


def test_an_event_dated_before_the_current_subscription_changes_nothing(client, settings_):
    """A genuine event from before the reader (re)subscribed, replayed now: stale."""
    payload = proven(PERMANENT, settings_, timestamp=time.time() - 86400)
    response = post(client, sign(payload))
    assert response.status_code == 200 and response.json["applied"] == "stale"
    assert status_of(settings_, "alice@example.com") == "confirmed"
    assert events_of(settings_) == []


def test_the_recipient_is_keyed_like_a_sign_up(make_settings):
    """Mailgun may report the punycode or NFD spelling of the domain the reader signed up with."""
    settings_ = make_settings(mailgun_webhook_key=KEY, rate_limit=Rate(1000, 60))
    readers = ["user@bücher.de", "ſam@example.com", "sam@example.com"]
    add_subscribers(settings_, dict.fromkeys(readers, Status.CONFIRMED))
    app = create_app(settings_)
    try:
        client = app.test_client()
        for n, spelling in enumerate(["user@xn--bcher-kva.de", "user@bu\u0308cher.de"]):
            payload = proven(TEMPORARY, settings_, "user@bücher.de", id=f"t{n}", recipient=spelling)
            assert post(client, sign(payload)).json["applied"] == "counted", spelling
        # sam@'s proof in an event about ſam@ (another mailbox): nobody changes
        payload = proven(PERMANENT, settings_, "sam@example.com", recipient="ſam@example.com")
        assert post(client, sign(payload)).json["applied"] == "review"
        assert status_of(settings_, "sam@example.com") == status_of(settings_, "ſam@example.com")
        assert status_of(settings_, "sam@example.com") == "confirmed"
    finally:
        app.extensions["newsletter"].close()


# What is refused, and changes nothing ----------------------------------------------------------
REFUSED = {
    "wrong key": (lambda: sign(PERMANENT, key="key-" + "0" * 32), 403),
    "no signature": (lambda: PERMANENT, 403),
    "signature of another request": (
        lambda: {
            **sign(PERMANENT),
            "signature": {**sign(PERMANENT)["signature"], "token": "x" * 50},
        },
        403,
    ),
    "signature not hex": (
        lambda: {
            **PERMANENT,
            "signature": {
                "timestamp": str(int(time.time())),
                "token": "t" * 50,
                "signature": "z" * 64,
            },
        },
        403,
    ),
    "signature fields of the wrong types": (
        lambda: {**PERMANENT, "signature": {"timestamp": [1], "token": {"a": 1}, "signature": 7}},
        403,
    ),
    "signature not an object": (lambda: {**PERMANENT, "signature": "sig"}, 403),
    "timestamp 6 minutes old": (lambda: sign(PERMANENT, timestamp=int(time.time()) - 360), 403),
    "timestamp 6 minutes ahead": (lambda: sign(PERMANENT, timestamp=int(time.time()) + 360), 403),
    "malformed JSON": (lambda: b'{"signature": {"timestamp": ', 400),
    "JSON not an object": (lambda: b"[1, 2, 3]", 400),
    "not JSON at all": (lambda: b"\xff\xfe\x00garbage", 400),
    "deeply nested JSON": (lambda: b"[" * 5000 + b"]" * 5000, 400),
    "unknown event type (delivered)": (lambda: sign(event(PERMANENT, event="delivered")), 406),
    "unknown event type (opened)": (lambda: sign(event(COMPLAINED, event="opened")), 406),
    "event type missing": (lambda: sign({"event-data": {"recipient": "alice@example.com"}}), 406),
    "no event-data": (lambda: sign({}), 400),
    "failed without a severity": (lambda: sign(event(PERMANENT, severity=None, reason="x")), 400),
    "no recipient": (lambda: sign(event(PERMANENT, recipient=None)), 400),
    "recipient not an address": (lambda: sign(event(PERMANENT, recipient=["a@b"])), 400),
    "no event id": (lambda: sign(event(PERMANENT, id=None)), 400),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_cannot_be_trusted_or_read_changes_nothing(client, settings_, case):
    make, status = REFUSED[case]
    before = snapshot(settings_, tokens=False)
    response = post(client, make())
    assert response.status_code == status, response.json
    assert snapshot(settings_, tokens=False) == before  # a signed one spends its token
    assert status_of(settings_, "alice@example.com") == "confirmed"


def test_a_replayed_token_is_refused(client, settings_):
    first = sign(proven(COMPLAINED, settings_), token="replayed-token-" + "a" * 35)
    assert post(client, first).status_code == 200
    before = snapshot(settings_)
    # The signature covers only timestamp + token: the same block with another event...
    forged = {**proven(PERMANENT, settings_, "bob@example.com", recipient="bob@example.com"),
              "signature": first["signature"]}  # fmt: skip
    response = post(client, forged)
    assert response.status_code == 406 and "used before" in response.json["message"]
    # ... or the very same request again
    assert post(client, first).status_code == 406
    assert snapshot(settings_) == before
    assert status_of(settings_, "bob@example.com") == "confirmed"


def test_a_token_used_on_one_worker_is_refused_by_every_other(settings_):
    """Three app instances (three gunicorn workers, or three hosts) over one database: a
    captured signature, with new event data, is refused by the other two."""
    apps = [create_app(settings_) for _ in range(3)]
    try:
        first = sign(proven(COMPLAINED, settings_))
        assert post(apps[0].test_client(), first).json["applied"] == "complained"
        for app, email in zip(apps[1:], ["bob@example.com", "alice@example.com"], strict=True):
            forged = {**proven(PERMANENT, settings_, email, recipient=email, id=f"new-{email}"),
                      "signature": first["signature"]}  # fmt: skip
            response = post(app.test_client(), forged)
            assert response.status_code == 406
        assert status_of(settings_, "bob@example.com") == "confirmed"
        assert [row[0] for row in events_of(settings_)] == ["complaint"]
    finally:
        for app in apps:
            app.extensions["newsletter"].close()


def test_a_signed_request_that_cannot_be_read_spends_its_token(client, settings_):
    """A signed event this endpoint does not take (a `delivered` event sent here by mistake)
    still spends its token: its signature cannot carry a forged bounce afterwards."""
    delivered = sign(event(PERMANENT, event="delivered"))
    assert post(client, delivered).status_code == 406
    forged = {**proven(PERMANENT, settings_), "signature": delivered["signature"]}
    assert post(client, forged).status_code == 406
    assert status_of(settings_, "alice@example.com") == "confirmed"


def test_a_megabyte_body_is_refused_before_the_view(client, settings_):
    before = snapshot(settings_)
    payload = sign(PERMANENT)
    payload["padding"] = "x" * (1024 * 1024)
    response = post(client, payload)
    assert response.status_code == 413
    assert snapshot(settings_) == before


def test_only_post(client, settings_):
    before = snapshot(settings_)
    for method in ("GET", "PUT", "DELETE"):
        response = client.open(URL, method=method, data=json.dumps(sign(PERMANENT)),
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 405
    assert snapshot(settings_) == before


def test_without_a_key_the_endpoint_is_not_there(make_settings):
    settings_ = make_settings()
    add_subscribers(settings_, {"alice@example.com": Status.CONFIRMED})
    app = create_app(settings_)
    try:
        before = snapshot(settings_)
        response = post(app.test_client(), sign(PERMANENT, key=""))
        assert response.status_code == 404
        assert snapshot(settings_) == before
    finally:
        app.extensions["newsletter"].close()


def test_refused_requests_count_against_the_network(make_settings):
    settings_ = make_settings(mailgun_webhook_key=KEY, rate_limit=Rate(3, 3600))
    add_subscribers(settings_, {"alice@example.com": Status.CONFIRMED})
    app = create_app(settings_)
    try:
        client = app.test_client()
        statuses = [post(client, sign(PERMANENT, key="wrong")).status_code for _ in range(4)]
        assert statuses == [403, 403, 403, 429]  # past the limit, a refusal is a 429
        response = post(client, sign(PERMANENT, key="wrong"))
        assert response.status_code == 429 and int(response.headers["Retry-After"]) > 60
        # a correctly signed report from that network is never refused for its neighbours
        response = post(client, sign(proven(PERMANENT, settings_)))
        assert response.status_code == 200 and response.json["applied"] == "bounced"
        other = post(
            client, sign(PERMANENT, key="wrong"), environ_base={"REMOTE_ADDR": "192.0.2.7"}
        )
        assert other.status_code == 403  # another network has its own count
    finally:
        app.extensions["newsletter"].close()


def test_a_failure_on_our_side_lets_the_retry_through(client, settings_, monkeypatch):
    """The token is given back when the request fails on our side (503), so Mailgun's retry of
    the very same request is taken."""
    import newsletter.subscriptions.feedback as feedback

    payload = sign(proven(PERMANENT, settings_))
    real = feedback.Feedback.record

    def busy(self, event):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(feedback.Feedback, "record", busy)
    busy_answer = client.post(URL, data=json.dumps(payload), content_type="application/json")
    assert busy_answer.status_code == 503 and busy_answer.headers["Retry-After"]
    monkeypatch.setattr(feedback.Feedback, "record", real)
    assert post(client, payload).json["applied"] == "bounced"


def test_used_tokens_expire_with_their_window(settings_):
    """Used tokens are kept for twice the allowed skew (past it, the timestamp is refused
    anyway), then go: the table does not grow without end."""
    from datetime import UTC, datetime, timedelta

    from newsletter.database import Database
    from newsletter.subscriptions.webhooks import claim_token

    database = Database(settings_.database)
    try:
        start = datetime.now(UTC)
        with database.transaction() as db:
            assert claim_token(db, "mailgun:a", start) and not claim_token(db, "mailgun:a", start)
        later = start + timedelta(seconds=601)
        with database.transaction() as db:
            assert claim_token(db, "mailgun:b", later)
            rows = db.execute("SELECT token FROM webhook_tokens").fetchall()
        assert [r[0] for r in rows] == ["mailgun:b"]
    finally:
        database.close()


# Whatever arrives, signed or not: never a 5xx, and a refusal stores nothing -------------------
EVENT_DATA = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["failed", "complained", "delivered", ""]) | JSONISH,
        "severity": st.sampled_from(["permanent", "temporary"]) | JSONISH,
        "reason": st.sampled_from(["suppress-bounce", "suppress-complaint", "bounce"]) | JSONISH,
        "recipient": st.sampled_from(["alice@example.com", "bob@example.com"]) | JSONISH,
        "id": st.text(min_size=1, max_size=20) | JSONISH,
        "timestamp": st.floats() | st.integers() | JSONISH,
        "delivery-status": st.fixed_dictionaries(
            {}, optional={"code": st.sampled_from([605, 606, 607, "605"]) | JSONISH,
                          "message": JSONISH, "description": JSONISH}) | JSONISH,
        "message": st.fixed_dictionaries(
            {}, optional={"headers": st.fixed_dictionaries(
                {}, optional={"message-id": st.text(max_size=40) | JSONISH}) | JSONISH}) | JSONISH,
    },
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    """One app and one database for every fuzz example."""
    made = newsletter_settings(
        tmp_path_factory.mktemp("mailgun-fuzz"), mailgun_webhook_key=KEY,
        rate_limit=Rate(1_000_000, 60),
    )  # fmt: skip
    add_subscribers(made, {"alice@example.com": Status.CONFIRMED,
                           "bob@example.com": Status.CONFIRMED})  # fmt: skip
    app = create_app(made)
    yield made, app.test_client()
    app.extensions["newsletter"].close()


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=EVENT_DATA, signed=st.booleans())
def test_fuzz_never_a_5xx(fuzz, data, signed):
    settings_, client = fuzz
    before = snapshot(settings_, tokens=False)
    payload = {"event-data": data}
    response = post(client, sign(payload) if signed else payload)
    if response.status_code >= 400 or response.json.get("applied") in ("duplicate", "ignored"):
        assert snapshot(settings_, tokens=False) == before
    if not signed:
        assert response.status_code == 403


def test_refusals_are_counted_across_workers(make_settings):
    """Three app instances (workers or hosts) over one database count one network's refusals
    together: the limit is the limit, whatever worker answers."""
    settings_ = make_settings(mailgun_webhook_key=KEY, rate_limit=Rate(3, 3600))
    add_subscribers(settings_, {"alice@example.com": Status.CONFIRMED})
    apps = [create_app(settings_) for _ in range(3)]
    try:
        statuses = [
            post(apps[n % 3].test_client(), sign(PERMANENT, key="wrong")).status_code
            for n in range(5)
        ]
        assert statuses == [403, 403, 403, 429, 429]
    finally:
        for app in apps:
            app.extensions["newsletter"].close()
