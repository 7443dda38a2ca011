"""Provider webhooks: Mailgun's and SES's signed bounce and complaint reports, into `feedback`.

What Mailgun and Amazon SES (through SNS) report back, bounces and spam complaints, verified and
read into `feedback.Event`s that `Feedback.record` applies. A report
changes a subscriber only with proof that we mailed them: the original's Message-ID is one of ours
(`mail.proof`, checked with the secret key) and names the subscriber whose address the report is
about. Other reports are kept for review (`Feedback.review`) and change nobody.

Routes (one Blueprint, `bp`, registered by `app.create_app`; each answers JSON):
- `POST /webhooks/mailgun`: Mailgun's webhooks (JSON: `signature` and `event-data`). The
  signature is HMAC-SHA256 over timestamp + token with NEWSLETTER_MAILGUN_WEBHOOK_KEY; unsigned,
  wrongly signed, or a timestamp more than 5 minutes away from now: 403. The signature does not
  cover the event, so a token is good for one request: used tokens are kept in the database
  (`webhook_tokens`, shared by every worker and host, each for 10 minutes, past which its
  timestamp is refused anyway), and a token seen before gets 406. The token is taken in the same
  transaction that applies the event, so a failure on our side releases it for the retry.
  `failed` (severity permanent, or Mailgun's own suppression 605 / suppress-bounce) is a hard
  bounce, `failed` temporary a soft bounce, `complained` (or suppression 607 /
  suppress-complaint) a complaint; 606 (Mailgun's unsubscribe list) is not a bounce: 200,
  ignored. Any other event type: 406, which Mailgun takes as "do not retry".
- `POST /webhooks/ses`: SNS messages for the topic NEWSLETTER_SES_TOPIC_ARN, their signature
  (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) checked against the certificate at
  `SigningCertURL`, fetched only over HTTPS from `sns.<the topic's region>.amazonaws.com`
  (`SNS_CERT_HOST`) and cached. Another topic, a bad signature or a certificate elsewhere: 403.
  A message whose signed `Timestamp` is older than NEWSLETTER_SNS_MAX_AGE (an hour), or more than
  5 minutes ahead: 403 (a replay). A `SubscriptionConfirmation` is confirmed by fetching its
  `SubscribeURL` (same host rule); a `Notification` carrying an SES `Bounce` (Permanent: hard;
  Transient, Undetermined: soft) or `Complaint` is applied to the recipient our Message-ID names;
  other SES notifications: 200, ignored.
An event dated before the subscriber's current subscription changes nothing (`Applied.STALE`).
Recipients are read and keyed by `addresses.parse`, like sign-ups. Both endpoints share one
preamble (`webhook`): 404 while their setting is empty; the body a JSON object nested at most
`MAX_JSON_DEPTH` deep, else 400; a request refused for its signature (`Refused`) counted against
the client's network. Bad input never causes a 500 and a refused request stores nothing.
A correctly signed report is never refused for the client's history: requests refused for their
signature count against the client network's limit (NEWSLETTER_RATE_LIMIT), and past it the
refusal is a 429 instead of a 403; a certificate download (a URL not in the cache) spends the
client network's own budget (`CERT_FETCH_RATE`), so strangers cannot spend SES's. A passing
failure on our side (the database busy, the certificate host unreachable) is a 503, which both
providers retry.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from newsletter.database import BUSY, ERRORS, stamp
from newsletter.mail import proof
from newsletter.ratelimit import Rate
from newsletter.subscriptions import addresses
from newsletter.subscriptions.feedback import Applied, Claim, Event, Feedback, Kind
from newsletter.subscriptions.web import (
    MAX_JSON_DEPTH,
    error,
    nesting,
    network,
    newsletter,
    text,
)

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)
STATE = "newsletter_webhooks"  # app.extensions[STATE]: the `Webhooks` of this app

MAILGUN_MAX_SKEW = 300  # seconds between a Mailgun signature's timestamp and now, either way
SNS_MAX_AHEAD = 300  # seconds an SNS message's Timestamp may be ahead of our clock
# Where SNS signing certificates (and subscription confirmations) may come from: the whole
# netloc of an https:// URL, so a port or a user part never matches. An app may trust another
# host (tests: their local HTTPS server) with app.config[SNS_CERT_HOST_CONFIG] (a pattern) and
# a CA bundle with app.config[SNS_TLS_VERIFY_CONFIG] (requests' `verify=`).
SNS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SNS_CERT_PATH = re.compile(r"^/[A-Za-z0-9._-]+\.pem$")
SNS_CERT_HOST_CONFIG = "NEWSLETTER_SNS_CERT_HOST"
SNS_TLS_VERIFY_CONFIG = "NEWSLETTER_SNS_TLS_VERIFY"
MAX_CERT_BYTES = 64 * 1024
CERT_CACHE_SIZE = 16  # certificates kept per process, by URL
CERT_FETCH_RATE = Rate(10, 60)  # certificate downloads per client network (an unknown URL each)
MAX_RECIPIENTS = 100  # recipients read from one SES notification
SNS_SIGNED = {  # the fields each SNS message type signs, in the order of the string to sign
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
SES_BOUNCE_KINDS = {
    "Permanent": Kind.HARD_BOUNCE,
    "Transient": Kind.SOFT_BOUNCE,
    "Undetermined": Kind.SOFT_BOUNCE,
}


# What each app keeps -----------------------------------------------------------------------------
def claim_token(db, token: str, now: datetime) -> bool:
    """True the first time a Mailgun token is seen by any worker or host (it is then kept, in
    the caller's transaction, for twice the allowed skew), False after. Expired ones go."""
    db.execute("DELETE FROM webhook_tokens WHERE expires_at < ?", (stamp(now),))
    cursor = db.execute(
        "INSERT INTO webhook_tokens (token, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (token, stamp(now + timedelta(seconds=2 * MAILGUN_MAX_SKEW))),
    )
    return cursor.rowcount == 1


def release_token(database, token: str) -> None:
    """Forget a token whose request failed on our side, so that the provider's retry is taken."""
    try:
        with database.transaction() as db:
            db.execute("DELETE FROM webhook_tokens WHERE token = ?", (token,))
    except ERRORS:
        log.warning("webhook token could not be released; the retry will be refused (406)")


class CertificateUnavailable(Exception):
    """The certificate could not be fetched now (network, or too many fetches): try later."""


class CertificateBudget(Exception):
    """The requester's network spent its certificate downloads: 429."""


class CertificateRefused(Exception):
    """What the certificate URL gave is no usable certificate."""


class Certificates:
    """SNS signing certificates by URL: fetched over HTTPS, at most `CERT_FETCH_RATE`, kept
    (`CERT_CACHE_SIZE`, least recently used out first)."""

    def __init__(self, fetches):
        self._cache: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()
        self.fetches = fetches  # a rate limit: hit(client network) per download

    def get(self, url: str, client: str = "", verify: bool | str = True) -> x509.Certificate:
        """The certificate at `url`: from the cache, or fetched on the budget of `client` (the
        requester's network), so a stranger's unknown URLs never spend another's downloads;
        over TLS checked with `verify` (requests': True, or a CA bundle's path)."""
        with self._lock:
            certificate = self._cache.get(url)
            if certificate is not None:
                self._cache.move_to_end(url)
        if certificate is None:
            certificate = self._fetch(url, client, verify)
            with self._lock:
                self._cache[url] = certificate
                while len(self._cache) > CERT_CACHE_SIZE:
                    self._cache.popitem(last=False)
        now = datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise CertificateRefused("the signing certificate has expired or is not valid yet")
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise CertificateRefused("the signing certificate has no RSA key")
        return certificate

    def _fetch(self, url: str, client: str, verify: bool | str) -> x509.Certificate:
        if self.fetches.hit(client) is not None:
            raise CertificateBudget("too many certificate downloads from your network")
        try:
            with requests.get(url, timeout=newsletter().settings.http.timeout, verify=verify,
                              allow_redirects=False, stream=True) as response:  # fmt: skip
                if response.status_code != 200:
                    raise CertificateRefused(f"the certificate URL answered {response.status_code}")
                body = b""
                for chunk in response.iter_content(8192):
                    body += chunk
                    if len(body) > MAX_CERT_BYTES:
                        raise CertificateRefused("the certificate is too large")
        except requests.RequestException as problem:
            log.warning("SNS certificate %s: %s", url, problem)
            raise CertificateUnavailable("the signing certificate could not be fetched") from None
        try:
            return x509.load_pem_x509_certificate(body)
        except ValueError:
            raise CertificateRefused("the certificate URL gave no PEM certificate") from None


class Webhooks:
    """What the webhooks keep per app: the refusal counter and the certificate download budget,
    both per client network and kept in the database (shared by every worker and host), and the
    certificate cache: `app.extensions[STATE]`."""

    def __init__(self, refusals, downloads):
        self.refusals = refusals  # hit(client network) per refused request
        self.certificates = Certificates(downloads)  # hit(client network) per download


@bp.record_once
def _setup(setup) -> None:
    nl = setup.app.extensions["newsletter"]
    setup.app.extensions[STATE] = Webhooks(
        refusals=nl.shared_limiter("webhook-refusals"),
        downloads=nl.shared_limiter("sns-certificates", CERT_FETCH_RATE),
    )


def webhooks() -> Webhooks:
    return current_app.extensions[STATE]


# The preamble both endpoints share ---------------------------------------------------------------
class Refused(Exception):
    """A request we cannot trust (its signature, topic or certificate): 403 with this message,
    counted against the client's network (`refuse`)."""


class Unusable(Exception):
    """A verified request whose content cannot be read as feedback: 400, with this message."""


def webhook(setting: str, not_json: str):
    """The preamble of a webhook view, written once: 404 while the setting `setting` is empty;
    the body (at most NEWSLETTER_MAX_REQUEST_BYTES: a larger one is a 413 before the view) must
    be a JSON object nested at most `MAX_JSON_DEPTH` deep, else 400 `not_json`; the view gets
    the object and the client's network (`web.network`), and a `Refused` it raises is answered
    by `refuse` (403, counted; 429 past the network's limit), an `Unusable` by a 400."""

    def decorate(view):
        @functools.wraps(view)
        def preamble():
            if not getattr(newsletter().settings, setting):
                return error(404)
            payload = _json_object(request.get_data(cache=True))
            if payload is None:
                return answer(400, not_json)
            client = network(request.remote_addr)
            try:
                return view(payload, client)
            except Refused as problem:
                return refuse(client, str(problem))
            except Unusable as problem:
                return answer(400, str(problem))

        return preamble

    return decorate


# Mailgun ----------------------------------------------------------------------------------------
@bp.post("/webhooks/mailgun")
@webhook("mailgun_webhook_key",
         'The body must be a JSON object: {"signature": ..., "event-data": ...}.')  # fmt: skip
def mailgun(payload: dict, client: str) -> Response:
    nl = newsletter()
    signed = _mailgun_verified(payload.get("signature"), nl.settings.feedback.mailgun_webhook_key)
    if signed is None:
        raise Refused("The request is not signed with this endpoint's webhook key.")
    token, signed_at = signed
    if abs(time.time() - signed_at) > MAILGUN_MAX_SKEW:
        raise Refused("The signature's timestamp is more than 5 minutes from now.")
    with nl.database.transaction() as db:  # kept whatever the event says: one use, ever
        if not claim_token(db, f"mailgun:{token}", nl.database.clock()):
            return answer(406, "This signature's token was used before: a webhook is taken once.")
    try:
        return _mailgun_event(payload.get("event-data"), signed_at)
    except Unusable:
        raise  # a 400 about what the provider sent: the token stays spent
    except BaseException:
        release_token(nl.database, f"mailgun:{token}")  # our failure (503): the retry is taken
        raise


def _mailgun_verified(signature, key: str) -> tuple[str, int] | None:
    """The token and timestamp of a correctly signed request, or None."""
    if not isinstance(signature, dict):
        return None
    timestamp, token, digest = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not (
        isinstance(timestamp, str) and re.fullmatch(r"[0-9]{1,12}", timestamp)
        and isinstance(token, str) and re.fullmatch(r"[\x21-\x7e]{1,256}", token)
        and isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest)
    ):  # fmt: skip
        return None
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest.lower()):
        return None
    return token, int(timestamp)


