"""Newsletter settings: every NEWSLETTER_* environment variable, read in this one place.

Contract: the settings come in concerns, each a small frozen dataclass whose fields are defined
once, with their environment name, default, parser and help text (`var(...)`, `secret(...)`),
and whose `__post_init__` checks its own values: `CoreSettings` (`settings.core`), `MailSettings`
(`.mail`), `SmtpSettings` (`.smtp`), `MailgunSettings` (`.mailgun`), `HttpSettings` (`.http`),
`EndpointSettings` (`.endpoint`), `AnnounceSettings` (`.announce`), `FeedbackSettings`
(`.feedback`) and `ImapSettings` (`.imap`). A part of the product takes the concern it uses.
`Settings` is their composition. `Settings.from_env(environ)` returns it with defaults that run
the whole product on one machine (SQLite in var/, email written to var/outbox/). Any NEWSLETTER_*
name it does not know, and any malformed value, raises `ConfigError` naming the variable. With
NEWSLETTER_ENV=production it also refuses the development defaults that must never reach the
public: the secret key, the sender, the site and endpoint URLs and the postal address.
`Settings(...)` built directly (tests) is validated the same way. `VARIABLES` (name ->
`Variable`) is derived from the fields, in the concerns' order; `docs/settings.md` is made from it.

Compatibility: the flat names of the former one-dataclass `Settings` still work, for reading
(`settings.smtp_host` is `settings.smtp.host`; `FLAT` lists them, `DERIVED` the computed ones)
and in `Settings(smtp_host=...)` and `settings.replace(smtp_host=...)`. New code reads the concern.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import operator
import os
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from blog.feed_contract import PLAN_KEEP_DAYS
from newsletter.ratelimit import Rate

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "NEWSLETTER_"
DEV_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"
DEV_FROM = "Walk Again <newsletter@localhost>"
DEV_POSTAL_ADDRESS = "Walk Again, 1 Example Street, London"  # production must set its own
DEV_SITE_URL = "http://localhost:8000"
DEV_BASE_URL = "http://127.0.0.1:5000"
DEFAULT_WELCOME_TEXT = (
    "Thank you for confirming, and welcome! I work in rehab, and I write about knee pain: what"
    " tends to help, and how to get back to the walks, stairs and runs you miss.\\n\\n"
    "From now on you'll get one short email each time a new article is out, nothing else. It is"
    " plain, practical reading, never a substitute for seeing someone who can examine your knee."
    " If there is a topic you'd like me to cover, just reply to this email."
)
DEFAULT_HTTP_TIMEOUT = 10.0  # seconds per HTTP request (a feed, a live check)
ENVIRONMENTS = ("development", "production")
TRANSPORTS = ("outbox", "smtp", "mailgun")
ANNOUNCE_MODES = ("each", "digest")
MAILGUN_REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
MAILGUN_MAX_BATCH = 1000  # recipients per call, Mailgun's documented limit
SMTP_SECURITY = ("starttls", "ssl", "none")
DEFAULT_SMTP_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
PERIODS = {
    "s": 1,
    "second": 1,
    "m": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
# Read by pelicanconf.py, not by the newsletter: the address the site's form posts to.
IGNORED = {"NEWSLETTER_URL"}


class ConfigError(ValueError):
    """A NEWSLETTER_* variable is unknown or malformed; the message names it."""


# Parsers: an environment string to a value, or ValueError (from_env names the variable) -------
def _text(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _int(raw: str) -> int:
    if not re.fullmatch(r"\d+", raw):
        raise ValueError("must be a whole number")
    return int(raw)


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("must be a number") from None


def _float(raw: str) -> float:
    value = _number(raw)
    if not 0 < value < float("inf"):
        raise ValueError("must be a positive number")
    return value


def _rate(raw: str) -> float:
    value = _number(raw)
    if not 0 <= value < float("inf"):
        raise ValueError("must be 0 (no limit) or a positive number")
    return value


def _yes_no(raw: str) -> bool:
    if raw.lower() in ("yes", "true", "1", "on"):
        return True
    if raw.lower() in ("no", "false", "0", "off"):
        return False
    raise ValueError("must be yes or no")


def _path(raw: str) -> Path:
    return Path(_text(raw)).expanduser()


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(raw: str) -> int:
    """A day of the week: its name (or first three letters), or 0-6 with Monday 0."""
    value = raw.strip().lower()
    for number, name in enumerate(WEEKDAYS):
        if value in (name, name[:3], str(number)):
            return number
    raise ValueError("must be a day of the week, e.g. monday (or 0-6, Monday 0)")


def _hour(raw: str) -> int:
    value = _int(raw)
    if not 0 <= value <= 23:
        raise ValueError("must be an hour from 0 to 23")
    return value


def _database(raw: str) -> Path | str:
    """A path (the SQLite file) or a `postgresql://` URL (kept as it is)."""
    text = _text(raw)
    return text if is_database_url(text) else Path(text).expanduser()


def is_database_url(value) -> bool:
    return isinstance(value, str) and value.split(":", 1)[0] in ("postgresql", "postgres")


def _port(raw: str) -> int:
    value = _int(raw)
    if not 1 <= value <= 65535:
        raise ValueError("must be a port number from 1 to 65535")
    return value


def _one_of(choices):
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return raw.lower()

    return parse


def parse_rate_limit(raw: str) -> Rate:
    """'20/hour', '10/minute', '1000/s', '30/10m': N requests per period."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", raw.lower())
    if not match or match.group(3) not in PERIODS or int(match.group(1)) < 1:
        raise ValueError("use COUNT/PERIOD, e.g. 20/hour, 10/minute or 30/10m")
    multiple = int(match.group(2) or 1)
    if multiple < 1:
        raise ValueError("the period must be at least 1")
    return Rate(int(match.group(1)), multiple * PERIODS[match.group(3)])


