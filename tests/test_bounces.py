"""The bounce mailbox over a real IMAP server (tests/imap_server.py, TLS on 127.0.0.1) and a real
SQLite file: every sample in tests/dsn_samples/ (real bounces and reports, see docs/bounces.md)
ends as the right event or is left alone, and reading the mailbox again changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from blog.build import ROOT
from newsletter.mail.message import message_id
from newsletter.subscriptions import bounces
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.feedback import Applied, Feedback, Kind
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.announce_helpers import add_subscribers
from tests.conftest import newsletter_settings
from tests.feedback_helpers import imap_tls
from tests.imap_server import ImapServer

SAMPLES = Path(__file__).resolve().parent / "dsn_samples"
VERP_DOMAIN = "bounces.walkagain.example"
HARD, SOFT, COMPLAINT = Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.COMPLAINT
# sample -> {subscriber: the event it records}; {} when the message stays in the folder
EXPECTED = {
    "postfix-alias-user-unknown.eml": {"rosa@example.org": HARD},
    "postfix-mailbox-full.eml": {"tom@example.com": SOFT},
    "postfix-delayed-quota.eml": {"yuki@example.net": SOFT},
    "postfix-forwarded-policy-refusal.eml": {"ines@example.com": SOFT},
    "gmail-address-not-found.eml": {"omar@example.com": HARD},
    "gmail-delayed.eml": {"lena@example.org": SOFT},
    "office365-recipient-not-found.eml": {"kenji@example.net": HARD},
    "exchange2007-recipient-not-found.eml": {"ana@example.com": HARD},
    "exim-two-recipients.eml": {"paul@example.com": HARD, "nora@example.com": HARD},
    "qmail-unknown-user.eml": {"sam@example.org": HARD},
    "yahoo-arf-abuse.eml": {"eva@example.com": COMPLAINT},
    "returnpath-arf-abuse.eml": {"li@example.org": COMPLAINT},
    "verp-forwarded.eml": {"max@example.com": HARD},  # by the return path's token alone
    # left alone: junk, a stranger, a message we did not send
    "dmarc-auth-failure-report.eml": {},
    "vacation-auto-reply.eml": {},
    "office365-truncated-ndr.eml": {},
    "not-a-bounce.eml": {},
    "postfix-stranger.eml": {},
    "postfix-foreign-message.eml": {},
}
LEFT = {name for name, events in EXPECTED.items() if not events}
BYSTANDERS = ["carla@example.com", "dora@example.com", "finn@example.com", "gus@example.com"]
SUBSCRIBERS = [a for events in EXPECTED.values() for a in events] + BYSTANDERS
STATUS_AFTER = {HARD: Status.BOUNCED, SOFT: Status.CONFIRMED, COMPLAINT: Status.COMPLAINED}


# The world: certificates, the IMAP server, the settings, the subscribers --------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return imap_tls(tmp_path_factory.mktemp("imap-tls"))


@pytest.fixture
def imap(tls):
    with ImapServer(tls[0]) as server:
        yield server


@pytest.fixture
def world(tmp_path, imap):
    settings = newsletter_settings(
        tmp_path,
        imap_host="127.0.0.1",
        imap_port=imap.port,
        imap_user=imap.user,
        imap_password=imap.password,
        verp_domain=VERP_DOMAIN,
    )
    people = add_subscribers(settings, dict.fromkeys(SUBSCRIBERS, Status.CONFIRMED))
    return settings, people


def deliver_samples(imap: ImapServer, people) -> dict[bytes, str]:
    """Every sample into INBOX (the VERP sample with max's token); their bytes -> their names."""
    delivered = {}
    for name in sorted(EXPECTED):
        data = (SAMPLES / name).read_bytes()
        data = data.replace(b"VERP-TOKEN", people["max@example.com"].public_id.encode())
        imap.deliver(data)
        delivered[data] = name
    return delivered


def events(settings) -> list[tuple[str, str, str, str | None, str]]:
    store = Subscribers.open(settings.database)
    try:
        rows = store.database.db.execute(
            "SELECT s.email, e.kind, e.provider, e.message_id, e.event_key FROM feedback_events e"
            " JOIN subscribers s ON s.id = e.subscriber_id ORDER BY e.id"
        ).fetchall()
        return [tuple(row) for row in rows]
    finally:
        store.close()


def statuses(settings) -> dict[str, Status]:
    store = Subscribers.open(settings.database)
    try:
        return {s.email: s.status for s in store.list()}
    finally:
        store.close()


def names(imap: ImapServer, folder: str, delivered: dict[bytes, str]) -> list[str]:
    """The samples in a folder, by name (a sample twice is listed twice)."""
    return sorted(delivered[data] for data in imap.messages(folder))


# The whole path ----------------------------------------------------------------------------------
def test_every_sample_ends_as_the_right_event_or_is_left_alone(world, imap, tls):
    settings, people = world
    delivered = deliver_samples(imap, people)

    report = bounces.fetch(settings, ssl_context=tls[1])

    expected = Counter(kind for found in EXPECTED.values() for kind in found.values())
    assert report.read == len(EXPECTED)
    assert report.applied == {HARD: expected[HARD], SOFT: expected[SOFT],
                              COMPLAINT: expected[COMPLAINT]}  # fmt: skip
    assert (report.unknown, report.junk, report.duplicate) == (1, 5, 0)
    assert report.moved == len(EXPECTED) - len(LEFT) and report.not_moved == 0
    recorded = events(settings)
    assert sorted((email, kind) for email, kind, *_ in recorded) == sorted(
        (email, str(kind)) for found in EXPECTED.values() for email, kind in found.items()
    )
    assert {provider for _, _, provider, _, _ in recorded} == {"mailbox"}
    # key: the report's own Message-ID (or a digest of its bytes: qmail sends none) + recipient
    assert all(key.startswith(("mailbox:<", "mailbox:sha256:")) and key.endswith(":" + email)
               for email, _, _, _, key in recorded)  # fmt: skip
    # The original's Message-ID is kept when the report carries it (ours, by construction).
    ids = {email: mid for email, _, _, mid, _ in recorded}
    assert ids["rosa@example.org"] is None  # the returned message was cut off
    assert bounces.is_ours(ids["omar@example.com"], settings)
    assert bounces.is_ours(ids["eva@example.com"], settings)
    now = statuses(settings)
    for found in EXPECTED.values():
        for email, kind in found.items():
            assert now[email] == STATUS_AFTER[kind], email
    assert all(now[email] == Status.CONFIRMED for email in BYSTANDERS)
    assert "stranger@example.com" not in now
    # Handled reports moved; the rest left in INBOX, unread (BODY.PEEK), for a person to see.
    assert names(imap, "INBOX", delivered) == sorted(LEFT)
    assert names(imap, "Processed", delivered) == sorted(set(EXPECTED) - LEFT)
    assert all("\\Seen" not in flags for flags in imap.flags("INBOX"))
    assert any("auto-reply" in line for line in report.left)
    assert any("did not send" in line for line in report.left)
    assert any("stranger@example.com" in line for line in report.left)

    again = bounces.fetch(settings, ssl_context=tls[1])

    assert (again.read, again.moved, again.junk, again.unknown) == (len(LEFT), 0, 5, 1)
    assert sum(again.applied.values()) == 0 and again.duplicate == 0
    assert events(settings) == recorded and statuses(settings) == now
    assert names(imap, "INBOX", delivered) == sorted(LEFT)


def test_a_failed_move_is_read_again_and_changes_nothing(world, imap, tls):
    settings, people = world
    delivered = deliver_samples(imap, people)
    imap.refuse_moves = True

    first = bounces.fetch(settings, ssl_context=tls[1])
    handled = len(EXPECTED) - len(LEFT)
    assert (first.moved, first.not_moved) == (0, handled)
    recorded, now = events(settings), statuses(settings)
    assert len(recorded) == sum(len(found) for found in EXPECTED.values())

    second = bounces.fetch(settings, ssl_context=tls[1])
    assert sum(second.applied.values()) == 0
    assert second.duplicate == len(recorded) and second.not_moved == handled
    assert events(settings) == recorded and statuses(settings) == now
    assert "could not be moved" in "\n".join(second.lines())

    imap.refuse_moves = False
    third = bounces.fetch(settings, ssl_context=tls[1])
    assert (third.moved, third.duplicate, sum(third.applied.values())) == (
        handled,
        len(recorded),
        0,
    )
    assert events(settings) == recorded
    assert names(imap, "INBOX", delivered) == sorted(LEFT)


@pytest.mark.parametrize("capabilities", [("MOVE", "UIDPLUS"), ("UIDPLUS",), ()])
def test_handled_reports_move_with_or_without_the_move_command(tmp_path, tls, capabilities):
    with ImapServer(tls[0], capabilities=capabilities) as imap:
        settings = newsletter_settings(tmp_path, imap_host="127.0.0.1", imap_port=imap.port,
                                       imap_user=imap.user, imap_password=imap.password,
                                       imap_done_folder="Bounces/Done 2026")  # fmt: skip
        add_subscribers(settings, {"omar@example.com": Status.CONFIRMED})
        imap.deliver((SAMPLES / "gmail-address-not-found.eml").read_bytes())
        imap.deliver((SAMPLES / "vacation-auto-reply.eml").read_bytes())
        report = bounces.fetch(settings, ssl_context=tls[1])
        assert (report.moved, report.junk, report.applied[HARD]) == (1, 1, 1)
        assert len(imap.messages("Bounces/Done 2026")) == 1  # created, though the name has a space
        assert len(imap.messages("INBOX")) == 1
        sent = " ".join(imap.commands)
        assert ('CREATE "Bounces/Done 2026"' in sent) and ("UID FETCH" in sent)
        if "MOVE" in capabilities:
            assert "UID MOVE" in sent and "UID COPY" not in sent
        else:
            assert "UID COPY" in sent and "+FLAGS.SILENT (\\Deleted)" in sent
            assert ("UID EXPUNGE" in sent) == ("UIDPLUS" in capabilities)


def test_two_fetches_and_a_busy_writer_at_once_record_each_event_once(world, imap, tls):
    """Cron runs that overlap, while an announcement writes to the same database: every event is
    recorded once, nothing waits forever, nothing fails with "database is locked"."""
    settings, people = world
    delivered = deliver_samples(imap, people)
    errors, reports = [], []

    def fetch():
        try:
            reports.append(bounces.fetch(settings, ssl_context=tls[1]))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def write():
        store = Subscribers.open(settings.database)
        try:
            for n in range(200):
                store.add(*normalize(f"newcomer{n}@example.com"), status=Status.CONFIRMED)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=f) for f in (fetch, fetch, write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(reports) == 2
    recorded = events(settings)
    assert len(recorded) == len({key for *_, key in recorded})
    assert len(recorded) == sum(len(found) for found in EXPECTED.values())
    assert names(imap, "INBOX", delivered) == sorted(LEFT)
    assert len(imap.messages("Processed")) == len(EXPECTED) - len(LEFT)
    assert len(statuses(settings)) == len(SUBSCRIBERS) + 200


# Refusals ----------------------------------------------------------------------------------------
def test_the_mailbox_says_why_it_cannot_be_read(tmp_path, imap, tls):
    with pytest.raises(bounces.BounceError, match="NEWSLETTER_IMAP_HOST is not set"):
        bounces.fetch(newsletter_settings(tmp_path))
    base = dict(imap_host="127.0.0.1", imap_port=imap.port, imap_user=imap.user)
    wrong = newsletter_settings(tmp_path, **base, imap_password="wrong")
    with pytest.raises(bounces.BounceError, match="refused the login of bounces@"):
        bounces.fetch(wrong, ssl_context=tls[1])
    right = newsletter_settings(tmp_path, **base, imap_password=imap.password)
    with pytest.raises(bounces.BounceError, match="cannot connect.*(CERTIFICATE|certificate)"):
        bounces.fetch(right)  # the default context does not trust the test's certificate
    missing = right.replace(imap_folder="Nowhere")
    with pytest.raises(bounces.BounceError, match="cannot open the folder Nowhere"):
        bounces.fetch(missing, ssl_context=tls[1])
    assert not any(imap.messages(folder) for folder in ("INBOX", "Processed"))


def test_the_task_reads_the_mailbox_with_settings_from_the_environment(world, imap, tls):
    settings, people = world
    deliver_samples(imap, people)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(settings.database.parent),
        "SSL_CERT_FILE": str(tls[2]),  # what ssl.create_default_context() trusts, in production
        "NEWSLETTER_DATABASE": str(settings.database),
        "NEWSLETTER_SECRET_KEY": settings.secret_key,
        "NEWSLETTER_FROM": settings.sender,
        "NEWSLETTER_IMAP_HOST": "127.0.0.1",
        "NEWSLETTER_IMAP_PORT": str(imap.port),
        "NEWSLETTER_IMAP_USER": imap.user,
        "NEWSLETTER_IMAP_PASSWORD": imap.password,
        "NEWSLETTER_VERP_DOMAIN": VERP_DOMAIN,
    }
    invoke = Path(sys.executable).parent / "invoke"
    result = subprocess.run([str(invoke), "bounces.fetch", "--verbose"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{len(EXPECTED)} message(s) read, {len(EXPECTED) - len(LEFT)} moved" in result.stdout
    assert "Recorded: 8 hard bounce, 4 soft bounce, 2 complaint" in result.stdout
    assert "left: " in result.stdout and "an auto-reply" in result.stdout
    assert statuses(settings)["eva@example.com"] == Status.COMPLAINED
    env["NEWSLETTER_IMAP_PASSWORD"] = "wrong"
    result = subprocess.run([str(invoke), "bounces.fetch"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "Bounce mailbox not read:" in result.stderr


# Reading one message -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "status", "kind"),
    [
        ("failed", "5.1.1", HARD),
        ("failed", "5.0.0 (permanent failure)", HARD),
        ("failed", "", HARD),
        ("error", "5.1.1", HARD),  # opensmtpd
        ("failed", "4.4.7", SOFT),  # gave up after temporary failures
        ("failed", "5.2.2", SOFT),  # mailbox full
        ("failed", "5.7.26", SOFT),  # refused by policy: says nothing about the address
        ("delayed", "4.4.1", SOFT),
        ("Delayed (will retry)", "", SOFT),
        ("delivered", "2.0.0", None),
        ("relayed", "2.0.0", None),
        ("expanded", "2.0.0", None),
    ],
)
def test_a_recipient_block_is_classified_by_action_and_status(action, status, kind):
    assert bounces.classify(action, status) == kind


def test_verp_addresses_name_a_subscriber_and_nothing_else():
    settings = newsletter_settings(verp_domain=VERP_DOMAIN)
    address = bounces.verp_address(settings, "Ab-3_x")
    assert address == f"bounces+Ab-3_x@{VERP_DOMAIN}"
    assert bounces.verp_token(settings, address) == "Ab-3_x"
    assert bounces.verp_token(settings, f"<BOUNCES+Ab-3_x@{VERP_DOMAIN.upper()}>") == "Ab-3_x"
    assert bounces.verp_token(settings, f"bounces+@{VERP_DOMAIN}") is None
    assert bounces.verp_token(settings, f"news@{VERP_DOMAIN}") is None
    assert bounces.verp_token(settings, "bounces+Ab-3_x@elsewhere.example") is None
    plain = newsletter_settings()
    assert bounces.verp_token(plain, address) is None
    with pytest.raises(ValueError, match="NEWSLETTER_VERP_DOMAIN"):
        bounces.verp_address(plain, "Ab-3_x")


def test_our_message_ids_are_recognised(tmp_path):
    settings = newsletter_settings()
    assert bounces.is_ours(message_id(settings, "announce", "guid:pub"), settings)
    assert bounces.is_ours(message_id(settings, "confirmation", 7), settings)
    other = settings.replace(sender="Someone <a@elsewhere.example>")
    assert not bounces.is_ours(message_id(other, "announce", "guid:pub"), settings)
    assert not bounces.is_ours("<A8F82EDD-E518-4F5C@walkagain.example>", settings)


def test_without_a_verp_domain_the_forwarded_bounce_is_about_a_stranger(tmp_path):
    settings = newsletter_settings(tmp_path)
    add_subscribers(settings, {"max@example.com": Status.CONFIRMED})
    data = (SAMPLES / "verp-forwarded.eml").read_bytes()
    notice = bounces.parse(data, settings)
    assert not notice.verp_tokens and notice.failures[0].addresses == ("max@old-employer.example",)
    store = Subscribers.open(settings.database)
    try:
        assert bounces.apply(notice, Feedback(store.database), settings) == [
            (notice.failures[0], Applied.UNKNOWN)
        ]
    finally:
        store.close()


def test_a_report_names_its_original_in_any_of_the_usual_places():
    settings = newsletter_settings()
    ours = message_id(settings, "announce", "x")
    base = (
        "From: MAILER-DAEMON@mx.example.net\nTo: news@walkagain.example\nSubject: failure\n"
        "Message-ID: <report-1@mx.example.net>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nIt failed.\n\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        "Final-Recipient: rfc822; <reader@example.com>\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\n\n{original}--b--\n"
    )
    headers = (
        f"--b\nContent-Type: text/rfc822-headers\n\nTo: reader@example.com\nMessage-ID: {ours}\n\n"
    )
    notice = bounces.parse(base.format(original=headers).encode(), settings)
    assert notice.original_message_id == ours and notice.report_id == "<report-1@mx.example.net>"
    assert notice.failures == (
        bounces.Failure(HARD, ("reader@example.com",), "550 5.1.1 no such user"),
    )
    in_reply = base.format(original="").replace(
        "MIME-Version", f"In-Reply-To: {ours}\nMIME-Version"
    )
    assert bounces.parse(in_reply.encode(), settings).original_message_id == ours
    bare = base.format(original="").replace("Message-ID: <report-1@mx.example.net>\n", "")
    notice = bounces.parse(bare.encode(), settings)
    assert notice.original_message_id is None and notice.report_id.startswith("sha256:")


@hypothesis_settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    sample=st.sampled_from(sorted(EXPECTED)),
    cut=st.floats(min_value=0, max_value=1),
    noise=st.binary(max_size=64),
)
def test_no_message_however_broken_stops_the_mailbox(sample, cut, noise):
    """Truncated or garbled reports never raise: they are read as far as they go, or junk."""
    settings = newsletter_settings(verp_domain=VERP_DOMAIN)
    data = (SAMPLES / sample).read_bytes()
    broken = data[: int(len(data) * cut)] + noise
    notice = bounces.parse(broken, settings)
    assert isinstance(notice, bounces.Notice)
    assert notice.junk or notice.failures
