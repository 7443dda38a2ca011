"""The seed article and the About page, moved from Python-Markdown to CommonMark, read the same:
the text and the element structure of their bodies (and of the article's summary card) equal
those the Python-Markdown reader built, kept in tests/fixtures/seed_before.json.

That file was written once from a build with the old reader (commit f07e49f), with
`python -m tests.test_commonmark_seed SITE_FOLDER > tests/fixtures/seed_before.json`. The only
difference allowed is the one the new reader adds on purpose: an `id` on each heading.
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
        found[name] = {"text": text(node), "structure": structure(node, heading_ids)}
        description = soup.find("meta", attrs={"name": "description"})["content"]
        found[f"{page or 'index'} description"] = {"text": description}
    return found


def test_seed_article_and_about_read_as_before(site):
    before = json.loads(FIXTURE.read_text(encoding="utf-8"))
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
