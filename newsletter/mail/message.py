"""Composing email with the standard library's `email` package: the parts every email shares.

Contract:
- `render(template, **context)` returns (text, html) from `templates/email/<template>.txt` and
  `.html` (Jinja, autoescaped HTML), the HTML with its CSS inlined by css-inline.
- `new_message(settings, to, subject, message_id)` starts a message: From from the settings,
  To, Subject, Date, Message-ID. `message_id(settings, kind, key, public_id)` is `proof`'s:
  deterministic (the same email always gets the same Message-ID, so a resend after a crash is
  recognisably the same), and it proves whom it was sent to.
- `set_list_headers(message, settings, unsubscribe_url)` is the one place that writes
  List-Unsubscribe, List-Unsubscribe-Post (RFC 8058 one-click) and List-Id: every email to a
  subscriber goes through it.
- `wire(message)` is the message as SMTP carries it (CRLF; UTF-8 headers only for an
  internationalised address).
Header values come from settings and validated addresses; the email package refuses line breaks
in any header, so nothing from outside can add a header. Messages use `POLICY`: headers are
never folded into encoded words below 998 characters (List-Unsubscribe must stay a literal URL);
serialise them with their own policy (`message.as_bytes()`), as smtplib does.
"""

from __future__ import annotations

import email.policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from newsletter.database import utcnow
from newsletter.mail.proof import message_id
from newsletter.settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
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
SMTP_POLICY = POLICY.clone(linesep="\r\n")


def set_list_headers(message: EmailMessage, settings: Settings, unsubscribe_url: str) -> None:
    """List-Unsubscribe with the HTTPS one-click URL (RFC 2369 + RFC 8058), and List-Id.
    With NEWSLETTER_UNSUBSCRIBE_MAILTO set, a mailto: follows the URL (for older mail programs)."""
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
        del message[name]
    mailto = settings.mail.unsubscribe_mailto
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>" + (
        f", <mailto:{mailto}?subject=unsubscribe>" if mailto else ""
    )
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Id"] = settings.core.list_id


def new_message(settings: Settings, to: str, subject: str, msg_id: str) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["From"] = settings.mail.from_address
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


def wire(message: EmailMessage) -> bytes:
    """The message as SMTP carries it: CRLF line ends; UTF-8 headers for a non-ASCII address."""
    to = str(message.get("To", ""))
    return message.as_bytes(policy=SMTP_POLICY if to.isascii() else SMTP_POLICY.clone(utf8=True))


def _address(email: str) -> Address:
    username, _, domain = email.rpartition("@")
    return Address(username=username, domain=domain)


__all__ = [
    "POLICY",
    "SMTP_POLICY",
    "TEMPLATES",
    "message_id",
    "new_message",
    "render",
    "set_list_headers",
    "wire",
]
