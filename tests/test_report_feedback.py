"""Applying a parsed report (`report_feedback`) over a real SQLite file: the proofs a report
offers are checked with the secret key (`proven`); a report that proves one subscriber records
one event about them, a report that proves nothing changes nobody and is kept for review when it
names someone on the list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.mail import proof
from newsletter.subscriptions import report_feedback, reports
from newsletter.subscriptions.feedback import Applied, Feedback, Kind
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.announce_helpers import add_subscribers
from tests.conftest import newsletter_settings
from tests.feedback_helpers import VERP_DOMAIN, dsn, reviews_of, verp_sample

JOINED = datetime(2000, 1, 1, tzinfo=UTC)  # the samples are years old: readers from before


@pytest.fixture
def world(tmp_path, backend):
    settings = newsletter_settings(tmp_path, backend=backend, verp_domain=VERP_DOMAIN)
    people = add_subscribers(
        settings,
        dict.fromkeys(["max@example.com", "reader@example.com", "other@example.com"],
                      Status.CONFIRMED),
        since=JOINED,
    )  # fmt: skip
    store = Subscribers.open(settings.database)
    yield settings, people, Feedback(store.database)
    store.close()


def test_without_a_verp_domain_the_forwarded_bounce_proves_nothing(world):
    """max's VERP return path, read by a newsletter that has no VERP domain (or another secret):
    it proves nothing, and the report names only the address max forwards to, which is nobody on
    the list: nothing is applied, nothing kept."""
    settings, people, feedback = world
    notice = reports.parse(verp_sample(settings, people["max@example.com"].public_id))
    assert report_feedback.proven(notice, settings) == {people["max@example.com"].public_id}
    for other in (settings.replace(verp_domain=""), settings.replace(secret_key="k" * 40)):
        assert not report_feedback.proven(notice, other)
        assert notice.failures[0].addresses == ("max@old-employer.example",)
        assert report_feedback.apply(notice, feedback, other) == [
            (notice.failures[0], Applied.UNKNOWN)
        ]
    assert reviews_of(settings) == []


def test_a_proven_report_records_one_event_about_the_reader_it_proves(world):
    """Our Message-ID for reader@, in a DSN listing other@ too: one hard bounce about reader@,
    keyed by the report and their address; read again, a duplicate; other@ untouched."""
    settings, people, feedback = world
    ours = proof.message_id(settings, "announce", "x", people["reader@example.com"].public_id)
    data = dsn(["other@example.com", "Reader@Example.com"],
               f"--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: {ours}\n\n")  # fmt: skip
    notice = reports.parse(data.encode())
    [(failure, applied)] = report_feedback.apply(notice, feedback, settings)
    assert applied == Applied.BOUNCED and failure.addresses == ("Reader@Example.com",)
    assert report_feedback.apply(notice, feedback, settings) == [(failure, Applied.DUPLICATE)]
    assert feedback.subscribers.find("other@example.com").status == Status.CONFIRMED
    [(key,)] = feedback.database.db.execute("SELECT event_key FROM feedback_events").fetchall()
    assert key == f"mailbox:{notice.report_id}:reader@example.com"


def test_a_report_that_proves_nothing_or_several_changes_nobody(world):
    settings, people, feedback = world
    unproven = reports.parse(dsn(["reader@example.com"]).encode())
    assert report_feedback.apply(unproven, feedback, settings) == [
        (unproven.failures[0], Applied.REVIEW)
    ]
    two = [proof.message_id(settings, "announce", "x", people[a].public_id)
           for a in ("reader@example.com", "other@example.com")]  # fmt: skip
    headers = f"In-Reply-To: {two[0]}\nX-Original-Message-ID: {two[1]}\n"
    several = reports.parse(
        dsn(["reader@example.com"])
        .replace("@mx.stranger.example>", "-several@mx.stranger.example>", 1)  # another report
        .replace("MIME-Version", headers + "MIME-Version")
        .encode()
    )
    assert len(report_feedback.proven(several, settings)) == 2
    assert report_feedback.apply(several, feedback, settings)[0][1] == Applied.REVIEW
    assert [status for _, status in ((s.email, s.status) for s in feedback.subscribers.list())] == [
        Status.CONFIRMED
    ] * 3
    whys = [why for _, _, why, _ in reviews_of(settings)]
    assert whys == ["no Message-ID or return path of ours proves whom it is about",
                    "its proofs name several subscribers"]  # fmt: skip


def test_junk_is_not_applied(world):
    settings, _people, feedback = world
    assert (
        report_feedback.apply(reports.Notice("x", junk="an auto-reply"), feedback, settings) == []
    )
    assert report_feedback.apply(reports.Notice("x"), feedback, settings) == []
    assert Kind.HARD_BOUNCE  # the vocabulary the events use