# Checks: a value (from the environment or from code) that must hold, else ConfigError --------
def _choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: must be one of " + ", ".join(choices))


def _url(name: str, value: str, *, query: bool = False) -> str:
    """An http(s) URL; with `query`, it may have one (YouTube's feed: ?channel_id=...) and is
    kept as it is, else it has none and loses a trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={value!r}: must be an http:// or https:// URL")
    if parts.fragment or (parts.query and not query):
        raise ConfigError(f"{name}={value!r}: must not have a query or a fragment")
    return value if query else value.rstrip("/")


def _unpublished(name: str, value: Path | str) -> Path | str:
    """A data path, resolved, never under output/ (which is published; symlinks followed). A
    database URL is not a path: it is kept as it is."""
    if is_database_url(value):
        return value
    path = Path(value).resolve()
    if path.is_relative_to((ROOT / "output").resolve()):
        raise ConfigError(f"{name}={value}: must not be under output/, which is published")
    return path


def _plain_address(name: str, value: str) -> None:
    if value and (any(c in value for c in "\r\n<>, ") or value.count("@") != 1):
        raise ConfigError(f"{name}={value!r}: use a plain address, e.g. list@example.com")


def _zone(name: str, value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ConfigError(f"{name}={value!r}: not a time zone, e.g. Europe/London") from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _sender_address(value: str) -> Address:
    name, address = parseaddr(value)
    if "\r" in value or "\n" in value or "@" not in address:
        raise ConfigError(f"NEWSLETTER_FROM={value!r}: use 'Name <address@domain>'")
    username, _, domain = address.rpartition("@")
    try:
        return Address(display_name=name, username=username, domain=domain)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"NEWSLETTER_FROM={value!r}: {error}") from None


def _set(obj, name: str, value) -> None:
    """Normalise a field of a frozen concern in its __post_init__."""
    object.__setattr__(obj, name, value)


def var(
    name: str,
    default,
    parse: Callable[[str], object],
    help: str,
    *,
    flat: str = "",
    secret: bool = False,
):
    """A field read from the environment variable `name` with `parse`; `help` for the docs.
    `flat` is its compatibility name on `Settings` (default: `name` without NEWSLETTER_,
    lowercased). A `secret` stays out of repr (and logs) and out of the docs."""
    flat = flat or name.removeprefix(PREFIX).lower()
    metadata = {"env": name, "parse": parse, "help": help, "flat": flat}
    return field(default=default, repr=not secret, metadata=metadata)


def secret(name: str, default: str, help: str):
    """A secret text `var`."""
    return var(name, default, _text, help, secret=True)


# The concerns ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoreSettings:
    """Core: the environment, the database, the secret key, the blog and this endpoint"""

    env: str = var(
        "NEWSLETTER_ENV", "development", _one_of(ENVIRONMENTS), "development or production"
    )
    database: Path | str = var(
        "NEWSLETTER_DATABASE",
        ROOT / "var" / "newsletter.sqlite3",
        _database,
        "the SQLite file, or a postgresql:// URL (with the extra: pip install -e '.[postgres]')",
    )
    secret_key: str = secret(
        "NEWSLETTER_SECRET_KEY", DEV_SECRET_KEY, "signs the links; required in production"
    )
    site_name: str = var("NEWSLETTER_SITE_NAME", "Walk Again", _text, "the list's name")
    # The public blog: links back to it, the one CORS origin.
    site_url: str = var(
        "NEWSLETTER_SITE_URL", DEV_SITE_URL, _text, "the public blog, for links and CORS"
    )
    # This endpoint's public URL: confirmation and unsubscribe links.
    base_url: str = var(
        "NEWSLETTER_BASE_URL", DEV_BASE_URL, _text, "this endpoint's public URL, for email links"
    )
    # The blog's TIMEZONE (pelicanconf.py): the hour a reader picks for a plan's emails is in it.
    timezone: str = var(
        "NEWSLETTER_TIMEZONE", "Europe/London", _text, "the site's TIMEZONE: plans, digests"
    )

    def __post_init__(self) -> None:
        _choice("NEWSLETTER_ENV", self.env, ENVIRONMENTS)
        _set(self, "database", _unpublished("NEWSLETTER_DATABASE", self.database))
        _set(self, "site_url", _url("NEWSLETTER_SITE_URL", self.site_url))
        _set(self, "base_url", _url("NEWSLETTER_BASE_URL", self.base_url))
        _zone("NEWSLETTER_TIMEZONE", self.timezone)
        if len(self.secret_key) < 16:
            raise ConfigError(
                "NEWSLETTER_SECRET_KEY: too short (use at least 32 random characters)"
            )

    @property
    def site_origin(self) -> str:
        return _origin(self.site_url)

    @property
    def base_origin(self) -> str:
        return _origin(self.base_url)

    @property
    def list_id(self) -> str:
        """The List-Id header: the list's name and a domain-like id from the site's host."""
        host = urlsplit(self.site_url).hostname or "localhost"
        return f"{self.site_name} <newsletter.{host}>"


@dataclass(frozen=True)
class MailSettings:
    """Mail: how every email leaves and what it says of its sender"""

    transport: str = var(
        "NEWSLETTER_TRANSPORT", "outbox", _one_of(TRANSPORTS), "outbox, smtp or mailgun"
    )
    outbox: Path = var(
        "NEWSLETTER_OUTBOX",
        ROOT / "var" / "outbox",
        _path,
        "folder for .eml files (transport outbox)",
    )
    # "Name <address>": the From of every email.
    sender: str = var(
        "NEWSLETTER_FROM",
        DEV_FROM,
        _text,
        "From: 'Name <address>'; required in production",
        flat="sender",
    )
    postal_address: str = var(
        "NEWSLETTER_POSTAL_ADDRESS", DEV_POSTAL_ADDRESS, _text, "sender's postal address (footer)"
    )
    # "": replies go to From.
    reply_to: str = var("NEWSLETTER_REPLY_TO", "", _text, "Reply-To address of announcements")
    # "": List-Unsubscribe offers HTTPS only.
    unsubscribe_mailto: str = var(
        "NEWSLETTER_UNSUBSCRIBE_MAILTO", "", _text, "mailto: in List-Unsubscribe"
    )
    # "": Return-Path is From; else bounces+<proof>@<this domain>.
    verp_domain: str = var("NEWSLETTER_VERP_DOMAIN", "", _text, "Return-Path bounces+<proof>@ this")
    # The welcome email's opening, in the author's words: plain text, a blank line between
    # paragraphs (or the four characters \n\n, as in an environment file).
    welcome_text: str = var(
        "NEWSLETTER_WELCOME_TEXT",
        DEFAULT_WELCOME_TEXT,
        _text,
        "the welcome email's text (plain; paragraphs split by a blank line or \\n\\n)",
    )
    # The articles a new reader should start with, one a line: "Title | https://...".
    welcome_start_here: str = var(
        "NEWSLETTER_WELCOME_START_HERE",
        "",
        _text,
        "the welcome's 'start here' articles: 'Title | URL', one a line (or split by \\n)",
    )

    def __post_init__(self) -> None:
        _choice("NEWSLETTER_TRANSPORT", self.transport, TRANSPORTS)
        _set(self, "outbox", _unpublished("NEWSLETTER_OUTBOX", self.outbox))
        _sender_address(self.sender)
        if not self.postal_address.strip():
            raise ConfigError("NEWSLETTER_POSTAL_ADDRESS: must not be empty")
        _plain_address("NEWSLETTER_REPLY_TO", self.reply_to)
        _plain_address("NEWSLETTER_UNSUBSCRIBE_MAILTO", self.unsubscribe_mailto)
        self.start_here  # noqa: B018 - checked now: a malformed entry is a ConfigError

    @functools.cached_property
    def start_here(self) -> tuple[tuple[str, str], ...]:
        """NEWSLETTER_WELCOME_START_HERE as (title, URL) pairs, in the author's order."""
        name, picks = "NEWSLETTER_WELCOME_START_HERE", []
        for line in self.welcome_start_here.replace("\\n", "\n").splitlines():
            if not line.strip():
                continue
            title, bar, url = line.rpartition("|")
            title = " ".join(title.split())
            if not bar or not title:
                raise ConfigError(f"{name}: {line.strip()!r}: write 'Title | https://...'")
            picks.append((title, _url(name, url.strip(), query=True)))
        return tuple(picks)

    @functools.cached_property
    def from_address(self) -> Address:  # cached: every Message-ID of a bulk send asks for it
        return _sender_address(self.sender)


