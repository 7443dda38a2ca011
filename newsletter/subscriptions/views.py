"""The subscription endpoint's views: one Flask Blueprint, `bp`, with module-level views.

Routes (each answers JSON when asked for it, with `Accept: application/json` or a JSON body, and
a page in the blog's look otherwise):
- `POST /subscribe` (form-encoded or JSON: `email`, `source`, honeypot `website`, and the
  reader's choice: `topics`, repeated (JSON: a list), and `frequency`, "each" or "weekly", see
  `topics.from_form`; absent: everything, at the site's default frequency): validates the
  address (email-validator, no DNS) and the choice (a clear 400 naming the topic or value),
  stores a sign-up request (one insert; the background sender
  records consent and queues the confirmation email), wakes the sender and answers at once, the
  same way whether or not the address is known. At most one confirmation per address per 10
  minutes; a rate limit per client network, shared by every worker (in the database); a
  request-size limit; CORS for the site's origin only.
  `GET /subscribe` shows the form.
- `GET /confirm/<token>`: a page with a button; its `POST` confirms (idempotent; the first one
  owes the welcome email and wakes the sender). Tampered/forged: 400; expired: 410.
- `GET /unsubscribe/<token>`: a page with an Unsubscribe button (link scanners only GET).
  `POST /unsubscribe/<token>`: unsubscribes at once; RFC 8058's one-click POST
  (`List-Unsubscribe=One-Click`) gets 200 and no redirect.
- `GET /healthz`: 200 when the database answers, 503 otherwise.
Bad input never causes a 500: every 4xx carries a sentence saying what was wrong, and rejected
input stores nothing. The views read what the app holds from `newsletter()` (see `app`).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from blog.feed_contract import FREQUENCIES
from newsletter.database import ERRORS
from newsletter.settings import WEEKDAYS
from newsletter.subscriptions import addresses, digests, topics
from newsletter.subscriptions.choices import default_frequency
from newsletter.subscriptions.emails import preferences_url, unsubscribe_url
from newsletter.subscriptions.subscribers import Confirmation, Status
from newsletter.subscriptions.tokens import ExpiredToken, InvalidToken
from newsletter.subscriptions.web import (
    MESSAGES,
    error,
    form_source,
    honeypot_filled,
    ip_hash,
    mask,
    minutes,
    network,
    newsletter,
    page,
    submitted,
    wants_json,
)

log = logging.getLogger(__name__)
bp = Blueprint("subscriptions", __name__)

THANKS = (
    "Almost done: if this address is not on the list yet, an email with a confirmation link is "
    "on its way. Open it and click the link to confirm."
)


@bp.get("/subscribe")
def subscribe_form():
    source = form_source(request.args)
    return page("subscribe.html", title="Stay tuned", source=source, **_offered())


def _offered() -> dict:
    """What the subscribe page's form offers: the topics, the default frequency."""
    settings = newsletter().settings
    return dict(
        NEWSLETTER_TOPIC_CHOICES=[vars(t) for t in topics.available(settings)],
        NEWSLETTER_DEFAULT_FREQUENCY=default_frequency(settings.announce.mode),
    )


@bp.post("/subscribe")
def subscribe():
    """The same work and the same answer for every valid address: one stored request. Every
    POST takes a token of the client's network from the shared limit (past it: 429, whatever
    the body); a valid one takes it in the same transaction as the insert."""
    nl = newsletter()
    settings = nl.settings
    client = network(request.remote_addr)
    try:
        data = submitted()
    except HTTPException:
        if refused := _spend(client):
            return refused
        raise
    source = form_source(data)
    if honeypot_filled(data.get("website")):  # the honeypot: only bots fill it; tell them nothing
        if refused := _spend(client):
            return refused
        log.info("honeypot filled; nothing stored")
        return subscribed(source)
    try:
        email, key = addresses.normalize(data.get("email"))
    except addresses.InvalidAddress as problem:
        if refused := _spend(client):
            return refused
        typed = data.get("email") if isinstance(data.get("email"), str) else ""
        return error(
            400, str(problem), template="subscribe.html", email=typed[:300], source=source,
            **_offered(),
        )  # fmt: skip
    try:
        chosen, frequency = _choice(data, settings)
    except ValueError as problem:
        if refused := _spend(client):
            return refused
        return error(
            400, str(problem), template="subscribe.html", email=email, source=source, **_offered()
        )
    client_hash = ip_hash(settings.core.secret_key, request.remote_addr)
    # One short write: the token and the request, or neither; safe side by side (a rate-limit
    # row update and an insert), so PostgreSQL runs it without the writer lock.
    with nl.database.transaction(concurrent=True):
        if (wait := nl.limiter.hit(client)) is None:
            nl.subscribers.request(
                email, key, source=source, ip_hash=client_hash, topics=chosen, frequency=frequency
            )
    if wait is not None:
        return _too_many(wait)
    nl.sender.start()  # no-op when running; restarts it in a forked worker
    nl.sender.wake()
    return subscribed(source)


