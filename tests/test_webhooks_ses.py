"""POST /webhooks/ses through create_app, over a real SQLite file: SNS messages signed here (a
signing key and certificate made by the test, SignatureVersion 1 and 2), the certificate served
over real HTTPS by a local server (its own test CA) that also records the subscription
confirmation; a report applies only to the reader our Message-ID names; what cannot be verified
gets a 403 and leaves every table as it was; an old or pre-subscription message changes
nothing."""

from __future__ import annotations

import copy
import json
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.mail import proof
from newsletter.ratelimit import Rate
from newsletter.subscriptions import webhooks
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.subscribers import Status
from tests.announce_helpers import add_subscribers
from tests.conftest import newsletter_settings
from tests.feedback_helpers import (
    CERT_PATH,
    EXPIRED_PATH,
    JSONISH,
    SIGNED,
    TOPIC,
    query,
    serve_sns,
    snapshot,
    status_of,
    trust_local_sns,
)

URL = "/webhooks/ses"

# Amazon SES's documented notification contents ("Amazon SES notification examples"), with our
# subscribers' addresses: a permanent bounce, a transient one and a complaint.
MAIL = {
    "timestamp": "2026-01-27T14:59:38.237Z",
    "source": "news@walkagain.example",
    "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/walkagain.example",
    "sourceIp": "127.0.3.0",
    "sendingAccountId": "123456789012",
    "callerIdentity": "newsletter",
    "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
    "destination": ["alice@example.com"],
    "headersTruncated": False,
    "commonHeaders": {
        "from": ["Walk Again <news@walkagain.example>"],
        "date": "Tue, 27 Jan 2026 14:05:45 +0000",
        "to": ["alice@example.com"],
        "messageId": "<announce.1.abc@walkagain.example>",
        "subject": "A new article",
    },
}
PERMANENT = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "alice@example.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 <alice@example.com>... User unknown",
            }
        ],
        "timestamp": "2026-01-27T14:59:38.237Z",
        "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
        "reportingMTA": "dns; email.example.com",
        "remoteMtaIp": "127.0.2.0",
    },
    "mail": MAIL,
}
TRANSIENT = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Transient",
        "bounceSubType": "MailboxFull",
        "bouncedRecipients": [{"emailAddress": "alice@example.com", "status": "4.2.2"}],
        "timestamp": "2026-01-27T14:59:38.237Z",
        "feedbackId": "00000138111222aa-44455566-cccc-cccc-cccc-ddddaaaa068a-000000",
    },
    "mail": MAIL,
}
COMPLAINT = {
    "notificationType": "Complaint",
    "complaint": {
        "userAgent": "AnyCompany Feedback Loop (V0.01)",
        "complainedRecipients": [{"emailAddress": "alice@example.com"}],
        "complaintFeedbackType": "abuse",
        "arrivalDate": "2026-01-27T14:59:38.237Z",
        "timestamp": "2026-01-27T14:59:38.237Z",
        "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
    },
    "mail": MAIL,
}


@pytest.fixture(scope="module")
def sns(tmp_path_factory):
    """The local "SNS" (tests.feedback_helpers.serve_sns), for the module."""
    server = serve_sns(tmp_path_factory.mktemp("sns-pki"))
    yield server
    server.stop()


@pytest.fixture
def local_sns(sns):
    """The local "SNS", what it has seen so far forgotten."""
    sns.seen.clear()
    return sns


@pytest.fixture
def settings_(make_settings):
    made = make_settings(ses_topic_arn=TOPIC, rate_limit=Rate(1000, 60))
    add_subscribers(
        made, {"alice@example.com": Status.CONFIRMED, "bob@example.com": Status.CONFIRMED}
    )
    return made


@pytest.fixture
def client(settings_, local_sns):
    """The app, trusting the local "SNS" as SNS's host (through its config)."""
    app = create_app(settings_)
    trust_local_sns(local_sns, app)
    yield app.test_client()
    app.extensions["newsletter"].close()


def post(client, doc, **kwargs):
    """As SNS posts: JSON sent as text/plain, with its x-amz-sns-* headers."""
    body = doc if isinstance(doc, bytes | str) else json.dumps(doc)
    kind = doc.get("Type", "") if isinstance(doc, dict) else ""
    response = client.post(
        URL,
        data=body,
        content_type="text/plain; charset=UTF-8",
        headers={"x-amz-sns-message-type": str(kind), "User-Agent": "Amazon Simple Notification"},
        **kwargs,
    )
    assert response.status_code < 500 or response.status_code in (502, 503), response.data[:300]
    if response.status_code >= 400 and response.status_code != 404:  # 404: as any unknown path
        assert response.json["ok"] is False and len(response.json["message"]) > 15
    return response