@dataclass(frozen=True)
class SmtpSettings:
    """SMTP: the server emails go through with `NEWSLETTER_TRANSPORT=smtp`"""

    host: str = var("NEWSLETTER_SMTP_HOST", "localhost", _text, "SMTP server")
    # 0: the usual port for `security` (587, 465 or 25).
    port: int = var("NEWSLETTER_SMTP_PORT", 0, _port, "default 587, 465 (ssl) or 25 (none)")
    security: str = var(
        "NEWSLETTER_SMTP_SECURITY", "starttls", _one_of(SMTP_SECURITY), "starttls, ssl or none"
    )
    user: str = var("NEWSLETTER_SMTP_USER", "", _text, "SMTP login (with the password)")
    password: str = secret("NEWSLETTER_SMTP_PASSWORD", "", "SMTP password")
    timeout: float = var("NEWSLETTER_SMTP_TIMEOUT", 10.0, _float, "seconds per SMTP operation")
    # Connections sending announcements in parallel.
    workers: int = var(
        "NEWSLETTER_SMTP_WORKERS",
        4,
        _int,
        "parallel SMTP connections, at most (fewer if the server takes fewer)",
    )
    rate: float = var(
        "NEWSLETTER_SMTP_RATE", 0.0, _rate, "messages per second at most (0: no limit)"
    )

    def __post_init__(self) -> None:
        _choice("NEWSLETTER_SMTP_SECURITY", self.security, SMTP_SECURITY)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"NEWSLETTER_SMTP_PORT={self.port}: not a port number")
        if bool(self.user) != bool(self.password):
            raise ConfigError("NEWSLETTER_SMTP_USER and NEWSLETTER_SMTP_PASSWORD go together")
        if self.timeout <= 0:
            raise ConfigError("NEWSLETTER_SMTP_TIMEOUT: must be a positive number of seconds")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"NEWSLETTER_SMTP_WORKERS={self.workers}: use 1 to 64")
        if self.rate < 0:
            raise ConfigError(f"NEWSLETTER_SMTP_RATE={self.rate}: must not be < 0")

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_SMTP_PORTS[self.security]


