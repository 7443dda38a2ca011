"""docs/settings.md is generated from the settings' definitions, and kept current."""

import re

from newsletter import settings_doc
from newsletter.settings import CONCERNS, DEV_SECRET_KEY, ROOT, VARIABLES

PAGE = ROOT / settings_doc.PAGE


def test_the_settings_page_is_current():
    assert PAGE.read_text(encoding="utf-8") == settings_doc.render(), (
        "docs/settings.md differs from the settings' definitions: run `invoke docs`"
    )


def test_every_variable_is_on_the_page_once():
    page = PAGE.read_text(encoding="utf-8")
    missing = [name for name in VARIABLES if f"| `{name}` |" not in page]
    assert not missing, f"not in docs/settings.md: {', '.join(missing)}; run `invoke docs`"
    twice = [name for name in VARIABLES if page.count(f"| `{name}` |") > 1]
    assert not twice, f"more than once in docs/settings.md: {', '.join(twice)}"


def test_the_variables_are_grouped_by_concern():
    """One table per concern, in the concerns' order, each with that concern's variables."""
    page = settings_doc.render()
    newsletter = page.partition("\n## The site")[0]
    sections = re.split(r"^### ", newsletter, flags=re.M)[1:]
    assert [re.search(r"\(`settings\.(\w+)`\)", s).group(1) for s in sections] == list(CONCERNS)
    for concern, section in zip(CONCERNS, sections, strict=True):
        listed = re.findall(r"^\| `(NEWSLETTER_\w+)` \|", section, flags=re.M)
        expected = [name for name, known in VARIABLES.items() if known.concern == concern]
        assert listed == expected, concern
    assert "### SMTP (`settings.smtp`)" in page and "### HTTP (`settings.http`)" in page


def test_defaults_read_as_in_the_environment_and_secrets_stay_hidden():
    page = settings_doc.render()
    assert "| `NEWSLETTER_DATABASE` | `var/newsletter.sqlite3` |" in page
    assert "| `NEWSLETTER_RATE_LIMIT` | `20/hour` |" in page
    assert "| `NEWSLETTER_SECRET_KEY` | (development key) |" in page
    assert "| `NEWSLETTER_HTTP_TIMEOUT` | `10` |" in page
    assert "| `NEWSLETTER_SMTP_PORT` |  |" in page  # 0 stands for "the usual one"
    assert DEV_SECRET_KEY not in page
    assert str(ROOT) not in page  # the same page on every machine
