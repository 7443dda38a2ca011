"""Issue 20, end to end: three readers sign up through the real "Stay tuned" form in Chromium
(knees only, each article; everything, weekly; hips only, weekly) and confirm; over a simulated
week four articles in two categories and one video are published (real Pelican builds, the
real feed, a YouTube channel feed) and `invoke announce` runs through the real SMTP test
server. Each reader receives exactly what they chose, once; the everything reader switches from
weekly to each in the middle of the week and loses and repeats nothing; each confirmation brings
one welcome email; the test send reaches one address and changes nothing in the ledger."""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newsletter.announcements import run as announce
from newsletter.database import Database
from newsletter.ratelimit import Rate
from newsletter.subscriptions.choices import Choice, Choices
from newsletter.subscriptions.subscribers import Status
from tests.browser import expect
from tests.conftest import build_site, serve_folder
from tests.newsletter_helpers import link, start_endpoint
from tests.smtp_server import SmtpSink

TIMEOUT_MS = 15_000
CHANNEL = (Path(__file__).parent / "fixtures" / "youtube-channel.xml").read_text()
KNEES, EVERYTHING, HIPS = "knees@example.com", "everything@example.com", "hips@example.com"
TOPICS = {"knees": "Knee pain", "hips": "Hip pain", "videos": "New videos"}
ARTICLE = "{year}/knees-basics/"  # the back catalogue's article: its page has the form


def tuesday_weeks_ago() -> datetime:
    """10:00 UTC on a Tuesday two weeks back or more: the whole simulated week is in the past
    (Pelican publishes no future-dated article)."""
    day = (datetime.now(UTC) - timedelta(days=14)).replace(hour=10, minute=0, second=0,
                                                            microsecond=0)  # fmt: skip
    return day - timedelta(days=(day.weekday() - 1) % 7)


def article(content: Path, slug: str, title: str, category: str, when: datetime) -> None:
    text = (
        f"Title: {title}\nDate: {when.isoformat()}\nCategory: {category}\nId: {uuid.uuid4()}\n"
        f"Summary: About {title}.\n\nWhat helps, and why.\n"
    )
    (content / "articles" / f"{slug}.md").write_text(text, encoding="utf-8")


def channel(folder: Path, *videos: tuple[str, str, datetime]) -> None:
    entries = "".join(
        f"<entry><id>yt:video:{vid}</id><yt:videoId>{vid}</yt:videoId>"
        "<yt:channelId>UCwalkagain0000000000000</yt:channelId>"
        f'<title>{escape(title)}</title><link rel="alternate" '
        f'href="https://www.youtube.com/watch?v={vid}"/><author><name>Walk Again</name></author>'
        f"<published>{when.isoformat()}</published><updated>{when.isoformat()}</updated>"
        f"<media:group><media:title>{escape(title)}</media:title>"
        f'<media:thumbnail url="https://i1.ytimg.com/vi/{vid}/hqdefault.jpg" width="480" '
        'height="360"/><media:description>Watch this.</media:description></media:group></entry>'
        for vid, title, when in videos
    )
    (folder / "videos.xml").write_text(CHANNEL.replace("<!--ENTRIES-->", entries), "utf-8")


def received(sink: SmtpSink, since: int) -> dict[str, list[str]]:
    """The announcement emails (articles, videos, digests) accepted since message `since`: each
    address -> the titles it got, sorted (a digest adds "digest" once)."""
    got: dict[str, list[str]] = {}
    for message in sink.messages[since:]:
        if not str(message["Message-ID"]).rsplit("@", 1)[0].endswith(".announce"):
            continue  # a confirmation or a welcome
        text = message.get_body(("plain",)).get_content()
        titles = []
        for line in text.splitlines():  # a digest numbers its items: "1. Title"
            number, _, title = line.partition(". ")
            if number.isdigit() and title:
                titles.append(title.removeprefix("Video: "))
        if titles:
            titles.append("digest")
        else:
            titles = [str(message["Subject"]).removeprefix("New video: ")]
        got.setdefault(str(message["To"]), []).extend(titles)
    return {address: sorted(titles) for address, titles in got.items()}


