"""The seed article and the About page, moved from Python-Markdown to CommonMark, read the same:
the text and the element structure of their bodies (and of the article's summary card) equal
those the Python-Markdown reader built, kept in tests/fixtures/seed_before.json.

That file was written once from a build with the old reader (commit f07e49f), with
`python -m tests.test_commonmark_seed SITE_FOLDER > tests/fixtures/seed_before.json`. The only
differences allowed are the ones made on purpose since: an `id` on each heading (the new
reader), and the hand-written steps and prescription box that became the card of an
```` ```exercise ```` block (plugins/exercises: `with_the_exercise_card`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bs4 import BeautifulSoup, Comment, NavigableString, Tag

FIXTURE = Path(__file__).parent / "fixtures" / "seed_before.json"
ARTICLE = "2026/the-best-muscle-to-train-for-knee-pain/"
# (name, page, CSS selector): the parts of the pages the author's Markdown makes.
PARTS = [
    ("article body", ARTICLE, ".post-body"),
    ("article card summary", "", ".card-summary"),
    ("about body", "about/", ".post-body"),
]
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


def structure(node, heading_ids: bool = True):
    """[tag, {attributes}, *children]: text whitespace-normalised, blank text dropped, comments
    as `<!--...-->`; without `heading_ids`, the ids of headings are left out."""
    attrs = {
        key: " ".join(value) if isinstance(value, list) else value
        for key, value in sorted(node.attrs.items())
        if heading_ids or not (key == "id" and node.name in HEADINGS)
    }
    children = []
    for child in node.children:
        if isinstance(child, Tag):
            children.append(structure(child, heading_ids))
        elif isinstance(child, Comment):
            children.append(f"<!--{child}-->")
        elif isinstance(child, NavigableString):  # text, and the text of a script or style
            text = " ".join(child.split())
            if text:
                children.append(text)
    return [node.name, attrs, *children]


def text(node) -> str:
    return " ".join(node.get_text(" ").split())


def parts(read_page, heading_ids: bool = True) -> dict:
    """{name: {"text": ..., "structure": ...}} of every part, from read_page(path) -> HTML, and
    each page's meta description."""
    found = {}
    for name, page, selector in PARTS:
        soup = BeautifulSoup(read_page(page), "html.parser")
        node = soup.select_one(selector)
        for piece in node.select(
            "section.exercise > .exercise-actions, section.exercise > .exercise-follow"
        ):
            piece.decompose()  # the card's page-only pieces (plugins/exercises/page.py)
        found[name] = {"text": text(node), "structure": structure(node, heading_ids)}
        description = soup.find("meta", attrs={"name": "description"})["content"]
        found[f"{page or 'index'} description"] = {"text": description}
    return found


OLD_EXERCISE = (
    "Lay on your side. Straighten your top leg. Raise and lower your leg slowly, keeping your toe "
    "pointing at the ground. Side lying leg raise: the prescription Sets 3 Reps 15\u201320 How "
    "often 5 times a week For how long 6 weeks"
)
NEW_EXERCISE = (
    "Side lying leg raise Targets: gluteus medius, hip Lay on your side. Straighten your top "
    "leg. Raise and lower your leg slowly, keeping your toe pointing at the ground. Sets 3 Reps "
    "15\u201320 How often 5 times a week For how long 6 weeks"
)


def with_the_exercise_card(before: dict) -> dict:
    """The article body as it was, with its <ol> of steps and <aside class="prescription">
    replaced by the exercise card (its exact markup: tests.test_exercises.SEED_CARD)."""
    from tests.test_exercises import SEED_CARD

    body = before["article body"]
    children = body["structure"]
    (at,) = [n for n, child in enumerate(children) if isinstance(child, list) and child[0] == "ol"]
    assert children[at + 1][:2] == [
        "aside",
        {"aria-labelledby": "prescription-title", "class": "prescription"},
    ]
    card = structure(BeautifulSoup(SEED_CARD, "html.parser").section, heading_ids=False)
    assert body["text"].count(OLD_EXERCISE) == 1
    changed = {
        "text": body["text"].replace(OLD_EXERCISE, NEW_EXERCISE),
        "structure": [*children[:at], card, *children[at + 2 :]],
    }
    return {**before, "article body": changed}


def test_seed_article_and_about_read_as_before(site):
    before = with_the_exercise_card(json.loads(FIXTURE.read_text(encoding="utf-8")))
    after = parts(site.page, heading_ids=False)
    assert after.keys() == before.keys()
    for name, old in before.items():
        assert after[name]["text"] == old["text"], name
        assert after[name].get("structure") == old.get("structure"), name


def test_the_headings_gained_ids(site):
    body = BeautifulSoup(site.page(ARTICLE), "html.parser").select_one(".post-body")
    assert [(h.name, h["id"]) for h in body.find_all("h2")] == [
        ("h2", "so-what-does-the-gluteus-medius-do"),
        ("h2", "how-do-i-train-my-glute-medius"),
    ]


def test_the_seed_article_uses_commonmark_only():
    source = (Path(__file__).parent.parent / "content" / "articles").glob("*.md")
    for path in source:
        assert 'markdown="1"' not in path.read_text(encoding="utf-8"), path


if __name__ == "__main__":
    folder = Path(sys.argv[1])

    def read(page: str) -> str:
        return (folder / page / "index.html").read_text(encoding="utf-8")

    print(json.dumps(parts(read), indent=1, ensure_ascii=False))
