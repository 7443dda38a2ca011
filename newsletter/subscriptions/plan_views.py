"""The endpoint's views for following an exercise plan by email (issue 21): Blueprint `bp`,
registered by the app factory; the work is `plan_follows.PlanFollows`'s (app.extensions
["plan_follows"]), these views only read the request and choose the answer.

Routes (pages in the blog's look; JSON when asked, as the other views):
- `POST /plans/follow` (the exercise card's form: `email`, `plan`, `weekday` 0-6, `hour` 0-23,
  `newsletter` "1", `source`, honeypot `website`): the same rate limit as /subscribe (shared
  bucket per client network); bad input is a 400 saying what to fix, and nothing is stored; a
  filled honeypot gets the thank-you page and nothing is stored; the site's plans unreadable:
  503. Otherwise the follow is requested (its confirmation owed) and the thank-you page says
  what is stored, for how long, and "check your inbox" - the same page whatever the address's
  state (following already, asked a minute ago, new).
- `GET /plans/confirm/<token>`: a page with a Confirm button (a GET never confirms); its
  `POST` confirms (idempotent). Tampered: 400; expired: 410; stale (a newer request, or over):
  410; unknown (stopped, erased): 404.
- `GET /plans/stop/<token>` / `GET /plans/stop-all/<token>`: a page with a Stop button; their
  `POST` deletes the follow (or every follow of its address) at once; the RFC 8058 one-click
  POST (`List-Unsubscribe=One-Click`) gets 200 and no redirect. Idempotent: stopping twice is
  fine. A stop link of another kind (or a confirm link) is a 400.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request

from newsletter.database import parse_stamp
from newsletter.subscriptions.plan_emails import when
from newsletter.subscriptions.plan_follows import InvalidFollow, PlanFollows
from newsletter.subscriptions.plans import PlansUnavailable
from newsletter.subscriptions.tokens import ExpiredToken, InvalidToken
from newsletter.subscriptions.views import LinkProblem
from newsletter.subscriptions.web import (
    MESSAGES,
    error,
    form_source,
    honeypot_filled,
    mask,
    minutes,
    network,
    newsletter,
    page,
    submitted,
    wants_json,
)

log = logging.getLogger(__name__)
bp = Blueprint("plans", __name__, url_prefix="/plans")
MAX_FIELD = 1000  # characters of a field we read at all (an address is at most 254)
UNAVAILABLE = (
    "The exercise plans could not be read from the site just now, so nothing was saved. Please "
    "try again in a few minutes."
)


def follows() -> PlanFollows:
    return current_app.extensions["plan_follows"]


def stored(keep_days: int, hours: int) -> str:
    """What is stored and for how long: said on the pages, as in the emails."""
    return (
        "What we keep: your email address, which plan you follow, the day and hour you chose, "
        "when the plan starts, and when and where you asked (the page, and a scrambled form of "
        f"your IP address); nothing else, and no tracking of any kind. It is deleted {keep_days} "
        "days after the plan’s last email, or at once when you stop the plan; if you don’t "
        f"confirm, within {hours} hours."
    )


@bp.post("/follow")
def follow():
    nl = newsletter()
    client = network(request.remote_addr)
    if (wait := nl.limiter.hit(client)) is not None:  # every POST takes a token, whatever it says
        return error(429, MESSAGES[429].format(minutes=minutes(wait)),
                     retry_after=wait)  # fmt: skip
    data = submitted()
    source = form_source(data)
    if honeypot_filled(data.get("website")):
        log.info("plan follow: honeypot filled; nothing stored")
        return _thanks(source, newsletter=False)
    values = [data.get(name) for name in ("email", "plan", "weekday", "hour")]
    if any(isinstance(value, str) and len(value) > MAX_FIELD for value in values):
        return error(400, "A field of the form is far too long.", back=source)
    ticked = data.get("newsletter") in ("1", 1, True, "on", "yes")
    try:
        result = follows().request(*values, source=source, ip=request.remote_addr,
                                   newsletter=ticked)  # fmt: skip
    except InvalidFollow as problem:
        return error(400, str(problem), back=source)
    except PlansUnavailable as problem:
        log.error("plan follow: %s", problem)
        return error(503, UNAVAILABLE, back=source, retry_after=60)
    log.info("plan follow request: %s", result.outcome)
    nl.sender.start()  # no-op when running; restarts it in a forked worker
    nl.sender.wake()
    return _thanks(source, newsletter=ticked)


def _thanks(source, *, newsletter: bool) -> Response:
    settings = current_app.extensions["newsletter"].settings
    hours = settings.endpoint.confirm_max_age // 3600
    lead = (
        "Almost done: an email with a confirmation link is on its way. Open it and press the "
        "button to start the plan; nothing is sent before you do."
    )
    if wants_json():
        return jsonify(ok=True, message=lead)
    notes = [
        f"The link works for {hours} hours. Nothing after a few minutes? Look in your spam or "
        "promotions folder. If you already follow this plan, nothing changes.",
        stored(settings.endpoint.plan_keep_days, hours),
    ]
    if newsletter:
        notes.append("You also asked for the newsletter: it has its own confirmation email.")
    return page("message.html", title="Check your inbox", lead=lead, notes=notes, back=source)


# Confirming -----------------------------------------------------------------------------------
@bp.get("/confirm/<token>")
def confirm_page(token):
    outcome, found = follows().confirmation(*_confirm_token(token))
    if outcome != "confirm":
        return _not_confirmed(outcome, found)
    if wants_json():
        return jsonify(ok=True, status=found.status, confirm="POST this URL")
    settings = newsletter().settings
    weekday, hour = when(found)
    return page(
        "plan_confirm.html",
        title="Follow this plan by email",
        plan=_plan(found),
        masked=mask(found.email),
        weekday=weekday,
        hour=hour,
        zone=settings.core.timezone,
        weeks=found.weeks,
        stored=stored(settings.endpoint.plan_keep_days, settings.endpoint.confirm_max_age // 3600),
    )


@bp.post("/confirm/<token>")
def confirm(token):
    public_id, nonce = _confirm_token(token)
    outcome, found = follows().confirmation(public_id, nonce)
    if outcome not in ("confirm", "already"):
        return _not_confirmed(outcome, found)
    found = follows().confirm(public_id, nonce)
    if found is None:  # changed between the two reads
        return _not_confirmed("stale", None)
    return _following(found, already=outcome == "already")


def _following(found, *, already: bool) -> Response:
    settings = newsletter().settings
    weekday, hour = when(found)
    start = parse_stamp(found.starts_at).astimezone(follows().zone)
    first = f"{weekday} {start.day} {start:%B} at {hour}"
    lead = (
        "You already follow this plan: nothing has changed."
        if already
        else f"You’re following it. The first email comes on {first} ({settings.core.timezone} "
        f"time), then one every {weekday} for {found.weeks} weeks, and a closing email."
    )
    if wants_json():
        return jsonify(ok=True, status=found.status, starts_at=found.starts_at, message=lead)
    plan = _plan(found)
    return page(
        "message.html",
        title=f"Following: {plan['title']}",
        lead=lead,
        notes=[
            "Every email has a link to stop this plan with one click, and one to stop all plans.",
            stored(settings.endpoint.plan_keep_days, settings.endpoint.confirm_max_age // 3600),
        ],
        unsubscribe=None,
        stop=follows().links(found)["stop"],
        back=plan.get("url") or None,
    )


def _not_confirmed(outcome: str, found) -> Response:
    if outcome == "already":
        return _following(found, already=True)
    if outcome == "unknown":
        return error(
            404,
            "There is no plan to confirm for this link: it was stopped, or its data deleted. "
            "You can ask again with the form on the exercise card.",
            title="Nothing to confirm",
        )
    return error(
        410,
        "This confirmation link is no longer valid: a newer one was sent, or the plan has ended. "
        "Use the newest email, or ask again with the form on the exercise card.",
        title="Link no longer valid",
    )


def _confirm_token(token: str) -> tuple[str, str]:
    try:
        return newsletter().tokens.read_plan_confirm(token)
    except ExpiredToken as problem:
        raise LinkProblem(error(410, str(problem), title="Link expired")) from None
    except InvalidToken as problem:
        raise LinkProblem(error(400, str(problem), title="Link not valid")) from None


def _plan(found) -> dict:
    """The plan's title and card for a page; a plain name when the site cannot be read now."""
    try:
        plan = follows().plans.get(found.plan_id)
    except PlansUnavailable as problem:
        log.warning("plan page: %s", problem)
        plan = None
    return plan or {"title": "your exercise plan", "url": ""}