def subjects_to(sink: SmtpSink, address: str) -> list[str]:
    return [str(m["Subject"]) for m in sink.messages if m["To"] == address]


@pytest.fixture
def world(tmp_path):
    root = tmp_path
    (root / "site").mkdir()
    content = root / "content"
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir(parents=True)
    start = tuesday_weeks_ago()
    article(content, "knees-basics", "Knees basics", "Knees", start - timedelta(days=3))
    article(content, "hips-basics", "Hips basics", "Hips", start - timedelta(days=3))
    static = serve_folder(root / "site")
    channel(root / "site")
    with SmtpSink() as sink:
        endpoint = start_endpoint(
            root, site_url=static.url, rate_limit=Rate(100, 60), transport="smtp",
            smtp_host="127.0.0.1", smtp_port=sink.port, smtp_security="none", smtp_timeout=5,
            feed_url=f"{static.url}/feeds/all.rss.xml", video_feed_url=f"{static.url}/videos.xml",
            timezone="UTC", digest_weekday=0, digest_hour=8,
        )  # fmt: skip

        def build() -> None:
            build_site(
                static.root, static.url, PATH=content, ISSO_URL="", NEWSLETTER_TOPICS=TOPICS,
                VIDEO_CHANNEL_FEED_URL=f"{static.url}/videos.xml",
                NEWSLETTER_URL=endpoint.url + "/subscribe",
            )  # fmt: skip

        try:
            build()
            yield root, content, static, endpoint, sink, start, build
        finally:
            endpoint.stop()
            static.stop()


def sign_up(page, site_url, year, sink, address, topics, frequency) -> None:
    """The real form on an article page, then the confirmation link's button."""
    page.goto(f"{site_url}/{ARTICLE.format(year=year)}", wait_until="load")
    form = page.locator("#stay-tuned-article form.subscribe-form")
    for slug, name in TOPICS.items():
        box = form.get_by_label(name, exact=True)
        expect(box).to_be_checked()  # all ticked by default
        if topics is not None and slug not in topics:
            box.uncheck()
    form.get_by_label("Weekly digest" if frequency == "weekly" else "Each new article").check()
    form.get_by_label("Your email address").fill(address)
    form.get_by_role("button", name="Subscribe").click()
    expect(form.locator(".form-status")).to_have_attribute("data-state", "ok")
    count = len(sink.messages)
    sink.wait_for(count + 1)
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not any(m["To"] == address for m in sink.messages) and datetime.now(UTC) < deadline:
        page.wait_for_timeout(50)
    (confirmation,) = [m for m in sink.messages if m["To"] == address]
    page.goto(link(confirmation, "confirm"), wait_until="load")
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.locator("h1")).to_have_text("You’re subscribed")
    while len(subjects_to(sink, address)) < 2 and datetime.now(UTC) < deadline:
        page.wait_for_timeout(50)


