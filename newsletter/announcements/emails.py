"""The announcement email: one new article (or a digest of several), per subscriber.

Contract:
- `drafts(items, settings)` groups the items to announce: one `Draft` per article (mode `each`),
  or one digest for all of them (mode `digest`; a digest of one is a plain article email). The
  subject comes from `announcement.subject.txt` / `digest.subject.txt`.
- `Composer(settings, tokens, announcement)` renders the Jinja templates (`announcement.*`,
  `digest.*`, extending the confirmation email's `base.html`: the blog's look) ONCE per
  announcement, with the CSS inlined by `compose.render`. Then, per subscriber:
  - `message(delivery)`: the reference `EmailMessage`, built with `compose.new_message` and
    `compose.set_list_headers` (From, To, Subject, Date, Message-ID, Reply-To, List-Id,
    List-Unsubscribe with the subscriber's one-click URL, List-Unsubscribe-Post), multipart
    text + HTML;
  - `outgoing(delivery, with_data=)`: the `mail.Outgoing` for the mailer. Its `data` is the
    same message as wire bytes (CRLF), made fast from a prototype the email package serialised
    once: only To, Message-ID, the unsubscribe URL and the two quoted-printable bodies differ
    per subscriber (addresses that are not plain ASCII take the reference path,
    `compose.wire`). With it the shared `Batch` (the bodies and headers with the unsubscribe URL
    and Message-ID as placeholders) and the subscriber's own values, for mailers that send one
    call to many.
  The Message-ID is deterministic per (announcement key, subscriber), so a message re-sent after
  a crash is recognisably the same message.
- Titles, deks and authors are plain text (`feed.plain_text`: tags stripped, entities decoded
  when the feed gave HTML): autoescaped in HTML, whitespace (line breaks included) collapsed
  before they reach a header, so the Subject reads `Knees & Hips <Part 1>`, never `<b>`.
  Summaries are HTML that went through `feed.safe_html` (nh3's allow-list; every `FeedItem`
  applies it) and images are http(s) URLs (`feed.http_url`): the templates print the summary as
  HTML, and nothing else from the feed.
- An article's exercise plans (`FeedItem.exercises`, plain text) follow its summary in both parts
  (`_exercises.html`, `_exercises.txt`): in HTML an email-safe card (tables for layout, the
  steps as a list, the prescription as label/value cells, a link to the card in the article to
  print it or add it to a calendar), every value escaped; in text the name, the targets, the
  numbered steps and one "Label: value" line per row.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from email.message import EmailMessage
from html import unescape
from html.parser import HTMLParser

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import Announcement, Delivery, Draft
from newsletter.mail import Batch, Outgoing
from newsletter.mail import message as compose
from newsletter.mail.message import SMTP_POLICY
from newsletter.settings import Settings
from newsletter.subscriptions.bounces import return_path
from newsletter.subscriptions.emails import unsubscribe_url
from newsletter.subscriptions.tokens import Tokens

BATCH_HEADERS = ("Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
TO_MARK = "to-placeholder-7f3a9c@placeholder.invalid"
ID_MARK = "<id-placeholder-7f3a9c@placeholder.invalid>"
URL_MARK = "https://unsubscribe-placeholder-7f3a9c.invalid/u"
TEXT_MARK = "TEXTBODYPLACEHOLDER7f3a9c"
HTML_MARK = "HTMLBODYPLACEHOLDER7f3a9c"
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")

_subjects = Environment(
    loader=FileSystemLoader(compose.TEMPLATES / "email"),
    autoescape=False,  # a header, not HTML: line breaks are removed below instead
    undefined=StrictUndefined,
)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def subject_for(settings: Settings, kind: str, items: list[FeedItem]) -> str:
    template = _subjects.get_template(
        f"{'digest' if kind == 'digest' else 'announcement'}.subject.txt"
    )
    subject = one_line(
        template.render(
            title=items[0].title,
            subtitle=items[0].subtitle,
            count=len(items),
            titles=[item.title for item in items],
            site_name=settings.site_name,
            video=items[0].kind == "video",
            what=_what_is_new(items),
        )
    )
    return subject[:250] or settings.site_name


def _what_is_new(items: list[FeedItem]) -> str:
    """What a digest's subject and heading call its items: articles, videos, or both."""
    videos = sum(item.kind == "video" for item in items)
    return (
        "articles and videos" if 0 < videos < len(items) else ("videos" if videos else "articles")
    )


def drafts(items: list[FeedItem], settings: Settings) -> list[Draft]:
    if not items:
        return []
    if settings.announce_mode == "digest" and len(items) > 1:
        digest = hashlib.sha256("\n".join(sorted(i.guid for i in items)).encode()).hexdigest()
        return [Draft("digest", f"digest:{digest[:32]}", subject_for(settings, "digest", items),
                      list(items))]  # fmt: skip
    return [Draft("article", item.guid, subject_for(settings, "article", [item]), [item])
            for item in items]  # fmt: skip


class _Text(HTMLParser):
    """Summary HTML as plain text: paragraphs and line breaks kept, everything else dropped."""

    BLOCKS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "blockquote", "aside", "tr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self.parts.append("\n\n" if tag != "br" else "\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_data(self, data):
        self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        raw = "".join(self.parts)
        paragraphs = [
            "\n".join(" ".join(line.split()) for line in p.split("\n") if line.strip())
            for p in re.split(r"\n\s*\n", raw)
        ]
        return "\n\n".join(p for p in paragraphs if p)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return unescape(parser.text())


