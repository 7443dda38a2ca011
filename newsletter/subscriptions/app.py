"""The subscription endpoint's app factory, `create_app(config=None)` (served by gunicorn:
`gunicorn 'newsletter.subscriptions.app:create_app()'`).

Contract: `create_app` reads the settings (a `Settings`, a mapping of NEWSLETTER_* names, or the
environment), opens and migrates the database, registers the views' Blueprint (and the provider
webhooks', `webhooks.bp`; following a plan, `plan_views.bp`; the reader's preferences page,
`preferences_views.bp`) and starts the background
sender of confirmation and welcome emails. `app.extensions["newsletter"]` is the `Newsletter`
the views use; its `close()` stops the sender thread and closes the database;
`app.extensions["plan_follows"]` is the `PlanFollows` the plan views use.
"""

from __future__ import annotations

import io
import runpy
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

from flask import Flask
from jinja2 import ChoiceLoader, FileSystemLoader
from werkzeug.middleware.proxy_fix import ProxyFix

from newsletter.database import Database
from newsletter.ratelimit import Rate, SharedRateLimiter
from newsletter.settings import ROOT, Settings, load
from newsletter.subscriptions import plan_views, web
from newsletter.subscriptions.plan_follows import PlanFollows
from newsletter.subscriptions.preferences_views import bp as preferences_bp
from newsletter.subscriptions.sender import Sender
from newsletter.subscriptions.subscribers import Subscribers
from newsletter.subscriptions.tokens import Tokens
from newsletter.subscriptions.views import bp
from newsletter.subscriptions.web import BODY, TOO_LARGE
from newsletter.subscriptions.webhooks import bp as webhooks_bp

THEME_STATIC = ROOT / "theme" / "static"


class BoundedBody:
    """WSGI middleware: a request body is read here, at most `limit` bytes, whatever its framing
    (Content-Length or chunked), before anything parses it. A longer body is not read further:
    the request goes on with an empty body and a flag that the views answer with 413."""

    CHUNK = 64 * 1024

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def __call__(self, environ, start_response):
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length.strip() or chunked or environ.get("wsgi.input_terminated"):
            self._bound(environ, length.strip())
        return self.app(environ, start_response)

    def _bound(self, environ, length: str) -> None:
        stream = environ["wsgi.input"]
        declared = int(length) if length.isdigit() else None
        body, too_large = b"", declared is not None and declared > self.limit
        if not too_large:
            want = declared if declared is not None else self.limit + 1
            parts, size = [], 0
            while size < want:
                part = stream.read(min(self.CHUNK, want - size))
                if not part:
                    break
                parts.append(part)
                size += len(part)
            body = b"".join(parts)
            too_large = len(body) > self.limit
        if too_large:
            environ[TOO_LARGE], body = True, b""
        environ[BODY] = body
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False


class Activity:
    """When this process last started answering a request: the sender yields while busy."""

    def __init__(self, window: float = 0.05):
        self.window = window
        self.last = 0.0

    def touch(self) -> None:
        self.last = time.monotonic()

    def busy(self) -> bool:
        return time.monotonic() - self.last < self.window


@dataclass
class Newsletter:
    """What the app holds: `app.extensions["newsletter"]`."""

    settings: Settings
    database: Database
    subscribers: Subscribers
    tokens: Tokens
    sender: Sender
    limiter: SharedRateLimiter  # the form's: NEWSLETTER_RATE_LIMIT per client network, shared
    activity: Activity
    _limiters: dict = field(default_factory=dict, repr=False)

    def shared_limiter(self, scope: str, rate: Rate | None = None) -> SharedRateLimiter:
        """A rate limit kept in the database, shared by every worker and host: `hit(key)`
        (None, or the seconds to wait) and `peek(key)`. `scope` keeps it apart from the others
        (the form's is "subscribe": `limiter`); `rate` defaults to NEWSLETTER_RATE_LIMIT. The
        same (scope, rate) gives the same limiter, so it prunes once a minute, not per call."""
        rate = self.settings.endpoint.rate_limit if rate is None else rate
        if scope == self.limiter.scope and rate == self.limiter.rate:
            return self.limiter
        if (scope, rate) not in self._limiters:
            self._limiters[scope, rate] = SharedRateLimiter(
                self.database, rate, scope=scope, secret=self.settings.core.secret_key
            )
        return self._limiters[scope, rate]

    def close(self) -> None:
        self.sender.stop()
        self.database.close()


def create_app(config: Settings | dict | None = None) -> Flask:
    settings = load(config)
    database = Database(
        settings.core.database, background_checkpoints=True
    )  # the sender checkpoints
    database.close()  # no connection survives into a forked worker (gunicorn --preload)
    tokens = Tokens(settings.core.secret_key, max_age=settings.endpoint.confirm_max_age)
    activity = Activity()
    state = Newsletter(
        settings=settings,
        database=database,
        subscribers=Subscribers(database),
        tokens=tokens,
        sender=Sender(settings, database, tokens, busy=activity.busy),
        limiter=SharedRateLimiter(
            database,
            settings.endpoint.rate_limit,
            scope="subscribe",
            secret=settings.core.secret_key,
        ),
        activity=activity,
    )

    app = Flask(
        __name__,
        static_folder=str(THEME_STATIC),
        static_url_path="/static",
        template_folder="../templates/pages",
    )
    app.config.update(
        MAX_CONTENT_LENGTH=settings.endpoint.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.endpoint.max_request_bytes,
        MAX_FORM_PARTS=20,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    if settings.endpoint.proxy_count:
        n = settings.endpoint.proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)
    app.wsgi_app = BoundedBody(app.wsgi_app, settings.endpoint.max_request_bytes)
    app.extensions["newsletter"] = state
    app.extensions["plan_follows"] = PlanFollows(database, settings, tokens=tokens)
    # The pages extend the blog theme's base.html (pages/ first, then the theme's templates) and
    # get what Pelican gives the theme: pelicanconf.py's UPPER_CASE settings (read without Pelican)
    # and an abs_url filter; links go to the blog (SITEURL), forms post here (NEWSLETTER_URL).
    app.jinja_loader = ChoiceLoader(
        [app.jinja_loader, FileSystemLoader(ROOT / "theme" / "templates")]
    )
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    site = runpy.run_path(str(ROOT / "pelicanconf.py"))
    theme = {"THEME_STATIC_DIR": "theme"}  # Pelican's default
    theme.update((name, value) for name, value in site.items() if name.isupper())
    theme.update(
        SITEURL=settings.core.site_url, NEWSLETTER_URL=settings.core.base_url + "/subscribe"
    )
    app.jinja_env.globals.update(theme)
    app.jinja_env.filters["abs_url"] = lambda path: urljoin(
        settings.core.site_url + "/", str(path or "")
    )
    app.jinja_env.globals.update(
        site_name=settings.core.site_name,
        site_url=settings.core.site_url,
        base_url=settings.core.base_url,
    )
    web.init_app(app)  # the app-wide hooks: only a POST writes, headers, error answers
    app.register_blueprint(bp)
    app.register_blueprint(webhooks_bp)  # POST /webhooks/mailgun, /webhooks/ses
    app.register_blueprint(preferences_bp)  # /preferences/<token>, /address/<token>
    app.register_blueprint(plan_views.bp)  # /plans/follow, /plans/confirm, /plans/stop
    state.sender.start()
    return app


__all__ = ["Activity", "Newsletter", "create_app"]