def test_each_reader_receives_exactly_what_they_chose_once(world, new_context, artifacts):
    root, content, static, endpoint, sink, start, build = world
    settings = endpoint.nl.settings
    context = new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.route(lambda url: urlsplit(url).hostname != "127.0.0.1", lambda route: route.abort())
    page = context.new_page()

    # The first run: the back catalogue is recorded, not sent.
    clock = {"now": start}
    tick = lambda: clock["now"]  # noqa: E731
    first = announce.run(settings, clock=tick)
    assert first.ok and len(first.recorded) == 2

    # Three readers sign up through the real form, and confirm.
    for address, topics, frequency in (
        (KNEES, {"knees"}, "each"),
        (EVERYTHING, None, "weekly"),
        (HIPS, {"hips"}, "weekly"),
    ):
        year = (start - timedelta(days=3)).year
        sign_up(page, static.url, year, sink, address, topics, frequency)
    database = endpoint.nl.database
    rows = {
        row["email"]: (row["topics"], row["frequency"], row["status"])
        for row in database.db.execute("SELECT * FROM subscribers")
    }
    assert rows == {
        KNEES: ('["knees"]', "each", Status.CONFIRMED),
        EVERYTHING: (None, "weekly", Status.CONFIRMED),  # all ticked: everything
        HIPS: ('["hips"]', "weekly", Status.CONFIRMED),
    }
    for address in (KNEES, EVERYTHING, HIPS):  # one confirmation, one welcome, each
        subjects = subjects_to(sink, address)
        assert len(subjects) == 2 and sum(s.startswith("Welcome") for s in subjects) == 1

    def day(days: float, *, title=None, category=None, video=None) -> dict:
        clock["now"] = start + timedelta(days=days)
        if title:
            slug = title.lower().replace(" ", "-")
            article(content, slug, title, category, clock["now"] - timedelta(minutes=10))
            build()
        if video:
            channel(root / "site", (video[0], video[1], clock["now"] - timedelta(minutes=10)))
        before = len(sink.messages)
        summary = announce.run(settings, clock=tick)
        assert summary.ok, summary.lines()
        return received(sink, before)

    assert day(0, title="Knees one", category="Knees") == {KNEES: ["Knees one"]}
    assert day(1, title="Hips one", category="Hips") == {}  # the hips reader is weekly
    assert day(2, video=("vid00000001", "Ten minutes for your hips")) == {}
    assert day(3, title="Knees two", category="Knees") == {KNEES: ["Knees two"]}

    # Thursday evening, the everything reader switches from weekly to each ...
    clock["now"] = start + timedelta(days=3, hours=8)
    reader = endpoint.nl.subscribers.find(EVERYTHING)
    Choices(Database(settings.database, clock=tick)).set(reader.id, Choice(None, "each"))
    # ... and gets, at the next run, what the week held for them so far, in one email; then
    # each new article alone.
    assert day(4, title="Hips two", category="Hips") == {
        EVERYTHING: sorted(
            ["Knees one", "Hips one", "Ten minutes for your hips", "Knees two", "digest"]
            + ["Hips two"]
        )
    }
    assert day(5) == {} and day(5.9) == {}  # Sunday: nothing

    # Monday 08:00: the weekly digest, to the one reader still weekly.
    assert day(6 - 2 / 24) == {HIPS: ["Hips one", "Hips two", "digest"]}
    assert day(6) == {}  # a later run the same morning: nothing twice

    # Everything each reader received over the week, once each:
    totals: dict[str, Counter] = {}
    for address, titles in received(sink, 0).items():
        totals[address] = Counter(t for t in titles if t != "digest")
    assert totals[KNEES] == Counter({"Knees one": 1, "Knees two": 1})
    assert totals[HIPS] == Counter({"Hips one": 1, "Hips two": 1})
    assert totals[EVERYTHING] == Counter(
        {"Knees one": 1, "Hips one": 1, "Ten minutes for your hips": 1, "Knees two": 1,
         "Hips two": 1}
    )  # fmt: skip

    # The digest as the hips reader sees it.
    (digest,) = [m for m in sink.messages if m["To"] == HIPS and "new articles" in m["Subject"]]
    mail = context.new_page()
    mail.set_viewport_size({"width": 700, "height": 900})
    mail.set_content(digest.get_body(("html",)).get_content())
    mail.screenshot(path=artifacts / "reader-choices-weekly-digest.png", full_page=True)
    mail.set_viewport_size({"width": 360, "height": 740})
    mail.screenshot(path=artifacts / "reader-choices-weekly-digest-phone.png", full_page=True)

    # The test send reaches one address and leaves the ledger as it was.
    def dump() -> list[str]:
        connection = sqlite3.connect(settings.database)
        try:
            return list(connection.iterdump())
        finally:
            connection.close()

    before, count = dump(), len(sink.messages)
    report = announce.run(settings, test="author@example.com", clock=tick)
    assert report.ok
    tested = sink.wait_for(count + 3)[count:]
    assert {m["To"] for m in tested} == {"author@example.com"}
    assert all(str(m["Subject"]).startswith("[Test] ") for m in tested)
    assert any("new article" in str(m["Subject"]) for m in tested)  # the weekly digest too
    assert dump() == before
