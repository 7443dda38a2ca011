"""The confirmation and welcome emails and the links in every email to a subscriber.

Contract:
- `links(settings, tokens, subscriber)`: the confirmation and unsubscribe URLs (signed, opaque
  tokens: the subscriber's random public id, never the row id or the address).
- `unsubscribe_url(settings, tokens, public_id)`: the one-click URL; the same string every time.
- `confirmation_email(settings, subscriber, confirm_url=, unsubscribe_url=, message_id=)`: a
  multipart/alternative `EmailMessage` (plain text, then HTML in the blog's look with its CSS
  inlined), `Auto-Submitted: auto-generated`, the list headers, the postal address in the footer.
- `welcome_email(settings, subscriber, unsubscribe_url=, message_id=, articles=, library="",
  preferences_url="")`:
  the welcome, made the same way (layout, CSS inlined, list headers, footer, Reply-To as the
  announcements): the author's `NEWSLETTER_WELCOME_TEXT` in paragraphs, the author's "start
  here" picks (`NEWSLETTER_WELCOME_START_HERE`), the latest `articles` (`Article`s; none: no
  list; a pick is not repeated there; at most `LATEST`), the exercise library's URL when
  given, the blog.
  `paragraphs(text)` splits that text on blank lines.
- `preferences_url(settings, tokens, public_id)`: the preferences page's link in every email's
  footer (beside the unsubscribe link); the same string every time.
- `address_change_email(settings, to, *, confirm_url, taken, message_id)`: the email to a NEW
  address asked for on the preferences page: a button that confirms the change (`confirm_url`),
  or, when the address is already on the list (`taken`), a note that nothing changes (told to
  that mailbox only). Not a list email: no unsubscribe link or list headers (its reader is not
  on the list, and the link would end another address's subscription).
"""

from __future__ import annotations

from email.message import EmailMessage

from newsletter.mail import message as compose
from newsletter.settings import Settings
from newsletter.subscriptions.articles import Article
from newsletter.subscriptions.subscribers import Subscriber
from newsletter.subscriptions.tokens import Tokens


def links(settings: Settings, tokens: Tokens, subscriber: Subscriber) -> dict[str, str]:
    return {
        "confirm_url": f"{settings.core.base_url}/confirm/"
        + tokens.confirm_token(subscriber.public_id, subscriber.confirm_nonce),
        "unsubscribe_url": unsubscribe_url(settings, tokens, subscriber.public_id),
    }


def unsubscribe_url(settings: Settings, tokens: Tokens, public_id: str) -> str:
    return f"{settings.core.base_url}/unsubscribe/" + tokens.unsubscribe_token(public_id)


def preferences_url(settings: Settings, tokens: Tokens, public_id: str) -> str:
    return f"{settings.core.base_url}/preferences/" + tokens.preferences_token(public_id)


def confirmation_email(
    settings: Settings,
    subscriber: Subscriber,
    *,
    confirm_url: str,
    unsubscribe_url: str,
    message_id: str,
) -> EmailMessage:
    return _email(
        settings, subscriber, "confirm", f"Confirm your subscription to {settings.core.site_name}",
        message_id, unsubscribe_url, reply_to=False,
        confirm_url=confirm_url, hours=settings.endpoint.confirm_max_age // 3600,
    )  # fmt: skip


def _email(settings, subscriber, template, subject, message_id, unsubscribe_url, *, reply_to,
           **context) -> EmailMessage:  # fmt: skip
    """One of the list's own emails to one reader: `template` rendered with what every one of
    them shows, sent by the list (`Auto-Submitted`), with the list's headers."""
    text, html = compose.render(
        template,
        subject=subject,
        site_name=settings.core.site_name,
        site_url=settings.core.site_url,
        postal_address=settings.mail.postal_address,
        unsubscribe_url=unsubscribe_url,
        **context,
    )
    message = compose.new_message(settings, subscriber.email, subject, message_id)
    message["Auto-Submitted"] = "auto-generated"
    if reply_to and settings.mail.reply_to:
        message["Reply-To"] = settings.mail.reply_to
    compose.set_list_headers(message, settings, unsubscribe_url)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


LATEST = 3  # the latest articles a welcome lists


def paragraphs(text: str) -> list[str]:
    """The author's text in paragraphs: split on blank lines (or the two characters \\n\\n of
    an environment file), each on one line."""
    text = text.replace("\\n", "\n")
    parts = (" ".join(part.split()) for part in text.replace("\r\n", "\n").split("\n\n"))
    return [part for part in parts if part]


def welcome_email(
    settings: Settings,
    subscriber: Subscriber,
    *,
    unsubscribe_url: str,
    message_id: str,
    articles: list[Article],
    library: str = "",
    preferences_url: str = "",
) -> EmailMessage:
    start_here = [Article(title, url) for title, url in settings.mail.start_here]
    picked = {article.link for article in start_here}
    return _email(
        settings, subscriber, "welcome", f"Welcome to {settings.core.site_name}", message_id,
        unsubscribe_url, reply_to=True,  # a reader may answer the author's welcome
        paragraphs=paragraphs(settings.mail.welcome_text), start_here=start_here,
        articles=[article for article in articles if article.link not in picked][:LATEST],
        library=library, preferences_url=preferences_url,
    )  # fmt: skip


def address_change_email(
    settings: Settings, to: str, *, confirm_url: str, taken: bool, message_id: str
) -> EmailMessage:
    subject = (
        f"This address is already on {settings.core.site_name}'s list"
        if taken
        else f"Confirm your new address for {settings.core.site_name}"
    )
    text, html = compose.render(
        "address_change",
        subject=subject,
        site_name=settings.core.site_name,
        site_url=settings.core.site_url,
        postal_address=settings.mail.postal_address,
        subscribe_url=f"{settings.core.base_url}/subscribe",
        confirm_url=confirm_url,
        taken=taken,
        hours=settings.endpoint.confirm_max_age // 3600,
    )
    message = compose.new_message(settings, to, subject, message_id)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


__all__ = [
    "address_change_email",
    "confirmation_email",
    "links",
    "paragraphs",
    "preferences_url",
    "unsubscribe_url",
    "welcome_email",
]