def with_recipients(template: dict, field: str, *addresses: str) -> dict:
    content = copy.deepcopy(template)
    report = content["bounce" if field == "bouncedRecipients" else "complaint"]
    report[field] = [{"emailAddress": address} for address in addresses]
    return content


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ours(template: dict, settings, email="alice@example.com", *, when=None) -> dict:
    """The notification about a message we sent to `email`: its Message-ID header (SES's
    `commonHeaders.messageId`) is our proof for them; dated now (or `when`)."""
    content = copy.deepcopy(template)
    made = proof.message_id(settings, "announce", "tag:walkagain.example,2026:1",
                            query(settings, "SELECT public_id FROM subscribers WHERE email = ?",
                                  email)[0][0])  # fmt: skip
    headers = {**content["mail"]["commonHeaders"], "messageId": made}
    content["mail"] = {**content["mail"], "commonHeaders": headers}
    for name in ("bounce", "complaint"):
        if name in content:
            content[name]["timestamp"] = iso(when or datetime.now(UTC))
    return content


# What applies ----------------------------------------------------------------------------------
def test_a_v1_signed_permanent_bounce_bounces(client, settings_, local_sns):
    moment = datetime.now(UTC).replace(microsecond=237000) + timedelta(seconds=1)
    content = ours(PERMANENT, settings_, when=moment)
    doc = local_sns.message(content, version="1")
    response = post(client, doc)
    assert response.status_code == 200 and response.json["applied"] == ["bounced"]
    assert status_of(settings_, "alice@example.com") == "bounced"
    assert status_of(settings_, "bob@example.com") == "confirmed"
    [row] = query(settings_, "SELECT kind, provider, reason, message_id, occurred_at, event_key"
                             " FROM feedback_events")  # fmt: skip
    kind, provider, reason, message_id, occurred_at, key = row
    assert (kind, provider) == ("hard_bounce", "ses")
    assert key == f"ses:{doc['MessageId']}:alice@example.com"
    assert message_id == content["mail"]["commonHeaders"]["messageId"]  # our own header
    assert reason == "smtp; 550 5.1.1 <alice@example.com>... User unknown"
    assert occurred_at == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the bounce's time
    assert local_sns.seen == [CERT_PATH]  # the certificate, fetched over HTTPS


def test_a_v2_signed_complaint_marks_complained(client, settings_, local_sns):
    response = post(client, local_sns.message(ours(COMPLAINT, settings_), version="2"))
    assert response.status_code == 200 and response.json["applied"] == ["complained"]
    assert status_of(settings_, "alice@example.com") == "complained"
    [(kind, reason)] = query(settings_, "SELECT kind, reason FROM feedback_events")
    assert kind == "complaint" and "abuse" in reason


def test_only_the_recipient_our_message_id_names_is_applied(client, settings_, local_sns):
    """A notification about alice's message that lists bob too: bob is not touched (kept for
    review), a stranger is not stored at all."""
    content = with_recipients(
        ours(PERMANENT, settings_), "bouncedRecipients", "alice@example.com",
        "Bob <bob@example.com>", "stranger@example.com",
    )  # fmt: skip
    response = post(client, local_sns.message(content, version="2"))
    assert response.json["applied"] == ["bounced", "review", "unknown"]
    assert status_of(settings_, "alice@example.com") == "bounced"
    assert status_of(settings_, "bob@example.com") == "confirmed"
    assert len(query(settings_, "SELECT id FROM feedback_events")) == 1
    [(provider, names)] = query(
        settings_,
        "SELECT r.provider, n.email FROM feedback_reviews r"
        " JOIN feedback_review_names n ON n.review_id = r.id",
    )
    assert (provider, names) == ("ses", "bob@example.com")


@pytest.mark.parametrize(
    "message_id",
    [None, "<announce.1.abc@walkagain.example>",
     "<0123456789abcdef0123456789abcdef.PUBLIC.announce@walkagain.example>"],
)  # fmt: skip
def test_a_notification_without_our_proof_changes_nobody(client, settings_, local_sns, message_id):
    content = ours(COMPLAINT, settings_)
    public_id = query(settings_, "SELECT public_id FROM subscribers WHERE email = ?",
                      "alice@example.com")[0][0]  # fmt: skip
    if message_id is None:
        del content["mail"]["commonHeaders"]["messageId"]
    else:
        content["mail"]["commonHeaders"]["messageId"] = message_id.replace("PUBLIC", public_id)
    response = post(client, local_sns.message(content))
    assert response.status_code == 200 and response.json["applied"] == ["review"]
    assert status_of(settings_, "alice@example.com") == "confirmed"
    assert query(settings_, "SELECT id FROM feedback_events") == []


