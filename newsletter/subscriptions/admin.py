"""What the author's `invoke subscribers.*` tasks do (the tasks only parse and print).

Contract: every function takes `Settings` (from NEWSLETTER_* by default) and works on the same
SQLite store as the endpoint, safely while it runs.
- `list_subscribers(status=None)`, `stats()`: read only.
- `add(email, confirmed=False, welcome=False)`: a new subscriber, confirmed at once only when
  the author says so; otherwise a confirmation email is queued. An address already known is left
  as it is. A reader confirmed by the author gets no welcome email unless `welcome` (readers who
  confirm themselves get theirs when they confirm).
- `remove(email)`: unsubscribes (the record stays, so the address is never re-imported).
- `forget(email)`: deletes every trace: the subscriber, their queued emails (by cascade; the
  freed bytes zeroed and the write-ahead log emptied, so no file of the database keeps them) and
  every file of the outbox and its previews (`<outbox>/preview/`) that names them (addressed to
  them, by the store's key, or holding the address anywhere, in any case); returns those paths.
  The exercise plans the address follows are erased too (`forget_follows(email)`: only those,
  and how many). `stats()` also counts the followers of each plan (nothing per person).
- `import_csv(path, confirmed=False, welcome=False)`: checks every row, skips duplicates and
  known addresses, reports rejected rows with line numbers and reasons; adds the rest in one
  transaction (with `confirmed` and `welcome`, each added reader is owed the welcome email).
- `export_csv(out)`: every subscriber as CSV (cells that a spreadsheet would run as a formula
  are prefixed with '), with their `topics` ("everything", or slugs separated by spaces) and
  `frequency`; `import_csv` reads both columns back when the header names them (optional:
  everything, at the site's default frequency), and rejects a row with a bad value, naming its
  line and column. `list_subscribers`' text and `stats()` show them too (counts per topic and
  per frequency of the confirmed readers).
- `send_queued(timeout)`: sends what is queued now (the confirmations and welcomes
  `add`/`import` queued).
Errors the author can fix raise `AdminError` with a sentence.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import TextIO

from newsletter.outgoing.ledger import MailLedger
from newsletter.settings import Settings
from newsletter.subscriptions import addresses, topics
from newsletter.subscriptions.choices import Choices, default_frequency
from newsletter.subscriptions.feedback import Feedback
from newsletter.subscriptions.plan_follows import PlanFollows
from newsletter.subscriptions.sender import Sender
from newsletter.subscriptions.subscribers import CONFIRMATION, Status, Subscriber, Subscribers
from newsletter.subscriptions.tokens import Tokens

EXPORT_COLUMNS = [
    "email", "status", "created_at", "confirmed_at", "unsubscribed_at", "bounced_at",
    "complained_at", "consent_at", "consent_source", "topics", "frequency",
]  # fmt: skip
EVERYTHING = "everything"  # the topics cell of a reader who chose everything
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class AdminError(Exception):
    """Something the author asked for cannot be done; the message says why."""


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    known: list[tuple[int, str, str]] = field(default_factory=list)  # line, email, status
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # line, email
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # line, text, reason


def open_store(settings: Settings) -> Subscribers:
    return Subscribers.open(settings.core.database)


def _address(email: str) -> tuple[str, str]:
    try:
        return addresses.normalize(email)
    except addresses.InvalidAddress as error:
        raise AdminError(f"{email!r}: {error}") from None


def list_subscribers(settings: Settings, status: str | None = None) -> list[Subscriber]:
    if status is not None and status not in Status.__members__.values():
        raise AdminError(f"unknown status {status!r}; use one of: {', '.join(Status)}")
    store = open_store(settings)
    try:
        return store.list(Status(status) if status else None)
    finally:
        store.close()


def last_reasons(settings: Settings, subscribers: list[Subscriber]) -> dict[int, str]:
    """What the mail providers last said about each of these subscribers (bounce, complaint)."""
    store = open_store(settings)
    try:
        feedback = Feedback(store.database)
        reasons = {s.id: feedback.last_reason(s.id) for s in subscribers}
        return {sid: reason for sid, reason in reasons.items() if reason}
    finally:
        store.close()


def add(
    settings: Settings, email: str, confirmed: bool = False, welcome: bool = False
) -> tuple[Subscriber, bool]:
    """(subscriber, added): added is False when the address was already known (unchanged)."""
    normal, key = _address(email)
    store = open_store(settings)
    try:
        status = Status.CONFIRMED if confirmed else Status.UNCONFIRMED
        subscriber = store.add(
            normal, key, status=status, source="added by the author", welcome=welcome
        )
        if subscriber is not None:
            return subscriber, True
        existing = store.find(key)
        if confirmed and existing.status == Status.UNCONFIRMED:
            return store.set_status(existing.public_id, Status.CONFIRMED, welcome=welcome), True
        return existing, False
    finally:
        store.close()


def remove(settings: Settings, email: str) -> Subscriber:
    _normal, key = _address(email)
    store = open_store(settings)
    try:
        subscriber = store.find(key)
        if subscriber is None:
            raise AdminError(f"{email} is not on the list")
        return store.unsubscribe(subscriber.public_id)
    finally:
        store.close()


def review_lines(settings: Settings, clear: bool = False) -> list[str]:
    """The reports that proved nothing (`invoke bounces.review`): what each claimed, for the
    author to act on by hand; with `clear`, the list is emptied after it is shown."""
    store = open_store(settings)
    try:
        feedback = Feedback(store.database)
        kept = feedback.reviews()
        if not kept:
            return ["No report is waiting for review: every bounce and complaint read so far "
                    "proved whom it was about, or named nobody on the list."]  # fmt: skip
        lines = [
            f"{len(kept)} report(s) changed nobody: none proved that we mailed whom it names "
            "(our Message-ID or VERP return path). If one is genuine, act by hand "
            "(invoke subscribers.remove ADDRESS)."
        ]
        for review in kept:
            claimed = _printable(", ".join(review.addresses)) or "nobody"
            lines.append(f"- {review.received_at[:16].replace('T', ' ')} {review.provider}: "
                         f"{review.kind.replace('_', ' ')} claimed for {claimed}")  # fmt: skip
            details = (("subject", review.subject), ("reason", review.reason),
                       ("about", review.message_id), ("why kept", review.why))  # fmt: skip
            for label, value in details:
                if value:
                    lines.append(f"    {label}: {_printable(value)}")
        if clear:
            lines.append(f"Cleared {feedback.clear_reviews()} report(s) from the list.")
        return lines
    finally:
        store.close()


def _printable(text: str) -> str:
    """Text from a stranger's report, safe for a terminal: control characters (escape
    sequences, line breaks) shown as \\xNN, never acted on."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def forget(settings: Settings, email: str) -> tuple[Subscriber | None, list[Path]]:
    """Delete the subscriber's row (and, by cascade, everything that refers to it) and every
    file of the outbox and its previews that names them. Returns what was deleted."""
    try:
        normal, key = addresses.normalize(email)
    except addresses.InvalidAddress:  # forget even an address we would not accept today
        local, _, domain = email.strip().rpartition("@")
        normal = key = addresses.mailbox_key(local, domain) if local else email.strip()
    store = open_store(settings)
    try:
        with store.database.erasing():  # no copy of the rows left in the database's files
            subscriber = store.forget(key)
            PlanFollows(store.database, settings).forget(normal, key=key)  # the plans they follow
            Feedback(store.database).forget_reviews(key)  # reports kept for review naming them
    finally:
        store.close()
    names = {email.strip(), normal, key, subscriber.email if subscriber else ""}
    return subscriber, _remove_files_naming(settings.mail.outbox, key, names)