class Composer:
    def __init__(self, settings: Settings, tokens: Tokens, announcement: Announcement):
        self.settings, self.tokens, self.announcement = settings, tokens, announcement
        self.subject = one_line(announcement.subject)
        self.text, self.html = self._render()
        self._text_qp, self._html_qp = _QpTemplate(self.text), _QpTemplate(self.html)
        self._date = None
        self._prototype()

    # Rendering, once per announcement ---------------------------------------------------------
    def _render(self) -> tuple[str, str]:
        items = self.announcement.items
        authors = [item.author for item in items if item.author]
        context = dict(
            subject=self.subject,
            site_name=self.settings.site_name,
            site_url=self.settings.site_url,
            postal_address=self.settings.postal_address,
            unsubscribe_url=URL_MARK,
            author=authors[0] if authors else self.settings.site_name,
        )
        if self.announcement.kind == "digest":
            context["items"] = [
                dict(item.to_dict(), summary_text=html_to_text(item.summary)) for item in items
            ]
            text, html = compose.render("digest", what=_what_is_new(items), **context)
        else:
            item = items[0]
            text, html = compose.render(
                "announcement", item=item, summary_text=html_to_text(item.summary), **context
            )
        return _lf(text), _lf(html)

    def _headers(self, to: str, message_id: str, unsubscribe_url: str) -> EmailMessage:
        message = compose.new_message(self.settings, to, self.subject, message_id)
        if self._date is None:
            self._date = message["Date"]  # one Date for the whole announcement run
        else:
            message.replace_header("Date", self._date)
        if self.settings.reply_to:
            message["Reply-To"] = self.settings.reply_to
        compose.set_list_headers(message, self.settings, unsubscribe_url)
        return message

    def _prototype(self) -> None:
        prototype = self._headers(TO_MARK, ID_MARK, URL_MARK)
        prototype.set_content(TEXT_MARK)
        prototype.add_alternative(HTML_MARK, subtype="html")
        for part in prototype.iter_parts():
            part.replace_header("Content-Transfer-Encoding", "quoted-printable")
        self.prototype = prototype
        headers = [(name, str(prototype[name])) for name in BATCH_HEADERS if prototype[name]]
        self.batch = Batch(
            key=self.announcement.key,
            sender=str(prototype["From"]),
            subject=str(prototype["Subject"]),
            text=self.text,
            html=self.html,
            headers=(*headers, ("Message-Id", ID_MARK)),
            placeholders={URL_MARK: "unsubscribe_url", ID_MARK: "message_id"},
        )
        data = prototype.as_bytes(policy=SMTP_POLICY)
        head, rest = data.split(TEXT_MARK.encode(), 1)
        middle, tail = rest.split(HTML_MARK.encode(), 1)
        self._head, self._middle, self._tail = head, middle, tail

    # Per subscriber ---------------------------------------------------------------------------
    def message_id(self, delivery: Delivery) -> str:
        return compose.message_id(
            self.settings, "announce", f"{self.announcement.key}:{delivery.public_id}"
        )

    def unsubscribe_url(self, delivery: Delivery) -> str:
        return unsubscribe_url(self.settings, self.tokens, delivery.public_id)

    def message(self, delivery: Delivery) -> EmailMessage:
        """The reference message, made by the email package from scratch."""
        url = self.unsubscribe_url(delivery)
        message = self._headers(delivery.email, self.message_id(delivery), url)
        message.set_content(self.text.replace(URL_MARK, url))
        message.add_alternative(self.html.replace(URL_MARK, url), subtype="html")
        return message

    def outgoing(self, delivery: Delivery, *, with_data: bool = True) -> Outgoing:
        url = self.unsubscribe_url(delivery)
        message_id = self.message_id(delivery)
        if not with_data:
            data = b""
        elif PLAIN_ADDRESS.fullmatch(delivery.email):
            head = (
                self._head.replace(TO_MARK.encode(), delivery.email.encode())
                .replace(ID_MARK.encode(), message_id.encode())
                .replace(URL_MARK.encode(), url.encode())
            )
            data = b"".join(
                (head, self._text_qp.render(url), self._middle, self._html_qp.render(url),
                 self._tail)
            )  # fmt: skip
        else:  # an internationalised address: let the email package write it
            data = compose.wire(self.message(delivery))
        return Outgoing(
            to=delivery.email,
            message_id=message_id,
            data=data,
            batch=self.batch,
            variables={"unsubscribe_url": url, "message_id": message_id},
            ref=delivery,
            envelope_from=return_path(self.settings, delivery.public_id),
        )


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _qp(text: str, *, last: bool = True) -> bytes:
    """Quoted-printable (RFC 2045) with CRLF line ends; the last piece without its final line
    break (the prototype has it)."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    if last:
        encoded = encoded.rstrip(b"\n")
    return encoded.replace(b"\n", b"\r\n")


SAFE_URL = re.compile(r"[A-Za-z0-9:/._~-]+")


class _QpTemplate:
    """A body with the unsubscribe URL in some places, quoted-printable encoded once: per
    subscriber, only the URL is put in, between soft line breaks (it needs no escaping)."""

    def __init__(self, text: str):
        pieces = text.split(URL_MARK)
        self.text = text
        self.encoded = [_qp(p, last=False) for p in pieces[:-1]] + [_qp(pieces[-1])]

    def render(self, url: str) -> bytes:
        if not SAFE_URL.fullmatch(url):
            return _qp(self.text.replace(URL_MARK, url))
        soft = b"=\r\n".join(url[i : i + 75].encode() for i in range(0, len(url), 75))
        return (b"=\r\n" + soft + b"=\r\n").join(self.encoded)


__all__ = ["Composer", "drafts", "html_to_text", "one_line", "subject_for"]
