"""Exercise plans (plugins/exercises): an ```exercise block becomes the card, the JSON-LD
ExercisePlan and an entry of the /exercises/ library; a broken block fails the build naming the
file, the line and the field, and nothing is written. Real Pelican builds into tmp folders."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup

from blog.build import BuildError, build
from tests.conftest import ARTICLE_PATH, build_site, write_article
from tests.test_html_valid import VNU

SITEURL = "https://blog.example"
SEED_BLOCK = """```exercise
name: Side lying leg raise
targets: gluteus medius, hip
steps:
  - Lay on your side.
  - Straighten your top leg.
  - Raise and lower your leg slowly, keeping your toe pointing at the ground.
sets: 3
reps: 15-20
per week: 5
weeks: 6
```"""
# The card of the seed's block, exactly: the markup the theme's CSS and JavaScript build on.
SEED_CARD = """<section class="exercise" id="exercise-side-lying-leg-raise" aria-labelledby="exercise-side-lying-leg-raise-name" data-per-week="5" data-weeks="6">
<h3 class="exercise-name" id="exercise-side-lying-leg-raise-name">Side lying leg raise</h3>
<p class="exercise-targets"><span class="exercise-label">Targets:</span> gluteus medius, hip</p>
<ol class="exercise-steps">
<li>Lay on your side.</li>
<li>Straighten your top leg.</li>
<li>Raise and lower your leg slowly, keeping your toe pointing at the ground.</li>
</ol>
<dl class="exercise-prescription">
<div><dt>Sets</dt><dd>3</dd></div>
<div><dt>Reps</dt><dd>15–20</dd></div>
<div><dt>How often</dt><dd>5 times a week</dd></div>
<div><dt>For how long</dt><dd>6 weeks</dd></div>
</dl>
</section>"""  # noqa: E501
HOSTILE = '<script>alert("x")</script>, "quoted"; semi; 😀'
HOSTILE_BLOCK = f"""~~~exercise
Name: {HOSTILE}
Targets: Core & <b>abs</b>, hip
Steps:
- Lie on your back & brace.
- Hold it, breathing
  slowly (a step on two lines).
Sets: 2
Hold: 30 seconds
Per_Week: 3
Weeks: 1
~~~"""
PLAN_BODY = f"""Intro.

## Exercise side lying leg raise

{SEED_BLOCK}

Between.

{HOSTILE_BLOCK}

