"""The CommonMark reader (plugins/commonmark_reader), in real builds: every Markdown feature an
author uses, on a fixture article, asserted on the HTML structure; hostile content (a raw
<script> pasted by the author, entities, Unicode, very long lines) rendered as the old
Python-Markdown reader did, and valid for the Nu HTML Checker; the metadata header read as
before; each Markdown text converted once and its summary reused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import markdown
import pytest
from bs4 import BeautifulSoup

from blog.build import ROOT
from tests.conftest import build_site, write_article
from tests.test_commonmark_seed import structure
from tests.test_html_valid import VNU

SITE = "https://blog.example"
FEATURES = """\
Intro with *emphasis*, **strong**, ~~struck~~, `code`, a [link](https://example.org/study), an
autolink <https://example.org/x>, "straight quotes", it's -- a dash --- and more...

## Warm up

### A subsection {#custom-id .wide}

| Exercise | Sets | Reps |
|:---|:---:|---:|
| Side lying leg raise | 3 | 15–20 |
| Clam | 2 | 12 |

- [ ] Warm up
- [x] Stretch

1. Lie on your side.
2. Lift the top leg.

- Hips
  - Gluteus medius

A study[^study] and another[^2], and the first again[^study].

> A plain quote.

> [!NOTE]
> **Torn Achilles Tendon:** The peak age for a rupture is 30-40.

> [!WARNING]
> Stop if it hurts.

```python
print("hi")
```

Gluteus medius
: The muscle on the side of the hip.

Line one\\
line two.

![A dot]({static}/images/dot.png)

See [the other article]({filename}/articles/other.md).

<aside class="prescription" aria-labelledby="rx">
<p class="prescription-title" id="rx">Side lying leg raise: the prescription</p>
</aside>

## Warm up

## Comments

[^study]: Smith et al., 2020.
[^2]: A second note.
"""
LONG_WORD = "knee" * 1500
HOSTILE = f"""\
<script>
  window.dataLayer = window.dataLayer || [];
  if (a < b && c > d) {{ track("*not emphasis*", 'x'); }}

  var afterBlankLine = 1;
</script>

Inline <script>var x = 1;</script> script, <b onclick="x()">raw bold</b> <!-- a comment -->
and entities: &amp; &lt;tag&gt; &copy; &#8212; &#x1F600; &nbsp; AT&T 4 < 5 > 3 &bogus;

Über Knie — 膝の痛み ✓ 😀 שלום e\u0301 zero\u200bwidth, tab\there.

{" ".join(["gluteus medius"] * 2000)}

{LONG_WORD}

<div class="embed">
<iframe src="https://www.youtube-nocookie.com/embed/abc" title="A video"></iframe>
</div>
"""


def old_reader(text: str) -> str:
    """The body as the Python-Markdown reader rendered it (pelicanconf.py before CommonMark)."""
    return markdown.Markdown(
        extensions=["markdown.extensions.extra", "markdown.extensions.meta"],
        output_format="html5",
    ).convert(text)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reader")
    content = tmp / "content"
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir(parents=True)
    shutil.copy(ROOT / "content/images/gluteus-medius.png", content / "images/dot.png")
    write_article(content, "features", "Every feature", "2026-03-01 10:00", body=FEATURES,
                  summary='A *summary* with "quotes" & a [link](https://example.org).')  # fmt: skip
    write_article(content, "other", "The other article", "2026-02-01 10:00")
    write_article(content, "hostile", "Hostile content", "2026-01-01 10:00", body=HOSTILE)
    return build_site(tmp / "out", SITE, PATH=content)


@pytest.fixture(scope="module")
def features(built):
    return BeautifulSoup(built.page("2026/every-feature/"), "html.parser").select_one(".post-body")


def test_inline_markup_and_smart_punctuation(features):
    intro = features.p
    assert intro.em.get_text() == "emphasis"
    assert intro.strong.get_text() == "strong"
    assert intro.find("del").get_text() == "struck"
    assert intro.code.get_text() == "code"
    links = {a.get_text(): a["href"] for a in intro.find_all("a")}
    assert links == {
        "link": "https://example.org/study",
        "https://example.org/x": "https://example.org/x",
    }
    text = " ".join(intro.get_text().split())
    assert "\u201cstraight quotes\u201d, it\u2019s \u2013 a dash \u2014 and more\u2026" in text


def test_headings_carry_stable_unique_ids(features):
    headings = [(h.name, h.get("id"), h.get_text()) for h in features.find_all(["h2", "h3"])]
    assert headings == [
        ("h2", "warm-up", "Warm up"),
        ("h3", "custom-id", "A subsection"),
        ("h2", "warm-up-1", "Warm up"),
        ("h2", "comments-1", "Comments"),  # the theme's comment section is #comments
    ]
    assert features.find("h3")["class"] == ["wide"]


def test_table(features):
    table = features.table
    assert [th.get_text() for th in table.thead.find_all("th")] == ["Exercise", "Sets", "Reps"]
    rows = [[td.get_text() for td in tr.find_all("td")] for tr in table.tbody.find_all("tr")]
    assert rows == [["Side lying leg raise", "3", "15–20"], ["Clam", "2", "12"]]
    assert "center" in table.thead.find_all("th")[1]["style"]


def test_lists_and_task_lists(features):
    tasks = features.find_all("input", attrs={"type": "checkbox"})
    assert [(t.has_attr("disabled"), t.has_attr("checked")) for t in tasks] == [
        (True, False),
        (True, True),
    ]
    items = tasks[0].find_parent("ul").find_all("li")
    assert [" ".join(li.get_text().split()) for li in items] == ["Warm up", "Stretch"]
    assert [li.get_text() for li in features.select("ol > li")][:2] == [
        "Lie on your side.",
        "Lift the top leg.",
    ]
    nested = features.select_one("ul > li > ul > li")
    assert nested.get_text() == "Gluteus medius"


def test_footnotes_link_both_ways(features):
    refs = [(sup["id"], sup.a["href"], sup.a.get_text()) for sup in features.select("sup")]
    assert refs == [
        ("fnref-1", "#fn-1", "1"),
        ("fnref-2", "#fn-2", "2"),
        ("fnref-1-2", "#fn-1", "1"),
    ]
    notes = features.select("div.footnote > ol > li")
    assert [li["id"] for li in notes] == ["fn-1", "fn-2"]
    assert notes[0].get_text().strip().startswith("Smith et al., 2020.")
    backs = [a["href"] for a in notes[0].select("a.footnote-backref")]
    assert backs == ["#fnref-1", "#fnref-1-2"]
    assert features.select("div.footnote")[-1] is features.find_all(recursive=False)[-1]


def test_quotes_and_alerts_as_fact_boxes(features):
    assert features.blockquote.get_text().strip() == "A plain quote."
    note = features.select_one("aside.fact-box")
    assert note["class"] == ["fact-box"]  # exactly the theme's hand-written fact box
    assert note.strong.get_text() == "Torn Achilles Tendon:"
    assert note.p.get_text() == "Torn Achilles Tendon: The peak age for a rupture is 30-40."
    warning = features.select_one("aside.fact-box-warning")
    assert warning["class"] == ["fact-box", "fact-box-warning"]
    assert warning.get_text().strip() == "Stop if it hurts."
    assert len(features.find_all("blockquote")) == 1


def test_code_blocks_keep_their_language(features):
    python = features.select_one("pre > code.language-python")
    assert python.get_text() == 'print("hi")\n'  # no smart quotes in code
    # An ```exercise block keeps its language for plugins/exercises, which turns it into its
    # card in every build (tests/test_exercises.py): the reader's own output, then.
    from plugins.commonmark_reader import render

    exercise = "```exercise\nname: Side lying leg raise\nsets: 3\n```"
    assert render(exercise) == (
        '<pre><code class="language-exercise">name: Side lying leg raise\nsets: 3\n</code></pre>'
    )


def test_definition_list_line_break_image_links_and_raw_html(features, built):
    assert features.dl.dt.get_text() == "Gluteus medius"
    assert features.dl.dd.get_text() == "The muscle on the side of the hip."
    assert features.find("br") is not None
    image = features.find("img")
    assert (image["src"], image["alt"]) == (f"{SITE}/images/dot.png", "A dot")
    other = features.find("a", string="the other article")
    assert other["href"] == f"{SITE}/2026/the-other-article/"
    rx = features.select_one("aside.prescription")
    assert rx["aria-labelledby"] == "rx"
    assert rx.select_one("p#rx").get_text() == "Side lying leg raise: the prescription"


def test_summary_is_markdown_rendered_once(built):
    index = BeautifulSoup(built.page(""), "html.parser")
    cards = {c.select_one(".card-title").get_text(): c for c in index.select(".card")}
    card = cards["Every feature"]
    summary = card.select_one(".card-summary")
    assert summary.em.get_text() == "summary"
    assert summary.a["href"] == "https://example.org"
    assert " ".join(summary.get_text().split()) == ("A summary with \u201cquotes\u201d & a link.")


def test_hostile_content_renders_as_the_old_reader_did(built):
    # html5lib reads both as a browser does (html.parser drops the ';' of an unknown '&bogus;')
    page = BeautifulSoup(built.page("2026/hostile-content/"), "html5lib")
    new = page.select_one(".post-body")
    old = BeautifulSoup(f"<div>{old_reader(HOSTILE)}</div>", "html5lib").div
    assert [structure(n) for n in new.find_all(recursive=False)] == [
        structure(n) for n in old.find_all(recursive=False)
    ]
    assert " ".join(new.get_text().split()) == " ".join(old.get_text().split())
    script = new.find("script")
    assert "track(\"*not emphasis*\", 'x');" in script.string
    assert "var afterBlankLine = 1;" in script.string
    assert LONG_WORD in new.get_text()


def test_hostile_entities_stay_escaped(built):
    html = built.page("2026/hostile-content/")
    body = html[html.index('<div class="post-body">') :]
    assert "AT&amp;T 4 &lt; 5 &gt; 3 &amp;bogus;" in body
    assert "&lt;tag&gt;" in body and "<tag>" not in body


@pytest.mark.slow  # the Nu HTML Checker (Java)
def test_every_page_is_valid_html(built):
    if not VNU.is_file() or not shutil.which("java"):
        pytest.fail("the Nu HTML Checker is not installed: run `bash bin/setup --test`")
    pages = sorted(built.output.rglob("*.html"))
    result = subprocess.run(
        ["java", "-Xss4m", "-jar", str(VNU), "--errors-only", "--format", "json",
         "--exit-zero-always", *map(str, pages)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stderr or result.stdout)
    errors = [f"{m.get('url', '')}:{m.get('lastLine')}: {m['message']}" for m in report["messages"]]
    assert errors == [], "\n".join(errors)


def test_metadata_header_reads_as_python_markdown_read_it(tmp_path, content_dir):
    (content_dir / "articles" / "meta.md").write_text(
        "---\n"
        "Title: Knees\n"
        "Date: 2026-01-02 09:30\n"
        "Id: 3f1a4c1e-8d0e-4f5b-9f43-0c6f2b1f5e11\n"
        "Tags: knee pain, hip\n"
        "Summary: First line of the summary\n"
        "    and its *continuation*.\n"
        "---\n"
        "Title: not metadata any more\n",
        encoding="utf-8",
    )
    site = build_site(tmp_path / "out", SITE, PATH=content_dir)
    page = BeautifulSoup(site.page("2026/knees/"), "html.parser")
    assert page.h1.get_text() == "Knees"
    assert page.select_one(".post-body").get_text().strip() == "Title: not metadata any more"
    assert [a.get_text() for a in page.select(".tags a")] == ["knee pain", "hip"]
    description = page.find("meta", attrs={"name": "description"})["content"]
    assert description == "First line of the summary and its continuation."


def test_each_text_is_converted_once_and_the_summary_reused(tmp_path, content_dir, monkeypatch):
    from plugins import commonmark_reader, feeds, theme_helpers

    calls = {"markdown": [], "plain": [], "absolutize": []}
    parser = commonmark_reader._PARSER

    class Counting:
        def html(self, text):
            calls["markdown"].append(text)
            return parser.html(text)

    def counted(name, function):
        def wrapper(html, *args):
            calls[name].append(str(html))
            return function(html, *args)

        return wrapper

    monkeypatch.setattr(commonmark_reader, "_PARSER", Counting())
    monkeypatch.setattr(theme_helpers, "plain", counted("plain", theme_helpers.plain))
    monkeypatch.setattr(feeds, "absolutize", counted("absolutize", feeds.absolutize))
    for n in range(3):
        write_article(content_dir, f"a{n}", f"Article {n}", f"2026-01-0{n + 1}",
                      body=f"Body {n} of the article.", summary=f"Summary *{n}* here.")  # fmt: skip
    site = build_site(tmp_path / "out", SITE, PATH=content_dir)

    assert sorted(calls["markdown"]) == sorted(
        [f"Body {n} of the article.\n" for n in range(3)]
        + [f"Summary *{n}* here." for n in range(3)]
    )
    for n in range(3):
        summary = f"<p>Summary <em>{n}</em> here.</p>"
        # the page's description, its share texts and its JSON-LD: one plain text
        assert calls["plain"].count(summary) == 1
        # the site's feeds and the category's, RSS and Atom: one absolute-URL copy
        assert calls["absolutize"].count(summary) == 1
        page = BeautifulSoup(site.page(f"2026/article-{n}/"), "html.parser")
        text = f"Summary {n} here."
        assert page.find("meta", attrs={"name": "description"})["content"] == text
        jsonld = json.loads(page.find("script", type="application/ld+json").string)
        assert jsonld["description"] == text
        assert re.search(rf"Article%20{n}%3A%20Summary%20{n}%20here\.", str(page.select(".share")))


def test_heading_ids_avoid_every_id_the_theme_uses():
    from plugins import commonmark_reader

    templates = "".join(p.read_text() for p in (ROOT / "theme" / "templates").rglob("*.html"))
    forms = set(re.findall(r'form_id="([^"]+)"', templates))
    ids = set()
    for value in re.findall(r'\bid="([^"]*)"', templates):
        if "{{ form_id }}" in value:
            ids |= {value.replace("{{ form_id }}", form) for form in forms}
        elif "{{" not in value:
            ids.add(value)
    templated = {value for value in ids if "{{" in value}  # one per topic: a pattern
    assert all(
        commonmark_reader.THEME_ID_PATTERN.fullmatch(v.replace("{{ topic.slug }}", "knees"))
        for v in templated
    ), templated
    ids -= templated
    assert ids and ids <= commonmark_reader.THEME_IDS, ids - commonmark_reader.THEME_IDS
