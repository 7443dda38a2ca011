"""The mail room: one interface for sending any email (see `base`), and composing it.

`connect(settings, report, workers=1)` makes the mailer NEWSLETTER_TRANSPORT names: `outbox`
(default: .eml files in NEWSLETTER_OUTBOX), `smtp` (`workers` reused connections) or `mailgun`,
and hands each only its concerns: the SMTP mailer `settings.smtp` and the sender's address, the
Mailgun mailer `settings.mailgun` and a timeout from `settings.http`, the outbox its folder.
Both features send through it: the confirmation queue (one worker) and announcements
(NEWSLETTER_SMTP_WORKERS). This room imports the base only: settings, the database's
clock (`utcnow`) and the rate limiter.
"""

from __future__ import annotations

from newsletter.mail.base import (
    Batch,
    Collect,
    Mailer,
    MailError,
    MessageRefused,
    Outgoing,
    RecipientRefused,
    Report,
    TemporaryFailure,
)
from newsletter.mail.mailgun import MailgunMailer
from newsletter.mail.outbox import OutboxMailer
from newsletter.mail.smtp import SmtpMailer
from newsletter.settings import Settings


def connect(settings: Settings, report: Report, *, workers: int = 1) -> Mailer:
    transport = settings.mail.transport
    if transport == "smtp":
        sender = settings.mail.from_address.addr_spec
        return SmtpMailer(settings.smtp, sender, report, workers=workers)
    if transport == "mailgun":
        return MailgunMailer(settings.mailgun, report, timeout=settings.http.timeout * 3)
    return OutboxMailer(settings.mail.outbox, report)


__all__ = [
    "Batch",
    "Collect",
    "MailError",
    "Mailer",
    "MessageRefused",
    "OutboxMailer",
    "Outgoing",
    "RecipientRefused",
    "Report",
    "TemporaryFailure",
    "connect",
]
