"""The subscription endpoint's views: one Flask Blueprint, `bp`, with module-level views.

Routes (each answers JSON when asked for it, with `Accept: application/json` or a JSON body, and
a page in the blog's look otherwise):
- `POST /subscribe` (form-encoded or JSON: `email`, `source`, honeypot `website`): validates the
  address (email-validator, no DNS), stores a sign-up request (one insert; the background sender
  records consent and queues the confirmation email), wakes the sender and answers at once, the
  same way whether or not the address is known. At most one confirmation per address per 10
  minutes; a rate limit per client network, shared by every worker (in the database); a
  request-size limit; CORS for the site's origin only.
  `GET /subscribe` shows the form.
- `GET /confirm/<token>`: confirms (idempotent). Tampered/forged: 400; expired: 410.
- `GET /unsubscribe/<token>`: a page with an Unsubscribe button (link scanners only GET).
  `POST /unsubscribe/<token>`: unsubscribes at once; RFC 8058's one-click POST
  (`List-Unsubscribe=One-Click`) gets 200 and no redirect.
- `GET /healthz`: 200 when the database answers, 503 otherwise.
Bad input never causes a 500: every 4xx carries a sentence saying what was wrong, and rejected
input stores nothing. The views read what the app holds from `newsletter()` (see `app`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import sqlite3
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from newsletter.subscriptions import addresses
from newsletter.subscriptions.emails import unsubscribe_url
from newsletter.subscriptions.subscribers import Confirmation, Status
from newsletter.subscriptions.tokens import ExpiredToken, InvalidToken

log = logging.getLogger(__name__)
MAX_SOURCE_LENGTH = 500
MAX_JSON_DEPTH = 20
TOO_LARGE = "newsletter.body_too_large"  # set by app.BoundedBody
BODY = "newsletter.body"  # the body's bytes, as app.BoundedBody read them
bp = Blueprint("subscriptions", __name__)

MESSAGES = {
    400: "The request was not understood.",
    404: "There is nothing at this address.",
    405: "This address does not accept {method} requests.",
    413: "The request is too large: at most {limit} KB is accepted.",
    429: "Too many requests from your network. Please try again in {minutes}.",
    500: "Something went wrong on our side. Please try again in a few minutes.",
    503: "The service is busy right now. Please try again in a minute.",
}
THANKS = (
    "Almost done: if this address is not on the list yet, an email with a confirmation link is "
    "on its way. Open it and click the link to confirm."
)


@bp.get("/subscribe")
def subscribe_form():
    return page("subscribe.html", title="Stay tuned", source=_source(request.args))


@bp.post("/subscribe")
def subscribe():
    """The same work and the same answer for every valid address: one stored request. Every
    POST takes a token of the client's network from the shared limit (past it: 429, whatever
    the body); a valid one takes it in the same transaction as the insert."""
    nl = newsletter()
    settings = nl.settings
    client = _network(request.remote_addr)
    try:
        data = _submitted()
    except HTTPException:
        if (wait := nl.limiter.hit(client)) is not None:
            return _too_many(wait)
        raise
    source = _source(data)
    if _filled(data.get("website")):  # the honeypot: only bots fill it; tell them nothing
        if (wait := nl.limiter.hit(client)) is not None:
            return _too_many(wait)
        log.info("honeypot filled; nothing stored")
        return subscribed(source)
    try:
        email, key = addresses.normalize(data.get("email"))
    except addresses.InvalidAddress as problem:
        if (wait := nl.limiter.hit(client)) is not None:
            return _too_many(wait)
        typed = data.get("email") if isinstance(data.get("email"), str) else ""
        return error(400, str(problem), template="subscribe.html", email=typed[:300], source=source)
    ip_hash = _ip_hash(settings.secret_key, request.remote_addr)
    with nl.database.transaction():  # one short write: the token and the request, or neither
        if (wait := nl.limiter.hit(client)) is None:
            nl.subscribers.request(email, key, source=source, ip_hash=ip_hash)
    if wait is not None:
        return _too_many(wait)
    nl.sender.start()  # no-op when running; restarts it in a forked worker
    nl.sender.wake()
    return subscribed(source)


def _too_many(wait: float) -> Response:
    return error(429, MESSAGES[429].format(minutes=_minutes(wait)), retry_after=wait)


def subscribed(source):
    settings = newsletter().settings
    if wants_json():
        return jsonify(ok=True, message=THANKS)
    return page(
        "message.html",
        title="Check your inbox",
        lead=THANKS,
        notes=[
            f"The link works for {settings.confirm_max_age // 3600} hours. Nothing after a "
            "few minutes? Look in your spam or promotions folder, or try again later.",
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
    return page("confirm.html", title="Confirm your subscription", masked=_mask(subscriber.email))


@bp.post("/confirm/<token>")
def confirm(token):
    outcome, subscriber = newsletter().subscribers.confirm(*_confirm_token(token))
    if outcome != Confirmation.CONFIRMED:
        return _not_confirmed(outcome, subscriber)
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
    message = (
        "You were already subscribed: nothing has changed."
        if already
        else f"Thank you! You will get one email from {settings.site_name} each time a new "
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
            lead=f"This address gets no emails from {nl.settings.site_name}.",
        )
    return page("unsubscribe.html", title="Unsubscribe", masked=_mask(subscriber.email))


@bp.post("/unsubscribe/<token>")
def unsubscribe(token):
    nl = newsletter()
    nl.subscribers.unsubscribe(_unsubscribe_token(token))
    done = f"{nl.settings.site_name} will not email this address again."
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
    except sqlite3.Error as problem:
        log.error("healthz: database error: %s", problem)
        return jsonify(status="error", database="unavailable"), 503
    return jsonify(status="ok", database="ok", sender="running" if nl.sender.running else "stopped")


@bp.before_app_request
def before_request() -> None:
    nl = newsletter()
    nl.activity.touch()
    if request.environ.get(TOO_LARGE):  # the body was longer than the limit, whatever its framing
        raise RequestEntityTooLarge()
    # The one rule: only a POST changes state. Any other method (GET, HEAD, OPTIONS, ...) runs
    # with this thread's database connection read-only, whatever a view tries to do.
    nl.database.read_only(request.method != "POST")


@bp.teardown_app_request
def after_request_done(_error=None) -> None:
    try:
        newsletter().database.read_only(False)
    except Exception:  # noqa: BLE001 - the next request sets it again anyway
        pass


@bp.after_app_request
def headers(response: Response) -> Response:
    settings = newsletter().settings
    origin = request.headers.get("Origin", "")
    if origin and origin.lower() == settings.site_origin and request.path == "/subscribe":
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Accept"
            response.headers["Access-Control-Max-Age"] = "86400"
    response.vary.add("Origin")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'self' {settings.base_origin}; "
            f"img-src 'self' data:; form-action 'self' {settings.base_origin}; "
            "base-uri 'none'; frame-ancestors 'none'"
        )
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_errorhandler(HTTPException)
def http_error(problem: HTTPException):
    settings = newsletter().settings
    if problem.code == 405:
        methods = sorted(set(problem.valid_methods or ()) - {"HEAD", "OPTIONS"})
        text = MESSAGES[405].format(method=request.method) + f" Use {' or '.join(methods)}."
    elif problem.code == 413:
        text = MESSAGES[413].format(limit=settings.max_request_bytes // 1024)
    elif problem.code == 400 and problem.description != BadRequest.description:
        text = problem.description
    else:
        text = MESSAGES.get(problem.code, problem.description)
    return error(problem.code, text)


@bp.app_errorhandler(sqlite3.OperationalError)
def database_busy(problem):
    log.error("database error: %s", problem)
    return error(503, retry_after=30)


@bp.app_errorhandler(Exception)
def unexpected(problem):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error(500)


# Answers ----------------------------------------------------------------------------------------
def wants_json() -> bool:
    if request.is_json:
        return True
    accept = request.headers.get("Accept", "")
    if "json" not in accept:  # the common cases, without parsing the header
        return False
    if "html" not in accept and "*/*" not in accept:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def page(template: str, status: int = 200, **context) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def error(status: int, message: str | None = None, *, template="message.html", title=None,
          retry_after: float | None = None, **context) -> Response:  # fmt: skip
    message = message or MESSAGES[status]
    if wants_json():
        response = jsonify(ok=False, error=_ERROR_NAMES.get(status, "error"), message=message)
        response.status_code = status
    else:
        response = page(
            template,
            status,
            title=title or _TITLES.get(status, "Something went wrong"),
            lead=message,
            error=True,
            **context,
        )
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
    return response


_TITLES = {
    400: "That did not work",
    404: "Not found",
    405: "Not allowed",
    410: "Link no longer valid",
    413: "Too large",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Busy",
}
_ERROR_NAMES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    410: "gone",
    413: "too_large",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}


# Input helpers ----------------------------------------------------------------------------------
def _submitted() -> dict:
    """The posted fields, from a JSON object or a form; a broken body is a clear 400."""
    if request.is_json:
        raw = request.get_data(cache=True)  # already bounded by BoundedBody
        if _nesting(raw) > MAX_JSON_DEPTH:
            raise BadRequest(f"The JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels).")
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:
            raise BadRequest("The body must be UTF-8 text.") from None
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise BadRequest('The body must be a JSON object, like {"email": "you@example.com"}.')
        return data
    if request.mimetype == "application/x-www-form-urlencoded":
        raw = request.environ.get(BODY, b"")
        try:  # werkzeug keeps escapes that are not UTF-8 as they are: refuse them instead
            for field in raw.replace(b"+", b" ").split(b"&"):
                unquote_to_bytes(field).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The form must be sent as UTF-8 text.") from None
    return request.form


def _nesting(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (strings skipped), without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _filled(value) -> bool:
    """The honeypot is filled by anything but nothing: an empty or blank string, or null."""
    if value is None:
        return False
    return not isinstance(value, str) or bool(value.strip())


def _source(data) -> str | None:
    """The page the form was on, kept only if it is a page of the site (or of this endpoint)."""
    value = _text(data.get("source"))
    if not value or len(value) > MAX_SOURCE_LENGTH or any(c in value for c in "\r\n\0"):
        return None
    settings = newsletter().settings
    parts = urlsplit(value)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return value if origin in (settings.site_origin, settings.base_origin) else None


def _network(ip: str | None) -> str:
    """Rate-limit key: the IPv4 address, or the /64 an IPv6 client can freely move around in.
    An IPv6 address that carries the IPv4 client is that IPv4 address: IPv4-mapped
    (`::ffff:a.b.c.d`, how a dual-stack socket shows every IPv4 client), 6to4
    (`2002:AABB:CCDD::/48` belongs to one IPv4 address: its /64s would be 65,536 keys) and
    Teredo (its /64 is the Teredo server's, shared by all that server's clients; the client's
    own public IPv4 is in the last 32 bits)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return str(ip)
    if address.version == 6:
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None:
            return str(embedded)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _client_address(ip: str) -> str:
    """The address as the client has it: an IPv4-mapped IPv6 address is its IPv4 address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else str(address)


def _ip_hash(secret: str, ip: str | None) -> str | None:
    if not ip:
        return None
    client = _client_address(ip)
    return hmac.new(secret.encode(), client.encode(), hashlib.sha256).hexdigest()[:32]


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def _mask(email: str) -> str:
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def newsletter():
    """What the app holds (`app.extensions["newsletter"]`, a `Newsletter`)."""
    return current_app.extensions["newsletter"]


__all__ = ["THANKS", "bp", "newsletter"]
