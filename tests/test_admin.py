"""The author's subscriber tasks: the admin functions, and `invoke subscribers.*` for real."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.subscriptions import admin
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.conftest import newsletter_settings
from tests.newsletter_helpers import wait_for_emails

INVOKE = Path(sys.executable).parent / "invoke"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(make_settings):
    return make_settings()


def statuses(settings):
    return {s.email: s.status for s in admin.list_subscribers(settings)}


def test_add_remove_and_the_confirmation_email(settings):
    subscriber, added = admin.add(settings, "Reader@Example.com")
    assert added and subscriber.status == Status.UNCONFIRMED
    assert admin.send_queued(settings, timeout=5)["sent"] == 1
    (message,) = wait_for_emails(settings.outbox, 1)
    assert message["To"] == "Reader@example.com"
    assert admin.add(settings, "reader@example.com")[1] is False  # known: unchanged
    assert admin.add(settings, "reader@example.com", confirmed=True)[0].status == Status.CONFIRMED
    assert admin.add(settings, "direct@example.com", confirmed=True)[0].confirmed_at
    assert admin.remove(settings, "READER@example.com").status == Status.UNSUBSCRIBED
    # The author cannot quietly re-subscribe someone who left.
    assert admin.add(settings, "reader@example.com", confirmed=True)[1] is False
    assert statuses(settings)["Reader@example.com"] == Status.UNSUBSCRIBED
    with pytest.raises(admin.AdminError, match="not on the list"):
        admin.remove(settings, "nobody@example.com")
    with pytest.raises(admin.AdminError, match="not a valid email address"):
        admin.add(settings, "not-an-address")
    assert [s.email for s in admin.list_subscribers(settings, "confirmed")] == [
        "direct@example.com"
    ]
    with pytest.raises(admin.AdminError, match="unknown status"):
        admin.list_subscribers(settings, "maybe")


def test_import_validates_deduplicates_and_reports(settings, tmp_path):
    admin.add(settings, "known@example.com", confirmed=True)
    source = tmp_path / "list.csv"
    source.write_text(
        "\ufeffName;E-mail;Note\n"  # Excel: a BOM, semicolons, the column not first
        "Ann;ann@example.com;x\n"
        "Bob;BOB@Example.com;\n"
        "Ann again;Ann@example.com;duplicate\n"
        "Known;known@example.com;\n"
        ";not-an-address;\n"
        'Eve;"eve@example.com\r\nBcc: x@y.z";\n'  # header injection, quoted over two lines
        "\n"
        "Long;" + "x" * 300 + "@example.com;\n",
        encoding="utf-8",
    )
    report = admin.import_csv(settings, source)
    assert report.added == ["ann@example.com", "BOB@example.com"]
    assert report.duplicates == [(4, "Ann@example.com")]
    assert report.known == [(5, "known@example.com", "confirmed")]
    assert [(line, reason.split(":")[0]) for line, _, reason in report.rejected] == [
        (6, "That is not a valid email address"),
        (7, "An email address cannot contain line breaks or other control characters."),
        (10, "That email address is too long (312 bytes; at most 254)."),
    ]
    assert statuses(settings)["ann@example.com"] == Status.UNCONFIRMED
    assert admin.send_queued(settings, timeout=5)["sent"] == 2  # a confirmation each
    text = admin.format_report(report, confirmed=False)
    assert "Imported 2 new" in text and "line 6: 'not-an-address'" in text

    plain = tmp_path / "plain.csv"
    plain.write_text("carl@example.com\ndora@example.com\n")  # no header at all
    assert admin.import_csv(settings, plain, confirmed=True).added == [
        "carl@example.com",
        "dora@example.com",
    ]
    assert statuses(settings)["dora@example.com"] == Status.CONFIRMED
    with pytest.raises(admin.AdminError, match="no such file"):
        admin.import_csv(settings, tmp_path / "missing.csv")


def test_export_round_trips_and_defuses_formulas(settings, tmp_path, backend):
    admin.add(settings, "a@example.com", confirmed=True)
    admin.add(settings, "=cmd@example.com", confirmed=True)
    out = io.StringIO()
    assert admin.export_csv(settings, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["email"] for r in rows] == ["a@example.com", "'=cmd@example.com"]
    assert rows[0]["status"] == "confirmed" and rows[0]["confirmed_at"]
    exported = tmp_path / "export.csv"
    exported.write_text(out.getvalue())
    other = newsletter_settings(tmp_path / "other", backend=backend)
    assert admin.import_csv(other, exported, confirmed=True).added == [
        "a@example.com",
        "=cmd@example.com",
    ]


def test_forget_erases_every_trace(settings):
    admin.add(settings, "gone@example.com")
    admin.add(settings, "stays@example.com")
    admin.send_queued(settings, timeout=5)
    assert len(list(settings.outbox.glob("*.eml"))) == 2
    subscriber, files = admin.forget(settings, "GONE@example.com")
    assert subscriber.email == "gone@example.com" and len(files) == 1
    assert list(statuses(settings)) == ["stays@example.com"]
    store = Subscribers.open(settings.database)
    rows = store.database.db.execute("SELECT * FROM outgoing_mail").fetchall()
    everything = str([tuple(r) for r in rows]) + str(
        [tuple(r) for r in store.database.db.execute("SELECT * FROM subscribers")]
    )
    store.close()
    assert "gone@" not in everything and len(rows) == 1
    remaining = wait_for_emails(settings.outbox, 1)
    assert [m["To"] for m in remaining] == ["stays@example.com"]
    assert admin.forget(settings, "gone@example.com") == (None, [])


def test_stats(settings):
    admin.add(settings, "a@example.com")
    admin.add(settings, "b@example.com", confirmed=True)
    counts = admin.stats(settings)
    assert counts["subscribers"]["unconfirmed"] == 1 and counts["subscribers"]["confirmed"] == 1
    assert "Subscribers: 2" in admin.format_stats(counts)


@pytest.mark.slow  # the invoke tasks in subprocesses
def test_invoke_subscriber_tasks(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "NEWSLETTER_DATABASE": str(tmp_path / "db.sqlite3"),
        "NEWSLETTER_OUTBOX": str(tmp_path / "outbox"),
    }

    def invoke(*args, ok=True):
        result = subprocess.run(
            [str(INVOKE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert (result.returncode == 0) == ok, result.stderr
        return result.stdout + result.stderr

    (tmp_path / "in.csv").write_text("email\nx@example.com\nbad\n")
    script = [
        ("subscribers.add", "reader@example.com"),
        ("subscribers.import", str(tmp_path / "in.csv"), "--confirmed"),
    ]
    for args in script:
        invoke(*args)
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1  # the add's confirmation
    listing = invoke("subscribers.list")
    assert "reader@example.com  unconfirmed" in listing and "x@example.com" in listing
    assert "Unsubscribed: reader@example.com" in invoke("subscribers.remove", "reader@example.com")
    assert "Subscribers: 2" in invoke("subscribers.stats")
    invoke("subscribers.export", "--file", str(tmp_path / "out.csv"))
    assert "x@example.com,confirmed" in (tmp_path / "out.csv").read_text()
    assert "1 file(s) naming it deleted" in invoke("subscribers.forget", "reader@example.com")
    assert "not a valid email address" in invoke("subscribers.add", "nope", ok=False)
    env["NEWSLETTER_TRANSPRT"] = "smtp"
    assert "NEWSLETTER_TRANSPRT" in invoke("subscribers.list", ok=False)


def test_review_lists_what_reports_claimed_with_control_characters_escaped(settings):
    """`invoke bounces.review`: reports that proved nothing, with what they claimed; their text
    comes from strangers, so a terminal escape sequence or a line break is shown, not acted on.
    `--clear` empties the list; `forget` erases the reviews that name the address."""
    from newsletter.subscriptions.feedback import Claim, Feedback

    admin.add(settings, "reader@example.com", confirmed=True)
    assert "No report is waiting for review" in admin.review_lines(settings)[0]
    store = Subscribers.open(settings.database)
    try:
        feedback = Feedback(store.database)
        feedback.review(Claim("mailbox", "mailbox:<a@x>", "hard_bounce", ("reader@example.com",),
                              "no proof", subject="\x1b[2J\x1b[31mURGENT\nfake line",
                              reason="550 5.1.1"))  # fmt: skip
        feedback.review(Claim("mailgun", "mailgun:b", "complaint", ("reader@example.com",),
                              "no proof"))  # fmt: skip
    finally:
        store.close()
    text = "\n".join(admin.review_lines(settings))
    assert "2 report(s) changed nobody" in text
    assert "mailbox: hard bounce claimed for reader@example.com" in text
    assert "mailgun: complaint claimed for reader@example.com" in text
    assert "\x1b" not in text and "\\x1b[2J" in text and "URGENT\\x0afake line" in text
    assert statuses(settings) == {"reader@example.com": Status.CONFIRMED}
    assert "Cleared 2 report(s)" in "\n".join(admin.review_lines(settings, clear=True))
    assert "No report is waiting" in admin.review_lines(settings)[0]
    store = Subscribers.open(settings.database)
    try:
        Feedback(store.database).review(
            Claim("ses", "ses:c", "hard_bounce", ("reader@example.com",), "no proof")
        )
    finally:
        store.close()
    admin.forget(settings, "Reader@Example.com")
    assert "No report is waiting" in admin.review_lines(settings)[0]