@dataclass(frozen=True)
class MailgunSettings:
    """Mailgun: its HTTP API, with `NEWSLETTER_TRANSPORT=mailgun`"""

    api_key: str = secret("NEWSLETTER_MAILGUN_API_KEY", "", "Mailgun API key (secret)")
    domain: str = var("NEWSLETTER_MAILGUN_DOMAIN", "", _text, "Mailgun sending domain")
    region: str = var("NEWSLETTER_MAILGUN_REGION", "us", _one_of(MAILGUN_REGIONS), "us or eu")
    # A proxy or a test server instead of the region's.
    base_url: str = var("NEWSLETTER_MAILGUN_BASE_URL", "", _text, "overrides the region's API URL")
    batch_size: int = var(
        "NEWSLETTER_MAILGUN_BATCH_SIZE", MAILGUN_MAX_BATCH, _int, "recipients per Mailgun call"
    )

    def __post_init__(self) -> None:
        _choice("NEWSLETTER_MAILGUN_REGION", self.region, tuple(MAILGUN_REGIONS))
        if self.base_url:
            _set(self, "base_url", _url("NEWSLETTER_MAILGUN_BASE_URL", self.base_url))
        if not 1 <= self.batch_size <= MAILGUN_MAX_BATCH:
            raise ConfigError(
                f"NEWSLETTER_MAILGUN_BATCH_SIZE={self.batch_size}: "
                f"use 1 to {MAILGUN_MAX_BATCH} (Mailgun's limit per call)"
            )

    @property
    def url(self) -> str:
        """The Mailgun API's base URL: the region's, unless NEWSLETTER_MAILGUN_BASE_URL is set."""
        return self.base_url or MAILGUN_REGIONS[self.region]


