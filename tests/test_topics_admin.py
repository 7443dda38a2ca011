"""The author's tasks carry the reader's choice (issue 20): `subscribers.list`, `export`,
`import` (topics and frequency columns, optional; a bad value names its line and column) and
`stats` (confirmed readers per topic and per frequency). Real SQLite, the real task code."""

from __future__ import annotations

import csv
import io
import json

import pytest

from newsletter.database import Database
from newsletter.subscriptions import admin, topics
from newsletter.subscriptions.choices import Choice, Choices
from tests.conftest import newsletter_settings


@pytest.fixture(autouse=True)
def blog_topics(tmp_path, monkeypatch):
    """The blog's topics, as the build writes them (not whatever output/ holds now)."""
    path = tmp_path / "topics.json"
    listed = [{"slug": "knees", "name": "Knee pain"}, {"slug": "hips", "name": "Hip pain"},
              {"slug": "ankles", "name": "Ankles"}]  # fmt: skip
    path.write_text(json.dumps({"version": 1, "site": "https://x.example", "topics": listed}))
    monkeypatch.setattr(topics, "DEFAULT_SOURCE", path)
    topics.forget_cache()
    yield
    topics.forget_cache()


def choose(settings, email: str, choice: Choice) -> None:
    database = Database(settings.database)
    try:
        reader = admin.Subscribers(database).find(admin.addresses.normalize(email)[1])
        Choices(database).set(reader.id, choice)
    finally:
        database.close()


def test_export_and_import_carry_topics_and_frequency(make_settings, tmp_path, backend):
    settings = make_settings()
    admin.add(settings, "all@example.com", confirmed=True)
    admin.add(settings, "knees@example.com", confirmed=True)
    choose(settings, "knees@example.com", Choice(frozenset({"knees", "hips"}), "weekly"))
    out = io.StringIO()
    admin.export_csv(settings, out)
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert (rows["all@example.com"]["topics"], rows["all@example.com"]["frequency"]) == (
        "everything",
        "each",
    )
    assert (rows["knees@example.com"]["topics"], rows["knees@example.com"]["frequency"]) == (
        "hips knees",
        "weekly",
    )
    exported = tmp_path / "export.csv"
    exported.write_text(out.getvalue())
    other = newsletter_settings(tmp_path / "other", backend=backend)
    assert len(admin.import_csv(other, exported, confirmed=True).added) == 2
    again = io.StringIO()
    admin.export_csv(other, again)
    moved = {r["email"]: r for r in csv.DictReader(io.StringIO(again.getvalue()))}
    assert moved["knees@example.com"]["topics"] == "hips knees"
    assert moved["knees@example.com"]["frequency"] == "weekly"
    assert moved["all@example.com"]["topics"] == "everything"


def test_import_without_the_columns_is_everything_at_the_default(make_settings, tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("email\none@example.com\n")
    settings = make_settings(announce_mode="digest")
    admin.import_csv(settings, plain, confirmed=True)
    (reader,) = admin.list_subscribers(settings)
    assert (reader.topics, reader.frequency) == (None, "weekly")


def test_import_names_the_line_and_column_of_a_bad_value(make_settings, tmp_path):
    table = tmp_path / "choices.csv"
    table.write_text(
        "email;topics;frequency\n"
        "good@example.com;knees;weekly\n"
        "bad-topic@example.com;Knee Pain!;each\n"
        "bad-often@example.com;knees;daily\n"
        "empty@example.com;;\n"
    )
    settings = make_settings()
    report = admin.import_csv(settings, table, confirmed=True)
    assert report.added == ["good@example.com", "empty@example.com"]
    rejected = {line: reason for line, _text, reason in report.rejected}
    assert rejected[3].startswith("column topics: Unknown topic")
    assert rejected[4] == "column frequency: 'daily' is not each or weekly"
    text = admin.format_report(report, confirmed=True)
    assert "line 3: 'bad-topic@example.com': column topics" in text


def test_list_and_stats_show_the_choices(make_settings):
    settings = make_settings()
    for name in ("a", "b", "c"):
        admin.add(settings, f"{name}@example.com", confirmed=True)
    admin.add(settings, "d@example.com")  # unconfirmed: not counted
    choose(settings, "b@example.com", Choice(frozenset({"knees"}), "weekly"))
    choose(settings, "c@example.com", Choice(frozenset({"knees", "hips"}), "each"))
    listed = admin.format_subscribers(admin.list_subscribers(settings))
    assert "b@example.com  confirmed" in listed and "weekly  knees" in listed
    assert "each    everything" in listed and "each    hips knees" in listed
    stats = admin.format_stats(admin.stats(settings))
    lines = stats.splitlines()
    at = lines.index("Confirmed readers by frequency:")
    assert [line.split() for line in lines[at + 1 : at + 3]] == [["each", "2"], ["weekly", "1"]]
    at = lines.index("Confirmed readers by topic (a reader may choose several):")
    assert [line.split() for line in lines[at + 1 : at + 4]] == [
        ["everything", "1"], ["hips", "1"], ["knees", "2"]
    ]  # fmt: skip
