"""Exercise plans in the announcement email: the cards travel in the feed's full content, the
announcer reads them back as text (`feed.exercises_in`, `FeedItem.exercises`) and the email shows
each in both parts: an email-safe card with inlined CSS, and plain-text lines."""

from __future__ import annotations

import json

from bs4 import BeautifulSoup

from newsletter.announcements import run as announce
from newsletter.announcements.feed import Exercise, FeedItem, exercises_in, read_feed
from newsletter.subscriptions.subscribers import Status
from tests.announce_helpers import add_subscribers, build, outbox_messages, recent, recipients
from tests.conftest import write_article
from tests.test_announcement_emails import composer_for, received
from tests.test_exercises import HOSTILE, HOSTILE_BLOCK, SEED_BLOCK

SEED = Exercise(
    id="exercise-side-lying-leg-raise",
    name="Side lying leg raise",
    targets="gluteus medius, hip",
    steps=(
        "Lay on your side.",
        "Straighten your top leg.",
        "Raise and lower your leg slowly, keeping your toe pointing at the ground.",
    ),
    rows=(
        ("Sets", "3"),
        ("Reps", "15\u201320"),
        ("How often", "5 times a week"),
        ("For how long", "6 weeks"),
    ),
)
SEED_TEXT = """EXERCISE PLAN: Side lying leg raise
Targets: gluteus medius, hip

1. Lay on your side.
2. Straighten your top leg.
3. Raise and lower your leg slowly, keeping your toe pointing at the ground.

Sets: 3
Reps: 15\u201320
How often: 5 times a week
For how long: 6 weeks
Print it or add it to your calendar: {link}#exercise-side-lying-leg-raise
"""
BODY = f"The plan:\n\n{SEED_BLOCK}\n\nAnd a hold:\n\n{HOSTILE_BLOCK}\n"


def plan_item(**changes) -> FeedItem:
    values = dict(
        guid="urn:uuid:6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30",
        link="https://walkagain.example/2026/knees/",
        title="Knees",
        summary="<p>Why the hip matters.</p>",
        author="Mark Williams",
        exercises=(SEED,),
    )
    return FeedItem(**{**values, **changes})


def test_the_feed_carries_the_cards_and_the_announcer_reads_them(tmp_path, content_dir):
    write_article(content_dir, "plan", "Plan", "2026-03-01 10:00", body=BODY)
    write_article(content_dir, "plain", "Plain", "2026-03-02 10:00", body="No plan.")
    items = {item.title: item for item in read_feed(build(content_dir, tmp_path / "out")).items}
    assert items["Plain"].exercises == ()
    seed, hostile = items["Plan"].exercises
    assert seed == SEED
    assert hostile == Exercise(
        id="exercise-alertx-quoted-semi",
        name=HOSTILE,
        targets="Core & <b>abs</b>, hip",
        steps=("Lie on your back & brace.", "Hold it, breathing slowly (a step on two lines)."),
        rows=(("Sets", "2"), ("Hold", "30 seconds"), ("How often", "3 times a week"),
              ("For how long", "1 week")),
    )  # fmt: skip


def test_exercises_in_reads_only_the_cards_text():
    html = (
        '<p>Intro <span class="exercise-name">not a card</span></p>'
        '<section class="exercise" id="x&quot; onclick=&quot;alert(1)">'
        '<h3 class="exercise-name">A <em>bold</em>\n move</h3>'
        '<p class="exercise-targets"><span class="exercise-label">Targets:</span> hip</p>'
        '<ol class="exercise-steps"><li>One<br>line</li><li>Two &amp; <img src="x"> more</li></ol>'
        '<dl class="exercise-prescription"><div><dt>Sets</dt><dd>3</dd></div></dl>'
        "</section><p>After</p>"
        '<section class="exercise"><p>No name: no card</p></section>'
    )
    assert exercises_in(html) == (
        Exercise("", "A bold move", "hip", ("One line", "Two & more"), (("Sets", "3"),)),
    )
    assert exercises_in("<p>no card</p>") == ()


def test_the_ledger_keeps_the_exercises():
    item = plan_item()
    data = json.loads(json.dumps(item.to_dict()))
    assert FeedItem.from_dict(data) == item
    del data["exercises"]  # an item the ledger stored before exercise plans
    assert FeedItem.from_dict(data).exercises == ()