def _choice(data, settings) -> tuple[str | None, str]:
    """The posted topics (encoded) and frequency, or ValueError saying what is wrong."""
    if hasattr(data, "getlist"):  # a form: `topics` repeated
        values = data.getlist("topics")
    else:  # JSON: a list of slugs, or one
        values = data.get("topics")
        values = [] if values is None else values if isinstance(values, list) else [values]
    if len(values) > topics.MAX_VALUES:
        raise ValueError(f"Too many topics sent ({len(values)}); at most {topics.MAX_VALUES}.")
    if not all(isinstance(value, str) for value in values):
        raise ValueError("Each topic must be a text value, like knees.")
    available = topics.available(settings) if values else []
    known = {topic.slug for topic in available}
    if known and any(value.strip() and value.strip() not in known for value in values):
        available = topics.reread(settings)  # a topic the blog published since?
    chosen = topics.from_form(values, available)
    frequency = data.get("frequency")
    if frequency is None or frequency == "":
        frequency = default_frequency(settings.announce.mode)
    if not isinstance(frequency, str) or frequency.strip().lower() not in FREQUENCIES:
        shown = ascii(frequency)[:40] if isinstance(frequency, str) else "that value"
        raise ValueError(f"How often: {shown} is not a choice; use each or weekly.")
    return topics.encode(chosen), frequency.strip().lower()


def _spend(client: str) -> Response | None:
    """Take this POST's token from the client network's limit: None, or the 429 to answer."""
    wait = newsletter().limiter.hit(client)
    return None if wait is None else _too_many(wait)


def _too_many(wait: float) -> Response:
    return error(429, MESSAGES[429].format(minutes=minutes(wait)), retry_after=wait)


def subscribed(source):
    settings = newsletter().settings
    if wants_json():
        return jsonify(ok=True, message=THANKS)
    return page(
        "message.html",
        title="Check your inbox",
        lead=THANKS,
        notes=[
            f"The link works for {settings.endpoint.confirm_max_age // 3600} hours. Nothing after "
            "a few minutes? Look in your spam or promotions folder, or try again later.",
        ],
        back=source,
    )


@bp.get("/confirm/<token>")
def confirm_page(token):
    """What the link in the confirmation email opens: a page with one button. Link scanners
    fetch every link in an email; a GET (or HEAD) never confirms."""
    outcome, subscriber = newsletter().subscribers.confirmation(*_confirm_token(token))
    if outcome != Confirmation.CONFIRMED:
        return _not_confirmed(outcome, subscriber)
    if wants_json():
        return jsonify(ok=True, status=subscriber.status.value, confirm="POST this URL")
    return page("confirm.html", title="Confirm your subscription", masked=mask(subscriber.email))


@bp.post("/confirm/<token>")
def confirm(token):
    nl = newsletter()
    outcome, subscriber = nl.subscribers.confirm(*_confirm_token(token))
    if outcome != Confirmation.CONFIRMED:
        return _not_confirmed(outcome, subscriber)
    nl.sender.start()  # no-op when running; restarts it in a forked worker
    nl.sender.wake()  # the welcome email owed with the confirmation goes now
    return confirmed(subscriber, already=False)


