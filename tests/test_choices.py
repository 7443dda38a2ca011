"""A reader's choices (issue 20): `Choices.set` is the one way to change them, and a switch of
frequency in the middle of a week, either way, never loses an item and never sends one twice.
Real SQLite, the real announcer, the outbox transport, a test clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.announcements import run as announce
from newsletter.database import Database
from newsletter.subscriptions import digests
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.choices import Choice, ChoiceError, Choices, default_frequency
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.reader_choices_helpers import set_choice, take
from tests.test_digest import KNEES, TUESDAY, publish
from tests.test_digest import week as week  # the fixture

A, B, C = "knees-each@example.com", "all-weekly@example.com", "hips-weekly@example.com"
MONDAY_8 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_existing_readers_keep_everything_each_time(make_settings):
    settings = make_settings()
    database = Database(settings.database)
    try:
        email, key = normalize("old@example.com")
        reader = Subscribers(database).add(email, key, status=Status.CONFIRMED)
        assert Choices(database).get(reader.id) == Choice(None, "each")
        assert reader.topics is None and reader.frequency == "each"
        assert Choices(database).get(reader.id + 1) is None
    finally:
        database.close()


def test_each_to_weekly_in_mid_week(week):
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    assert take(settings)[A] == ["Knees one"]
    clock.advance(days=1)
    set_choice(settings, ids[A], Choice(KNEES, "weekly"), clock)
    publish(week, 2, "Knees two", "knees")
    assert A not in take(settings)
    clock.now = MONDAY_8
    announce.run(settings, feed_url=str(feed), clock=clock)
    assert take(settings)[A] == ["Knees two", "digest: 1"]  # not "Knees one" again


def test_weekly_to_each_in_mid_week(week):
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    publish(week, 2, "Hips one", "hips")
    assert B not in take(settings)
    clock.advance(days=1)
    set_choice(settings, ids[B], Choice(None, "each"), clock)  # Wednesday: each from now on
    publish(week, 3, "Knees two", "knees")
    got = take(settings)
    # The catch-up digest of what was owed, then the new one alone: nothing lost, nothing twice.
    assert got[B] == ["Hips one", "Knees one", "Knees two", "digest: 2"]
    clock.now = MONDAY_8
    announce.run(settings, feed_url=str(feed), clock=clock)
    assert B not in take(settings)


def test_back_and_forth_before_anything_is_sent(week):
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    take(settings)
    for frequency in ("each", "weekly", "each", "weekly"):
        set_choice(settings, ids[B], Choice(None, frequency), clock)
    publish(week, 2, "Hips one", "hips")
    clock.now = MONDAY_8
    announce.run(settings, feed_url=str(feed), clock=clock)
    assert take(settings)[B] == ["Hips one", "Knees one", "digest: 1", "digest: 1"]


def test_narrowing_the_topics_drops_what_is_owed_of_the_others(week):
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    publish(week, 2, "Hips one", "hips")
    set_choice(settings, ids[B], Choice(frozenset({"hips"}), "weekly"), clock)
    clock.now = MONDAY_8
    announce.run(settings, feed_url=str(feed), clock=clock)
    assert take(settings)[B] == ["Hips one", "digest: 1"]


def test_a_choice_that_cannot_be_stored_changes_nothing(make_settings):
    settings = make_settings()
    database = Database(settings.database)
    try:
        email, key = normalize("r@example.com")
        reader = Subscribers(database).add(email, key, status=Status.CONFIRMED)
        choices = Choices(database)
        for bad, words in (
            (Choice(None, "daily"), "frequency 'daily'"),
            (Choice(frozenset(), "each"), "at least one topic"),
            (Choice(frozenset({"Knees!"}), "each"), "is not a topic"),
        ):
            with pytest.raises(ChoiceError, match=words):
                choices.set(reader.id, bad)
        assert choices.get(reader.id) == Choice(None, "each")
        with pytest.raises(ChoiceError, match="no subscriber"):
            choices.set(reader.id + 7, Choice(None, "weekly"))
    finally:
        database.close()


def test_counts_per_topic_and_frequency(make_settings):
    settings = make_settings()
    database = Database(settings.database)
    try:
        store, choices = Subscribers(database), Choices(database)
        for n, choice in enumerate(
            [Choice(None, "each"), Choice(KNEES, "weekly"), Choice(frozenset({"knees", "hips"}))]
        ):
            email, key = normalize(f"r{n}@example.com")
            choices.set(store.add(email, key, status=Status.CONFIRMED).id, choice)
        email, key = normalize("not-yet@example.com")
        store.add(email, key, status=Status.UNCONFIRMED)
        assert choices.counts() == {
            "frequency": {"each": 2, "weekly": 1},
            "topics": {"knees": 2, "hips": 1},
            "everything": 1,
        }
    finally:
        database.close()


def test_the_site_default_frequency():
    assert default_frequency("each") == "each" and default_frequency("digest") == "weekly"


def test_readers_is_one_sql_condition_with_like_wildcards_escaped(make_settings):
    settings = make_settings()
    database = Database(settings.database)
    try:
        store, choices = Subscribers(database), Choices(database)
        made = {}
        for name, topics_ in (("a", {"knee_pain"}), ("b", {"kneexpain"}), ("c", None)):
            email, key = normalize(f"{name}@example.com")
            made[name] = store.add(email, key, status=Status.CONFIRMED).id
            choices.set(made[name], Choice(frozenset(topics_) if topics_ else None))
        assert list(Choices.readers(database.db, "knee_pain")) == [made["a"], made["c"]]
        assert list(Choices.readers(database.db, "kneexpain")) == [made["b"], made["c"]]
        assert list(Choices.readers(database.db, "")) == [made["a"], made["b"], made["c"]]
        assert list(Choices.readers(database.db, "knee_pain", "weekly")) == []
        condition, _ = digests.topic_condition("knee_pain")
        assert "LIKE" in condition and "ESCAPE" in condition
    finally:
        database.close()


def test_tuesday_is_a_tuesday():
    assert TUESDAY.weekday() == 1 and MONDAY_8.weekday() == 0
