"""The preferences page's views: one Flask Blueprint, `bp`, thin over `preferences.Preferences`.

Routes (pages in the blog's look; every link carries a signed token, no login):
- `GET /preferences/<token>`: the reader's address, topics (checkboxes) and how often, a form
  to change the address and an Unsubscribe button (a POST to the unsubscribe link). Changes
  nothing (the app runs every non-POST read-only).
- `POST /preferences/<token>`: `topics` (repeated, after one empty marker) and `frequency`
  (`each`, `weekly`), stored through `Choices.set`. Bad values: 400 with the page and the
  reason, nothing stored.
- `POST /preferences/<token>/address`: `email`, the new address; its confirmation email goes
  to that address (at most `ADDRESS_RATE` requests per reader). The answer is the same whether
  or not that address is on the list.
- `GET /address/<token>`: the link in that email: a page with a button; its `POST` makes the
  new address take over. Tampered: 400; expired: 410; replaced, used or the reader gone: 410;
  the address on the list by then: 409, nothing changes.
Only a `confirmed` reader gets the page: one who left sees the "Stay tuned" form with their
address, to subscribe again (a new confirmation); an unconfirmed one is told to confirm first.
A token is the only key: a form on another site cannot post here without the reader's token.
"""

from __future__ import annotations

from flask import Blueprint, Response

from newsletter.ratelimit import Rate
from newsletter.subscriptions import addresses
from newsletter.subscriptions.address_changes import AddressChanges, Change, Requested
from newsletter.subscriptions.emails import preferences_url, unsubscribe_url
from newsletter.subscriptions.preferences import PreferenceError, Preferences
from newsletter.subscriptions.subscribers import Status, Subscriber
from newsletter.subscriptions.tokens import ExpiredToken, InvalidToken
from newsletter.subscriptions.views import LinkProblem
from newsletter.subscriptions.web import MESSAGES, error, mask, minutes, newsletter, page, submitted

bp = Blueprint("preferences", __name__)
ADDRESS_RATE = Rate(5, 3600)  # changes of address asked, per reader
TITLE = "Your preferences"


def _preferences() -> Preferences:
    nl = newsletter()
    return Preferences(nl.settings, nl.database)


@bp.get("/preferences/<token>")
def preferences_page(token):
    prefs = _preferences()
    subscriber = _reader(prefs, token)
    if subscriber.status != Status.CONFIRMED:
        return _not_subscribed(subscriber)
    return _page(prefs, subscriber, token)


@bp.post("/preferences/<token>")
def choose(token):
    prefs = _preferences()
    subscriber = _reader(prefs, token)
    if subscriber.status != Status.CONFIRMED:
        return _not_subscribed(subscriber, status=409)
    data = submitted()
    try:
        prefs.choose(subscriber, _listed(data, "topics"), data.get("frequency"))
    except PreferenceError as problem:
        return _page(prefs, subscriber, token, status=400, lead=str(problem), error=True)
    return _page(prefs, subscriber, token, lead="Saved: your choices apply from the next email.")


@bp.post("/preferences/<token>/address")
def move(token):
    nl = newsletter()
    prefs = _preferences()
    subscriber = _reader(prefs, token)
    if subscriber.status != Status.CONFIRMED:
        return _not_subscribed(subscriber, status=409)
    data = submitted()
    typed = data.get("email") if isinstance(data.get("email"), str) else ""
    try:
        addresses.normalize(data.get("email"))
    except addresses.InvalidAddress as problem:
        return _page(prefs, subscriber, token, status=400, lead=str(problem), error=True,
                     address_error=True, typed=typed[:300])  # fmt: skip
    limiter = nl.shared_limiter("address-change", ADDRESS_RATE)
    with nl.database.transaction():  # the token and the request, or neither
        if (wait := limiter.hit(subscriber.public_id)) is None:
            outcome = prefs.move(subscriber, data.get("email"))
    if wait is not None:
        return error(429, MESSAGES[429].format(minutes=minutes(wait)), retry_after=wait)
    if outcome == Requested.SAME:
        return _page(
            prefs, subscriber, token, lead="That is already your address: nothing changed."
        )
    nl.sender.start()  # no-op when running; restarts it in a forked worker
    nl.sender.wake()
    pending = prefs.changes.pending(subscriber.id)
    hours = nl.settings.endpoint.confirm_max_age // 3600
    return page(
        "preferences_message.html",
        title="Check the new inbox",
        lead=f"We sent a link to {pending.email}. The new address takes over once you open it "
        f"there (it works for {hours} hours); until then, emails keep going to "
        f"{subscriber.email}.",
        notes=["Nothing after a few minutes? Look in the spam folder, or ask again."],
        back=preferences_url(nl.settings, nl.tokens, subscriber.public_id),
        back_label="Back to your preferences",
    )


