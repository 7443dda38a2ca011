"""The outbox mailer: .eml files on disk, one per Message-ID, written atomically."""

import email
import email.policy

from newsletter import mail
from newsletter.mail.outbox import OutboxMailer
from tests.test_mail_smtp import outgoing


def test_outbox_writes_one_eml_per_message_id(tmp_path):
    results = mail.Collect()
    outbox = OutboxMailer(tmp_path / "outbox", results)
    outbox.push(outgoing(1))
    outbox.push(outgoing(1))  # a resend of the same message: still one file
    outbox.push(outgoing(2))
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "reader@example.com"
    assert parsed.get_content().strip().startswith("Hello number")
    assert not list((tmp_path / "outbox").glob("*.tmp"))
    assert list(results.results.values()) == [None, None]


def test_outbox_that_cannot_be_written_is_a_temporary_failure(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the outbox should be")
    results = mail.Collect()
    OutboxMailer(blocker, results).push(outgoing())
    (error,) = results.results.values()
    assert isinstance(error, mail.TemporaryFailure) and "cannot write" in str(error)
