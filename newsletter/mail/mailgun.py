"""The Mailgun mailer: the HTTP API, called with `requests` (NEWSLETTER_TRANSPORT=mailgun).

Contract: `MailgunMailer(mailgun, report, timeout=30.0)`: `mailgun` is `MailgunSettings`
(NEWSLETTER_MAILGUN_*); `timeout` bounds connecting and each read of one call, in seconds
(`mail.connect` gives 3 x NEWSLETTER_HTTP_TIMEOUT: a batch of 1,000 takes a while).
- A push with a `Batch` joins the batch of its key; a batch goes out when it holds
  `batch_size` (<= 1,000, Mailgun's limit) recipients, or at `flush()`, as Mailgun
  documents batch sending: `POST {base}/v3/{domain}/messages`, HTTP basic auth `api:{API key}`,
  multipart/form-data with `from`, `subject`, `text`, `html`, the batch's headers as `h:Name`
  (placeholders become `%recipient.<name>%`), `o:tracking=no` (no open or click tracking), one
  `to` per recipient and `recipient-variables` (JSON: each address's own values). With recipient
  variables Mailgun sends each recipient their own message, never showing the others.
  Mailgun substitutes `%recipient.x%` (and its other variables) anywhere in those fields, so
  BEFORE our placeholders are filled in, every `%` that would start a variable in the text we
  were handed (a feed's title, dek, summary) is made inert (`inert`): a zero-width space
  U+200B after it in from, subject, text and headers, `&#37;` in the HTML. The reader sees
  the words as written; only our own placeholders become the recipient's values.
- A push without a batch goes alone through `POST .../messages.mime` (the whole message).
- Answers: 200 -> every recipient of the call accepted; 429, 5xx or no answer ->
  `TemporaryFailure`; 401, 402, 403 -> `MessageRefused` (our key, account or domain: fix the
  settings); 400 -> a refusal of one recipient or of the message: the batch is split in halves
  once; when both halves are refused too, the message is refused (`MessageRefused` for all,
  nobody bounced); otherwise the refused half is split on until the address is alone, which is
  refused only when Mailgun's answer names the recipient (`to`), else the message is refused.
The API key comes from NEWSLETTER_MAILGUN_API_KEY; the base URL from the region (us, eu) or
NEWSLETTER_MAILGUN_BASE_URL.
"""

from __future__ import annotations

import json
import re

import requests

from newsletter.mail import base
from newsletter.settings import MailgunSettings

TRACKING_OFF = [("o:tracking", "no"), ("o:tracking-clicks", "no"), ("o:tracking-opens", "no")]
# The % that starts one of Mailgun's variables: %recipient.<name>% (and %recipient%,
# %recipient_email%, ...), %unsubscribe_url%, %tag_unsubscribe_url%,
# %mailing_list_unsubscribe_url%. None of them can start a percent-encoding (%XX, hex).
MAILGUN_VARIABLE = re.compile(
    r"%(?=recipient|(?:mailing_list_|tag_)?unsubscribe_url%)", re.IGNORECASE
)
ZERO_WIDTH_SPACE = "\u200b"
NAMES_RECIPIENT = re.compile(r"\bto\b|recipient", re.IGNORECASE)


