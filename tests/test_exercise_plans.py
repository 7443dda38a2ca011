"""Following a plan, the blog's side (plugins/exercises, issue 21): week notes in the exercise
block (checked, on the card, in the data), each published plan's calendar feed
(`exercises/PLAN-ID.ics`, parsed with icalendar and expanded with recurring-ical-events to
exactly the plan's sessions), `exercises/plans.json` (the newsletter's contract,
blog/feed_contract.py) and the "Follow this plan by email" form on the article's card, never in
the feeds; an article without a block is written byte for byte as before. Real Pelican builds."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import icalendar
import pytest
import recurring_ical_events
from bs4 import BeautifulSoup

from blog.build import ROOT, BuildError, build
from blog.feed_contract import PLAN_CALENDAR, PLAN_FOLLOW, PLANS_JSON, PLANS_VERSION
from tests.conftest import ARTICLE_PATH, build_site, write_article
from tests.test_exercises import SEED_BLOCK

SITEURL = "https://blog.example"
NEWSLETTER = "https://blog.example/newsletter/subscribe"
SEED_ID = "6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30"
SEED_PLAN = f"{SEED_ID}-side-lying-leg-raise"
PLAN_ID = "0b6f3c1e-8d2a-4c57-9e41-5a7d2b9c8e10"  # the test article's Id
NOTES = "week 5: slow down: three seconds up, three seconds down\nWeek_3: add a 1 kg ankle weight"
NOTED_BLOCK = SEED_BLOCK.replace("weeks: 6\n", f"weeks: 6\n{NOTES}\n")
TWICE_BLOCK = """```exercise
name: Clamshell, "banded"; slow
targets: hip
steps:
  - Lie on your side, knees bent.
  - Open the top knee against the band.
sets: 2
hold: 5 seconds
per week: 2
weeks: 3
week3: a stronger band
```"""
FIELDS = {"email", "weekday", "hour", "newsletter", "plan", "source", "website"}


def block(name: str) -> str:
    return SEED_BLOCK.replace("Side lying leg raise", name)


def ics_path(plan_id: str) -> str:
    return PLAN_CALENDAR.format(plan=plan_id)


def soup(site, path):
    return BeautifulSoup(site.page(path), "html.parser")


def plans_json(site) -> dict:
    return json.loads((site.output / PLANS_JSON).read_text(encoding="utf-8"))


def unfold(raw: bytes) -> list[str]:
    return raw.decode("utf-8").replace("\r\n ", "").split("\r\n")


def check_physical_lines(raw: bytes) -> None:
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 75, line
        line.decode("utf-8")  # strict: never folded inside a character


def sessions(raw: bytes) -> list:
    calendar = icalendar.Calendar.from_ical(raw)
    assert len(list(calendar.walk("VEVENT"))) == 1
    found = recurring_ical_events.of(calendar).between(date(2020, 1, 1), date(2040, 1, 1))
    return sorted(found, key=lambda event: event["DTSTART"].dt)


def write_corpus(content: Path) -> None:
    """Published articles with plans (one with week notes and a second card, one twice a week),
    a draft, a hidden and a future one with a block, one without any, a page with a block."""
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    write_article(content, "noted", "Hips & <knees>", "2026-03-04 10:00", id=PLAN_ID,
                  slug="noted", summary="Notes.", body=f"## Train\n\n{NOTED_BLOCK}\n\n"
                  f"Between.\n\n{block('Bridge')}\n")  # fmt: skip
    write_article(content, "twice", "Twice", "2026-03-09 07:00", slug="twice",
                  body=f"## Train\n\n{TWICE_BLOCK}")  # fmt: skip
    write_article(content, "wip", "Draft", "2026-03-03", slug="wip", status="draft",
                  body=block("Draft move"))  # fmt: skip
    write_article(content, "unlisted", "Hidden", "2026-03-05", slug="unlisted", status="hidden",
                  body=block("Hidden move"))  # fmt: skip
    write_article(content, "later", "Later", future, slug="later", body=block("Future move"))
    write_article(content, "none", "No plan", "2026-03-06", slug="none",
                  body="```python\nprint(1)\n```")  # fmt: skip
    (content / "pages" / "moves.md").write_text(
        f"Title: Moves\nSlug: moves\n\n{block('Page move')}\n", encoding="utf-8"
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    content = tmp_path_factory.mktemp("follow") / "content"
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir(parents=True)
    write_corpus(content)
    return content


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("follow-out")
    return build_site(
        out,
        SITEURL,
        PATH=corpus,
        NEWSLETTER_URL=NEWSLETTER,
        EXERCISE_FOLLOW_BY_EMAIL=True,
        ISSO_URL="",
    )


# Week notes -----------------------------------------------------------------------------------
def test_week_notes_are_read_sorted_and_shown_after_the_prescription(built):
    from plugins.exercises import parse

    plan = parse(NOTED_BLOCK.split("\n", 1)[1].rsplit("\n", 1)[0])
    assert plan["notes"] == [
        (3, "add a 1 kg ankle weight"),
        (5, "slow down: three seconds up, three seconds down"),
    ]
    card = soup(built, "2026/noted/").select_one("section.exercise")
    weeks = card.select_one("dl.exercise-prescription + dl.exercise-weeks")
    assert [(d.dt.get_text(), d.dd.get_text()) for d in weeks.select(":scope > div")] == [
        ("Week 3", "add a 1 kg ankle weight"),
        ("Week 5", "slow down: three seconds up, three seconds down"),
    ]
    rows = [(d.dt.get_text(), d.dd.get_text()) for d in card.select(".exercise-prescription > div")]
    assert len(rows) == 4, "the notes are not prescription rows (the announcer reads those)"


BROKEN_NOTES = {
    # the lines added after 'weeks: 6', the line of the problem among them (1: the first), the
    # message after "path:line: "
    "beyond": (["week 7: more"], 1, "exercise field 'week 7': week 7 is outside the plan: the "
               "plan lasts 6 weeks ('weeks: 6'); use week 1 to week 6"),
    "zero": (["week 0: warm up"], 1, "exercise field 'week 0': week 0 is outside the plan"),
    "typo": (["wek 4: more"], 1, "exercise field 'wek 4': unknown; did you mean \"week 4\"? "
             "A week's note is 'week N: text', e.g. 'week 3: add a 1 kg ankle weight'"),
    "plural": (["weeks 2: more"], 1, "exercise field 'weeks 2': unknown; did you mean "
               "\"week 2\"?"),
    "words": (["week three: more"], 1, "exercise field 'week three': a week's note is 'week "
              "N: text', N the week's number (1 for the first)"),
    "empty": (["week 2:"], 1, "exercise field 'week 2': empty; e.g. 'week 3: add a 1 kg ankle "
              "weight'"),
    "twice": (["week 2: one", "", "Week 2: two"], 3, "exercise field 'week 2': given twice "
              "(first on line 11 of the block)"),
}  # fmt: skip


def test_broken_week_notes_fail_the_build_naming_file_line_and_field(tmp_path, content_dir):
    lines = {}
    for name, (added, at, _) in BROKEN_NOTES.items():
        body = "A paragraph.\n\n" + SEED_BLOCK.replace("weeks: 6\n", "weeks: 6\n" +
                                                      "\n".join(added) + "\n")  # fmt: skip
        path = write_article(content_dir, name, name, "2026-01-01", body=body)
        lines[name] = path.read_text().splitlines().index("weeks: 6") + 1 + at
    write_article(content_dir, "fine", "Fine", "2026-01-01", body=NOTED_BLOCK)
    with pytest.raises(BuildError) as caught:
        build_site(tmp_path / "out", SITEURL, PATH=content_dir)
    message = str(caught.value)
    assert f"{len(BROKEN_NOTES)} content problem(s), nothing was written" in message
    for name, (_, _, expected) in BROKEN_NOTES.items():
        assert f"\n  articles/{name}.md:{lines[name]}: {expected}" in message, name
    assert "fine.md" not in message
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_a_note_beyond_weeks_names_weeks_even_when_weeks_is_broken():
    from plugins.exercises import BrokenBlock, parse

    text = SEED_BLOCK.split("\n", 1)[1].rsplit("\n", 1)[0]
    with pytest.raises(BrokenBlock) as caught:
        parse(text.replace("weeks: 6", "weeks: six") + "\nweek 0: x\nweek 9: y")
    assert [(p.field, str(p).split(": ", 1)[1]) for p in caught.value.problems] == [
        ("weeks", "weeks must be a whole number of 1 or more, got 'six'"),
        ("week 0", "week 0 is outside the plan: weeks start at 1; use week 1 or later"),
    ]  # week 9 cannot be told without weeks: only week 0 is surely wrong


# plans.json --------------------------------------------------------------------------------------
def test_plans_json_lists_exactly_the_published_plans(built):
    data = plans_json(built)
    assert data["version"] == PLANS_VERSION == 1
    assert data["site"] == SITEURL
    ids = [plan["id"] for plan in data["plans"]]
    assert len(ids) == 3 and len(set(ids)) == 3
    # newest article first, cards in page order
    assert ids[1:] == [f"{PLAN_ID}-side-lying-leg-raise", f"{PLAN_ID}-bridge"]
    assert ids[0].endswith("-clamshell-banded-slow")
    titles = [plan["article"]["title"] for plan in data["plans"]]
    assert titles == ["Twice", "Hips & <knees>", "Hips & <knees>"]
    text = (built.output / PLANS_JSON).read_text(encoding="utf-8")
    for kept_out in ("Draft move", "Hidden move", "Future move", "Page move"):
        assert kept_out not in text
    assert sorted(p.name for p in (built.output / "exercises").glob("*.ics")) == sorted(
        f"{plan_id}.ics" for plan_id in ids
    )


def test_a_plan_in_plans_json(built):
    plan = plans_json(built)["plans"][1]
    page = f"{SITEURL}/2026/noted/"
    assert plan == {
        "id": f"{PLAN_ID}-side-lying-leg-raise",
        "title": "Side lying leg raise",
        "url": f"{page}#exercise-side-lying-leg-raise",
        "calendar": f"{SITEURL}/exercises/{PLAN_ID}-side-lying-leg-raise.ics",
        "article": {
            "id": PLAN_ID,
            "title": "Hips & <knees>",
            "url": page,
            "published": "2026-03-04T10:00:00+00:00",
            "modified": None,
        },
        "targets": ["gluteus medius", "hip"],
        "steps": [
            "Lay on your side.",
            "Straighten your top leg.",
            "Raise and lower your leg slowly, keeping your toe pointing at the ground.",
        ],
        "prescription": [
            {"label": "Sets", "value": "3"},
            {"label": "Reps", "value": "15\u201320"},
            {"label": "How often", "value": "5 times a week"},
            {"label": "For how long", "value": "6 weeks"},
        ],
        "prescription_text": "Sets: 3\nReps: 15\u201320\nHow often: 5 times a week\n"
        "For how long: 6 weeks",
        "sets": 3,
        "reps": {"min": 15, "max": 20},
        "hold": None,
        "sessions_per_week": 5,
        "weeks": 6,
        "sessions": 30,
        "week_notes": [
            {"week": 3, "note": "add a 1 kg ankle weight"},
            {"week": 5, "note": "slow down: three seconds up, three seconds down"},
        ],
    }
    held = plans_json(built)["plans"][0]
    assert (held["reps"], held["hold"], held["sessions_per_week"], held["sessions"]) == (
        None, "5 seconds", 2, 6)  # fmt: skip
    assert held["week_notes"] == [{"week": 3, "note": "a stronger band"}]


def test_the_seed_has_one_plan_with_30_sessions(site):
    (plan,) = plans_json(site)["plans"]
    assert plan["id"] == SEED_PLAN
    assert plan["url"] == f"{site.url}/{ARTICLE_PATH}#exercise-side-lying-leg-raise"
    assert plan["calendar"] == f"{site.url}/exercises/{SEED_PLAN}.ics"
    assert plan["article"]["id"] == SEED_ID
    assert plan["article"]["title"] == "The Best Muscle to Train for Knee Pain"
    assert (plan["sets"], plan["reps"], plan["sessions_per_week"], plan["weeks"]) == (
        3, {"min": 15, "max": 20}, 5, 6)  # fmt: skip
    assert plan["sessions"] == 30 and plan["week_notes"] == []
    assert urlsplit(plan["url"]).scheme == "http", "absolute, against SITEURL"


# The calendar feed ----------------------------------------------------------------------------
def test_the_seeds_calendar_feed_expands_to_its_30_sessions(site):
    raw = (site.output / ics_path(SEED_PLAN)).read_bytes()
    check_physical_lines(raw)
    lines = unfold(raw)
    assert lines[:2] == ["BEGIN:VCALENDAR", "VERSION:2.0"]
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;COUNT=30" in lines
    assert "DTSTART:20261130T080000" in lines  # the first Monday after 2026-11-23 (a Monday)
    assert "DTSTAMP:20261123T180000Z" in lines  # the article's Date, 18:00 in London (GMT)
    found = sessions(raw)
    assert len(found) == 30
    starts = [event["DTSTART"].dt for event in found]
    assert starts[0] == datetime(2026, 11, 30, 8, 0) and starts[-1] == datetime(2027, 1, 8, 8, 0)
    assert all(start.tzinfo is None for start in starts), "floating: the reader's own 08:00"
    assert {start.weekday() for start in starts} == {0, 1, 2, 3, 4}
    assert {start.time() for start in starts} == {time(8, 0)}
    assert all(e["DTEND"].dt - e["DTSTART"].dt == timedelta(minutes=20) for e in found)
    calendar = icalendar.Calendar.from_ical(raw)
    (event,) = calendar.walk("VEVENT")
    host = urlsplit(site.url).hostname
    assert str(event["UID"]) == f"{SEED_PLAN}@{host}"
    assert str(event["SUMMARY"]) == "Side lying leg raise"
    url = f"{site.url}/{ARTICLE_PATH}#exercise-side-lying-leg-raise"
    assert str(event["URL"]) == url
    description = str(event["DESCRIPTION"])
    assert description.startswith("Targets: gluteus medius, hip\n\n1. Lay on your side.\n")
    assert "Sets: 3\nReps: 15–20\nHow often: 5 times a week\nFor how long: 6 weeks" in description
    assert description.endswith(f"\n\n{url}")
    (alarm,) = event.walk("VALARM")
    assert alarm["TRIGGER"].dt == -timedelta(minutes=10)
    assert str(calendar["X-WR-CALNAME"]) == "Side lying leg raise"


def test_the_card_links_its_feed_by_webcal(site):
    card = soup(site, ARTICLE_PATH).select_one("section.exercise")
    link = card.select_one(".exercise-actions a")
    host = urlsplit(site.url).netloc
    assert link["href"] == f"webcal://{host}/exercises/{SEED_PLAN}.ics"
    assert link.get_text() == "Subscribe in my calendar"


def test_a_feed_twice_a_week_with_notes_and_hostile_text(built):
    (plan,) = [p for p in plans_json(built)["plans"] if p["sessions_per_week"] == 2]
    raw = (built.output / ics_path(plan["id"])).read_bytes()
    check_physical_lines(raw)
    lines = unfold(raw)
    assert "RRULE:FREQ=WEEKLY;BYDAY=TU,TH;COUNT=6" in lines
    assert 'SUMMARY:Clamshell\\, "banded"\\; slow' in lines
    found = sessions(raw)
    starts = [event["DTSTART"].dt for event in found]
    # the article's date is Monday 9 March: the next Monday is the 16th, its Tuesday the 17th
    assert starts == [datetime(2026, 3, d, 8, 0) for d in (17, 19, 24, 26, 31)] + [
        datetime(2026, 4, 2, 8, 0)
    ]
    description = str(found[0]["DESCRIPTION"])
    assert "Hold: 5 seconds" in description and "\n\nWeek 3: a stronger band\n\n" in description
    noted = (built.output / ics_path(f"{PLAN_ID}-side-lying-leg-raise")).read_bytes()
    assert len(sessions(noted)) == 30
    assert "DTSTART:20260309T080000" in unfold(noted)  # Wednesday 4 March: Monday the 9th


# The follow form ------------------------------------------------------------------------------
def test_each_published_card_has_the_follow_form(built):
    page = soup(built, "2026/noted/")
    forms = page.select(".post-body section.exercise > form.exercise-follow")
    assert len(forms) == 2
    plans = {plan["url"]: plan for plan in plans_json(built)["plans"]}
    for form in forms:
        card = form.parent
        plan = plans[f"{SITEURL}/2026/noted/#{card['id']}"]
        assert form["method"] == "post"
        assert form["action"] == f"{SITEURL}/newsletter/{PLAN_FOLLOW}"
        named = {tag["name"] for tag in form.select("[name]")}
        assert named == FIELDS
        assert form.select_one("[name=plan]")["value"] == plan["id"]
        assert form.select_one("[name=plan]")["type"] == "hidden"
        assert form.select_one("[name=source]")["value"] == f"{SITEURL}/2026/noted/"
        email = form.select_one("[name=email]")
        assert (email["type"], email.has_attr("required")) == ("email", True)
        weekday = form.select_one("select[name=weekday]")
        assert [(o["value"], o.get_text()) for o in weekday.select("option")] == list(
            zip(map(str, range(7)), ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                     "Saturday", "Sunday"], strict=True))  # fmt: skip
        assert weekday.select_one("option[selected]")["value"] == "0"
        hour = form.select_one("select[name=hour]")
        assert [o["value"] for o in hour.select("option")] == [str(h) for h in range(24)]
        assert hour.select_one("option[selected]").get_text() == "08:00"
        tick = form.select_one("[name=newsletter]")
        assert (tick["type"], tick["value"], tick.has_attr("checked")) == ("checkbox", "1", False)
        honeypot = form.select_one("[name=website]")
        assert honeypot.find_parent(class_="hp") is not None and honeypot["tabindex"] == "-1"
        for field in form.select("input:not([type=hidden]), select"):
            label = form.find("label", attrs={"for": field["id"]})
            assert label is not None and label.get_text(strip=True), field
        labels = {form.find("label", attrs={"for": f["id"]}).get_text(" ", strip=True)
                  for f in form.select("[name=email], select, [name=newsletter]")}  # fmt: skip
        assert labels == {"Your email address", "Day", "Hour (UK time)",
                          "Also send me new articles"}  # fmt: skip
        kept = form.select_one(".consent").get_text()
        for said in ("address", "this plan", "start", "schedule", "30 days after the plan ends"):
            assert said in kept, said
        assert form.select_one("button[type=submit]").get_text() == "Follow this plan"
    ids = [tag["id"] for tag in page.find_all(id=True)]
    assert len(ids) == len(set(ids))


def test_the_form_says_the_days_the_newsletter_keeps_a_finished_plan(corpus, tmp_path, monkeypatch):
    """The consent states NEWSLETTER_PLAN_KEEP_DAYS, the newsletter's own setting (the same
    environment variable), never a number of its own; a broken value stops the build, named."""
    from blog.build import load_settings
    from newsletter.settings import Settings

    monkeypatch.setenv("NEWSLETTER_PLAN_KEEP_DAYS", "45")
    assert load_settings("pelicanconf.py")["NEWSLETTER_PLAN_KEEP_DAYS"] == "45"
    assert Settings.from_env(dict(os.environ)).endpoint.plan_keep_days == 45
    one = build_site(tmp_path / "one", SITEURL, PATH=corpus, NEWSLETTER_URL=NEWSLETTER,
                     EXERCISE_FOLLOW_BY_EMAIL=True, ISSO_URL="",
                     NEWSLETTER_PLAN_KEEP_DAYS="1")  # fmt: skip
    kept = [form.select_one(".consent").get_text(" ", strip=True)
            for form in soup(one, "2026/noted/").select("form.exercise-follow")]  # fmt: skip
    assert len(kept) == 2
    assert all("erase them 1 day after the plan ends." in said for said in kept), kept
    for broken in ("a month", "-3", "30.5"):
        with pytest.raises(BuildError, match=r"NEWSLETTER_PLAN_KEEP_DAYS: must be a whole number"):
            build_site(tmp_path / "broken", SITEURL, PATH=corpus, NEWSLETTER_URL=NEWSLETTER,
                       EXERCISE_FOLLOW_BY_EMAIL=True, ISSO_URL="",
                       NEWSLETTER_PLAN_KEEP_DAYS=broken)  # fmt: skip


def test_no_form_or_link_on_drafts_hidden_articles_and_pages(built):
    for path in ("drafts/wip.html", "2026/unlisted/", "moves/"):
        html = built.page(path) if not path.endswith(".html") else (
            built.output / path).read_text(encoding="utf-8")  # fmt: skip
        page = BeautifulSoup(html, "html.parser")
        assert page.select_one("section.exercise") is not None, path
        assert page.select("section.exercise form, section.exercise a") == [], path


def test_without_newsletter_url_the_card_keeps_its_calendar_link(corpus, tmp_path):
    site = build_site(tmp_path / "out", SITEURL, PATH=corpus, NEWSLETTER_URL="", ISSO_URL="")
    card = soup(site, "2026/noted/").select_one("section.exercise")
    assert card.select("form") == []
    assert card.select_one(".exercise-actions a")["href"].startswith("webcal://blog.example/")


def test_the_feeds_carry_the_card_with_its_notes_and_without_the_pages_pieces(built):
    feed = json.loads((built.output / "feeds" / "all.json").read_text(encoding="utf-8"))
    (item,) = [item for item in feed["items"] if item["title"] == "Hips & <knees>"]
    html = item["content_html"]
    assert html.count('<dl class="exercise-weeks">') == 1
    for page_only in ("exercise-follow", "<form", "webcal:", "exercise-actions", "<select"):
        assert page_only not in html, page_only
    for name in ("all.rss.xml", "all.atom.xml"):
        text = (built.output / "feeds" / name).read_text(encoding="utf-8")
        assert "exercise-follow" not in text and "webcal:" not in text, name


# Nothing else changes ---------------------------------------------------------------------------
def test_only_the_pages_with_a_plan_change_and_the_files_are_the_same_every_build(
    built, corpus, tmp_path
):
    """The theme as it was (article.html without the filter) writes every other file byte for
    byte the same: articles without a block, lists, feeds, sitemap; the plans' files too."""
    theme = tmp_path / "theme"
    shutil.copytree(ROOT / "theme", theme)
    article = theme / "templates" / "article.html"
    text = article.read_text(encoding="utf-8")
    assert text.count("{{ article.content|exercise_page(article)|safe }}") == 1
    article.write_text(text.replace("|exercise_page(article)", ""), encoding="utf-8")
    before = build_site(tmp_path / "out", SITEURL, PATH=corpus, NEWSLETTER_URL=NEWSLETTER,
                        EXERCISE_FOLLOW_BY_EMAIL=True, ISSO_URL="", THEME=str(theme))  # fmt: skip

    def files(root: Path) -> dict[str, bytes]:
        """Every file but Pagefind's index; the sitemap without its dates (the list pages'
        lastmod is the moment of the build)."""
        found = {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and not str(p.relative_to(root)).startswith("pagefind/")
        }
        found["sitemap.xml"] = re.sub(rb"<lastmod>[^<]*</lastmod>", b"", found["sitemap.xml"])
        return found

    old, new = files(before.output), files(built.output)
    assert old.keys() == new.keys()
    changed = sorted(name for name in old if old[name] != new[name])
    assert changed == ["2026/noted/index.html", "2026/twice/index.html"]
    assert "exercises/plans.json" in old


