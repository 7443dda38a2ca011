"""The announcement email, read back with the standard `email` package as a mail program would."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from html import escape

import pytest
from bs4 import BeautifulSoup

from newsletter.announcements.emails import Composer, drafts, html_to_text
from newsletter.announcements.feed import FeedItem, parse_feed
from newsletter.announcements.ledger import Announcement, Delivery
from newsletter.mail import proof
from newsletter.subscriptions.tokens import Tokens
from tests.announce_helpers import ATTACKER_DEK, HOSTILE_TEXTS, as_words, assert_whole_email

TRICKY = 'Knees & Hips <Part 1> "quoted"'
ITEM = FeedItem(
    guid="urn:uuid:6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30",
    link="https://walkagain.example/2026/knees-hips/",
    title=TRICKY,
    subtitle="Gluteus medius, the <b>hip</b> muscle & you",
    summary="<p>One <em>often</em> overlooked muscle &amp; what it does.</p>",
    image="https://walkagain.example/images/gluteus-medius.png",
    published=datetime(2026, 11, 23, 18, 0, tzinfo=UTC),
    author="Mark Williams",
)
READER = Delivery(1, 1, 0, 7, "Pub1d-of-reader", "reader@example.com")


@pytest.fixture
def settings(make_settings):
    return make_settings(reply_to="mark@walkagain.example")


def composer_for(settings, items=(ITEM,)):
    (draft,) = drafts(list(items), settings)
    announcement = Announcement(1, draft.kind, draft.key, draft.subject, draft.items, "", None)
    return Composer(settings, Tokens(settings.secret_key), announcement)


def received(composer, delivery=READER):
    return email.message_from_bytes(composer.outgoing(delivery).data, policy=email.policy.default)


def test_headers_and_rfc8058(settings):
    composer = composer_for(settings)
    message = received(composer)
    token = Tokens(settings.secret_key).unsubscribe_token(READER.public_id)
    assert message["From"] == "Walk Again <news@walkagain.example>"
    assert message["Reply-To"] == "mark@walkagain.example"
    assert message["To"] == "reader@example.com"
    assert message["Subject"] == TRICKY
    assert message["Date"].datetime.tzinfo is not None
    assert message["List-Unsubscribe"] == f"<{settings.base_url}/unsubscribe/{token}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Walk Again <newsletter.walkagain.example>"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    # Deterministic per (article, subscriber): the same twice, another for another reader.
    again = received(composer_for(settings))
    other = received(composer, Delivery(2, 1, 0, 8, "other-public-id", "other@example.com"))
    assert again["Message-ID"] == message["Message-ID"] != other["Message-ID"]
    # Our proof: a seal only the secret key makes, and the public id it proves (not the address)
    assert re.fullmatch(
        r"<[0-9a-f]{32}\.Pub1d-of-reader\.announce@walkagain\.example>", message["Message-ID"]
    )
    assert proof.proven_by_message_id(settings, message["Message-ID"]) == "Pub1d-of-reader"
    assert "reader@" not in message["Message-ID"] and "Pub1d" not in message["List-Unsubscribe"]


def test_mailto_joins_the_https_url_when_configured(settings):
    settings = settings.replace(unsubscribe_mailto="leave@walkagain.example")
    message = received(composer_for(settings))
    https, mailto = str(message["List-Unsubscribe"]).split(", ")
    assert https.startswith(f"<{settings.base_url}/unsubscribe/")
    assert mailto == "<mailto:leave@walkagain.example?subject=unsubscribe>"


def test_html_part_has_everything_escaped_and_inlined(settings):
    message = received(composer_for(settings))
    html = message.get_body(("html",)).get_content()
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("style") is None and soup.find("h1")["style"]  # CSS inlined
    assert soup.find("h1").get_text() == TRICKY  # escaped, so it reads as written
    assert soup.select_one("p.dek").get_text() == "Gluteus medius, the <b>hip</b> muscle & you"
    assert soup.find("img")["src"] == ITEM.image and soup.find("img")["alt"] == TRICKY
    assert soup.select_one(".summary em").get_text() == "often"  # the summary's own HTML kept
    button = soup.find("a", string="Read the article")
    assert button["href"] == ITEM.link and "background" in button["style"]
    assert "Stay tuned," in soup.get_text() and "Mark Williams" in soup.get_text()
    footer = soup.select_one(".footer").get_text(" ", strip=True)
    assert "you subscribed to new articles" in footer  # why you get this
    assert settings.postal_address in footer
    unsubscribe = soup.find("a", string="Unsubscribe")
    assert unsubscribe["href"] == message["List-Unsubscribe"].strip("<>")


def test_text_part_reads_well(settings):
    text = received(composer_for(settings)).get_body(("plain",)).get_content()
    text = text.replace("\r\n", "\n")  # the wire's CRLF, as a mail program reads it
    assert text.startswith(f"{TRICKY}\nGluteus medius, the <b>hip</b> muscle & you\n")
    assert "One often overlooked muscle & what it does." in text
    assert f"Read the article: {ITEM.link}" in text
    assert "Stay tuned,\nMark Williams" in text
    assert "Walk Again, 2 Mill Lane, Leeds LS1 1AA" in text
    assert f"Unsubscribe with one click: {settings.base_url}/unsubscribe/" in text


@pytest.mark.parametrize("mode", ["each", "digest"])
def test_the_text_footer_names_the_blog_once(settings, mode):
    """Issue 22: it read "Walk Again · Walk Again, 2 Mill Lane, ...", the blog's name and then
    the postal address, which starts with it. The address is its own line, as written."""
    second = FeedItem(guid="urn:uuid:2", link="https://walkagain.example/2026/ankles/",
                      title="Ankles & stairs", summary="<p>Steps.</p>")  # fmt: skip
    items = [ITEM] if mode == "each" else [ITEM, second]
    composer = composer_for(settings.replace(announce_mode=mode), items)
    text = received(composer).get_body(("plain",)).get_content().replace("\r\n", "\n")
    footer = text.split("\n--\n", 1)[1].splitlines()
    assert settings.postal_address in footer
    assert [line for line in footer if line.count("Walk Again") > 1] == []


@pytest.mark.parametrize(
    "title",
    [
        "Line one\nBcc: victim@example.com",
        "Tabs\tand\r\ncarriage returns",
        "<script>x</script> & é",
    ],
)
def test_titles_never_break_headers_or_html(settings, title):
    item = FeedItem(guid="g", link="https://walkagain.example/a/", title=title)
    message = received(composer_for(settings, [item]))
    assert message["Bcc"] is None and len(message.keys()) == 11
    assert "\n" not in message["Subject"] and message["Subject"] == " ".join(title.split())
    soup = BeautifulSoup(message.get_body(("html",)).get_content(), "html.parser")
    assert soup.find("script") is None
    assert soup.find("h1").get_text().split() == title.split()  # as text, not markup


def test_the_fast_path_equals_the_email_packages_own_message(settings):
    """Bulk sending makes each message from a prototype; it must be the same message that the
    email package builds from scratch, for plain and internationalised addresses."""
    composer = composer_for(settings)
    readers = [
        READER,
        Delivery(2, 1, 0, 8, "x" * 22, "o'brien+news@sub.example.org"),
        Delivery(3, 1, 0, 9, "y" * 22, "josé@exämple.com"),
    ]
    for delivery in readers:
        fast = email.message_from_bytes(
            composer.outgoing(delivery).data, policy=email.policy.default
        )
        reference = email.message_from_bytes(
            composer.message(delivery).as_bytes(  # unfolded, as we send it
                policy=email.policy.SMTPUTF8.clone(max_line_length=998)
            ),
            policy=email.policy.default,
        )
        names = [name for name in reference.keys() if name != "Content-Type"]
        assert [n for n in fast.keys() if n != "Content-Type"] == names
        for name in names:
            assert str(fast[name]) == str(reference[name]), name
        for kind in ("plain", "html"):
            assert fast.get_body((kind,)).get_content() == reference.get_body((kind,)).get_content()
        assert b"\r\n" in composer.outgoing(delivery).data
        assert max(map(len, composer.outgoing(delivery).data.split(b"\r\n"))) <= 998
        # On the wire the URL is literal (never folded into an =?utf-8?q?...?= encoded word).
        url = composer.unsubscribe_url(delivery).encode()
        assert b"\r\nList-Unsubscribe: <" + url + b">" in composer.outgoing(delivery).data


def test_digest_lists_every_article(settings):
    settings = settings.replace(announce_mode="digest")
    second = FeedItem(guid="urn:uuid:2", link="https://walkagain.example/2026/ankles/",
                      title="Ankles & stairs", summary="<p>Steps.</p>")  # fmt: skip
    (draft,) = drafts([ITEM, second], settings)
    assert draft.kind == "digest" and draft.key.startswith("digest:")
    assert draft.subject == f"2 new articles on Walk Again: {TRICKY}, Ankles & stairs"
    message = received(composer_for(settings, [ITEM, second]))
    soup = BeautifulSoup(message.get_body(("html",)).get_content(), "html.parser")
    assert [a.get_text() for a in soup.select(".item h2 a")] == [TRICKY, "Ankles & stairs"]
    assert [a["href"] for a in soup.select("a.more")] == [ITEM.link, second.link]
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert f"1. {TRICKY}" in text and "2. Ankles & stairs" in text
    # One new article in digest mode is a plain article email.
    (single,) = drafts([second], settings)
    assert single.kind == "article"


def test_a_digest_of_an_article_and_a_video_names_both_in_every_part(settings):
    settings = settings.replace(announce_mode="digest")
    video = FeedItem(guid="yt:video:AbCdEfGhIjK", link="https://www.youtube.com/watch?v=AbCdEfGhIjK",
                     title="Clamshells", summary="<p>Watch.</p>", kind="video")  # fmt: skip
    (draft,) = drafts([ITEM, video], settings)
    assert draft.subject == f"2 new articles and videos on Walk Again: {TRICKY}, Clamshells"
    message = received(composer_for(settings, [ITEM, video]))
    soup = BeautifulSoup(message.get_body(("html",)).get_content(), "html.parser")
    assert soup.select_one("h1").get_text() == "2 new articles and videos"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("2 new articles and videos on Walk Again\n")
    assert "2. Video: Clamshells" in text


def test_html_to_text():
    html = "<p>One &amp; <em>two</em></p><ul><li>a</li><li>b</li></ul><p>x<br>y</p>"
    assert html_to_text(html) == "One & two\n\n- a\n\n- b\n\nx\ny"


# Feed HTML and titles from a real (hostile) feed, through the email ------------------------------
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:st="urn:x-stay-tuned:article:1"><channel><title>Walk Again</title>
<link>https://walkagain.example/</link><description>d</description>{items}</channel></rss>"""
HOSTILE = """<p>The <em>gluteus medius</em> steadies the knee:
<a href="https://walkagain.example/2026/hips/">read why</a>.</p>
<form action="https://evil.example/steal"><p>Confirm your password:</p>
<input name="password" type="password"><button>Log in</button></form>
<svg onload="alert(1)"><script>alert(2)</script><text>svg text</text></svg>
<p><a href="javascript:alert(3)">click me</a></p>
<img src="data:image/png;base64,iVBORw0KGgo=" alt="data image">
<img src="https://walkagain.example/images/hip.png" alt="The hip" width="400">
<p style="position:fixed;top:0;left:0;width:100%;height:100%;background:#c00">Overlay</p>
<iframe src="https://evil.example/frame"></iframe>"""