def _mailgun_event(data, signed_at: int) -> Response:
    if not isinstance(data, dict):
        return answer(400, "The webhook has no event-data object.")
    name = data.get("event")
    if name not in ("failed", "complained"):
        return answer(
            406,
            "This endpoint takes Mailgun's failed and complained events only; this one is "
            "not applied (and need not be sent again).",
        )
    found = _mailgun_feedback(data, signed_at)
    if found is None:
        return answer(200, "Not a bounce or a complaint: nothing to apply.", applied="ignored")
    applied = _apply(*found)
    log.info("mailgun %s: %s", found[0].kind, applied)
    return answer(200, "Recorded.", applied=applied.value)


def _mailgun_feedback(data: dict, signed_at: int) -> tuple[Event, str, str] | None:
    """(the event, the recipient's key, their address) of a failed or complained event."""
    status = data.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    reason = text(data.get("reason"))
    code = status.get("code")
    code = int(code) if isinstance(code, str) and re.fullmatch(r"[0-9]{3}", code) else code
    if data["event"] == "complained" or code == 607 or reason == "suppress-complaint":
        kind = Kind.COMPLAINT
    elif code == 605 or reason == "suppress-bounce":
        kind = Kind.HARD_BOUNCE
    elif code == 606 or reason == "suppress-unsubscribe":
        return None  # on Mailgun's own unsubscribe list: the address works
    elif data.get("severity") == "permanent":
        kind = Kind.HARD_BOUNCE
    elif data.get("severity") == "temporary":
        kind = Kind.SOFT_BOUNCE
    else:
        raise Unusable("A failed event needs severity permanent or temporary.")
    recipient = _recipient(data.get("recipient"))
    if recipient is None:
        raise Unusable("The event has no recipient address.")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 200:
        raise Unusable("The event has no id.")
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    message_id = text(headers.get("message-id")) if isinstance(headers, dict) else ""
    if message_id and not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    words = text(status.get("message")) or text(status.get("description")) or reason
    event = Event(
        kind=kind,
        public_id=proof.proven_by_message_id(newsletter().settings, message_id) or "",
        provider="mailgun",
        occurred_at=_epoch(data.get("timestamp")) or _epoch(signed_at) or datetime.now(UTC),
        reason=words or ("spam complaint" if kind == Kind.COMPLAINT else ""),
        message_id=message_id[:300] or None,
        key=f"mailgun:{event_id}",
    )
    return event, *recipient


