"""Python-Markdown-only syntax fails the build, naming the file, the line and the CommonMark way
to write it; the same text in code, or in CommonMark form, builds."""

import pytest

from blog.build import BuildError
from tests.conftest import build_site, write_article

# Each construct (its line in the body), what the message says it is, and what to write instead.
CONSTRUCTS = {
    "md-in-html": (
        '<aside class="fact-box" markdown="1">\n**Fact:** text.\n</aside>',
        0,
        "'markdown=\"1\"' is Python-Markdown syntax",
        "for a fact box write '> [!NOTE]'",
    ),
    "attr-list": (
        "A paragraph.\n{: .lead }",
        1,
        "'{: ...}' attribute lists are Python-Markdown syntax",
        "On a heading write '## Title {#id .class}'",
    ),
    "toc": (
        "[TOC]\n\n## One",
        0,
        "'[TOC]' is Python-Markdown syntax",
        "'- [How to train](#how-to-train)'",
    ),
    "abbr": (
        "The ACL.\n\n*[ACL]: Anterior cruciate ligament",
        2,
        "'*[ABBR]: ...' abbreviations are Python-Markdown syntax",
        "<abbr title=",
    ),
}
FIRST_BODY_LINE = 8  # write_article: Title, Date, Id, Category, a blank line; then "Intro.", ""


def build_error(tmp_path, content) -> str:
    with pytest.raises(BuildError) as caught:
        build_site(tmp_path / "out", "https://blog.example", PATH=content)
    return str(caught.value)


@pytest.mark.parametrize("name", CONSTRUCTS)
def test_python_markdown_syntax_names_file_line_and_the_commonmark_way(name, tmp_path, content_dir):
    body, index, what, instead = CONSTRUCTS[name]
    write_article(content_dir, "fine", "Fine", "2026-01-01")
    write_article(content_dir, name, name.title(), "2026-01-02", body="Intro.\n\n" + body)
    message = build_error(tmp_path, content_dir)
    assert f"articles/{name}.md:{FIRST_BODY_LINE + index}: {what}" in message
    assert instead in message
    assert "fine.md" not in message
    assert not (tmp_path / "out" / "index.html").exists(), "nothing is written on error"


def test_every_problem_of_a_file_is_listed(tmp_path, content_dir):
    bodies = [body for body, *_ in CONSTRUCTS.values()]
    write_article(content_dir, "all", "All", "2026-01-01", body="\n\n".join(bodies))
    message = build_error(tmp_path, content_dir)
    assert message.startswith("4 content problem(s)")
    lines = [int(part.split(":")[1]) for part in message.split("articles/all.md")[1:]]
    assert lines == sorted(lines) and len(set(lines)) == 4


def test_metadata_and_syntax_problems_are_reported_together(tmp_path, content_dir):
    write_article(content_dir, "both", "Both", "yesterday", body="[TOC]")
    message = build_error(tmp_path, content_dir)
    assert "articles/both.md: field 'Date'" in message
    assert "articles/both.md:6: '[TOC]'" in message


def test_a_page_is_checked_too(tmp_path, content_dir):
    (content_dir / "pages" / "about.md").write_text("Title: About\n\nHi.\n{: .lead}\n")
    assert "pages/about.md:4: '{: ...}'" in build_error(tmp_path, content_dir)


def test_the_same_text_in_code_and_the_commonmark_ways_build(tmp_path, content_dir):
    body = """\
Write `<aside markdown="1">` or `{: .lead}` or `*[ABBR]: x` in a code span: that is fine.

```markdown
<aside class="fact-box" markdown="1">
**Fact:** text.
</aside>
[TOC]
{: .lead }
*[ACL]: Anterior cruciate ligament
```

    [TOC]

## A heading {#steps .wide}

> [!NOTE]
> **Fact:** text.

<aside class="prescription">

**Markdown inside HTML**, with blank lines around it.

</aside>

The <abbr title="Anterior cruciate ligament">ACL</abbr>.
"""
    write_article(content_dir, "fine", "Fine", "2026-01-01", body=body)
    site = build_site(tmp_path / "out", "https://blog.example", PATH=content_dir)
    html = site.page("2026/fine/")
    assert '<h2 id="steps" class="wide">A heading</h2>' in html
    assert '<aside class="fact-box">\n<p><strong>Fact:</strong> text.</p>\n</aside>' in html
    assert "<p><strong>Markdown inside HTML</strong>, with blank lines around it.</p>" in html