def feed_item(title="Hips", summary="<p>Steps.</p>", extra="", guid="urn:uuid:h1"):
    xml = (
        f"<item><title>{title}</title><guid>{guid}</guid>"
        f"<link>https://walkagain.example/2026/{guid[-2:]}/</link>"
        f"<description>{escape(summary)}</description>{extra}</item>"
    )
    (item,) = parse_feed(FEED.format(items=xml).encode(), "test.xml").items
    return item


@pytest.mark.parametrize("mode", ["each", "digest"])
def test_feed_html_reaches_the_email_allow_listed(settings, mode):
    settings = settings.replace(announce_mode=mode)
    items = [feed_item(summary=HOSTILE), feed_item("Ankles", guid="urn:uuid:a2")]
    message = received(composer_for(settings, items if mode == "digest" else items[:1]))
    html = message.get_body(("html",)).get_content()
    soup = BeautifulSoup(html, "html.parser")
    for name in ("form", "input", "button", "svg", "script", "iframe", "math", "object"):
        assert soup.find(name) is None, name
    for tag in soup.find_all(True):
        for name in ("href", "src"):
            if tag.get(name) is not None:
                assert tag[name].startswith(("https://", "http://")), tag
    # Styles are our own, inlined from the templates; none comes from the feed.
    for tag in soup.select(".summary, .summary *"):
        assert "position" not in tag.get("style", "") and "#c00" not in tag.get("style", "")
    for words in ("password", "Log in", "alert", "svg text", "evil.example", "javascript"):
        assert words not in html, words
    # The article's own content survives.
    summary = soup.select_one(".summary")
    assert summary.find("em").get_text() == "gluteus medius"
    assert summary.find("a", string="read why")["href"] == "https://walkagain.example/2026/hips/"
    assert [img.get("src") for img in summary.find_all("img")] == [
        "https://walkagain.example/images/hip.png"
    ]
    assert "Overlay" in summary.get_text() and "click me" in summary.get_text()
    text = message.get_body(("plain",)).get_content()
    assert "The gluteus medius steadies the knee: read why." in " ".join(text.split())
    for words in ("password", "Log in", "alert", "svg text", "evil.example", "javascript"):
        assert words not in text, words


