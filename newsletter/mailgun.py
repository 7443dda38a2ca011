"""The Mailgun HTTP API, called with `requests` (NEWSLETTER_TRANSPORT=mailgun).

Contract:
- `MailgunBatchSender(settings)` sends an announcement in batches of at most
  `mailgun_batch_size` (<= 1,000, Mailgun's limit) recipients per call, the way Mailgun documents
  batch sending: `POST {base}/v3/{domain}/messages`, HTTP basic auth `api:{API key}`,
  multipart/form-data with `from`, one `to` per recipient, `subject`, `text`, `html`,
  `recipient-variables` (JSON: each address's own `unsubscribe_url` and `message_id`, used as
  `%recipient.unsubscribe_url%` in the bodies and the List-Unsubscribe header), the headers the
  email package wrote for the prototype (`h:Reply-To`, `h:List-Unsubscribe`,
  `h:List-Unsubscribe-Post`, `h:List-Id`, `h:Message-Id`) and `o:tracking=no` (no open or click
  tracking, as the site loads no tracker). With recipient variables Mailgun sends each
  recipient their own message, never showing the others.
- Answers: 200 -> the batch is accepted (recorded `sent` in one transaction); 429, 5xx or no
  answer -> `TemporaryFailure` for the batch; 401/403 -> `TemporaryFailure` (our key, not their
  addresses: fix the settings, then re-run); 400 -> the batch is split in halves until the
  address Mailgun refuses is alone, which then fails as `bounced`.
- `MailgunTransport(settings)` sends one `EmailMessage` (the confirmation email) through
  `POST {base}/v3/{domain}/messages.mime`, with the same failure types as the other transports.
The API key comes from NEWSLETTER_MAILGUN_API_KEY; the base URL from the region (us, eu) or
NEWSLETTER_MAILGUN_BASE_URL.
"""

from __future__ import annotations

import json
from email.message import EmailMessage

import requests

from newsletter.announcement import ID_MARK, TO_MARK, URL_MARK, Outgoing
from newsletter.config import Settings
from newsletter.dispatch import BOUNCED, SENT, TEMPORARY
from newsletter.transports import PermanentFailure, TemporaryFailure

HEADERS = ("Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
URL_VAR, ID_VAR = "%recipient.unsubscribe_url%", "%recipient.message_id%"


class _Api:
    def __init__(self, settings: Settings, session: requests.Session | None = None):
        self.settings = settings
        self.url = f"{settings.mailgun_url}/v3/{settings.mailgun_domain}"
        self.session = session or requests.Session()
        self.session.auth = ("api", settings.mailgun_api_key)
        self.timeout = settings.smtp_timeout * 3

    def post(self, endpoint: str, fields: list[tuple[str, str]], files=None) -> None:
        """POST multipart/form-data; raise TemporaryFailure or PermanentFailure on refusal."""
        parts = [(name, (None, value)) for name, value in fields] + list(files or [])
        try:
            response = self.session.post(
                f"{self.url}/{endpoint}", files=parts, timeout=(self.timeout, self.timeout)
            )
        except requests.RequestException as error:
            raise TemporaryFailure(f"cannot reach Mailgun: {error}") from error
        if response.status_code == 200:
            return
        detail = f"Mailgun answered {response.status_code}: {_message(response)}"
        if response.status_code in (401, 403):
            raise TemporaryFailure(f"{detail} (check NEWSLETTER_MAILGUN_API_KEY and _DOMAIN)")
        if response.status_code == 429 or response.status_code >= 500:
            raise TemporaryFailure(detail)
        raise PermanentFailure(detail)


class MailgunBatchSender:
    needs_bytes = False

    def __init__(self, settings: Settings, session: requests.Session | None = None):
        self.settings = settings
        self.api = _Api(settings, session)
        self.batch_size = settings.mailgun_batch_size

    def fields_for(self, prototype: EmailMessage, text: str, html: str) -> list[tuple[str, str]]:
        """The form fields shared by every batch of one announcement."""
        fields = [
            ("from", str(prototype["From"])),
            ("subject", str(prototype["Subject"])),
            ("text", text.replace(URL_MARK, URL_VAR)),
            ("html", html.replace(URL_MARK, URL_VAR)),
        ]
        for name in HEADERS:
            if prototype[name] is not None:
                fields.append((f"h:{name}", str(prototype[name]).replace(URL_MARK, URL_VAR)))
        fields.append(("h:Message-Id", ID_VAR))
        fields += [("o:tracking", "no"), ("o:tracking-clicks", "no"), ("o:tracking-opens", "no")]
        assert not any(TO_MARK in value or ID_MARK in value for _, value in fields)
        return fields

    def begin(self, composer) -> None:
        self.shared = self.fields_for(composer.prototype, composer.text, composer.html)

    def run(self, next_job, report) -> None:
        while True:
            batch = []
            while len(batch) < self.batch_size and (job := next_job()) is not None:
                batch.append(job)
            if not batch:
                return
            self._send(self.shared, batch, report)

    def _send(self, shared, batch: list[Outgoing], report) -> None:
        variables = {
            job.to: {"unsubscribe_url": job.unsubscribe_url, "message_id": job.message_id}
            for job in batch
        }
        fields = list(shared) + [("to", job.to) for job in batch]
        fields.append(("recipient-variables", json.dumps(variables, separators=(",", ":"))))
        try:
            self.api.post("messages", fields)
        except TemporaryFailure as error:
            report(batch, TEMPORARY, str(error))
        except PermanentFailure as error:
            if len(batch) == 1:
                report(batch, BOUNCED, str(error))
            else:  # one bad address refuses the whole call: find it by halves
                half = len(batch) // 2
                self._send(shared, batch[:half], report)
                self._send(shared, batch[half:], report)
        else:
            report(batch, SENT, None)

    def close(self) -> None:
        self.api.session.close()


class MailgunTransport:
    """One ready-made message (the confirmation email) through the MIME endpoint."""

    def __init__(self, settings: Settings, session: requests.Session | None = None):
        self.api = _Api(settings, session)

    def send(self, message: EmailMessage) -> None:
        recipients = [a.addr_spec for a in message["To"].addresses] if message["To"] else []
        if not recipients:
            raise PermanentFailure("the message has no To address")
        fields = [("to", address) for address in recipients]
        files = [("message", ("message.mime", message.as_bytes(), "message/rfc822"))]
        self.api.post("messages.mime", fields, files)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.api.session.close()


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except ValueError:
        return response.text[:300]


__all__ = ["MailgunBatchSender", "MailgunTransport"]