def _apply(event: Event, key: str, address: str) -> Applied:
    """Record a report about `address` when its proof names that very subscriber; otherwise
    keep it for review and change nobody."""
    feedback = _feedback()
    subscriber = feedback.subscribers.get(event.public_id) if event.public_id else None
    if subscriber is not None and subscriber.email_key == key:
        return feedback.record(event)
    why = ("no Message-ID of ours proves that we mailed this address" if not event.public_id
           else "its Message-ID proves a message to someone else")  # fmt: skip
    return feedback.review(
        Claim(
            provider=event.provider,
            report_key=event.key or "",
            kind=event.kind,
            addresses=(address,),
            why=why,
            reason=event.reason,
            message_id=event.message_id,
        )  # fmt: skip
    )


# Amazon SES, through SNS ------------------------------------------------------------------------
@bp.post("/webhooks/ses")
@webhook("ses_topic_arn", "The body must be an SNS message: a JSON object.")
def ses(message: dict, client: str) -> Response:
    settings = newsletter().settings
    kind = message.get("Type")
    if not isinstance(kind, str) or kind not in SNS_SIGNED:
        return answer(400, "Not an SNS message: Type must be Notification or a confirmation.")
    signed = _sns_signed_text(message, kind)
    if signed is None:
        return answer(400, "The SNS message lacks a field it must have, or has one not a string.")
    if message["TopicArn"] != settings.feedback.ses_topic_arn:
        raise Refused("This endpoint takes the messages of one SNS topic, not this one.")
    version = message.get("SignatureVersion")
    signature = _base64(message.get("Signature"))
    url = message.get("SigningCertURL")
    if (
        version not in ("1", "2")
        or signature is None
        or not sns_url_allowed(url, SNS_CERT_PATH, _sns_host())
        or not _same_region(url, settings.feedback.ses_topic_arn)
    ):
        raise Refused("The SNS message is not signed, or its certificate is not SNS's.")
    sent = _iso(message["Timestamp"])
    now = datetime.now(UTC)
    if sent is None or (now - sent).total_seconds() > settings.feedback.sns_max_age:
        return answer(403, "The SNS message is too old (or undated): a replay is not taken.")
    if (sent - now).total_seconds() > SNS_MAX_AHEAD:
        return answer(403, "The SNS message is dated in the future: it is not taken.")
    try:
        certificate = webhooks().certificates.get(url, client, _sns_verify())
    except CertificateBudget as problem:
        return answer(429, f"Cannot check the signature now: {problem}.", retry_after=60)
    except CertificateUnavailable as problem:
        return answer(503, f"Cannot check the signature now: {problem}.", retry_after=60)
    except CertificateRefused as problem:
        log.warning("SNS certificate %s refused: %s", url, problem)
        raise Refused("The SNS message's signing certificate is not usable.") from None
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # SNS's versions 1 and 2
    try:
        certificate.public_key().verify(signature, signed, padding.PKCS1v15(), digest)
    except InvalidSignature:
        raise Refused("The SNS message's signature does not match it.") from None
    if kind == "SubscriptionConfirmation":
        return _confirm_subscription(message)
    if kind == "UnsubscribeConfirmation":
        log.warning("SNS: the subscription to %s was ended", message["TopicArn"])
        return answer(200, "Noted: the subscription was ended.")
    return _ses_notification(message)


