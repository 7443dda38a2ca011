"""What the endpoint's two Blueprints (`views`, `webhooks`) share, and the app-wide hooks.

Contract:
- `init_app(app)` (as flaskr's `db.init_app`) registers, for every route: the one rule that only
  a POST changes state (any other method runs with this thread's database connection read-only),
  the 413 for a body over the limit (flagged by `app.BoundedBody`), the security and caching
  headers and the site-only CORS of `/subscribe`, and the error handlers: every error answers
  with a sentence, as JSON or as a page in the blog's look (`error`), never a traceback.
- `newsletter()` is what the app holds (`app.extensions["newsletter"]`); `wants_json`, `page`
  and `error` make answers; `nesting` measures JSON depth without parsing; `text` is a field's
  stripped text. The forms' input, for every view that takes one: `submitted()` the posted
  fields (a JSON object or a UTF-8 form; else a 400 with a sentence), `honeypot_filled(value)`
  the bot trap, `form_source(data)` the page a form was on (only a page of the site or of this
  endpoint, at most `MAX_SOURCE_LENGTH` characters), `mask(email)` an address as a page shows
  it to whoever holds a link. `network` is the rate-limit key of a client address (IPv4, or
  an IPv6 /64; the IPv4 client inside an IPv4-mapped, 6to4 or Teredo address); `ip_hash` the
  keyed hash of the client kept with a consent; `minutes` says a wait in words.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from newsletter.database import BUSY

log = logging.getLogger(__name__)
MAX_JSON_DEPTH = 20
MAX_SOURCE_LENGTH = 500
TOO_LARGE = "newsletter.body_too_large"  # set by app.BoundedBody
BODY = "newsletter.body"  # the body's bytes, as app.BoundedBody read them
MESSAGES = {
    400: "The request was not understood.",
    404: "There is nothing at this address.",
    405: "This address does not accept {method} requests.",
    413: "The request is too large: at most {limit} KB is accepted.",
    429: "Too many requests from your network. Please try again in {minutes}.",
    500: "Something went wrong on our side. Please try again in a few minutes.",
    503: "The service is busy right now. Please try again in a minute.",
}


def init_app(app: Flask) -> None:
    """Register the app-wide hooks and error handlers (see the module's contract)."""
    app.before_request(before_request)
    app.teardown_request(after_request_done)
    app.after_request(headers)
    app.register_error_handler(HTTPException, http_error)
    for busy in BUSY:  # SQLite's, and PostgreSQL's when it is the database
        app.register_error_handler(busy, database_busy)
    app.register_error_handler(Exception, unexpected)


# Hooks ------------------------------------------------------------------------------------------
def before_request() -> None:
    nl = newsletter()
    nl.activity.touch()
    if request.environ.get(TOO_LARGE):  # the body was longer than the limit, whatever its framing
        raise RequestEntityTooLarge()
    # The one rule: only a POST changes state. Any other method (GET, HEAD, OPTIONS, ...) runs
    # with this thread's database connection read-only, whatever a view tries to do.
    nl.database.read_only(request.method != "POST")


def after_request_done(_error=None) -> None:
    try:
        newsletter().database.read_only(False)
    except Exception:  # noqa: BLE001 - the next request sets it again anyway
        pass


def headers(response: Response) -> Response:
    settings = newsletter().settings
    origin = request.headers.get("Origin", "")
    if origin and origin.lower() == settings.core.site_origin and request.path == "/subscribe":
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
            f"default-src 'none'; style-src 'self' {settings.core.base_origin}; "
            f"img-src 'self' data:; form-action 'self' {settings.core.base_origin}; "
            "base-uri 'none'; frame-ancestors 'none'"
        )
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def http_error(problem: HTTPException):
    settings = newsletter().settings
    if problem.code == 405:
        methods = sorted(set(problem.valid_methods or ()) - {"HEAD", "OPTIONS"})
        text = MESSAGES[405].format(method=request.method) + f" Use {' or '.join(methods)}."
    elif problem.code == 413:
        text = MESSAGES[413].format(limit=settings.endpoint.max_request_bytes // 1024)
    elif problem.code == 400 and problem.description != BadRequest.description:
        text = problem.description
    else:
        text = MESSAGES.get(problem.code, problem.description)
    return error(problem.code, text)


def database_busy(problem):
    log.error("database error: %s", problem)
    return error(503, retry_after=30)


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
def nesting(raw: bytes) -> int:
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


def submitted() -> dict:
    """The posted fields, from a JSON object or a form; a broken body is a clear 400."""
    if request.is_json:
        raw = request.get_data(cache=True)  # already bounded by BoundedBody
        if nesting(raw) > MAX_JSON_DEPTH:
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


def honeypot_filled(value) -> bool:
    """The honeypot is filled by anything but nothing: an empty or blank string, or null."""
    if value is None:
        return False
    return not isinstance(value, str) or bool(value.strip())


def form_source(data) -> str | None:
    """The page the form was on, kept only if it is a page of the site (or of this endpoint)."""
    value = text(data.get("source"))
    if not value or len(value) > MAX_SOURCE_LENGTH or any(c in value for c in "\r\n\0"):
        return None
    settings = newsletter().settings
    parts = urlsplit(value)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return value if origin in (settings.core.site_origin, settings.core.base_origin) else None


def mask(email: str) -> str:
    """The address as a page may show it to whoever holds a link: its first letter and domain."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def network(ip: str | None) -> str:
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


def ip_hash(secret: str, ip: str | None) -> str | None:
    if not ip:
        return None
    client = _client_address(ip)
    return hmac.new(secret.encode(), client.encode(), hashlib.sha256).hexdigest()[:32]


def minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def newsletter():
    """What the app holds (`app.extensions["newsletter"]`, a `Newsletter`)."""
    return current_app.extensions["newsletter"]


__all__ = [
    "BODY",
    "MAX_JSON_DEPTH",
    "MAX_SOURCE_LENGTH",
    "MESSAGES",
    "TOO_LARGE",
    "error",
    "form_source",
    "honeypot_filled",
    "init_app",
    "ip_hash",
    "mask",
    "minutes",
    "nesting",
    "network",
    "newsletter",
    "page",
    "submitted",
    "text",
    "wants_json",
]