def test_an_sns_message_older_than_an_hour_is_refused(client, settings_, local_sns):
    """A genuine, correctly signed bounce from long ago, replayed: refused, nothing changes."""
    old = datetime.now(UTC) - timedelta(hours=1, minutes=1)
    for when in (old, datetime(2019, 5, 1, tzinfo=UTC)):
        content = ours(PERMANENT, settings_, when=when)
        before = snapshot(settings_)
        response = post(client, local_sns.message(content, Timestamp=iso(when)))
        assert response.status_code == 403 and "too old" in response.json["message"]
        assert snapshot(settings_) == before
    assert status_of(settings_, "alice@example.com") == "confirmed"


def test_a_bounce_from_before_the_reader_subscribed_changes_nothing(client, settings_, local_sns):
    """SNS delivered a bounce (signed, recent enough) that SES saw before alice's current
    subscription: it is stale and touches nobody."""
    content = ours(PERMANENT, settings_, when=datetime.now(UTC) - timedelta(minutes=30))
    response = post(client, local_sns.message(content))
    assert response.status_code == 200 and response.json["applied"] == ["stale"]
    assert status_of(settings_, "alice@example.com") == "confirmed"
    assert query(settings_, "SELECT id FROM feedback_events") == []


def test_strangers_cannot_spend_the_certificate_downloads_of_ses(client, settings_, local_sns):
    """A stranger's network posts messages pointing at SNS certificates that do not exist: it
    spends only its own download budget; SES's genuine message (another network) is taken."""
    stranger = {"REMOTE_ADDR": "198.51.100.7"}
    answers = []
    for n in range(webhooks.CERT_FETCH_RATE.count + 3):
        url = f"{local_sns.base}/SimpleNotificationService-{n:032x}.pem"
        answers.append(post(client, local_sns.message(PERMANENT, cert_url=url),
                            environ_base=stranger).status_code)  # fmt: skip
    assert answers[-1] == 429 and 503 not in answers
    response = post(client, local_sns.message(ours(PERMANENT, settings_)))
    assert response.status_code == 200 and response.json["applied"] == ["bounced"]


def test_a_certificate_of_another_region_than_the_topics_is_refused():
    assert webhooks._same_region(
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem", TOPIC
    )
    assert not webhooks._same_region(
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem", TOPIC
    )


def test_three_transient_bounces_make_a_bounce(client, settings_, local_sns):
    applied = [post(client, local_sns.message(ours(TRANSIENT, settings_))).json["applied"]
               for _ in range(3)]  # fmt: skip
    assert applied == [["counted"], ["counted"], ["bounced"]]
    assert status_of(settings_, "alice@example.com") == "bounced"
    assert local_sns.seen == [CERT_PATH]  # fetched once, then taken from memory


def test_snss_retry_of_a_notification_changes_nothing(client, settings_, local_sns):
    doc = local_sns.message(ours(TRANSIENT, settings_))
    assert post(client, doc).json["applied"] == ["counted"]
    before = snapshot(settings_)
    response = post(client, doc)
    assert response.status_code == 200 and response.json["applied"] == ["duplicate"]
    assert snapshot(settings_) == before


def test_other_ses_notifications_are_ignored(client, settings_, local_sns):
    before = snapshot(settings_)
    delivery = {"notificationType": "Delivery", "mail": MAIL, "delivery": {"recipients": []}}
    response = post(client, local_sns.message(delivery))
    assert response.status_code == 200 and response.json["applied"] == []
    assert snapshot(settings_) == before


def test_the_subscription_confirms_itself(client, settings_, local_sns):
    before = snapshot(settings_)
    doc = local_sns.message(kind="SubscriptionConfirmation", version="2")
    response = post(client, doc)
    assert response.status_code == 200, response.json
    confirm = [path for path in local_sns.seen if "ConfirmSubscription" in path]
    assert len(confirm) == 1
    query_ = parse_qs(urlsplit(confirm[0]).query)
    assert query_["Token"] == [doc["Token"]] and query_["TopicArn"] == [TOPIC]
    assert snapshot(settings_) == before


# What is refused, and changes nothing ----------------------------------------------------------
def tampered(sns):
    doc = sns.message(PERMANENT)
    content = json.loads(doc["Message"])
    content["bounce"]["bouncedRecipients"][0]["emailAddress"] = "bob@example.com"
    return {**doc, "Message": json.dumps(content)}


