"""Newsletter settings: every NEWSLETTER_* environment variable, read in this one place.

Contract: `Settings.from_env(environ)` returns a frozen `Settings` with defaults that run the
whole product on one machine (SQLite in var/, email written to var/outbox/). Any NEWSLETTER_*
name it does not know, and any malformed value, raises `ConfigError` naming the variable.
With NEWSLETTER_ENV=production it also refuses the development defaults that must never reach
the public: the secret key, the sender, the site and endpoint URLs and the postal address.
`Settings(...)` built directly (tests) is validated the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from newsletter.ratelimit import Rate

ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"
DEV_FROM = "Walk Again <newsletter@localhost>"
DEV_POSTAL_ADDRESS = "Walk Again, 1 Example Street, London"  # production must set its own
DEV_SITE_URL = "http://localhost:8000"
DEV_BASE_URL = "http://127.0.0.1:5000"
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


class ConfigError(ValueError):
    """A NEWSLETTER_* variable is unknown or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database: Path = ROOT / "var" / "newsletter.sqlite3"
    secret_key: str = field(default=DEV_SECRET_KEY, repr=False)
    transport: str = "outbox"
    outbox: Path = ROOT / "var" / "outbox"
    smtp_host: str = "localhost"
    smtp_port: int = 0  # 0: the usual port for smtp_security (587, 465 or 25)
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_timeout: float = 10.0
    sender: str = DEV_FROM  # "Name <address>": the From of every email
    site_name: str = "Walk Again"
    site_url: str = DEV_SITE_URL  # the public blog: links back to it, the one CORS origin
    base_url: str = DEV_BASE_URL  # this endpoint's public URL: confirmation/unsubscribe links
    postal_address: str = DEV_POSTAL_ADDRESS
    rate_limit: Rate = Rate(20, 3600)
    # Reverse proxies in front whose X-Forwarded-For we trust. None: not said; development takes
    # 0, production refuses to start (trusting too many lets a client pick its IP, too few makes
    # every client one IP for the rate limit).
    proxy_count: int | None = None
    resend_interval: float = 600.0  # at most one confirmation email per address per 10 minutes
    confirm_max_age: int = 48 * 3600
    retry_delay: float = 30.0  # first retry of a failed email; doubles each time, up to 1 h
    max_attempts: int = 10
    max_request_bytes: int = 16 * 1024
    # Announcements (`invoke announce`): one email per new article in the feed -----------------
    feed_url: str = ""  # "": output/feeds/all.rss.xml; or the live feed's http(s) URL
    announce_mode: str = "each"  # each: one email per new article; digest: one for all new
    announce_max_age_days: float = 7.0  # an item older than this when first seen is not sent
    announce_max_items: int = 5  # more new items in one run: nothing sent without --yes (0: off)
    announce_retries: int = 3  # passes over temporary failures within one run
    announce_retry_delay: float = 5.0  # seconds before the first retry pass; doubles each time
    reply_to: str = ""  # Reply-To of announcements ("": replies go to From)
    unsubscribe_mailto: str = ""  # also offer mailto: in List-Unsubscribe ("": HTTPS only)
    smtp_workers: int = 4  # SMTP connections sending announcements in parallel
    smtp_rate: float = 0.0  # at most this many messages per second (0: no limit)
    mailgun_api_key: str = field(default="", repr=False)
    mailgun_domain: str = ""  # the sending domain registered at Mailgun
    mailgun_region: str = "us"  # us or eu: which API base URL
    mailgun_base_url: str = ""  # overrides the region's base URL (a proxy, tests)
    mailgun_batch_size: int = MAILGUN_MAX_BATCH
    video_feed_url: str = ""  # the author's YouTube channel feed ("": articles only)
    video_skip_shorts: bool = False  # YouTube Shorts are recorded, not announced
    # Provider feedback: bounces and complaints read back -------------------------------------
    soft_bounce_limit: int = 3  # soft bounces within soft_bounce_days that make a bounce
    soft_bounce_days: float = 30.0
    mailgun_webhook_key: str = field(default="", repr=False)  # "": POST /webhooks/mailgun off
    ses_topic_arn: str = ""  # "": POST /webhooks/ses off
    sns_max_age: float = 3600.0  # seconds: an older SNS message (a replay) is refused
    imap_host: str = ""  # "": no bounce mailbox
    imap_port: int = 993
    imap_user: str = ""
    imap_password: str = field(default="", repr=False)
    imap_folder: str = "INBOX"
    imap_done_folder: str = "Processed"  # handled reports are moved here
    verp_domain: str = ""  # "": Return-Path is From; else bounces+<proof>@<this domain>

    def __post_init__(self) -> None:
        _choice("NEWSLETTER_ENV", self.env, ENVIRONMENTS)
        _choice("NEWSLETTER_TRANSPORT", self.transport, TRANSPORTS)
        _choice("NEWSLETTER_SMTP_SECURITY", self.smtp_security, SMTP_SECURITY)
        for name, value in (
            ("NEWSLETTER_DATABASE", self.database),
            ("NEWSLETTER_OUTBOX", self.outbox),
        ):
            path = Path(value).resolve()
            if path.is_relative_to((ROOT / "output").resolve()):
                raise ConfigError(f"{name}={value}: must not be under output/, which is published")
            object.__setattr__(self, name.removeprefix("NEWSLETTER_").lower(), path)
        for name, value in (
            ("NEWSLETTER_SITE_URL", self.site_url),
            ("NEWSLETTER_BASE_URL", self.base_url),
        ):
            object.__setattr__(self, name.removeprefix("NEWSLETTER_").lower(), _url(name, value))
        _sender_address(self.sender)
        if not 0 <= self.smtp_port <= 65535:
            raise ConfigError(f"NEWSLETTER_SMTP_PORT={self.smtp_port}: not a port number")
        if bool(self.smtp_user) != bool(self.smtp_password):
            raise ConfigError("NEWSLETTER_SMTP_USER and NEWSLETTER_SMTP_PASSWORD go together")
        if len(self.secret_key) < 16:
            raise ConfigError(
                "NEWSLETTER_SECRET_KEY: too short (use at least 32 random characters)"
            )
        if self.smtp_timeout <= 0:
            raise ConfigError("NEWSLETTER_SMTP_TIMEOUT: must be a positive number of seconds")
        if not self.postal_address.strip():
            raise ConfigError("NEWSLETTER_POSTAL_ADDRESS: must not be empty")
        self._check_announcements()
        if self.env == "production":
            self._check_production()
        elif self.proxy_count is None:
            object.__setattr__(self, "proxy_count", 0)

    def _check_announcements(self) -> None:
        _choice("NEWSLETTER_ANNOUNCE_MODE", self.announce_mode, ANNOUNCE_MODES)
        _choice("NEWSLETTER_MAILGUN_REGION", self.mailgun_region, tuple(MAILGUN_REGIONS))
        if self.feed_url:
            object.__setattr__(self, "feed_url", _url("NEWSLETTER_FEED_URL", self.feed_url))
        if self.video_feed_url:
            object.__setattr__(
                self,
                "video_feed_url",
                _url("NEWSLETTER_VIDEO_FEED_URL", self.video_feed_url, query=True),
            )
        if self.mailgun_base_url:
            object.__setattr__(
                self, "mailgun_base_url", _url("NEWSLETTER_MAILGUN_BASE_URL", self.mailgun_base_url)
            )
        if self.announce_max_age_days <= 0:
            raise ConfigError("NEWSLETTER_ANNOUNCE_MAX_AGE_DAYS: must be a positive number")
        if self.announce_max_items < 0:
            raise ConfigError("NEWSLETTER_ANNOUNCE_MAX_ITEMS: use 0 (no limit) or more")
        if self.announce_retry_delay < 0 or self.smtp_rate < 0:
            raise ConfigError("NEWSLETTER_ANNOUNCE_RETRY_DELAY and NEWSLETTER_SMTP_RATE: not < 0")
        if not 1 <= self.smtp_workers <= 64:
            raise ConfigError(f"NEWSLETTER_SMTP_WORKERS={self.smtp_workers}: use 1 to 64")
        if not 1 <= self.mailgun_batch_size <= MAILGUN_MAX_BATCH:
            raise ConfigError(
                f"NEWSLETTER_MAILGUN_BATCH_SIZE={self.mailgun_batch_size}: "
                f"use 1 to {MAILGUN_MAX_BATCH} (Mailgun's limit per call)"
            )
        for name, value in (
            ("NEWSLETTER_REPLY_TO", self.reply_to),
            ("NEWSLETTER_UNSUBSCRIBE_MAILTO", self.unsubscribe_mailto),
        ):
            if value and (any(c in value for c in "\r\n<>, ") or value.count("@") != 1):
                raise ConfigError(f"{name}={value!r}: use a plain address, e.g. list@example.com")
        if self.soft_bounce_limit < 1:
            raise ConfigError("NEWSLETTER_SOFT_BOUNCE_LIMIT: at least 1")
        if self.imap_host and not (self.imap_user and self.imap_password):
            raise ConfigError(
                "NEWSLETTER_IMAP_HOST needs NEWSLETTER_IMAP_USER and NEWSLETTER_IMAP_PASSWORD"
            )
        if self.ses_topic_arn and not re.fullmatch(r"arn:aws[\w-]*:sns:[\w-]+:\d{12}:[\w-]+",
                                                   self.ses_topic_arn):  # fmt: skip
            raise ConfigError(
                f"NEWSLETTER_SES_TOPIC_ARN={self.ses_topic_arn!r}: not an SNS topic ARN"
            )
        if self.transport == "mailgun" and not (self.mailgun_api_key and self.mailgun_domain):
            raise ConfigError(
                "NEWSLETTER_TRANSPORT=mailgun needs NEWSLETTER_MAILGUN_API_KEY and "
                "NEWSLETTER_MAILGUN_DOMAIN"
            )

    def _check_production(self) -> None:
        if self.proxy_count is None:
            raise ConfigError(
                "NEWSLETTER_PROXY_COUNT: production needs it set explicitly: 0 when clients "
                "connect to gunicorn directly, 1 behind one reverse proxy such as nginx (which "
                "must then set X-Forwarded-For itself; see docs/deployment.md)"
            )
        if self.secret_key == DEV_SECRET_KEY:
            raise ConfigError(
                "NEWSLETTER_SECRET_KEY: production refuses the development key; set a random one, "
                "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if len(self.secret_key) < 32:
            raise ConfigError("NEWSLETTER_SECRET_KEY: production needs at least 32 characters")
        for name, value, dev in (
            ("NEWSLETTER_FROM", self.sender, DEV_FROM),
            ("NEWSLETTER_POSTAL_ADDRESS", self.postal_address, DEV_POSTAL_ADDRESS),
            ("NEWSLETTER_SITE_URL", self.site_url, DEV_SITE_URL),
            ("NEWSLETTER_BASE_URL", self.base_url, DEV_BASE_URL),
        ):
            if value == dev:
                raise ConfigError(f"{name}: production needs a real value, not the development one")
        if not self.base_url.startswith("https://"):
            raise ConfigError(
                f"NEWSLETTER_BASE_URL={self.base_url}: production links must be https:// "
                "(mail providers only honour one-click unsubscribe over HTTPS)"
            )

    # Derived values -------------------------------------------------------------------------
    @functools.cached_property
    def from_address(self) -> Address:  # cached: every Message-ID of a bulk send asks for it
        return _sender_address(self.sender)

    @property
    def site_origin(self) -> str:
        return _origin(self.site_url)

    @property
    def base_origin(self) -> str:
        return _origin(self.base_url)

    @property
    def effective_smtp_port(self) -> int:
        return self.smtp_port or DEFAULT_SMTP_PORTS[self.smtp_security]

    @property
    def mailgun_url(self) -> str:
        """The Mailgun API's base URL: the region's, unless NEWSLETTER_MAILGUN_BASE_URL is set."""
        return self.mailgun_base_url or MAILGUN_REGIONS[self.mailgun_region]

    @property
    def list_id(self) -> str:
        """The List-Id header: the list's name and a domain-like id from the site's host."""
        host = urlsplit(self.site_url).hostname or "localhost"
        return f"{self.site_name} <newsletter.{host}>"

    # Reading the environment ----------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        names = {name for name in environ if name.startswith("NEWSLETTER_")}
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
            attribute, parse, _help = VARIABLES[name]
            raw = environ[name].strip()
            try:
                values[attribute] = parse(raw)
            except (ValueError, TypeError) as error:
                raise ConfigError(f"{name}={environ[name]!r}: {error}") from None
        return cls(**values)

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def load(config: Settings | Mapping[str, str] | None = None) -> Settings:
    """Settings from an object, from a mapping of NEWSLETTER_* names, or from os.environ."""
    if isinstance(config, Settings):
        return config
    return Settings.from_env(config)  # None: os.environ


# Parsers --------------------------------------------------------------------------------------
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


def _yes_no(raw: str) -> bool:
    if raw.lower() in ("yes", "true", "1", "on"):
        return True
    if raw.lower() in ("no", "false", "0", "off"):
        return False
    raise ValueError("must be yes or no")


def _path(raw: str) -> Path:
    return Path(_text(raw)).expanduser()


def _rate(raw: str) -> float:
    value = _number(raw)
    if not 0 <= value < float("inf"):
        raise ValueError("must be 0 (no limit) or a positive number")
    return value


def _port(raw: str) -> int:
    value = _int(raw)
    if not 1 <= value <= 65535:
        raise ValueError("must be a port number from 1 to 65535")
    return value


def parse_rate_limit(raw: str) -> Rate:
    """'20/hour', '10/minute', '1000/s', '30/10m': N requests per period."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", raw.lower())
    if not match or match.group(3) not in PERIODS or int(match.group(1)) < 1:
        raise ValueError("use COUNT/PERIOD, e.g. 20/hour, 10/minute or 30/10m")
    multiple = int(match.group(2) or 1)
    if multiple < 1:
        raise ValueError("the period must be at least 1")
    return Rate(int(match.group(1)), multiple * PERIODS[match.group(3)])


def _url(name: str, value: str, *, query: bool = False) -> str:
    """An http(s) URL; with `query`, it may have one (YouTube's feed: ?channel_id=...) and is
    kept as it is, else it has none and loses a trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={value!r}: must be an http:// or https:// URL")
    if parts.fragment or (parts.query and not query):
        raise ConfigError(f"{name}={value!r}: must not have a query or a fragment")
    return value if query else value.rstrip("/")


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


def _one_of(choices):
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return raw.lower()

    return parse


def _choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: must be one of " + ", ".join(choices))


_environment, _transport = _one_of(ENVIRONMENTS), _one_of(TRANSPORTS)
_security, _mode, _region = (
    _one_of(SMTP_SECURITY),
    _one_of(ANNOUNCE_MODES),
    _one_of(MAILGUN_REGIONS),
)

# name -> (Settings attribute, parser, help); docs/settings.md is made from this and the defaults
VARIABLES: dict[str, tuple[str, object, str]] = {
    "NEWSLETTER_ENV": ("env", _environment, "development or production"),
    "NEWSLETTER_DATABASE": ("database", _path, "the SQLite file"),
    "NEWSLETTER_SECRET_KEY": ("secret_key", _text, "signs the links; required in production"),
    "NEWSLETTER_TRANSPORT": ("transport", _transport, "outbox, smtp or mailgun"),
    "NEWSLETTER_OUTBOX": ("outbox", _path, "folder for .eml files (transport outbox)"),
    "NEWSLETTER_SMTP_HOST": ("smtp_host", _text, "SMTP server"),
    "NEWSLETTER_SMTP_PORT": ("smtp_port", _port, "default 587, 465 (ssl) or 25 (none)"),
    "NEWSLETTER_SMTP_SECURITY": ("smtp_security", _security, "starttls, ssl or none"),
    "NEWSLETTER_SMTP_USER": ("smtp_user", _text, "SMTP login (with the password)"),
    "NEWSLETTER_SMTP_PASSWORD": ("smtp_password", _text, "SMTP password"),
    "NEWSLETTER_SMTP_TIMEOUT": ("smtp_timeout", _float, "seconds per SMTP operation"),
    "NEWSLETTER_FROM": ("sender", _text, "From: 'Name <address>'; required in production"),
    "NEWSLETTER_SITE_NAME": ("site_name", _text, "the list's name"),
    "NEWSLETTER_SITE_URL": ("site_url", _text, "the public blog, for links and CORS"),
    "NEWSLETTER_BASE_URL": ("base_url", _text, "this endpoint's public URL, for email links"),
    "NEWSLETTER_POSTAL_ADDRESS": ("postal_address", _text, "sender's postal address (footer)"),
    "NEWSLETTER_RATE_LIMIT": ("rate_limit", parse_rate_limit, "subscribe requests per client IP"),
    "NEWSLETTER_PROXY_COUNT": ("proxy_count", _int, "proxies in front; production: required"),
    "NEWSLETTER_RETRY_DELAY": ("retry_delay", _float, "seconds before the first retry"),
    "NEWSLETTER_MAX_ATTEMPTS": ("max_attempts", _int, "attempts before an email fails"),
    "NEWSLETTER_FEED_URL": (
        "feed_url",
        _text,
        "feed to announce (empty: output/feeds/all.rss.xml)",
    ),
    "NEWSLETTER_ANNOUNCE_MODE": ("announce_mode", _mode, "each (one email per item) or digest"),
    "NEWSLETTER_ANNOUNCE_MAX_AGE_DAYS": ("announce_max_age_days", _float, "older: not sent"),
    "NEWSLETTER_ANNOUNCE_MAX_ITEMS": ("announce_max_items", _int, "more new: needs --yes (0: off)"),
    "NEWSLETTER_ANNOUNCE_RETRIES": ("announce_retries", _int, "retry passes in one run"),
    "NEWSLETTER_ANNOUNCE_RETRY_DELAY": ("announce_retry_delay", _rate, "seconds, doubling"),
    "NEWSLETTER_REPLY_TO": ("reply_to", _text, "Reply-To address of announcements"),
    "NEWSLETTER_UNSUBSCRIBE_MAILTO": ("unsubscribe_mailto", _text, "mailto: in List-Unsubscribe"),
    "NEWSLETTER_SMTP_WORKERS": ("smtp_workers", _int, "parallel SMTP connections"),
    "NEWSLETTER_SMTP_RATE": ("smtp_rate", _rate, "messages per second at most (0: no limit)"),
    "NEWSLETTER_MAILGUN_API_KEY": ("mailgun_api_key", _text, "Mailgun API key (secret)"),
    "NEWSLETTER_MAILGUN_DOMAIN": ("mailgun_domain", _text, "Mailgun sending domain"),
    "NEWSLETTER_MAILGUN_REGION": ("mailgun_region", _region, "us or eu"),
    "NEWSLETTER_MAILGUN_BASE_URL": ("mailgun_base_url", _text, "overrides the region's API URL"),
    "NEWSLETTER_MAILGUN_BATCH_SIZE": ("mailgun_batch_size", _int, "recipients per Mailgun call"),
    "NEWSLETTER_VIDEO_FEED_URL": ("video_feed_url", _text, "YouTube channel feed to announce"),
    "NEWSLETTER_VIDEO_SKIP_SHORTS": ("video_skip_shorts", _yes_no, "yes: Shorts are not sent"),
    "NEWSLETTER_SOFT_BOUNCE_LIMIT": ("soft_bounce_limit", _int, "soft bounces that make a bounce"),
    "NEWSLETTER_SOFT_BOUNCE_DAYS": ("soft_bounce_days", _float, "... within this many days"),
    "NEWSLETTER_MAILGUN_WEBHOOK_KEY": ("mailgun_webhook_key", _text, "Mailgun webhook signing key"),
    "NEWSLETTER_SES_TOPIC_ARN": ("ses_topic_arn", _text, "the SNS topic SES reports to"),
    "NEWSLETTER_SNS_MAX_AGE": ("sns_max_age", _float, "seconds; older SNS messages are refused"),
    "NEWSLETTER_IMAP_HOST": ("imap_host", _text, "bounce mailbox: IMAPS server"),
    "NEWSLETTER_IMAP_PORT": ("imap_port", _port, "bounce mailbox: port"),
    "NEWSLETTER_IMAP_USER": ("imap_user", _text, "bounce mailbox: login"),
    "NEWSLETTER_IMAP_PASSWORD": ("imap_password", _text, "bounce mailbox: password (secret)"),
    "NEWSLETTER_IMAP_FOLDER": ("imap_folder", _text, "bounce mailbox: folder to read"),
    "NEWSLETTER_IMAP_DONE_FOLDER": ("imap_done_folder", _text, "bounce mailbox: handled, moved"),
    "NEWSLETTER_VERP_DOMAIN": ("verp_domain", _text, "Return-Path bounces+<proof>@ this"),
}
# Read by pelicanconf.py, not by the newsletter: the address the site's form posts to.
IGNORED = {"NEWSLETTER_URL"}

__all__ = ["ROOT", "ConfigError", "Settings", "VARIABLES", "load", "parse_rate_limit"]