# Stopping -------------------------------------------------------------------------------------
@bp.get("/stop/<token>")
def stop_page(token):
    return _stop_page(token, every=False)


@bp.get("/stop-all/<token>")
def stop_all_page(token):
    return _stop_page(token, every=True)


def _stop_page(token: str, *, every: bool) -> Response:
    found = follows().get(_stop_token(token, every))
    if wants_json():
        return jsonify(ok=True, following=found is not None)
    if found is None:
        return page(
            "message.html",
            title="Nothing to stop",
            lead="No plan is followed with this link: it was stopped already, or has ended and "
            "its data was deleted. No more emails about it will come.",
        )
    return page(
        "plan_stop.html",
        title="Stop all plans" if every else "Stop this plan",
        every=every,
        plan=_plan(found),
        masked=mask(found.email),
    )


@bp.post("/stop/<token>")
def stop(token):
    gone = follows().stop(_stop_token(token, False))
    return _stopped(1 if gone else 0, every=False)


@bp.post("/stop-all/<token>")
def stop_all(token):
    gone = follows().stop_all_of(_stop_token(token, True))
    return _stopped(gone, every=True)


def _stopped(count: int, *, every: bool) -> Response:
    done = (
        "No more emails about your exercise plans will come, and what we kept about them is "
        "deleted."
        if every
        else "No more emails about this plan will come, and what we kept about it is deleted."
    )
    if request.form.get("List-Unsubscribe") == "One-Click" or wants_json():
        return jsonify(ok=True, stopped=count, message=done)  # RFC 8058: 200, no redirect
    return page(
        "message.html",
        title="All plans stopped" if every else "Plan stopped",
        lead=done,
        notes=["Changed your mind? The form on the exercise card starts a plan again."],
    )


def _stop_token(token: str, every: bool) -> str:
    try:
        return newsletter().tokens.read_plan_stop(token, every=every)
    except InvalidToken as problem:
        raise LinkProblem(error(400, str(problem), title="Link not valid")) from None


__all__ = ["bp", "stored"]
