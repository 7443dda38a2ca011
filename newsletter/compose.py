"""The emails we send, composed with the standard library's `email` package.

Contract:
- `confirmation_email(settings, subscriber, confirm_url=, unsubscribe_url=, message_id=)` returns
  a multipart/alternative `EmailMessage`: plain text, then HTML rendered from Jinja templates
  with its CSS inlined by css-inline; From from settings; the postal address in the footer.
- `message_id(settings, kind, key)` is deterministic: the same queued email always gets the same
  Message-ID, so a resend after a crash can be recognised as a duplicate.
- `set_list_headers(message, settings, unsubscribe_url)` is the one place that writes
  List-Unsubscribe, List-Unsubscribe-Post (RFC 8058 one-click) and List-Id: every email to a
  subscriber (confirmation now, announcements next) goes through it.
- `links(settings, tokens, subscriber)` builds the confirmation and unsubscribe URLs.
Header values come from settings and validated addresses; the email package refuses line breaks
in any header, so nothing from outside can add a header. Messages use `POLICY`: headers are
never folded into encoded words below 998 characters (List-Unsubscribe must stay a literal URL);
serialise them with their own policy (`message.as_bytes()`), as smtplib does.
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from newsletter.config import Settings
from newsletter.store import Subscriber, utcnow
from newsletter.tokens import Tokens

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES / "email"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_inliner = css_inline.CSSInliner(load_remote_stylesheets=False)


class _HeaderClasses(HeaderRegistry):
    """The standard registry builds a new class for every header it parses; build each once."""

    def __init__(self):
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name):
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# Every message we make uses this policy. Lines are folded only past RFC 5322's hard limit of
# 998 characters: at the usual 78, the email package would rewrite List-Unsubscribe's long URL
# as an RFC 2047 encoded word, which no mail provider reads as a URL.
POLICY = email.policy.default.clone(max_line_length=998, header_factory=_HeaderClasses())


def links(settings: Settings, tokens: Tokens, subscriber: Subscriber) -> dict[str, str]:
    return {
        "confirm_url": f"{settings.base_url}/confirm/"
        + tokens.confirm_token(subscriber.public_id, subscriber.confirm_nonce),
        "unsubscribe_url": unsubscribe_url(settings, tokens, subscriber),
    }


def unsubscribe_url(settings: Settings, tokens: Tokens, subscriber: Subscriber) -> str:
    return f"{settings.base_url}/unsubscribe/" + tokens.unsubscribe_token(subscriber.public_id)


def message_id(settings: Settings, kind: str, key: str | int) -> str:
    """<digest.kind@sender-domain>: a keyed digest, so it reveals no counts or ids."""
    digest = hmac.new(
        settings.secret_key.encode(), f"{kind}:{key}".encode(), hashlib.sha256
    ).hexdigest()[:32]
    return f"<{digest}.{kind}@{settings.from_address.domain}>"


def set_list_headers(message: EmailMessage, settings: Settings, unsubscribe_url: str) -> None:
    """List-Unsubscribe with the HTTPS one-click URL (RFC 2369 + RFC 8058), and List-Id.
    With NEWSLETTER_UNSUBSCRIBE_MAILTO set, a mailto: follows the URL (for older mail programs)."""
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
        del message[name]
    mailto = settings.unsubscribe_mailto
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>" + (
        f", <mailto:{mailto}?subject=unsubscribe>" if mailto else ""
    )
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Id"] = settings.list_id


def new_message(settings: Settings, to: str, subject: str, msg_id: str) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["From"] = settings.from_address
    message["To"] = _address(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = msg_id
    return message


def render(template: str, **context) -> tuple[str, str]:
    """(text, html) from `template`.txt and `template`.html, the HTML with its CSS inlined."""
    text = _env.get_template(f"{template}.txt").render(**context)
    html = _inliner.inline(_env.get_template(f"{template}.html").render(**context))
    return text, html


def confirmation_email(
    settings: Settings,
    subscriber: Subscriber,
    *,
    confirm_url: str,
    unsubscribe_url: str,
    message_id: str,
) -> EmailMessage:
    subject = f"Confirm your subscription to {settings.site_name}"
    text, html = render(
        "confirm",
        subject=subject,
        site_name=settings.site_name,
        site_url=settings.site_url,
        postal_address=settings.postal_address,
        confirm_url=confirm_url,
        unsubscribe_url=unsubscribe_url,
        hours=settings.confirm_max_age // 3600,
    )
    message = new_message(settings, subscriber.email, subject, message_id)
    message["Auto-Submitted"] = "auto-generated"  # no vacation auto-replies to a confirmation
    set_list_headers(message, settings, unsubscribe_url)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _address(email: str) -> Address:
    username, _, domain = email.rpartition("@")
    return Address(username=username, domain=domain)


__all__ = [
    "POLICY",
    "confirmation_email",
    "links",
    "message_id",
    "new_message",
    "render",
    "set_list_headers",
    "unsubscribe_url",
]
