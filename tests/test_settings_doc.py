"""docs/settings.md is generated from the settings' definitions, and kept current."""

from newsletter import settings_doc
from newsletter.settings import DEV_SECRET_KEY, ROOT, VARIABLES

PAGE = ROOT / settings_doc.PAGE


def test_the_settings_page_is_current():
    assert PAGE.read_text(encoding="utf-8") == settings_doc.render(), (
        "docs/settings.md differs from the settings' definitions: run `invoke docs`"
    )


def test_every_variable_is_on_the_page():
    page = PAGE.read_text(encoding="utf-8")
    missing = [name for name in VARIABLES if f"| `{name}` |" not in page]
    assert not missing, f"not in docs/settings.md: {', '.join(missing)}; run `invoke docs`"


def test_defaults_read_as_in_the_environment_and_secrets_stay_hidden():
    page = settings_doc.render()
    assert "| `NEWSLETTER_DATABASE` | `var/newsletter.sqlite3` |" in page
    assert "| `NEWSLETTER_RATE_LIMIT` | `20/hour` |" in page
    assert "| `NEWSLETTER_SECRET_KEY` | (development key) |" in page
    assert DEV_SECRET_KEY not in page
    assert str(ROOT) not in page  # the same page on every machine