def other_key(sns):
    """Signed by a key of the sender's own, pointing at SNS's real certificate."""
    return sns.message(
        PERMANENT, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )


REFUSED = {
    "wrong topic": (lambda s: s.message(PERMANENT, topic=TOPIC + "-other"), 403),
    "tampered message": (tampered, 403),
    "tampered after signing, v2": (
        lambda s: {**s.message(COMPLAINT, version="2"), "Timestamp": "2030-01-01T00:00:00.000Z"},
        403,
    ),
    "signed by another key": (other_key, 403),
    "certificate on another host": (
        lambda s: s.message(PERMANENT, cert_url="https://sns.evil.example" + CERT_PATH),
        403,
    ),
    "certificate on an amazonaws look-alike": (
        lambda s: s.message(
            PERMANENT, cert_url="https://sns.eu-west-1.amazonaws.com.evil.example" + CERT_PATH
        ),
        403,
    ),
    "certificate over plain http": (
        lambda s: s.message(PERMANENT, cert_url=s.cert_url.replace("https:", "http:")),
        403,
    ),
    "certificate with a user part": (
        lambda s: s.message(PERMANENT, cert_url=s.cert_url.replace("://", "://sns@")),
        403,
    ),
    "certificate not found": (
        lambda s: s.message(PERMANENT, cert_url=s.base + "/SimpleNotificationService-gone.pem"),
        403,
    ),
    "certificate expired": (lambda s: s.message(PERMANENT, cert_url=s.base + EXPIRED_PATH), 403),
    "signature version 3": (lambda s: {**s.message(PERMANENT), "SignatureVersion": "3"}, 403),
    "no signature": (
        lambda s: {k: v for k, v in s.message(PERMANENT).items() if k != "Signature"},
        403,
    ),
    "signature not base64": (lambda s: {**s.message(PERMANENT), "Signature": "%%%"}, 403),
    "confirmation URL on another host": (
        lambda s: s.message(
            kind="SubscriptionConfirmation",
            SubscribeURL="https://sns.evil.example/?Action=ConfirmSubscription&Token=x",
        ),
        403,
    ),
    "confirmation, tampered": (
        lambda s: {**s.message(kind="SubscriptionConfirmation"), "Token": "forged"},
        403,
    ),
    "malformed JSON": (lambda s: b'{"Type": "Notification", ', 400),
    "JSON not an object": (lambda s: b'"Notification"', 400),
    "not an SNS type": (lambda s: {**s.message(PERMANENT), "Type": "Bounce"}, 400),
    "a signed field not a string": (lambda s: {**s.message(PERMANENT), "MessageId": 7}, 400),
    "Message not JSON": (lambda s: s.message("not json"), 400),
    "bounce without a type": (
        lambda s: s.message({"notificationType": "Bounce", "bounce": {"bouncedRecipients": []}}),
        400,
    ),
    "bounce without recipients": (
        lambda s: s.message(with_recipients(PERMANENT, "bouncedRecipients")),
        400,
    ),
}