def _same_region(url: str, topic_arn: str) -> bool:
    """An SNS certificate host names the region (`sns.<region>.amazonaws.com`): it must be the
    topic's own (`arn:aws:sns:<region>:...`). A host without a region (tests) is not checked."""
    found = re.match(r"sns\.([a-z0-9-]+)\.amazonaws\.com", urlsplit(url).netloc)
    parts = topic_arn.split(":")
    return found is None or (len(parts) > 3 and found.group(1) == parts[3])


def sns_url_allowed(url, path: re.Pattern | None = None, host: re.Pattern = SNS_CERT_HOST) -> bool:
    """An https:// URL of SNS's own (its whole netloc matches `host`: `SNS_CERT_HOST`), without
    user part, query or fragment when `path` is given (a certificate), whose path matches
    `path`."""
    if not isinstance(url, str) or len(url) > 2000:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme != "https" or not host.fullmatch(parts.netloc):
        return False
    return path is None or (
        not parts.query and not parts.fragment and bool(path.fullmatch(parts.path))
    )


def _sns_signed_text(message: dict, kind: str) -> bytes | None:
    """SNS's string to sign ("Name\\nvalue\\n" for each signed field), or None when a field it
    needs is missing or not text."""
    lines = []
    for name in SNS_SIGNED[kind]:
        value = message.get(name)
        if name == "Subject" and value is None:
            continue  # signed only when present
        if not isinstance(value, str):
            return None
        lines.append(f"{name}\n{value}\n")
    try:
        return "".join(lines).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        return None