@dataclass(frozen=True)
class HttpSettings:
    """HTTP: requests the newsletter makes (feeds, live checks, the Mailgun API)"""

    timeout: float = var(
        "NEWSLETTER_HTTP_TIMEOUT",
        DEFAULT_HTTP_TIMEOUT,
        _float,
        "seconds per HTTP request (Mailgun's API: 3 times this)",
    )

    def __post_init__(self) -> None:
        if not 0 < self.timeout < float("inf"):
            raise ConfigError("NEWSLETTER_HTTP_TIMEOUT: must be a positive number of seconds")


@dataclass(frozen=True)
class EndpointSettings:
    """Endpoint: the subscription form and its confirmation emails"""

    rate_limit: Rate = var(
        "NEWSLETTER_RATE_LIMIT",
        Rate(20, 3600),
        parse_rate_limit,
        "subscribe requests per client IP",
    )
    # Reverse proxies in front whose X-Forwarded-For we trust. None: not said; development takes
    # 0, production refuses to start (trusting too many lets a client pick its IP, too few makes
    # every client one IP for the rate limit).
    proxy_count: int | None = var(
        "NEWSLETTER_PROXY_COUNT", None, _int, "proxies in front; production: required"
    )
    # First retry of a failed confirmation email; doubles each time, up to 1 h.
    retry_delay: float = var(
        "NEWSLETTER_RETRY_DELAY", 30.0, _float, "seconds before the first retry"
    )
    max_attempts: int = var("NEWSLETTER_MAX_ATTEMPTS", 10, _int, "attempts before an email fails")
    # A plan's follow record (health data) is erased this many days after its closing email.
    plan_keep_days: int = var(
        "NEWSLETTER_PLAN_KEEP_DAYS",
        PLAN_KEEP_DAYS,  # the card's consent says this number (blog.feed_contract)
        _int,
        "days a finished plan's follow record is kept",
    )
    # Set in code only (tests), no environment variable:
    resend_interval: float = 600.0  # at most one confirmation email per address per 10 minutes
    confirm_max_age: int = 48 * 3600
    max_request_bytes: int = 16 * 1024


