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
    once: only To, Message-ID, the unsubscribe URL and the two quoted-printable bodies (with the
    unsubscribe and preferences URLs, `preferences_url(delivery)`) differ per subscriber
    (addresses that are not plain ASCII take the reference path,
    `compose.wire`). With it the shared `Batch` (the bodies and headers with the unsubscribe URL
    and Message-ID as placeholders) and the subscriber's own values, for mailers that send one
    call to many.
  Nothing a feed carries can steer those bytes: the prototype's marks (`Marks`) are drawn at
  random per Composer, before anything is rendered, so no title, dek or summary can contain
  one; and the prototype is cut only where each mark occurs exactly once, in its expected
  place (To, Message-ID, List-Unsubscribe header lines; each body after its part's headers).
  Otherwise every message takes the reference path. `bodies(url, preferences="")` is (text,
  html) with URLs in place of the unsubscribe and preferences marks (the preview's sample link).
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
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from html import unescape
from html.parser import HTMLParser

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import Announcement, Delivery, Draft
from newsletter.mail import Batch, Outgoing, proof
from newsletter.mail import message as compose
from newsletter.mail.message import SMTP_POLICY
from newsletter.settings import Settings
from newsletter.subscriptions.emails import preferences_url, unsubscribe_url
from newsletter.subscriptions.tokens import Tokens

BATCH_HEADERS = ("Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
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
            site_name=settings.core.site_name,
            video=items[0].kind == "video",
            what=_what_is_new(items),
        )
    )
    return subject[:250] or settings.core.site_name


def _what_is_new(items: list[FeedItem]) -> str:
    """What a digest's subject and heading call its items: articles, videos, or both."""
    videos = sum(item.kind == "video" for item in items)
    return (
        "articles and videos" if 0 < videos < len(items) else ("videos" if videos else "articles")
    )


def drafts(items: list[FeedItem], settings: Settings) -> list[Draft]:
    if not items:
        return []
    if settings.announce.mode == "digest" and len(items) > 1:
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


@dataclass(frozen=True)
class Marks:
    """One composer's placeholders: random per instance (128 bits), so that no text from a feed
    (titles, deks, summaries, all rendered after they were drawn) can contain one."""

    to: str
    id: str
    url: str
    text: str
    html: str
    preferences: str

    @classmethod
    def new(cls) -> Marks:
        nonce = secrets.token_hex(16)
        return cls(
            to=f"to-{nonce}@placeholder.invalid",
            id=f"<id-{nonce}@placeholder.invalid>",
            url=f"https://unsubscribe-{nonce}.invalid/u",
            text=f"TEXTBODY{nonce}",
            html=f"HTMLBODY{nonce}",
            preferences=f"https://preferences-{nonce}.invalid/p",
        )


class Composer:
    def __init__(self, settings: Settings, tokens: Tokens, announcement: Announcement):
        self.settings, self.tokens, self.announcement = settings, tokens, announcement
        self.marks = Marks.new()
        self.subject = one_line(announcement.subject)
        self.text, self.html = self._render()
        urls = (self.marks.url, self.marks.preferences)
        self._text_qp, self._html_qp = _QpTemplate(self.text, urls), _QpTemplate(self.html, urls)
        self._date = None
        self._prototype()

    # Rendering, once per announcement ---------------------------------------------------------
    def _render(self) -> tuple[str, str]:
        items = self.announcement.items
        authors = [item.author for item in items if item.author]
        context = dict(
            subject=self.subject,
            site_name=self.settings.core.site_name,
            site_url=self.settings.core.site_url,
            postal_address=self.settings.mail.postal_address,
            unsubscribe_url=self.marks.url,
            preferences_url=self.marks.preferences,
            author=authors[0] if authors else self.settings.core.site_name,
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
        if self.settings.mail.reply_to:
            message["Reply-To"] = self.settings.mail.reply_to
        compose.set_list_headers(message, self.settings, unsubscribe_url)
        return message

    def _prototype(self) -> None:
        marks = self.marks
        prototype = self._headers(marks.to, marks.id, marks.url)
        prototype.set_content(marks.text)
        prototype.add_alternative(marks.html, subtype="html")
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
            headers=(*headers, ("Message-Id", marks.id)),
            placeholders={
                marks.url: "unsubscribe_url",
                marks.id: "message_id",
                marks.preferences: "preferences_url",
            },
        )
        # None: the marks are not exactly where expected, so every message takes the reference
        # path (the email package writes it); never a message cut at the wrong place.
        self._pieces = _cut(prototype.as_bytes(policy=SMTP_POLICY), marks)

    # Per subscriber ---------------------------------------------------------------------------
    def message_id(self, delivery: Delivery) -> str:
        return proof.message_id(
            self.settings, "announce", self.announcement.key, delivery.public_id
        )

    def unsubscribe_url(self, delivery: Delivery) -> str:
        return unsubscribe_url(self.settings, self.tokens, delivery.public_id)

    def preferences_url(self, delivery: Delivery) -> str:
        return preferences_url(self.settings, self.tokens, delivery.public_id)

    def bodies(self, url: str, preferences: str = "") -> tuple[str, str]:
        """(text, html) with `url` as the unsubscribe link, `preferences` as the preferences
        page's (default: `url`)."""
        marks, preferences = self.marks, preferences or url
        text, html = self.text, self.html
        for mark, value in ((marks.url, url), (marks.preferences, preferences)):
            text, html = text.replace(mark, value), html.replace(mark, value)
        return text, html

    def message(self, delivery: Delivery) -> EmailMessage:
        """The reference message, made by the email package from scratch."""
        url = self.unsubscribe_url(delivery)
        message = self._headers(delivery.email, self.message_id(delivery), url)
        text, html = self.bodies(url, self.preferences_url(delivery))
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    def outgoing(self, delivery: Delivery, *, with_data: bool = True) -> Outgoing:
        url = self.unsubscribe_url(delivery)
        preferences = self.preferences_url(delivery)
        message_id = self.message_id(delivery)
        if not with_data:
            data = b""
        elif self._pieces is not None and PLAIN_ADDRESS.fullmatch(delivery.email):
            head, to_id, id_url, url_text, text_html, tail = self._pieces
            soft = soft_urls((url, preferences))  # once for both bodies
            data = b"".join(
                (head, delivery.email.encode(), to_id, message_id.encode(), id_url, url.encode(),
                 url_text, self._text_qp.render(url, preferences, soft=soft), text_html,
                 self._html_qp.render(url, preferences, soft=soft), tail)
            )  # fmt: skip
        else:  # an internationalised address (or no safe prototype): the email package writes it
            data = compose.wire(self.message(delivery))
        return Outgoing(
            to=delivery.email,
            message_id=message_id,
            data=data,
            batch=self.batch,
            variables={
                "unsubscribe_url": url,
                "message_id": message_id,
                "preferences_url": preferences,
            },
            ref=delivery.id,
            envelope_from=proof.return_path(
                self.settings, "announce", self.announcement.key, delivery.public_id
            ),
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


def _cut(data: bytes, marks: Marks) -> tuple[bytes, ...] | None:
    """The serialised prototype cut at its marks, or None unless each mark occurs exactly once
    and where expected: To, Message-ID and List-Unsubscribe in the top headers, in that order,
    each on its own header line; the text body, then the HTML body, each right after its part's
    headers. The pieces: before To, To..Message-ID, Message-ID..URL, URL..text, text..HTML,
    after the HTML."""
    to, id_, url, text, html = (
        mark.encode() for mark in (marks.to, marks.id, marks.url, marks.text, marks.html)
    )
    if any(data.count(mark) != 1 for mark in (to, id_, url, text, html)):
        return None
    headers = b"\r\n" + data.partition(b"\r\n\r\n")[0] + b"\r\n"
    lines = (b"\r\nTo: " + to + b"\r\n", b"\r\nMessage-ID: " + id_ + b"\r\n",
             b"\r\nList-Unsubscribe: <" + url + b">")  # fmt: skip
    if not all(line in headers for line in lines):
        return None
    at = [data.index(mark) for mark in (to, id_, url, text, html)]
    blank = b"\r\n\r\n"  # each body right after its part's headers
    if at != sorted(at) or data[at[3] - 4 : at[3]] != blank or data[at[4] - 4 : at[4]] != blank:
        return None
    ends = [a + len(mark) for a, mark in zip(at, (to, id_, url, text, html), strict=True)]
    starts, stops = [0, *ends], [*at, len(data)]
    return tuple(data[start:stop] for start, stop in zip(starts, stops, strict=True))


SAFE_URL = re.compile(r"[A-Za-z0-9:/._~-]+")


class _QpTemplate:
    """A body with the reader's own URLs in some places (`marks`: the unsubscribe URL, the
    preferences URL), quoted-printable encoded once: per subscriber, only the URLs are put in,
    each between soft line breaks (they need no escaping)."""

    def __init__(self, text: str, marks: tuple[str, ...]):
        self.text, self.marks = text, marks
        pieces, self.order, at = [], [], 0
        for found in re.finditer("|".join(map(re.escape, marks)), text):
            pieces.append(text[at : found.start()])
            self.order.append(marks.index(found.group()))
            at = found.end()
        pieces.append(text[at:])
        self.encoded = [_qp(p, last=False) for p in pieces[:-1]] + [_qp(pieces[-1])]

    def render(self, *urls: str, soft: list[bytes] | None = None) -> bytes:
        """The body with `urls` in place of the marks; `soft`: `soft_urls(urls)`, made once for
        both bodies of an email."""
        if soft is None:
            soft = soft_urls(urls)
        if soft is None:
            text = self.text
            for mark, url in zip(self.marks, urls, strict=True):
                text = text.replace(mark, url)
            return _qp(text)
        parts = [self.encoded[0]]
        for index, piece in zip(self.order, self.encoded[1:], strict=True):
            parts += (soft[index], piece)
        return b"".join(parts)


def soft_urls(urls) -> list[bytes] | None:
    """Each URL between soft line breaks (`_soft`), or None unless every one is safe as it is."""
    if not all(SAFE_URL.fullmatch(url) for url in urls):
        return None
    return [_soft(url) for url in urls]


def _soft(url: str) -> bytes:
    """A URL between soft line breaks, cut every 75 characters."""
    cut = b"=\r\n".join(url[i : i + 75].encode() for i in range(0, len(url), 75))
    return b"=\r\n" + cut + b"=\r\n"


__all__ = ["Composer", "Marks", "drafts", "html_to_text", "one_line", "subject_for"]