def _sns_host() -> re.Pattern:
    """The hosts this app trusts as SNS's (`SNS_CERT_HOST`, unless its config says otherwise)."""
    return current_app.config.get(SNS_CERT_HOST_CONFIG) or SNS_CERT_HOST


def _sns_verify() -> bool | str:
    """How this app checks SNS's TLS certificate: requests' `verify=` (True: the system's CAs)."""
    return current_app.config.get(SNS_TLS_VERIFY_CONFIG) or True


def _confirm_subscription(message: dict) -> Response:
    url = message["SubscribeURL"]
    if not sns_url_allowed(url, host=_sns_host()):
        raise Refused("The subscription URL is not one of SNS's own.")
    try:
        with requests.get(url, timeout=newsletter().settings.http.timeout, verify=_sns_verify(),
                          allow_redirects=False) as response:  # fmt: skip
            status = response.status_code
    except requests.RequestException as problem:
        log.warning("SNS subscription confirmation failed: %s", problem)
        return answer(503, "Could not reach SNS to confirm the subscription.", retry_after=60)
    if status != 200:
        log.warning("SNS subscription confirmation answered %s", status)
        return answer(502, f"SNS answered {status} to the subscription confirmation.")
    log.info("SNS: subscribed to %s", message["TopicArn"])
    return answer(200, "Subscribed to the topic.")


def _ses_notification(message: dict) -> Response:
    content = _json_object(message["Message"])
    if content is None:
        return answer(400, "The notification's Message is not a JSON object.")
    name = content.get("notificationType") or content.get("eventType")
    if name not in ("Bounce", "Complaint"):
        return answer(200, "Not a bounce or a complaint: nothing to apply.", applied=[])
    found = _ses_feedback(content, name, message)
    with newsletter().database.transaction():
        applied = [_apply(*one).value for one in found]
    log.info("ses %s: %s", name, ", ".join(applied) or "no recipient")
    return answer(200, "Recorded.", applied=applied)