@dataclass(frozen=True)
class AnnounceSettings:
    """Announcements: `invoke announce`, one email per new article or video"""

    # "": output/feeds/all.rss.xml; or the live feed's http(s) URL.
    feed_url: str = var(
        "NEWSLETTER_FEED_URL", "", _text, "feed to announce (empty: output/feeds/all.rss.xml)"
    )
    mode: str = var(
        "NEWSLETTER_ANNOUNCE_MODE",
        "each",
        _one_of(ANNOUNCE_MODES),
        "new readers' default: each (one email per item) or digest (weekly)",
    )
    # An item older than this when first seen is not sent.
    max_age_days: float = var("NEWSLETTER_ANNOUNCE_MAX_AGE_DAYS", 7.0, _float, "older: not sent")
    # More new items in one run: nothing sent without --yes (0: no limit).
    max_items: int = var("NEWSLETTER_ANNOUNCE_MAX_ITEMS", 5, _int, "more new: needs --yes (0: off)")
    retries: int = var("NEWSLETTER_ANNOUNCE_RETRIES", 3, _int, "retry passes in one run")
    # Seconds before the first retry pass over temporary failures; doubles each time.
    retry_delay: float = var("NEWSLETTER_ANNOUNCE_RETRY_DELAY", 5.0, _rate, "seconds, doubling")
    # The author's YouTube channel feed ("": articles only).
    video_feed_url: str = var(
        "NEWSLETTER_VIDEO_FEED_URL", "", _text, "YouTube channel feed to announce"
    )
    # YouTube Shorts are recorded, not announced.
    video_skip_shorts: bool = var(
        "NEWSLETTER_VIDEO_SKIP_SHORTS", False, _yes_no, "yes: Shorts are not sent"
    )
    # The weekly digest (readers who chose "weekly"): its day and hour in NEWSLETTER_TIMEZONE;
    # the first `invoke announce` at or after that time sends it.
    digest_weekday: int = var(
        "NEWSLETTER_DIGEST_WEEKDAY", 0, _weekday, "weekly digest's day: monday ... sunday (0-6)"
    )
    digest_hour: int = var("NEWSLETTER_DIGEST_HOUR", 8, _hour, "weekly digest's hour, 0-23")

    def __post_init__(self) -> None:
        _choice("NEWSLETTER_ANNOUNCE_MODE", self.mode, ANNOUNCE_MODES)
        if self.feed_url:
            _set(self, "feed_url", _url("NEWSLETTER_FEED_URL", self.feed_url))
        if self.video_feed_url:
            video = _url("NEWSLETTER_VIDEO_FEED_URL", self.video_feed_url, query=True)
            _set(self, "video_feed_url", video)
        if self.max_age_days <= 0:
            raise ConfigError("NEWSLETTER_ANNOUNCE_MAX_AGE_DAYS: must be a positive number")
        if self.max_items < 0:
            raise ConfigError("NEWSLETTER_ANNOUNCE_MAX_ITEMS: use 0 (no limit) or more")
        if self.retry_delay < 0:
            raise ConfigError(f"NEWSLETTER_ANNOUNCE_RETRY_DELAY={self.retry_delay}: not < 0")
        if not (0 <= self.digest_weekday <= 6 and 0 <= self.digest_hour <= 23):
            raise ConfigError(
                "NEWSLETTER_DIGEST_WEEKDAY must be 0-6 and NEWSLETTER_DIGEST_HOUR 0-23"
            )


@dataclass(frozen=True)
class FeedbackSettings:
    """Feedback: the bounces and complaints providers report (webhooks, the bounce mailbox)"""

    # Soft bounces within soft_bounce_days that make a bounce.
    soft_bounce_limit: int = var(
        "NEWSLETTER_SOFT_BOUNCE_LIMIT", 3, _int, "soft bounces that make a bounce"
    )
    soft_bounce_days: float = var(
        "NEWSLETTER_SOFT_BOUNCE_DAYS", 30.0, _float, "... within this many days"
    )
    # "": POST /webhooks/mailgun off.
    mailgun_webhook_key: str = secret(
        "NEWSLETTER_MAILGUN_WEBHOOK_KEY", "", "Mailgun webhook signing key"
    )
    # "": POST /webhooks/ses off.
    ses_topic_arn: str = var("NEWSLETTER_SES_TOPIC_ARN", "", _text, "the SNS topic SES reports to")
    # An older SNS message (a replay) is refused.
    sns_max_age: float = var(
        "NEWSLETTER_SNS_MAX_AGE", 3600.0, _float, "seconds; older SNS messages are refused"
    )

    def __post_init__(self) -> None:
        if self.soft_bounce_limit < 1:
            raise ConfigError("NEWSLETTER_SOFT_BOUNCE_LIMIT: at least 1")
        if self.ses_topic_arn and not re.fullmatch(
            r"arn:aws[\w-]*:sns:[\w-]+:\d{12}:[\w-]+", self.ses_topic_arn
        ):
            raise ConfigError(
                f"NEWSLETTER_SES_TOPIC_ARN={self.ses_topic_arn!r}: not an SNS topic ARN"
            )