def test_the_plans_files_follow_an_edit_while_serving(tmp_path, content_dir):
    path = write_article(content_dir, "one", "One", "2026-01-01 10:00", summary="S.",
                         id=PLAN_ID, body=SEED_BLOCK)  # fmt: skip
    options = dict(cache=tmp_path / "cache", SITEURL=SITEURL, PATH=content_dir,
                   OUTPUT_PATH=tmp_path / "out")  # fmt: skip
    out = tmp_path / "out"
    build("pelicanconf.py", **options)
    first = out / ics_path(f"{PLAN_ID}-side-lying-leg-raise")
    assert first.is_file() and (out / PLANS_JSON).is_file()

    def edit(old: str, new: str) -> None:
        path.write_text(path.read_text().replace(old, new))
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
        build("pelicanconf.py", **options)

    edit("weeks: 6", "weeks: 6\nweek 2: rest a day")
    data = json.loads((out / PLANS_JSON).read_text(encoding="utf-8"))
    assert data["plans"][0]["week_notes"] == [{"week": 2, "note": "rest a day"}]
    assert "Week 2: rest a day" in str(sessions(first.read_bytes())[0]["DESCRIPTION"])
    edit("name: Side lying leg raise", "name: Clamshell")
    assert not first.exists(), "the renamed plan's old feed is gone"
    assert (out / ics_path(f"{PLAN_ID}-clamshell")).is_file()
    edit("```exercise", "```text")
    assert list((out / "exercises").glob("*.ics")) == []
    assert not (out / PLANS_JSON).exists()


@pytest.mark.slow  # the Nu HTML Checker (Java)
def test_the_cards_with_their_form_are_valid_html(built):
    import subprocess

    from tests.test_html_valid import VNU

    pages = [built.output / "2026" / name / "index.html" for name in ("noted", "twice")]
    result = subprocess.run(
        ["java", "-Xss4m", "-jar", str(VNU), "--errors-only", "--format", "json",
         "--exit-zero-always", *map(str, pages)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stderr or result.stdout)
    assert [m for m in report["messages"] if m["type"] != "info"] == []