class _Refused(Exception):
    """A 400: refused, recipient or message not yet known."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class MailgunMailer:
    batches = True

    def __init__(self, mailgun: MailgunSettings, report: base.Report, *, timeout: float = 30.0):
        self.report = report
        self.url = f"{mailgun.url}/v3/{mailgun.domain}"
        self.session = requests.Session()
        self.session.auth = ("api", mailgun.api_key)
        self.timeout = timeout
        self.batch_size = mailgun.batch_size
        self._pending: dict[str, list[base.Outgoing]] = {}
        self._fields: dict[str, list[tuple[str, str]]] = {}

    # The interface ----------------------------------------------------------------------------
    def push(self, outgoing: base.Outgoing) -> None:
        if outgoing.batch is None:
            self._single(outgoing)
            return
        key = outgoing.batch.key
        if key not in self._fields:
            self._fields[key] = self.fields_for(outgoing.batch)
        waiting = self._pending.setdefault(key, [])
        waiting.append(outgoing)
        if len(waiting) >= self.batch_size:
            del self._pending[key]
            self._send_batch(self._fields[key], waiting)

    def flush(self) -> None:
        while self._pending:
            key, waiting = self._pending.popitem()
            self._send_batch(self._fields[key], waiting)

    def close(self) -> None:
        self._pending.clear()  # not sent: the caller still holds them as pending
        self.session.close()

    # Requests ---------------------------------------------------------------------------------
    def fields_for(self, batch: base.Batch) -> list[tuple[str, str]]:
        """The form fields shared by every call of one batch."""

        def filled(text: str, *, html: bool = False) -> str:
            text = inert(text, html=html)  # first: only our own placeholders become variables
            for marker, name in batch.placeholders.items():
                text = text.replace(marker, f"%recipient.{name}%")
            return text

        fields = [
            ("from", inert(batch.sender)),
            ("subject", inert(batch.subject)),
            ("text", filled(batch.text)),
            ("html", filled(batch.html, html=True)),
        ]
        fields += [(f"h:{name}", filled(value)) for name, value in batch.headers]
        return fields + TRACKING_OFF

    def _single(self, outgoing: base.Outgoing) -> None:
        files = [("message", ("message.mime", outgoing.data, "message/rfc822"))]
        try:
            self._post("messages.mime", [("to", outgoing.to)], files)
        except _Refused as refused:
            error = _scope_of_one(refused.detail)
        except base.MailError as failure:
            error = failure
        else:
            error = None
        base.settle(self.report([outgoing], error))

    def _send_batch(self, shared, batch: list[base.Outgoing]) -> None:
        detail = self._attempt(shared, batch)
        if detail is None:
            return
        if len(batch) == 1:
            base.settle(self.report(batch, _scope_of_one(detail)))
            return
        halves = _halves(batch)  # one level of bisection tells an address from the message
        details = [self._attempt(shared, half) for half in halves]
        if all(details):
            base.settle(
                self.report(
                    batch, base.MessageRefused(f"{details[-1]} (refused for every recipient)")
                )
            )
            return
        for half, refused in zip(halves, details, strict=True):
            if refused:
                self._find_refused(shared, half, refused)

    def _find_refused(self, shared, part: list[base.Outgoing], detail: str) -> None:
        """`part` was refused as a whole while other recipients went: find the address(es)."""
        if len(part) == 1:
            base.settle(self.report(part, base.RecipientRefused(detail)))
            return
        for half in _halves(part):
            if (refused := self._attempt(shared, half)) is not None:
                self._find_refused(shared, half, refused)

    def _attempt(self, shared, part: list[base.Outgoing]) -> str | None:
        """One call for `part`: reported when it went or failed otherwise (None), or the
        words of a 400 refusal, reported by the caller once it knows the scope."""
        variables = {job.to: dict(job.variables) for job in part}
        fields = list(shared) + [("to", job.to) for job in part]
        fields.append(("recipient-variables", json.dumps(variables, separators=(",", ":"))))
        try:
            self._post("messages", fields)
        except base.MailError as error:
            base.settle(self.report(part, error))
        except _Refused as refused:
            return refused.detail
        else:
            base.settle(self.report(part, None))
        return None

    def _post(self, endpoint: str, fields: list[tuple[str, str]], files=None) -> None:
        parts = [(name, (None, value)) for name, value in fields] + list(files or [])
        try:
            response = self.session.post(
                f"{self.url}/{endpoint}", files=parts, timeout=(self.timeout, self.timeout)
            )
        except requests.RequestException as error:
            raise base.TemporaryFailure(f"cannot reach Mailgun: {error}") from error
        if response.status_code == 200:
            return
        detail = f"Mailgun answered {response.status_code}: {_message(response)}"
        if response.status_code in (401, 402, 403):
            raise base.MessageRefused(
                f"{detail} (check NEWSLETTER_MAILGUN_API_KEY, _DOMAIN and the account)"
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise base.TemporaryFailure(detail)
        raise _Refused(detail)


def inert(text: str, *, html: bool = False) -> str:
    """`text` in which Mailgun substitutes nothing: a zero-width space (U+200B) after each % that
    starts one of its variables, so `%recipient.unsubscribe_url%` from a feed stays those words
    (the reader sees them; the space is invisible). In HTML the % becomes `&#37;` instead, which
    a mail program reads, shows and links exactly as `%`."""
    return MAILGUN_VARIABLE.sub("&#37;" if html else "%" + ZERO_WIDTH_SPACE, text)


def _halves(part: list[base.Outgoing]) -> list[list[base.Outgoing]]:
    half = len(part) // 2
    return [part[:half], part[half:]]


def _scope_of_one(detail: str) -> base.MailError:
    """A 400 for a single recipient: theirs only when Mailgun's words name the recipient."""
    if NAMES_RECIPIENT.search(detail.partition(":")[2]):
        return base.RecipientRefused(detail)
    return base.MessageRefused(detail)


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except ValueError:
        return response.text[:300]


__all__ = ["MailgunMailer"]