def test_an_enclosure_that_is_not_http_is_no_image(settings):
    item = feed_item(extra='<enclosure url="javascript:alert(1)" type="image/png" length="1"/>')
    message = received(composer_for(settings, [item]))
    html = message.get_body(("html",)).get_content()
    soup = BeautifulSoup(html, "html.parser")
    assert "javascript" not in html and soup.find("img") is None


@pytest.mark.parametrize(
    "xml",
    [
        "&lt;b&gt;Knees&lt;/b&gt; &amp;amp; Hips &amp;lt;Part 1&amp;gt;",
        "<![CDATA[<b>Knees</b> &amp; Hips &lt;Part 1&gt;]]>",
    ],
)
def test_html_titles_are_text_in_the_subject_and_the_email(settings, xml):
    image = '<enclosure url="https://walkagain.example/i.png" type="image/png" length="1"/>'
    item = feed_item(xml, extra=f"<st:subtitle>{xml}</st:subtitle>{image}")
    message = received(composer_for(settings, [item]))
    assert message["Subject"] == "Knees & Hips <Part 1>"
    html = message.get_body(("html",)).get_content()
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("h1").get_text() == "Knees & Hips <Part 1>" and soup.find("h1").a.b is None
    assert soup.find("title").get_text() == "Knees & Hips <Part 1>"
    assert soup.select_one("p.dek").get_text() == "Knees & Hips <Part 1>"
    assert soup.select_one("img.hero")["alt"] == "Knees & Hips <Part 1>"
    assert soup.find("b") is None and "&amp;amp;" not in html
    assert "Knees &amp; Hips &lt;Part 1&gt;" in html  # escaped once, as text
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Knees & Hips <Part 1>\nKnees & Hips <Part 1>\n")
    settings = settings.replace(announce_mode="digest")
    (draft,) = drafts([item, feed_item("Ankles", guid="urn:uuid:a2")], settings)
    assert draft.subject == "2 new articles on Walk Again: Knees & Hips <Part 1>, Ankles"