def _ses_feedback(content: dict, name: str, message: dict) -> list[tuple[Event, str, str]]:
    if name == "Bounce":
        report = content.get("bounce")
        listed = "bouncedRecipients"
        report_type = report.get("bounceType") if isinstance(report, dict) else None
        kind = SES_BOUNCE_KINDS.get(report_type) if isinstance(report_type, str) else None
        if kind is None:
            raise Unusable("A bounce needs bounceType Permanent, Transient or Undetermined.")
        general = f"{report_type} bounce: {text(report.get('bounceSubType'))}".rstrip(": ")
    else:
        report = content.get("complaint")
        listed, kind = "complainedRecipients", Kind.COMPLAINT
        if not isinstance(report, dict):
            raise Unusable("A complaint notification needs its complaint object.")
        general = "spam complaint: " + (text(report.get("complaintFeedbackType")) or "abuse")
    recipients = report.get(listed)
    if not isinstance(recipients, list) or not recipients:
        raise Unusable(f"The notification lists no {listed}.")
    mail = content.get("mail")
    mail = mail if isinstance(mail, dict) else {}
    common = mail.get("commonHeaders")
    ours = text(common.get("messageId")) if isinstance(common, dict) else ""
    message_id = ours or text(mail.get("messageId"))  # our Message-ID, else SES's own id
    public_id = proof.proven_by_message_id(newsletter().settings, ours) or ""
    occurred = _iso(report.get("timestamp")) or _iso(message["Timestamp"]) or datetime.now(UTC)
    found, seen = [], set()
    for recipient in recipients[:MAX_RECIPIENTS]:
        address = _recipient(recipient.get("emailAddress") if isinstance(recipient, dict) else None)
        if address is None or address[0] in seen:
            continue
        seen.add(address[0])
        words = text(recipient.get("diagnosticCode")) or general
        event = Event(
            kind=kind,
            public_id=public_id,
            provider="ses",
            occurred_at=occurred,
            reason=words,
            message_id=message_id[:300] or None,
            key=f"ses:{message['MessageId']}:{address[0]}",
        )
        found.append((event, *address))
    if not found:
        raise Unusable(f"The notification's {listed} have no email address.")
    return found


# Shared -----------------------------------------------------------------------------------------
def answer(status: int, message: str, *, retry_after: float | None = None, **data) -> Response:
    """A webhook's answer: always JSON, for a provider, not a person."""
    response = jsonify(ok=status < 400, message=message, **data)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
    return response


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_problem) -> Response:
    limit = newsletter().settings.endpoint.max_request_bytes // 1024
    return answer(413, f"The request is too large: at most {limit} KB is accepted.")


def _database_busy(problem) -> Response:
    log.error("webhook %s: database error: %s", request.path, problem)
    return answer(503, "The database is busy: send this again in a moment.", retry_after=30)


for _busy in BUSY:  # SQLite's, and PostgreSQL's when it is the database
    bp.register_error_handler(_busy, _database_busy)


def refuse(client: str, message: str) -> Response:
    """403 for a request we cannot trust; it counts against the client's network, and past the
    network's limit the answer is 429 (a correctly signed request never comes here)."""
    wait = webhooks().refusals.hit(client)
    log.warning("webhook %s refused from %s: %s", request.path, request.remote_addr, message)
    if wait is not None:
        return answer(429, "Too many refused requests from your network.", retry_after=wait)
    return answer(403, message)


def _feedback() -> Feedback:
    nl = newsletter()
    return Feedback.from_settings(nl.database, nl.settings)


def _json_object(raw) -> dict | None:
    """A JSON object, or None; nested deeper than the form allows: None, unparsed."""
    if nesting(raw.encode() if isinstance(raw, str) else raw) > MAX_JSON_DEPTH:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _recipient(value) -> tuple[str, str] | None:
    """(key, address) of a provider's recipient field ("a@b" or "Name <a@b>"), read and keyed
    by `addresses.parse` like a sign-up (so punycode, Unicode and NFD spellings of a domain are
    one), or None."""
    try:
        email, key = addresses.parse(value)
    except addresses.InvalidAddress:
        return None
    return key, email


def _epoch(value) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(value) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _base64(value) -> bytes | None:
    if not isinstance(value, str) or len(value) > 4096:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


__all__ = [
    "SNS_CERT_HOST",
    "SNS_CERT_HOST_CONFIG",
    "SNS_TLS_VERIFY_CONFIG",
    "Refused",
    "Webhooks",
    "bp",
    "claim_token",
    "sns_url_allowed",
    "webhook",
]