NOTHING_FETCHED = {
    "wrong topic",
    "certificate on another host",
    "certificate on an amazonaws look-alike",
    "certificate over plain http",
    "certificate with a user part",
    "signature version 3",
    "no signature",
    "signature not base64",
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_cannot_be_verified_or_read_changes_nothing(client, settings_, local_sns, case):
    make, status = REFUSED[case]
    doc = make(local_sns)
    local_sns.seen.clear()
    before = snapshot(settings_)
    response = post(client, doc)
    assert response.status_code == status, response.json
    assert snapshot(settings_) == before
    assert status_of(settings_, "alice@example.com") == "confirmed"
    assert not [path for path in local_sns.seen if "ConfirmSubscription" in path]
    if case in NOTHING_FETCHED:
        assert local_sns.seen == []  # refused before anything was fetched from anywhere


def test_a_megabyte_body_is_refused_before_the_view(client, settings_, local_sns):
    before = snapshot(settings_)
    doc = local_sns.message(PERMANENT, Padding="x" * (1024 * 1024))
    assert post(client, doc).status_code == 413
    assert snapshot(settings_) == before and local_sns.seen == []


def test_an_unreachable_certificate_host_is_a_retry_later(settings_, sns):
    """The certificate cannot be fetched (nothing listens there): 503, which SNS retries."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = create_app(settings_)
    trust_local_sns(sns, app, any_port=True)
    try:
        before = snapshot(settings_)
        doc = sns.message(PERMANENT, cert_url=f"https://127.0.0.1:{closed_port}{CERT_PATH}")
        response = post(app.test_client(), doc)
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert snapshot(settings_) == before
    finally:
        app.extensions["newsletter"].close()


def test_without_a_topic_the_endpoint_is_not_there(make_settings, local_sns):
    settings_ = make_settings()
    app = create_app(settings_)
    try:
        before = snapshot(settings_)
        assert post(app.test_client(), local_sns.message(PERMANENT)).status_code == 404
        assert snapshot(settings_) == before and local_sns.seen == []
    finally:
        app.extensions["newsletter"].close()


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1a2b.pem", True),
        ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa.pem", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem", False),
        ("https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem", False),
        ("https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem", False),
        ("https://x@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem", False),
        ("https://sqs.us-east-1.amazonaws.com/SimpleNotificationService-1.pem", False),
        ("https://SNS.us-east-1.amazonaws.com/SimpleNotificationService-1.pem", False),
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem?x=1", False),
        ("https://sns.us-east-1.amazonaws.com/some/where/else.txt", False),
        ("https://127.0.0.1/SimpleNotificationService-1.pem", False),
        ("https://[::1", False),
        (None, False),
    ],
)
def test_only_snss_own_hosts_serve_certificates_in_production(url, allowed):
    assert webhooks.sns_url_allowed(url, webhooks.SNS_CERT_PATH) is allowed


# Whatever arrives, signed or not: never a 500, and a refusal stores nothing -------------------
RECIPIENTS = st.lists(
    st.fixed_dictionaries({}, optional={
        "emailAddress": st.sampled_from(["alice@example.com", "bob@example.com", "x"]) | JSONISH,
        "diagnosticCode": JSONISH,
    }) | JSONISH,
    max_size=3,
) | JSONISH  # fmt: skip
CONTENT = st.fixed_dictionaries({}, optional={
    "notificationType": st.sampled_from(["Bounce", "Complaint", "Delivery"]) | JSONISH,
    "eventType": JSONISH,
    "bounce": st.fixed_dictionaries({}, optional={
        "bounceType": st.sampled_from(["Permanent", "Transient", "Undetermined"]) | JSONISH,
        "bounceSubType": JSONISH,
        "bouncedRecipients": RECIPIENTS,
        "timestamp": st.sampled_from(["2026-01-27T14:59:38.237Z", "9999-12-31T23:59:59-14:00",
                                      "0001-01-01T00:00:00+14:00", "yesterday"]) | JSONISH,
    }) | JSONISH,
    "complaint": st.fixed_dictionaries({}, optional={
        "complainedRecipients": RECIPIENTS, "complaintFeedbackType": JSONISH,
        "timestamp": JSONISH,
    }) | JSONISH,
    "mail": st.fixed_dictionaries({}, optional={
        "messageId": JSONISH, "commonHeaders": st.fixed_dictionaries(
            {}, optional={"messageId": JSONISH}) | JSONISH,
    }) | JSONISH,
})  # fmt: skip


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory, sns):
    made = newsletter_settings(
        tmp_path_factory.mktemp("ses-fuzz"), ses_topic_arn=TOPIC, rate_limit=Rate(1_000_000, 60)
    )
    add_subscribers(
        made, {"alice@example.com": Status.CONFIRMED, "bob@example.com": Status.CONFIRMED}
    )
    app = create_app(made)
    trust_local_sns(sns, app)
    yield made, app.test_client()
    app.extensions["newsletter"].close()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(content=CONTENT | JSONISH, extra=st.dictionaries(st.sampled_from(
    ["Type", "TopicArn", "Subject", "SignatureVersion", "SigningCertURL", "MessageId"]), JSONISH,
    max_size=2), sign_after=st.booleans())  # fmt: skip
@pytest.mark.slow
def test_fuzz_never_a_500(fuzz, local_sns, content, extra, sign_after):
    """Signed SES contents of any shape, and SNS documents with fields of any type (re-signed
    or not): never a 500; a 4xx stores nothing."""
    settings_, client = fuzz
    doc = {**local_sns.message(content), **extra}
    if (
        sign_after
        and isinstance(doc.get("Type"), str)
        and doc["Type"] in SIGNED
        and all(isinstance(doc.get(name), str) for name in SIGNED[doc["Type"]] if name != "Subject")
        and isinstance(doc.get("Subject", ""), str)
    ):
        try:
            doc = local_sns.sign(doc, version=doc.get("SignatureVersion") or "1")
        except (UnicodeEncodeError, KeyError):
            pass
    before = snapshot(settings_)
    response = post(client, doc)
    assert response.status_code not in (500, 502)
    if response.status_code >= 400:
        assert snapshot(settings_) == before