def _confirm_token(token: str) -> tuple[str, str]:
    try:
        return newsletter().tokens.read_confirm(token)
    except ExpiredToken as problem:
        raise LinkProblem(
            error(410, str(problem), template="subscribe.html", title="Link expired")
        ) from None
    except InvalidToken as problem:
        raise LinkProblem(error(400, str(problem), title="Link not valid")) from None


def _not_confirmed(outcome: Confirmation, subscriber) -> Response:
    """The answer for a link that does not confirm: already done, forgotten, or stale."""
    if outcome == Confirmation.ALREADY_CONFIRMED:
        return confirmed(subscriber, already=True)
    if outcome == Confirmation.UNKNOWN:
        return error(
            404,
            "There is no subscription for this link: it may have been deleted at the "
            "subscriber's request. You can subscribe again below.",
            template="subscribe.html",
            title="No subscription",
        )
    return error(
        410,
        "This confirmation link is no longer valid: a newer one was sent, or the "
        "subscription was ended since. Subscribe again to get a fresh link.",
        template="subscribe.html",
        title="Link no longer valid",
    )


def confirmed(subscriber, *, already: bool) -> Response:
    nl = newsletter()
    settings = nl.settings
    if already:
        message = "You were already subscribed: nothing has changed."
    elif subscriber.frequency == digests.WEEKLY:  # the reader's choice on the form
        day = WEEKDAYS[settings.announce.digest_weekday].capitalize()
        message = (
            f"Thank you! You will get one email from {settings.core.site_name} a week, on "
            f"{day}s, with what is new."
        )
    else:
        message = (
            f"Thank you! You will get one email from {settings.core.site_name} each time a new "
            "article is out."
        )
    if wants_json():
        return jsonify(ok=True, status=subscriber.status.value, message=message)
    return page(
        "message.html",
        title="You’re subscribed" if not already else "Already subscribed",
        lead=message,
        notes=["Every email has a link to unsubscribe with one click."],
        unsubscribe=unsubscribe_url(settings, nl.tokens, subscriber.public_id),
        preferences=preferences_url(settings, nl.tokens, subscriber.public_id),
    )


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token):
    """A page with an Unsubscribe button: link scanners only GET, and a GET changes nothing."""
    nl = newsletter()
    subscriber = nl.subscribers.get(_unsubscribe_token(token))
    active = subscriber is not None and subscriber.status in (Status.UNCONFIRMED, Status.CONFIRMED)
    if wants_json():
        return jsonify(ok=True, subscribed=active)
    if not active:
        return page(
            "message.html",
            title="You’re not subscribed",
            lead=f"This address gets no emails from {nl.settings.core.site_name}.",
        )
    return page("unsubscribe.html", title="Unsubscribe", masked=mask(subscriber.email))


@bp.post("/unsubscribe/<token>")
def unsubscribe(token):
    nl = newsletter()
    nl.subscribers.unsubscribe(_unsubscribe_token(token))
    done = f"{nl.settings.core.site_name} will not email this address again."
    if request.form.get("List-Unsubscribe") == "One-Click" or wants_json():
        # RFC 8058: the mail provider posts this; answer 200, no redirect, nothing to load.
        return jsonify(ok=True, message="You’re unsubscribed: " + done)
    return page(
        "message.html",
        title="You’re unsubscribed",
        lead=done,
        notes=["Changed your mind? The “Stay tuned” form on the site signs you up again."],
    )


def _unsubscribe_token(token: str) -> str:
    try:
        return newsletter().tokens.read_unsubscribe(token)
    except InvalidToken as problem:
        raise LinkProblem(error(400, str(problem), title="Link not valid")) from None


class LinkProblem(Exception):
    """A link that cannot be used; carries the answer to give."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


@bp.app_errorhandler(LinkProblem)
def link_problem(problem: LinkProblem):
    return problem.response


@bp.get("/healthz")
def healthz():
    """ok or not ok, and the sender's state: never a count that moves with one address."""
    nl = newsletter()
    try:
        nl.database.db.execute("SELECT 1 FROM subscribers LIMIT 1").fetchall()
    except ERRORS as problem:
        log.error("healthz: database error: %s", problem)
        return jsonify(status="error", database="unavailable"), 503
    return jsonify(status="ok", database="ok", sender="running" if nl.sender.running else "stopped")


__all__ = ["THANKS", "bp"]