def test_the_email_carries_the_card_in_both_parts(make_settings):
    item = plan_item()
    message = received(composer_for(make_settings(), [item]))
    html = message.get_body(("html",)).get_content()
    soup = BeautifulSoup(html, "html.parser")
    (card,) = soup.select("table.exercise")
    assert card["style"] and "border-top" in card["style"]  # the CSS inlined
    assert card.select_one(".exercise-name").name == "h2"
    assert card.select_one(".exercise-name").get_text() == "Side lying leg raise"
    assert card.select_one(".exercise-targets").get_text() == "Targets: gluteus medius, hip"
    assert [li.get_text() for li in card.select("ol.exercise-steps > li")] == list(SEED.steps)
    cells = [
        (cell.select_one(".exercise-label").get_text(), cell.select_one(".exercise-value").text)
        for cell in card.select("td.exercise-cell")
    ]
    assert cells == list(SEED.rows)
    assert all("background" in cell["style"] for cell in card.select("td.exercise-cell"))
    more = card.select_one(".exercise-more a")
    assert more["href"] == f"{item.link}#exercise-side-lying-leg-raise"
    # after the summary, before the button
    assert (
        html.index("Why the hip matters")
        < html.index("exercise-name")
        < html.index("Read the article")
    )
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert SEED_TEXT.format(link=item.link) in text
    assert (
        text.index("Why the hip matters.")
        < text.index("EXERCISE PLAN")
        < text.index("Read the article:")
    )


def test_a_hostile_plan_stays_text_in_both_parts(make_settings):
    hostile = Exercise(
        id='x" onclick="alert(1)',  # not from our cards, but never trusted: escaped
        name=HOSTILE,
        targets="<b>abs</b> & core",
        steps=("<img src=x onerror=alert(1)>",),
        rows=(("Sets", "<i>2</i>"),),
    )
    message = received(composer_for(make_settings(), [plan_item(exercises=(hostile,))]))
    soup = BeautifulSoup(message.get_body(("html",)).get_content(), "html.parser")
    card = soup.select_one("table.exercise")
    assert card.select_one(".exercise-name").get_text() == HOSTILE
    assert card.find(["script", "img", "b", "i"]) is None
    assert card.select_one("ol li").get_text() == "<img src=x onerror=alert(1)>"
    assert not any(a.has_attr("onclick") for a in card.find_all("a"))
    text = message.get_body(("plain",)).get_content()
    assert f"EXERCISE PLAN: {HOSTILE}" in text and "1. <img src=x onerror=alert(1)>" in text


def test_a_digest_carries_each_articles_cards(make_settings):
    settings = make_settings(announce_mode="digest")
    items = [plan_item(), plan_item(guid="g2", link="https://walkagain.example/2026/b/",
                                    title="Other", exercises=())]  # fmt: skip
    message = received(composer_for(settings, items))
    soup = BeautifulSoup(message.get_body(("html",)).get_content(), "html.parser")
    (card,) = soup.select("table.exercise")
    assert card.select_one(".exercise-name").name == "h3"  # under the article's h2
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert SEED_TEXT.format(link="https://walkagain.example/2026/knees/") in text


def test_the_announcement_of_an_article_with_a_plan(
    make_settings, tmp_path, content_dir, new_context, artifacts
):
    """End to end: a new article with an exercise block is built, announced from its feed, and
    its email, opened in Chromium, shows the card styled by the inlined CSS."""
    settings = make_settings()
    add_subscribers(settings, {"ann@example.com": Status.CONFIRMED})
    write_article(content_dir, "first", "The first article", recent(48))
    announce.run(settings, feed_url=build(content_dir, tmp_path / "out"))  # the first run
    write_article(content_dir, "plan", "The best muscle for knee pain", recent(1),
                  subtitle="Gluteus medius", summary="One exercise, five times a week.",
                  body=f"My go-to exercise:\n\n{SEED_BLOCK}\n")  # fmt: skip
    summary = announce.run(settings, feed_url=build(content_dir, tmp_path / "out"))
    assert summary.ok and summary.tally.sent == 1
    (message,) = outbox_messages(settings.outbox)
    assert recipients([message]) == ["ann@example.com"]
    link = summary.announced[0].items[0].link
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert SEED_TEXT.format(link=link) in text
    html = message.get_body(("html",)).get_content()

    context = new_context(viewport={"width": 640, "height": 900})
    context.route("**/*", lambda route: route.abort())  # an email loads nothing on its own here
    page = context.new_page()
    page.set_content(html)
    card = page.locator("table.exercise")
    assert card.locator(".exercise-name").inner_text() == "Side lying leg raise"
    assert card.locator("li").all_inner_texts() == list(SEED.steps)
    style = card.evaluate("t => getComputedStyle(t).borderTopColor")
    assert style == "rgb(31, 107, 92)"  # the blog's green, from the inlined CSS
    value = card.locator(".exercise-value").first
    assert value.evaluate("e => getComputedStyle(e).fontWeight") == "800"
    page.screenshot(path=artifacts / "announcement-email-exercise.png", full_page=True)