OUTBOX_FILES = (".eml", ".html", ".tmp")  # emails, previews, a write cut short
# The address whole: ann@example.com names neither joann@example.com nor ann@example.com.au.
NAMED_BEFORE = rb"(?<![A-Za-z0-9._%+\-\x80-\xff])"
NAMED_AFTER = rb"(?![A-Za-z0-9\-\x80-\xff]|\.[A-Za-z0-9\x80-\xff])"


def _remove_files_naming(outbox: Path, key: str, names: set[str]) -> list[Path]:
    """The outbox's and the previews' files addressed to `key` (the To header, keyed as the
    store keys addresses) or holding any of `names` anywhere, in any case: deleted."""
    needles = sorted({name.encode("utf-8") for name in names if "@" in name}, key=len)[::-1]
    if not needles:
        return []
    naming = re.compile(
        NAMED_BEFORE + b"(?:" + b"|".join(map(re.escape, needles)) + b")" + NAMED_AFTER,
        re.IGNORECASE,
    )
    removed = []
    for folder in (outbox, outbox / "preview"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix not in OUTBOX_FILES or not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # sent meanwhile and replaced, or removed
                continue
            if _addressed_to(data, key) or naming.search(data):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _addressed_to(data: bytes, key: str) -> bool:
    headers = BytesHeaderParser(policy=default_policy).parsebytes(data)
    for header in headers.get_all("To", []):
        for address in getattr(header, "addresses", ()):
            try:
                if addresses.normalize(address.addr_spec)[1] == key:
                    return True
            except addresses.InvalidAddress:
                continue
    return False


def import_csv(
    settings: Settings, path: str | Path, confirmed: bool = False, welcome: bool = False
) -> ImportReport:
    rows = _read_rows(Path(path))
    report = ImportReport()
    seen: set[str] = set()
    wanted: list[tuple[str, str, str | None, str]] = []
    default = default_frequency(settings.announce.mode)
    available = topics.available(settings) if any(extra for *_, extra in rows) else []
    store = open_store(settings)
    try:
        for line, text, extras in rows:
            try:
                normal, key = addresses.normalize(text)
            except addresses.InvalidAddress as error:
                report.rejected.append((line, text, str(error)))
                continue
            try:
                chosen, frequency = _choice_of(extras, available, default)
            except ValueError as error:
                report.rejected.append((line, text, str(error)))
                continue
            if key in seen:
                report.duplicates.append((line, normal))
                continue
            seen.add(key)
            existing = store.find(key)
            if existing is not None:
                report.known.append((line, normal, existing.status.value))
                continue
            wanted.append((normal, key, chosen, frequency))
        status = Status.CONFIRMED if confirmed else Status.UNCONFIRMED
        report.added = store.add_many(
            wanted, status=status, source=f"imported from {Path(path).name}", welcome=welcome
        )
    finally:
        store.close()
    return report


def _read_rows(path: Path) -> list[tuple[int, str, dict[str, str]]]:
    """(line number, address text, the optional columns) for each data row: the `email` column
    if there is a header naming one, else the first column; with a header, the `topics` and
    `frequency` cells too (by name, both optional)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AdminError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise AdminError(f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8 CSV") from None
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)  # Excel writes ; in much of Europe
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, line = [], 1
    for row in reader:
        rows.append((line, row))  # the physical line each row starts on
        line = reader.line_num + 1
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0][1]]
    column, start = 0, 1
    optional = {name: header.index(name) for name in ("topics", "frequency") if name in header}
    if "email" in header:
        column = header.index("email")
    elif "e-mail" in header:
        column = header.index("e-mail")
    else:
        start, optional = 0, {}  # no header: every row is data
    result = []
    for number, row in rows[start:]:
        if not any(cell.strip() for cell in row):
            continue  # blank line
        cell = row[column] if column < len(row) else ""
        if cell.startswith("'") and cell[1:2] in FORMULA_STARTS:
            cell = cell[1:]  # our own export's spreadsheet protection
        extras = {name: row[at] if at < len(row) else "" for name, at in optional.items()}
        result.append((number, cell, extras))
    return result


def export_csv(settings: Settings, out: TextIO) -> int:
    store = open_store(settings)
    try:
        subscribers = store.list()
    finally:
        store.close()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for subscriber in subscribers:
        values = {name: getattr(subscriber, name) for name in EXPORT_COLUMNS}
        values["topics"] = topics_cell(subscriber.topics)
        writer.writerow([_cell(values[name]) for name in EXPORT_COLUMNS])
    return len(subscribers)


def topics_cell(stored: str | None) -> str:
    """subscribers.topics in a CSV cell, a list or the import reads: "everything", or the
    slugs separated by spaces."""
    chosen = topics.decode(stored)
    return EVERYTHING if chosen is None else " ".join(sorted(chosen))


def _choice_of(row: dict[str, str], available, default: str) -> tuple[str | None, str]:
    """The `topics` and `frequency` cells of an imported row (both optional), checked:
    (encoded topics, frequency), or ValueError naming the column."""
    cell = (row.get("topics") or "").strip()
    encoded = None
    if cell and cell.lower() != EVERYTHING:
        slugs = [slug for slug in re.split(r"[\s,|]+", cell.lower()) if slug]
        try:
            encoded = topics.encode(topics.from_form(slugs, available))
        except topics.TopicError as error:
            raise ValueError(f"column topics: {error}") from None
    frequency = (row.get("frequency") or "").strip().lower() or default
    if frequency not in ("each", "weekly"):
        raise ValueError(f"column frequency: {frequency[:40]!r} is not each or weekly")
    return encoded, frequency


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def forget_follows(settings: Settings, email: str) -> int:
    """Delete every plan this address follows (and, by cascade, their emails); how many.
    `forget` does it too; this says how many, for the task's report."""
    store = open_store(settings)
    try:
        return PlanFollows(store.database, settings).forget(email)
    finally:
        store.close()


def stats(settings: Settings) -> dict[str, dict[str, int]]:
    store = open_store(settings)
    try:
        emails = MailLedger(store.database).counts(CONFIRMATION)
        plans = PlanFollows(store.database, settings).counts_by_plan()
        choices = Choices(store.database).counts()
        return {"subscribers": store.counts(), "emails": emails, "plans": plans,
                "choices": choices}  # fmt: skip
    finally:
        store.close()


def send_queued(settings: Settings, timeout: float = 30.0) -> dict[str, int]:
    store = open_store(settings)
    try:
        sender = Sender(settings, store.database, Tokens(settings.core.secret_key))
        return sender.drain(timeout=timeout)
    finally:
        store.close()


__all__ = [
    "AdminError",
    "ImportReport",
    "add",
    "export_csv",
    "forget",
    "forget_follows",
    "import_csv",
    "list_subscribers",
    "remove",
    "send_queued",
    "stats",
]


# Text for the tasks ---------------------------------------------------------------------------
def format_subscribers(subscribers: list[Subscriber], reasons: dict[int, str] | None = None) -> str:
    """One line each; with `reasons`, the providers' last word on them (bounced, complained)."""
    if not subscribers:
        return "No subscribers."
    reasons = reasons or {}
    width = max(len(s.email) for s in subscribers)
    lines = [
        f"{'email':<{width}}  {'status':<12}  since       how     topics"
        + ("  last report" if reasons else "")
    ]
    for s in subscribers:
        line = f"{s.email:<{width}}  {s.status.value:<12}  {s.status_changed_at[:10]}"
        line += f"  {s.frequency:<6}  {topics_cell(s.topics)}"
        if s.id in reasons:
            line += f"  {reasons[s.id][:120]}"
        lines.append(line)
    return "\n".join(lines + [f"{len(subscribers)} subscriber(s)"])


def format_report(report: ImportReport, confirmed: bool, welcome: bool = False) -> str:
    state = "confirmed" if confirmed else "unconfirmed (a confirmation email each)"
    if confirmed and welcome:
        state += " (a welcome email each)"
    lines = [f"Imported {len(report.added)} new subscriber(s) as {state}."]
    if report.known:
        lines.append(f"Already on the list, left as they are: {len(report.known)}")
        lines += [f"  line {n}: {email} ({status})" for n, email, status in report.known]
    if report.duplicates:
        lines.append(f"Duplicates in the file, skipped: {len(report.duplicates)}")
        lines += [f"  line {n}: {email}" for n, email in report.duplicates]
    if report.rejected:
        lines.append(f"Rejected rows: {len(report.rejected)}")
        lines += [f"  line {n}: {text!r}: {reason}" for n, text, reason in report.rejected]
    return "\n".join(lines)


def format_stats(counts: dict[str, dict[str, int]]) -> str:
    subscribers, emails = counts["subscribers"], counts["emails"]
    lines = [f"Subscribers: {sum(subscribers.values())}"]
    lines += [f"  {status:<13}{count:>7}" for status, count in subscribers.items()]
    lines.append("Confirmation emails:")
    lines += [f"  {status:<13}{count:>7}" for status, count in emails.items()]
    choices = counts.get("choices")
    if choices:  # confirmed readers: how often, and which topics
        lines.append("Confirmed readers by frequency:")
        lines += [f"  {name:<13}{count:>7}" for name, count in choices["frequency"].items()]
        lines.append("Confirmed readers by topic (a reader may choose several):")
        lines.append(f"  {'everything':<13}{choices['everything']:>7}")
        lines += [f"  {slug:<13}{count:>7}" for slug, count in sorted(choices["topics"].items())]
    plans = counts.get("plans", {})  # followers per plan, nothing per person
    lines.append(f"Following a plan: {sum(plans.values())}")
    lines += [f"  {plan}  {count}" for plan, count in sorted(plans.items())]
    return "\n".join(lines)