{SEED_BLOCK}
"""


def block(name: str, target: str) -> str:
    return f"```exercise\nname: {name}\ntargets: {target}\nsteps:\n  - Do it.\nsets: 1\n" \
        "reps: 10\nper week: 1\nweeks: 2\n```"  # fmt: skip


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """Articles with blocks: published (three blocks, two of them the same exercise), another
    published one, a draft, a hidden and a future one, and one without any block."""
    content = tmp_path_factory.mktemp("plans") / "content"
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir(parents=True)
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    write_article(content, "plan", "Hips & <knees>", "2026-03-01 10:00", body=PLAN_BODY,
                  summary="Three blocks.")  # fmt: skip
    two = block("Calf raise", "Calf, ankle") + "\n\n" + block("Ankle circles", "ankle")
    write_article(content, "ankles", "Ankles", "2026-03-02 10:00", body=two)
    write_article(content, "wip", "Draft", "2026-03-03", status="draft",
                  body=block("Draft move", "secret draft"))  # fmt: skip
    write_article(content, "unlisted", "Hidden", "2026-03-04", status="hidden",
                  body=block("Hidden move", "secret hidden"))  # fmt: skip
    write_article(content, "later", "Later", future, body=block("Future move", "secret future"))
    write_article(content, "none", "No plan", "2026-03-05", body="```python\nprint(1)\n```")
    return build_site(tmp_path_factory.mktemp("plans-out"), SITEURL, PATH=content)


def soup(site, path):
    return BeautifulSoup(site.page(path), "html.parser")


def test_the_seed_renders_the_card(site):
    page = soup(site, ARTICLE_PATH)
    (card,) = page.select(".post-body section.exercise")
    assert card["id"] == "exercise-side-lying-leg-raise"
    assert card.h3.get_text() == "Side lying leg raise"
    assert [li.get_text() for li in card.select("ol.exercise-steps > li")] == [
        "Lay on your side.",
        "Straighten your top leg.",
        "Raise and lower your leg slowly, keeping your toe pointing at the ground.",
    ]
    rows = [(d.dt.get_text(), d.dd.get_text()) for d in card.select("dl > div")]
    assert rows == [("Sets", "3"), ("Reps", "15\u201320"), ("How often", "5 times a week"),
                    ("For how long", "6 weeks")]  # fmt: skip
    assert "language-exercise" not in site.page(ARTICLE_PATH)
    # the card's markup is the theme's and the feed's contract: exactly this in the feeds; in
    # the page, the same with the page's own pieces (calendar link, follow form) at its end
    assert SEED_CARD in feed_content(site, "The Best Muscle to Train for Knee Pain")
    assert SEED_CARD.removesuffix("</section>") in site.page(ARTICLE_PATH)
    # the sentence before the block is kept; the old hand-written list and aside are gone
    assert card.find_previous_sibling("p").get_text().startswith("My go-to exercise")
    assert page.select(".post-body .prescription") == []
    assert page.select(".post-body > ol") == []


def feed_content(site, title: str) -> str:
    """An article's full HTML in the site's JSON Feed (the same as in the RSS and Atom feeds)."""
    feed = json.loads((site.output / "feeds" / "all.json").read_text(encoding="utf-8"))
    (item,) = [item for item in feed["items"] if item["title"] == title]
    return item["content_html"]


def test_the_card_uses_the_feed_contracts_classes():
    """The announcer reads the cards back from the feed by these classes (week notes: in a card
    that has some)."""
    from blog.feed_contract import EXERCISE_CLASSES
    from plugins.exercises import card_html, parse

    noted = parse(SEED_BLOCK.split("\n", 1)[1].rsplit("\n", 1)[0] + "\nweek 2: slower")
    for role, name in EXERCISE_CLASSES.items():
        card = SEED_CARD if role != "weeks" else card_html(noted, "exercise-x")
        assert f'class="{name}"' in card, name


def test_the_feeds_card_has_no_control_and_no_script(site):
    card = BeautifulSoup(feed_content(site, "The Best Muscle to Train for Knee Pain"),
                         "html.parser").select_one("section.exercise")  # fmt: skip
    assert card.find_all(["button", "script", "form", "input", "a", "select"]) == []


def test_the_pages_card_adds_only_the_calendar_link_and_the_follow_form(site):
    """pelicanconf.py turns "Follow this plan by email" on (the endpoint answers it: the form
    itself, tests/test_exercise_plans.py, tests/test_exercise_follow_browser.py)."""
    card = soup(site, ARTICLE_PATH).select_one("section.exercise")
    assert card.find_all(["button", "script", "form", "input", "a", "select"]) != []
    own = card.select(":scope > .exercise-actions, :scope > .exercise-follow")
    assert [tag.name for tag in own] == ["div", "form"]
    form = own[1]
    assert form["method"] == "post" and form["action"] == site.url + "/plans/follow"
    for tag in own:
        tag.decompose()
    assert card.find_all(["button", "script", "form", "input", "a", "select"]) == []
    assert card.find("script") is None


def test_json_ld_names_the_plan(site):
    page = soup(site, ARTICLE_PATH)
    data = json.loads(page.find("script", type="application/ld+json").string)
    assert data["@type"] == "BlogPosting"
    plan = data["hasPart"]
    assert plan == {
        "@type": "ExercisePlan",
        "name": "Side lying leg raise",
        "url": f"{site.url}/{ARTICLE_PATH}#exercise-side-lying-leg-raise",
        "description": "1. Lay on your side. 2. Straighten your top leg. 3. Raise and lower "
        "your leg slowly, keeping your toe pointing at the ground.",
        "associatedAnatomy": [
            {"@type": "AnatomicalStructure", "name": "gluteus medius"},
            {"@type": "AnatomicalStructure", "name": "hip"},
        ],
        "activityFrequency": "5 times a week",
        "activityDuration": "P6W",
        "repetitions": {"@type": "QuantitativeValue", "minValue": 15, "maxValue": 20},
        "additionalVariable": "3 sets",
    }


def test_ids_are_unique_and_a_hostile_name_stays_text(plans):
    html = plans.page("2026/hips/")
    page = BeautifulSoup(html, "html.parser")
    cards = page.select(".post-body section.exercise")
    assert [c["id"] for c in cards] == [
        "exercise-side-lying-leg-raise-2",  # the heading took the first
        "exercise-alertx-quoted-semi",
        "exercise-side-lying-leg-raise-3",
    ]
    assert page.find(id="exercise-side-lying-leg-raise").name == "h2"
    ids = [tag["id"] for tag in page.find_all(id=True)]
    assert len(ids) == len(set(ids))
    hostile = cards[1]
    assert hostile.h3.get_text() == HOSTILE
    assert hostile.select_one(".exercise-targets").get_text() == "Targets: Core & <b>abs</b>, hip"
    assert hostile.find("script") is None and hostile.find("b") is None
    assert "&lt;script&gt;alert(&#x27;x&#x27;)" not in html  # escaped once, not twice
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;, &quot;quoted&quot;" in html
    assert [li.get_text() for li in hostile.select("ol > li")] == [
        "Lie on your back & brace.",
        "Hold it, breathing slowly (a step on two lines).",
    ]
    rows = [(d.dt.get_text(), d.dd.get_text()) for d in hostile.select("dl > div")]
    assert rows == [("Sets", "2"), ("Hold", "30 seconds"), ("How often", "3 times a week"),
                    ("For how long", "1 week")]  # fmt: skip
    assert (hostile["data-per-week"], hostile["data-weeks"]) == ("3", "1")
    data = json.loads(page.find("script", type="application/ld+json").string)
    assert [p["name"] for p in data["hasPart"]] == ["Side lying leg raise", HOSTILE,
                                                    "Side lying leg raise"]  # fmt: skip
    assert data["hasPart"][1]["additionalVariable"] == ["2 sets", "Hold 30 seconds"]
    assert "repetitions" not in data["hasPart"][1]
    assert "<script>alert" not in page.find("script", type="application/ld+json").string


def library(site):
    page = soup(site, "exercises/")
    groups = {}
    for heading in page.select("main h2"):
        items = heading.find_next_sibling("ul").select("li")
        groups[heading.get_text()] = [
            (li.a.get_text(), li.a["href"], li.select_one(".count").get_text()) for li in items
        ]
    return page, groups


def test_the_library_lists_exactly_the_published_exercises(plans):
    page, groups = library(plans)
    assert page.title.get_text().startswith("Exercises")
    assert list(groups) == ["Ankle", "Calf", "Core & <b>abs</b>", "Gluteus medius", "Hip"]
    plan = f"{SITEURL}/2026/hips/"
    ankles = f"{SITEURL}/2026/ankles/"
    assert groups["Ankle"] == [
        ("Ankle circles", f"{ankles}#exercise-ankle-circles", "from Ankles"),
        ("Calf raise", f"{ankles}#exercise-calf-raise", "from Ankles"),
    ]
    assert groups["Hip"] == [
        (HOSTILE, f"{plan}#exercise-alertx-quoted-semi", "from Hips & <knees>"),
        ("Side lying leg raise", f"{plan}#exercise-side-lying-leg-raise-2", "from Hips & <knees>"),
        ("Side lying leg raise", f"{plan}#exercise-side-lying-leg-raise-3", "from Hips & <knees>"),
    ]
    text = page.get_text()
    for kept_out in ("Draft move", "Hidden move", "Future move", "secret"):
        assert kept_out not in text


def test_the_librarys_anchors_resolve_to_cards(plans):
    _, groups = library(plans)
    links = [href for entries in groups.values() for _, href, _ in entries]
    assert len(links) == 9
    for href in links:
        parts = urlsplit(href)
        target = soup(plans, parts.path.lstrip("/")).find(id=parts.fragment)
        assert target is not None and target.name == "section", href
        assert "exercise" in target["class"]


def test_the_library_is_in_the_menu_and_the_sitemap(site):
    menu = soup(site, "").select(".nav-list a")
    assert [a.get_text() for a in menu][:4] == ["Articles", "Archives", "Exercises", "About"]
    link = next(a for a in menu if a.get_text() == "Exercises")
    assert link["href"] == f"{site.url}/exercises/"
    assert soup(site, "exercises/").find("a", string="Exercises")["aria-current"] == "page"
    assert f"<loc>{site.url}/exercises/</loc>" in (site.output / "sitemap.xml").read_text()
    _, groups = library(site)
    assert list(groups) == ["Gluteus medius", "Hip"]


def test_without_a_published_exercise_there_is_no_page_and_no_menu_entry(tmp_path, content_dir):
    write_article(content_dir, "plain", "Plain", "2026-01-01", body="No block.")
    write_article(content_dir, "wip", "Draft", "2026-01-02", status="draft", body=SEED_BLOCK)
    built = build_site(tmp_path / "out", SITEURL, PATH=content_dir)
    assert not (built.output / "exercises").exists()
    assert "Exercises" not in [a.get_text() for a in soup(built, "").select(".nav-list a")]
    assert "exercises/" not in (built.output / "sitemap.xml").read_text()


@pytest.mark.slow  # the Nu HTML Checker (Java)
def test_the_nu_html_checker_finds_no_error(site, plans):
    pages = [site.output / ARTICLE_PATH / "index.html", site.output / "exercises/index.html"]
    pages += [plans.output / "2026/hips/index.html", plans.output / "exercises/index.html"]
    result = subprocess.run(
        ["java", "-Xss4m", "-jar", str(VNU), "--errors-only", "--format", "json",
         "--exit-zero-always", *map(str, pages)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stderr or result.stdout)
    assert [m for m in report["messages"] if m["type"] != "info"] == []


# Broken blocks ------------------------------------------------------------------------------
BROKEN = {
    # name: (block lines between the fences, line of the problem in the block (0: the fence),
    #        the message after "path:line: ")
    "no-steps": (["name: Clam", "targets: hip", "sets: 3", "reps: 10", "per week: 5",
                  "weeks: 6"], 0, "exercise field 'steps': missing; add a line 'steps:'"),
    "empty-steps": (["name: Clam", "targets: hip", "steps:", "sets: 3", "reps: 10",
                     "per week: 5", "weeks: 6"], 3, "exercise field 'steps': no steps"),
    "sets-three": (["name: Clam", "targets: hip", "steps:", "  - Open.", "sets: three",
                    "reps: 10", "per week: 5", "weeks: 6"], 5,
                   "exercise field 'sets': sets must be a whole number of 1 or more, got 'three'"),
    "rep": (["name: Clam", "targets: hip", "steps:", "  - Open.", "sets: 3", "rep: 10",
             "per week: 5", "weeks: 6"], 6,
            "exercise field 'rep': unknown; did you mean \"reps\"? The fields are: name, "
            "targets, steps, sets, reps, hold, per week, weeks"),
    "twice": (["name: Clam", "targets: hip", "steps:", "  - Open.", "sets: 3", "reps: 10",
               "sets: 4", "per week: 5", "weeks: 6"], 7,
              "exercise field 'sets': given twice (first on line 5 of the block)"),
    "empty": ([], 0, "exercise block: empty; write at least name, targets, steps, sets, "
              "per week, weeks and reps"),
    "per-week": (["name: Clam", "targets: hip", "steps:", "  - Open.", "sets: 3", "reps: 10",
                  "per week: 9", "weeks: 6"], 7,
                 "exercise field 'per week': per week must be a whole number from 1 to 7, "
                 "got '9'"),
    "reps-backwards": (["name: Clam", "targets: hip", "steps:", "  - Open.", "sets: 3",
                        "reps: 20-15", "per week: 5", "weeks: 6"], 6,
                       "exercise field 'reps': reps must be a whole number or a range like "
                       "15-20, got '20-15'"),
    "no-reps": (["name: Clam", "targets: hip", "steps:", "  - Open.", "sets: 3",
                 "per week: 5", "weeks: 6"], 0, "exercise field 'reps': missing"),
    "stray-item": (["name: Clam", "- Open.", "targets: hip", "steps:", "- Close.", "sets: 3",
                    "reps: 10", "per week: 5", "weeks: 6"], 2,
                   "exercise field 'steps': the list item '- Open.' is outside 'steps'"),
    "no-colon": (["name: Clam", "targets hip"], 2,
                 "exercise block: 'targets hip' is not 'key: value'"),
}  # fmt: skip
# and, for "no-colon", at the fence:
ALL_MISSING = ("exercise block: the fields 'targets', 'steps', 'sets', 'reps', 'per week', "
               "'weeks' are missing; add one 'field: value' line for each")  # fmt: skip
PREAMBLE = "A first paragraph.\n\nA second one,\non two lines.\n\n"


def broken_content(content_dir) -> dict[str, int]:
    """One article per broken kind; {name: the line of the fence in its .md file}."""
    fences = {}
    for name, (lines, _, _) in BROKEN.items():
        body = PREAMBLE + "```exercise\n" + "\n".join(lines) + ("\n" if lines else "") + "```\n"
        path = write_article(content_dir, name, name, "2026-01-01", body=body)
        fences[name] = path.read_text().splitlines().index("```exercise") + 1
    return fences


def test_each_broken_block_fails_the_build_naming_file_line_and_field(tmp_path, content_dir):
    fences = broken_content(content_dir)
    write_article(content_dir, "fine", "Fine", "2026-01-01", body=SEED_BLOCK)
    with pytest.raises(BuildError) as caught:
        build_site(tmp_path / "out", SITEURL, PATH=content_dir)
    message = str(caught.value)
    assert f"{len(BROKEN) + 1} content problem(s), nothing was written" in message
    for name, (_, offset, expected) in BROKEN.items():
        assert f"\n  articles/{name}.md:{fences[name] + offset}: {expected}" in message, name
    assert f"\n  articles/no-colon.md:{fences['no-colon']}: {ALL_MISSING}\n" in message
    assert "fine.md" not in message
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written == [], "nothing is written"


def test_every_problem_of_a_block_is_named_once():
    from plugins.exercises import BrokenBlock, parse

    with pytest.raises(BrokenBlock) as caught:
        parse("name: Clam\ntargets: hip\nsteps:\n  - Open.\nsets: three\nrep: 10\nper week: 0")
    assert [(p.offset, p.field) for p in caught.value.problems] == [
        (0, "weeks"),
        (5, "sets"),
        (6, "rep"),  # and not "reps: missing" as well: the "did you mean" says it
        (7, "per week"),
    ]


def test_keys_and_values_as_authors_write_them():
    from plugins.exercises import parse, prescription

    plan = parse(
        "# a comment\nName: Clam\nTARGETS: hip,, glutes ,\nSteps:\n1. Open.\n2) Close,\n"
        "   slowly.\n* Rest.\nsets: 3\nreps: 8 to 12\nper-week: 1\nweeks: 1"
    )
    assert plan["targets"] == ["hip", "glutes"]
    assert plan["steps"] == ["Open.", "Close, slowly.", "Rest."]
    assert prescription(plan) == [("Sets", "3"), ("Reps", "8\u201312"), ("How often",
                                  "once a week"), ("For how long", "1 week")]  # fmt: skip


def test_the_line_is_found_when_blocks_are_alike(tmp_path, content_dir):
    good = SEED_BLOCK
    bad = SEED_BLOCK.replace("sets: 3", "sets: 3.5")
    quoted = "> " + bad.replace("\n", "\n> ")  # in a blockquote
    write_article(content_dir, "two", "Two", "2026-01-01", body=f"{good}\n\n{quoted}")
    lines = (content_dir / "articles" / "two.md").read_text().splitlines()
    line = lines.index("> sets: 3.5") + 1
    with pytest.raises(BuildError, match=rf"articles/two.md:{line}: exercise field 'sets'"):
        build_site(tmp_path / "out", SITEURL, PATH=content_dir)


def test_a_broken_block_keeps_failing_while_serving(tmp_path, content_dir):
    """With the content cache (`invoke serve`), an unchanged broken file fails every build."""
    path = write_article(content_dir, "bad", "Bad", "2026-01-01 10:00", summary="S.",
                         body=SEED_BLOCK.replace("reps: 15-20", "reps: lots"))  # fmt: skip
    options = dict(cache=tmp_path / "cache", SITEURL=SITEURL, PATH=content_dir,
                   OUTPUT_PATH=tmp_path / "out")  # fmt: skip
    for _ in range(2):
        with pytest.raises(BuildError, match=r"articles/bad.md:\d+: exercise field 'reps'"):
            build("pelicanconf.py", **options)
    path.write_text(path.read_text().replace("reps: lots", "reps: 12"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    build("pelicanconf.py", **options)
    assert "<dd>12</dd>" in (tmp_path / "out" / "2026/bad/index.html").read_text()


def menu_of(path) -> list[str]:
    page = BeautifulSoup(path.read_text(), "html.parser")
    return [a.get_text() for a in page.select(".nav-list a")]


def test_the_menu_entry_comes_and_goes_with_the_exercises_while_serving(tmp_path, content_dir):
    path = write_article(content_dir, "one", "One", "2026-01-01 10:00", summary="S.", body="A.")
    write_article(content_dir, "two", "Two", "2026-01-02 10:00", summary="T.", body="Text.")
    options = dict(cache=tmp_path / "cache", SITEURL=SITEURL, PATH=content_dir,
                   OUTPUT_PATH=tmp_path / "out")  # fmt: skip
    other = tmp_path / "out" / "2026" / "two" / "index.html"
    build("pelicanconf.py", **options)
    assert "Exercises" not in menu_of(other)
    for body, shown in ((SEED_BLOCK, True), ("A.", False)):
        path.write_text(path.read_text().split("\n\n")[0] + "\n\n" + body + "\n")
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
        build("pelicanconf.py", **options)
        assert ("Exercises" in menu_of(other)) is shown, "an untouched page follows"
        assert (tmp_path / "out" / "exercises" / "index.html").exists() is shown


def test_the_library_follows_an_edited_block_while_serving(tmp_path, content_dir):
    path = write_article(content_dir, "one", "One", "2026-01-01 10:00", summary="S.",
                         body=SEED_BLOCK)  # fmt: skip
    write_article(content_dir, "two", "Two", "2026-01-02 10:00", summary="T.", body="Text.")
    options = dict(cache=tmp_path / "cache", SITEURL=SITEURL, PATH=content_dir,
                   OUTPUT_PATH=tmp_path / "out")  # fmt: skip
    library_page = tmp_path / "out" / "exercises" / "index.html"
    build("pelicanconf.py", **options)
    assert "Side lying leg raise" in library_page.read_text()
    two = content_dir / "articles" / "two.md"
    two.write_text(two.read_text().replace("Text.", "Other text."))
    os.utime(two, ns=(two.stat().st_atime_ns, two.stat().st_mtime_ns + 1_000_000_000))
    before = library_page.stat().st_mtime_ns
    build("pelicanconf.py", **options)
    assert library_page.stat().st_mtime_ns == before, "an unrelated edit leaves it alone"
    path.write_text(path.read_text().replace("name: Side lying leg raise", "name: Clamshell")
                    .replace("targets: gluteus medius, hip", "targets: hip"))  # fmt: skip
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    build("pelicanconf.py", **options)
    html = library_page.read_text()
    assert "Clamshell" in html and "Side lying leg raise" not in html
    assert "Gluteus medius" not in html
    assert 'id="exercise-clamshell"' in (tmp_path / "out" / "2026/one/index.html").read_text()
