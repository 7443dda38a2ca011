"""The pure parser of DSN and ARF reports (`reports.parse`), fed bytes and nothing else: no
settings, no database, no network. Every sample of tests/dsn_samples/ (real reports, see
docs/bounces.md) gives its failures and the proofs it offers, or says why it is junk; no
truncated or garbled message makes it raise; a failing detector is noted, never logged."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.subscriptions import reports
from newsletter.subscriptions.feedback import Kind
from newsletter.subscriptions.reports import Failure
from tests.feedback_helpers import SAMPLES, exim

HARD, SOFT, COMPLAINT = Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.COMPLAINT
ID = "<{}.announce@walkagain.example>"  # the original's Message-ID, of our old shape
# sample -> (its failures as (kind, the likeliest address), the first Message-ID it quotes, a
# return path it offers); a str: why it is junk
PARSED = {
    "postfix-alias-user-unknown.eml": ([(HARD, "rosa@example.org")], None, None),
    "postfix-mailbox-full.eml": (
        [(SOFT, "tom@example.com")], ID.format("5b5f978a291e6f1aad5725e7ce47b42f"), None),
    "postfix-delayed-quota.eml": (
        [(SOFT, "yuki@example.net")], ID.format("dbb1e97f9c65fbb7dd1cd9f81b273628"), None),
    "postfix-forwarded-policy-refusal.eml": (
        [(SOFT, "ines@example.com")], ID.format("6ef8eb5015f0d623c0250a2f624bd385"), None),
    "gmail-address-not-found.eml": (
        [(HARD, "omar@example.com")], ID.format("22cecab0edcc6f7264389889eedae3c3"), None),
    "gmail-delayed.eml": (
        [(SOFT, "lena@example.org")], ID.format("bf4b038ca14e4f7c36f6c0524a17c371"), None),
    "office365-recipient-not-found.eml": (
        [(HARD, "kenji@example.net")], ID.format("594a4912b82c7f0f5a1179fd9b973d12"), None),
    "exchange2007-recipient-not-found.eml": ([(HARD, "ana@example.com")], None, None),
    "exim-two-recipients.eml": (
        [(HARD, "nora@example.com"), (HARD, "paul@example.com")],
        ID.format("7906519af9061d87a8ed626d467ee013"), None),
    "qmail-unknown-user.eml": (
        [(HARD, "sam@example.org")], ID.format("c094c114e4923dfa2cf58fa33760da6d"), None),
    "yahoo-arf-abuse.eml": (
        [(COMPLAINT, "eva@example.com")], ID.format("14cc0c53d0853fec9e4d0cd6ed9b0c3d"), None),
    "returnpath-arf-abuse.eml": (
        [(COMPLAINT, "li@example.org")], ID.format("5eaca5ea80b61daf4edce60b1513c630"), None),
    "verp-forwarded.eml": (
        [(HARD, "max@old-employer.example")], ID.format("c7266eba9bdc66e03b67d0b15ad7941b"),
        "bounces+VERP-TOKEN@bounces.walkagain.example"),
    "postfix-stranger.eml": (
        [(SOFT, "stranger@example.com")], ID.format("4bb344147bc4c4758dd42b8378d9c5fb"), None),
    "postfix-foreign-message.eml": (
        [(HARD, "carla@example.com")], "<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@walkagain.example>",
        None),
    "dmarc-auth-failure-report.eml": "a feedback report of type 'auth-failure'",
    "vacation-auto-reply.eml": "an auto-reply",
    "office365-truncated-ndr.eml": "no failed recipient found",
    "not-a-bounce.eml": "no failed recipient found",
}  # fmt: skip


def test_every_sample_is_in_the_table():
    assert sorted(PARSED) == sorted(path.name for path in SAMPLES.glob("*.eml"))


@pytest.mark.parametrize("name", sorted(PARSED))
def test_a_sample_gives_its_failures_and_the_proofs_it_offers(name):
    notice = reports.parse((SAMPLES / name).read_bytes())
    assert isinstance(notice, reports.Notice) and not notice.problems
    if isinstance(PARSED[name], str):
        assert notice.junk.startswith(PARSED[name]) and notice.failures == ()
        return
    failures, message_id, return_path = PARSED[name]
    assert notice.junk == ""
    assert [(f.kind, f.addresses[0]) for f in notice.failures] == failures
    assert all(f.reason for f in notice.failures)
    assert notice.original_message_id == message_id
    assert (notice.message_ids[0] if notice.message_ids else None) == message_id
    if return_path:
        assert return_path in notice.return_paths
    assert notice.occurred_at is not None and notice.occurred_at.tzinfo is not None
    assert notice.report_id.startswith(("<", "sha256:"))


def test_the_same_bytes_give_the_same_notice():
    for path in sorted(SAMPLES.glob("*.eml")):
        data = path.read_bytes()
        assert reports.parse(data) == reports.parse(data)


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
    assert reports.classify(action, status) == kind


OURS = "<0123456789abcdef0123456789abcdef.Reader-public-id-000001.announce@walkagain.example>"
REPORT = (
    "From: MAILER-DAEMON@mx.example.net\nTo: news@walkagain.example\nSubject: failure\n"
    "Message-ID: <report-1@mx.example.net>\nMIME-Version: 1.0\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
    "--b\nContent-Type: text/plain\n\nIt failed.\n\n"
    "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
    "Final-Recipient: rfc822; <reader@example.com>\nAction: failed\nStatus: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 no such user\n\n{original}--b--\n"
)


def test_a_report_names_its_original_in_any_of_the_usual_places():
    headers = (
        "--b\nContent-Type: text/rfc822-headers\n\nTo: reader@example.com\n"
        f"Return-Path: <bounces+x@bounces.walkagain.example>\nMessage-ID: {OURS}\n\n"
    )
    notice = reports.parse(REPORT.format(original=headers).encode())
    assert notice.original_message_id == OURS and notice.report_id == "<report-1@mx.example.net>"
    assert notice.message_ids == (OURS,)
    assert notice.return_paths == ("news@walkagain.example", "bounces+x@bounces.walkagain.example")
    assert notice.failures == (Failure(HARD, ("reader@example.com",), "550 5.1.1 no such user"),)
    in_reply = REPORT.format(original="").replace(
        "MIME-Version", f"In-Reply-To: {OURS}\nMIME-Version"
    )
    assert reports.parse(in_reply.encode()).message_ids == (OURS,)
    bare = REPORT.format(original="").replace("Message-ID: <report-1@mx.example.net>\n", "")
    notice = reports.parse(bare.encode())
    assert notice.original_message_id is None and notice.report_id.startswith("sha256:")
    assert notice.message_ids == ()


def test_addresses_in_report_fields_are_read_by_the_one_address_parser():
    """Display names, angle brackets, address types: `addresses.extract` reads every field; a
    type that is not email (x400) names nobody, and a block naming nobody is no failure."""
    blocks = (
        "Original-Recipient: rfc822;Reader <Reader@Example.com>\nFinal-Recipient: RFC822; "
        "<fwd@example.net>\nAction: failed\nStatus: 5.1.1\n\n"
        "Final-Recipient: x400; /C=us/ADMD=/PRMD=x/O=y/S=z\nAction: failed\nStatus: 5.1.1\n\n"
    )
    one = "Final-Recipient: rfc822; <reader@example.com>\nAction: failed\nStatus: 5.1.1\n"
    data = REPORT.format(original="").replace(one, blocks)
    notice = reports.parse(data.encode())
    assert [f.addresses for f in notice.failures] == [("Reader@Example.com", "fwd@example.net")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(sorted(PARSED)),
    cut=st.floats(min_value=0, max_value=1),
    noise=st.binary(max_size=64),
)
def test_no_message_however_broken_makes_the_parser_raise(sample, cut, noise):
    """Truncated or garbled reports never raise: they are read as far as they go, or junk."""
    data = (SAMPLES / sample).read_bytes()
    notice = reports.parse(data[: int(len(data) * cut)] + noise)
    assert isinstance(notice, reports.Notice)
    assert notice.junk or notice.failures
    assert len(notice.message_ids) <= reports.MAX_CANDIDATES
    assert len(notice.return_paths) <= reports.MAX_CANDIDATES


def test_a_detector_that_raises_is_noted_not_logged(caplog, monkeypatch):
    """flufl.bounce logs a detector's exception with its traceback; the parser swallows it and
    says which detector failed, and how, in the notice (the caller logs one line)."""
    from flufl.bounce._detectors import dsn as dsn_detector

    def broken(self, message):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "hostile bytes")

    monkeypatch.setattr(dsn_detector.DSN, "process", broken)
    caplog.set_level("DEBUG")
    notice = reports.parse(exim("reader@example.com").encode())
    assert notice.junk.startswith("unreadable")  # flufl.bounce stops at a detector's error
    assert notice.report_id == "<exim-forged@mx.stranger.example>"
    assert [p.split(" (")[0] for p in notice.problems] == ["detector DSN"]
    assert "UnicodeDecodeError" in notice.problems[0]
    assert not [r for r in caplog.records if r.levelname not in ("DEBUG", "INFO")]
    assert "Traceback" not in caplog.text