@dataclass(frozen=True)
class ImapSettings:
    """IMAP: the bounce mailbox (IMAPS) that `invoke bounces.fetch` reads"""

    host: str = var("NEWSLETTER_IMAP_HOST", "", _text, "bounce mailbox: IMAPS server")
    port: int = var("NEWSLETTER_IMAP_PORT", 993, _port, "bounce mailbox: port")
    user: str = var("NEWSLETTER_IMAP_USER", "", _text, "bounce mailbox: login")
    password: str = secret("NEWSLETTER_IMAP_PASSWORD", "", "bounce mailbox: password (secret)")
    folder: str = var("NEWSLETTER_IMAP_FOLDER", "INBOX", _text, "bounce mailbox: folder to read")
    # Handled reports are moved here.
    done_folder: str = var(
        "NEWSLETTER_IMAP_DONE_FOLDER", "Processed", _text, "bounce mailbox: handled, moved"
    )

    def __post_init__(self) -> None:
        if self.host and not (self.user and self.password):
            raise ConfigError(
                "NEWSLETTER_IMAP_HOST needs NEWSLETTER_IMAP_USER and NEWSLETTER_IMAP_PASSWORD"
            )


# Settings.<name> -> its concern's class, in the order of the docs.
CONCERNS: dict[str, type] = {
    "core": CoreSettings,
    "mail": MailSettings,
    "smtp": SmtpSettings,
    "mailgun": MailgunSettings,
    "http": HttpSettings,
    "endpoint": EndpointSettings,
    "announce": AnnounceSettings,
    "feedback": FeedbackSettings,
    "imap": ImapSettings,
}


class Variable(NamedTuple):
    """One NEWSLETTER_* variable, as its field defines it."""

    name: str  # NEWSLETTER_SMTP_HOST
    concern: str  # smtp
    attribute: str  # host: settings.smtp.host
    flat: str  # smtp_host: the compatibility name, settings.smtp_host
    default: object
    parse: Callable[[str], object]
    help: str
    secret: bool


def _variables() -> dict[str, Variable]:
    found: dict[str, Variable] = {}
    for concern, cls in CONCERNS.items():
        for f in dataclasses.fields(cls):
            if "env" not in f.metadata:
                continue
            name = f.metadata["env"]
            if name in found:
                raise RuntimeError(f"{name} is defined twice")
            found[name] = Variable(
                name,
                concern,
                f.name,
                f.metadata["flat"],
                f.default,
                f.metadata["parse"],
                f.metadata["help"],
                not f.repr,
            )
    return found


def _flat_names() -> dict[str, tuple[str, str]]:
    names: dict[str, tuple[str, str]] = {}
    for concern, cls in CONCERNS.items():
        for f in dataclasses.fields(cls):
            flat = f.metadata.get("flat", f.name)
            if flat in names or flat in CONCERNS:
                raise RuntimeError(f"the flat name {flat} is taken twice")
            names[flat] = (concern, f.name)
    return names


# Every NEWSLETTER_* variable, derived from the fields (not kept by hand).
VARIABLES: dict[str, Variable] = _variables()
# Compatibility: Settings.<flat name> -> (concern, field), e.g. smtp_host -> ("smtp", "host").
FLAT: dict[str, tuple[str, str]] = _flat_names()
# Compatibility: the former Settings' computed values -> where they live now.
DERIVED = {
    "from_address": "mail.from_address",
    "site_origin": "core.site_origin",
    "base_origin": "core.base_origin",
    "list_id": "core.list_id",
    "effective_smtp_port": "smtp.effective_port",
    "mailgun_url": "mailgun.url",
}