# Nothing a feed carries can reach the structure of an email (issue 17) -------------------------
@pytest.mark.parametrize("field", ["title", "dek", "summary"])
@pytest.mark.parametrize("hostile", HOSTILE_TEXTS)
def test_no_feed_text_reaches_the_structure_of_the_email(make_settings, field, hostile):
    """Today's defect: the composer cut its prototype at fixed markers, so a title holding
    TEXTBODYPLACEHOLDER7f3a9c and a dek `Reply-To: attacker@evil.example` made that a header
    (pushing Message-ID and List-Unsubscribe into the body), and the other markers put the
    reader's address or live unsubscribe URL into the Subject."""
    values = {"title": "Hips", "dek": ATTACKER_DEK, "summary": "<p>Steps.</p>"}
    values[field] = f"<p>{escape(hostile)}</p>" if field == "summary" else hostile
    item = FeedItem(guid="urn:uuid:h", link="https://walkagain.example/2026/h/",
                    title=values["title"], subtitle=values["dek"],
                    summary=values["summary"])  # fmt: skip
    for settings in (make_settings(), make_settings(reply_to="mark@walkagain.example")):
        message = received(composer_for(settings, [item]))
        assert_whole_email(message, settings, READER.email, subject=as_words(values["title"]),
                           shows=values[field] if field != "summary" else hostile)  # fmt: skip
        assert_whole_email(message, settings, READER.email, subject=as_words(values["title"]),
                           shows=values["dek"])  # the dek is words in the body  # fmt: skip


def test_a_prototype_holding_its_own_marks_is_not_cut(make_settings, monkeypatch):
    """Belt and braces: were a title to hold this composer's marks (they are random, so a feed
    cannot know them), the prototype is not cut and the email package writes every message."""
    import newsletter.announcements.emails as emails

    monkeypatch.setattr(emails.secrets, "token_hex", lambda n: "0" * (2 * n))
    marks = emails.Marks.new()
    settings = make_settings()
    for title in (marks.text, f"{marks.to} {marks.url}", marks.id, marks.html):
        item = FeedItem(guid="urn:uuid:m", link="https://walkagain.example/2026/m/",
                        title=title, subtitle=ATTACKER_DEK)  # fmt: skip
        composer = composer_for(settings, [item])
        assert composer.marks == marks
        for delivery in (READER, Delivery(2, 1, 0, 8, "other-public-id", "other@example.com")):
            message = received(composer, delivery)
            assert_whole_email(message, settings, delivery.email, subject=title,
                               shows=ATTACKER_DEK)  # fmt: skip