@bp.get("/address/<token>")
def address_page(token):
    outcome, subscriber, pending = AddressChanges(newsletter().database).check(*_address(token))
    if outcome != Change.CHANGED:
        return _not_changed(outcome)
    return page("address.html", title="Confirm your new address", new=pending.email,
                old=mask(subscriber.email))  # fmt: skip


@bp.post("/address/<token>")
def address_confirm(token):
    nl = newsletter()
    outcome, subscriber = AddressChanges(nl.database).confirm(*_address(token))
    if outcome != Change.CHANGED:
        return _not_changed(outcome)
    return page(
        "preferences_message.html",
        title="Your address is changed",
        lead=f"{nl.settings.core.site_name} now writes to {subscriber.email}.",
        notes=["The links in earlier emails no longer work: use the ones in the next email."],
        back=preferences_url(nl.settings, nl.tokens, subscriber.public_id),
        back_label="Your preferences",
    )


# Answers ----------------------------------------------------------------------------------------
def _page(prefs: Preferences, subscriber: Subscriber, token: str, status: int = 200,
          **context) -> Response:  # fmt: skip
    nl = newsletter()
    context.setdefault("lead", None)
    return page(
        "preferences.html",
        status,
        title=TITLE,
        view=prefs.view(subscriber),
        action=f"{nl.settings.core.base_url}/preferences/{token}",
        unsubscribe=unsubscribe_url(nl.settings, nl.tokens, subscriber.public_id),
        **context,
    )


def _not_subscribed(subscriber: Subscriber, status: int = 200) -> Response:
    """The page of a reader who is not (or no longer) confirmed: a way back, nothing changed."""
    site = newsletter().settings.core.site_name
    if subscriber.status == Status.UNCONFIRMED:
        lead = (f"This address is not confirmed yet: open the link in the confirmation email "
                f"from {site} first. Lost it? Sign up again below.")  # fmt: skip
    else:
        lead = f"This address gets no emails from {site}. To get them again, subscribe below."
    if status != 200:
        lead = "Nothing was changed. " + lead
    return page("subscribe.html", status, title="You’re not subscribed", lead=lead,
                error=status != 200, email=subscriber.email, source=None)  # fmt: skip


def _not_changed(outcome: Change) -> Response:
    if outcome == Change.TAKEN:
        return error(
            409,
            "This address is already on the list, so nothing was changed: two subscriptions "
            "are never merged. To get the emails here, subscribe with this address.",
            template="subscribe.html",
            title="Address already on the list",
        )
    return error(
        410,
        "This link is no longer valid: the change was already made, a newer one was asked "
        "for, or the subscription has ended. Ask again on your preferences page.",
        title="Link no longer valid",
    )


def _reader(prefs: Preferences, token: str) -> Subscriber:
    try:
        public_id = newsletter().tokens.read_preferences(token)
    except InvalidToken as problem:
        raise LinkProblem(error(400, str(problem), title="Link not valid")) from None
    subscriber = prefs.reader(public_id)
    if subscriber is None:
        raise LinkProblem(
            error(
                404,
                "There is no subscription for this link: it may have been deleted at the "
                "subscriber's request, or its address changed since. You can subscribe below.",
                template="subscribe.html",
                title="No subscription",
            )
        )
    return subscriber


def _address(token: str) -> tuple[str, str]:
    try:
        return newsletter().tokens.read_address(token)
    except ExpiredToken as problem:
        raise LinkProblem(error(410, str(problem), title="Link expired")) from None
    except InvalidToken as problem:
        raise LinkProblem(error(400, str(problem), title="Link not valid")) from None


def _listed(data, name: str) -> list[str]:
    """A repeated form field, or a JSON body's list of texts (anything else: a 400)."""
    if hasattr(data, "getlist"):
        return data.getlist(name)
    value = data.get(name)
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise PreferenceError(f"“{name}” must be a list of texts.")


__all__ = ["ADDRESS_RATE", "bp"]
