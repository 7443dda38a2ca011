"""Property-based: arbitrary form and JSON bodies, methods and headers thrown at every route.
Whatever arrives: never a 5xx, never a traceback, and nothing is stored unless the answer was
200 to a POST /subscribe with a valid address (and an empty honeypot)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.subscriptions.addresses import InvalidAddress, normalize
from newsletter.subscriptions.app import create_app

pytestmark = pytest.mark.slow  # hundreds of generated requests

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
TEXT = st.text(max_size=60)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "email": st.one_of(st.emails(), st.emails(), TEXT, JSONISH),
        "website": st.one_of(st.just(""), st.just(""), TEXT, JSONISH),
        "source": st.one_of(TEXT, st.just("https://walkagain.example/2026/a/"), JSONISH),
    },
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from newsletter.ratelimit import Rate
    from tests.conftest import newsletter_settings

    folder = tmp_path_factory.mktemp("fuzz")
    app = create_app(newsletter_settings(folder, rate_limit=Rate(1_000_000, 60)))
    yield app
    app.extensions["newsletter"].close()


def stored(app) -> int:
    """Rows in the tables a request may fill, once the background work it caused is done."""
    app.extensions["newsletter"].sender.drain(timeout=10)
    db = app.extensions["newsletter"].database.db
    return sum(
        db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("subscribers", "signup_requests", "outgoing_mail")
    )


def valid(value) -> bool:
    try:
        normalize(value)
    except InvalidAddress:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(METHODS),
    path=st.sampled_from(["/subscribe", "/confirm/x.y.z", "/unsubscribe/abc", "/healthz",
                          "/confirm/", "/nothing", "/subscribe?source=%FF"]),
    kind=st.sampled_from(["form", "json", "raw"]),
    fields=FIELDS,
    raw=st.binary(max_size=300),
    accept=st.sampled_from(["application/json", "text/html", "*/*", "", "x/y;q=oops"]),
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                  "multipart/form-data", "text/plain", "", "application/json;"
                                  " charset=latin-1"]),
)  # fmt: skip
def test_arbitrary_requests(app, method, path, kind, fields, raw, accept, content_type):
    check(app, method, path, kind, fields, raw, accept, content_type)


def test_arbitrary_sign_ups(app):
    """The property on sign-ups, and it is not vacuous: some of its requests were good sign-ups
    (counted in this test, so it holds alone and in any order)."""
    good: list = []
    sign_ups(app, good)
    assert good, "no generated request stored anything"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["form", "json", "raw"]),
    fields=FIELDS,
    raw=st.binary(max_size=300),
    accept=st.sampled_from(["application/json", "text/html"]),
)
def sign_ups(app, good, kind, fields, raw, accept):
    if check(app, "POST", "/subscribe", kind, fields, raw, accept, "application/json"):
        good.append(kind)


def check(app, method, path, kind, fields, raw, accept, content_type) -> bool:
    """One request, its answer checked; whether it stored something (a good sign-up)."""
    client = app.test_client()
    before = stored(app)
    headers = {"Accept": accept}
    if kind == "json":
        body = {"data": json.dumps(fields), "content_type": "application/json"}
    elif kind == "form":
        flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        body = {"data": flat}
    else:
        body = {"data": raw, "content_type": content_type}
    answer = client.open(path, method=method, headers=headers, **body)
    text = answer.get_data(as_text=True)
    assert answer.status_code < 500, text[:300]
    assert "Traceback" not in text and 'File "' not in text
    if stored(app) == before:
        return False
    # Something was stored: only a good sign-up may do that.
    assert (method, path.split("?")[0], answer.status_code) == ("POST", "/subscribe", 200)
    email = fields.get("email") if kind != "raw" else None
    website = fields.get("website") if kind != "raw" else None
    assert kind != "raw" and valid(email if kind == "json" else str(email))
    assert website in (None, "") or (isinstance(website, str) and not website.strip())
    return True