@dataclass(frozen=True, init=False)
class Settings:
    """Every setting, by concern. `Settings(**values)` takes concerns (`smtp=SmtpSettings(...)`)
    and flat names (`smtp_host=...`, which change that field of the concern)."""

    core: CoreSettings
    mail: MailSettings
    smtp: SmtpSettings
    mailgun: MailgunSettings
    http: HttpSettings
    endpoint: EndpointSettings
    announce: AnnounceSettings
    feedback: FeedbackSettings
    imap: ImapSettings

    def __init__(self, **values) -> None:
        changes: dict[str, dict[str, object]] = {concern: {} for concern in CONCERNS}
        for key, value in values.items():
            if key in FLAT:
                concern, attribute = FLAT[key]
                changes[concern][attribute] = value
            elif key not in CONCERNS:
                raise TypeError(f"Settings() got an unexpected keyword argument {key!r}")
        for concern, cls in CONCERNS.items():
            part = values.get(concern)
            if part is None:
                part = cls(**changes[concern])
            elif changes[concern]:
                part = dataclasses.replace(part, **changes[concern])
            _set(self, concern, part)
        self._check()

    def _check(self) -> None:
        """What spans concerns."""
        if self.mail.transport == "mailgun" and not (self.mailgun.api_key and self.mailgun.domain):
            raise ConfigError(
                "NEWSLETTER_TRANSPORT=mailgun needs NEWSLETTER_MAILGUN_API_KEY and "
                "NEWSLETTER_MAILGUN_DOMAIN"
            )
        if self.core.env == "production":
            self._check_production()
        elif self.endpoint.proxy_count is None:
            _set(self, "endpoint", dataclasses.replace(self.endpoint, proxy_count=0))

    def _check_production(self) -> None:
        core, mail = self.core, self.mail
        if self.endpoint.proxy_count is None:
            raise ConfigError(
                "NEWSLETTER_PROXY_COUNT: production needs it set explicitly: 0 when clients "
                "connect to gunicorn directly, 1 behind one reverse proxy such as nginx (which "
                "must then set X-Forwarded-For itself; see docs/deployment.md)"
            )
        if core.secret_key == DEV_SECRET_KEY:
            raise ConfigError(
                "NEWSLETTER_SECRET_KEY: production refuses the development key; set a random one, "
                "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if len(core.secret_key) < 32:
            raise ConfigError("NEWSLETTER_SECRET_KEY: production needs at least 32 characters")
        for name, value, dev in (
            ("NEWSLETTER_FROM", mail.sender, DEV_FROM),
            ("NEWSLETTER_POSTAL_ADDRESS", mail.postal_address, DEV_POSTAL_ADDRESS),
            ("NEWSLETTER_SITE_URL", core.site_url, DEV_SITE_URL),
            ("NEWSLETTER_BASE_URL", core.base_url, DEV_BASE_URL),
        ):
            if value == dev:
                raise ConfigError(f"{name}: production needs a real value, not the development one")
        if not core.base_url.startswith("https://"):
            raise ConfigError(
                f"NEWSLETTER_BASE_URL={core.base_url}: production links must be https:// "
                "(mail providers only honour one-click unsubscribe over HTTPS)"
            )

    # Reading the environment ----------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        names = {name for name in environ if name.startswith(PREFIX)}
        unknown = sorted(names - set(VARIABLES) - IGNORED)
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, VARIABLES, n=1)
                hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
            raise ConfigError(
                "unknown setting " + ", ".join(hints) + "; known: " + ", ".join(VARIABLES)
            )
        values = {}
        for name in sorted(names - IGNORED):
            known = VARIABLES[name]
            try:
                values[known.flat] = known.parse(environ[name].strip())
            except (ValueError, TypeError) as error:
                raise ConfigError(f"{name}={environ[name]!r}: {error}") from None
        return cls(**values)

    def replace(self, **changes) -> Settings:
        """A copy with `changes`: concerns, or fields by their flat names."""
        return Settings(**{concern: getattr(self, concern) for concern in CONCERNS} | changes)


def _alias(path: str) -> property:
    return property(operator.attrgetter(path), doc=f"Compatibility: `settings.{path}`.")


for _name, (_concern, _attribute) in FLAT.items():
    setattr(Settings, _name, _alias(f"{_concern}.{_attribute}"))
for _name, _path_to in DERIVED.items():
    setattr(Settings, _name, _alias(_path_to))
del _name, _concern, _attribute, _path_to


def load(config: Settings | Mapping[str, str] | None = None) -> Settings:
    """Settings from an object, from a mapping of NEWSLETTER_* names, or from os.environ."""
    if isinstance(config, Settings):
        return config
    return Settings.from_env(config)  # None: os.environ


__all__ = [
    "CONCERNS",
    "DERIVED",
    "FLAT",
    "ROOT",
    "VARIABLES",
    "AnnounceSettings",
    "ConfigError",
    "CoreSettings",
    "EndpointSettings",
    "FeedbackSettings",
    "HttpSettings",
    "ImapSettings",
    "MailSettings",
    "MailgunSettings",
    "Settings",
    "SmtpSettings",
    "Variable",
    "load",
    "parse_rate_limit",
]
