"""The emails of a followed exercise plan (issue 21): one a week, then a closing one.

Contract:
- `week_email(settings, to, plan, week=, weeks=, schedule=, links=, message_id=)`: "Week 2 of
  6: <title>", with the week's count (the plan's sessions a week, and which of its sessions
  they are), the author's note for that week if any, the steps and the prescription as the
  exercise card has them ("Each session"), a link to the card; `plan` is the
  plan as `exercises/plans.json` has it (`subscriptions.plans`), `weeks` the follow's (what
  the reader signed up for), `schedule` the words for when it comes ("every Monday at 08:00,
  Europe/London time": `schedule_words`).
- `closing_email(settings, to, plan, weeks=, keep_days=, links=, message_id=)`: done, what
  next (the card, the exercise library), nothing more will come, and when what was kept is
  erased.
- Both are multipart (text, then HTML in the list's look: `base.html`, the announcements'
  exercise card, CSS inlined), `Auto-Submitted: auto-generated`, and carry the follow's own
  one-click stop (`links["stop"]`) as RFC 8058 List-Unsubscribe + List-Unsubscribe-Post (the one
  `compose.set_list_headers`), with "Stop this plan" and "Stop all plans" (`links["stop_all"]`)
  in the footer. No tracking: every link is the plain URL, no pixel, no parameter added.
- The plan's text is the blog's, read over HTTP: it is text here (escaped in HTML; collapsed to
  one line in the Subject), and a value of the wrong type is left out rather than shown.
"""

from __future__ import annotations

from email.message import EmailMessage
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from newsletter.mail import message as compose
from newsletter.settings import Settings

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SUBJECT_CHARS = 200

_subjects = Environment(
    loader=FileSystemLoader(compose.TEMPLATES / "email"),
    autoescape=False,  # a header, not HTML: line breaks are collapsed below instead
    undefined=StrictUndefined,
)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def schedule_words(settings: Settings, weekday: int, hour: int) -> str:
    """When a follow's emails come: "every Monday at 08:00, Europe/London time"."""
    ZoneInfo(settings.core.timezone)  # a valid zone (the settings checked it)
    return f"every {WEEKDAYS[weekday]} at {hour:02d}:00, {settings.core.timezone} time"


def _texts(values) -> list[str]:
    if not isinstance(values, list):
        return []
    return [one_line(value) for value in values if isinstance(value, str) and value.strip()]


def _rows(plan: dict) -> list[tuple[str, str]]:
    """The prescription as (label, value) pairs: `prescription`, else `prescription_text`."""
    rows = []
    for row in plan.get("prescription") or []:
        if isinstance(row, dict) and isinstance(row.get("label"), str):
            if isinstance(row.get("value"), str | int):
                rows.append((one_line(row["label"]), one_line(row["value"])))
    if rows:
        return rows
    text = plan.get("prescription_text")
    for line in text.splitlines() if isinstance(text, str) else []:
        label, colon, value = line.partition(":")
        if colon and label.strip() and value.strip():
            rows.append((one_line(label), one_line(value)))
    return rows


def note_for(plan: dict, week: int) -> str:
    """The author's note for that week of the plan, or ""."""
    for note in plan.get("week_notes") or []:
        if (
            isinstance(note, dict)
            and note.get("week") == week
            and isinstance(note.get("note"), str)
        ):
            return one_line(note["note"])
    return ""


def _exercise(plan: dict) -> dict:
    """The plan as the announcements' exercise card shows one (`_exercises.*`)."""
    return {
        "name": "Each session",  # the exercise's name is the email's heading
        "targets": ", ".join(_texts(plan.get("targets"))),
        "steps": _texts(plan.get("steps")),
        "rows": _rows(plan),
        "id": "",  # the card's own link is the button below
    }


def _email(settings, to, template, subject, message_id, links, **context) -> EmailMessage:
    text, html = compose.render(
        template,
        subject=subject,
        site_name=settings.core.site_name,
        site_url=settings.core.site_url,
        postal_address=settings.mail.postal_address,
        unsubscribe_url=links["stop"],
        stop_all_url=links["stop_all"],
        **context,
    )
    message = compose.new_message(settings, to, subject, message_id)
    message["Auto-Submitted"] = "auto-generated"
    if settings.mail.reply_to:
        message["Reply-To"] = settings.mail.reply_to
    compose.set_list_headers(message, settings, links["stop"])
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _subject(template: str, **context) -> str:
    subject = one_line(_subjects.get_template(f"{template}.subject.txt").render(**context))
    return subject[:SUBJECT_CHARS]


def week_email(
    settings: Settings,
    to: str,
    plan: dict,
    *,
    week: int,
    weeks: int,
    schedule: str,
    links: dict[str, str],
    message_id: str,
) -> EmailMessage:
    title = one_line(plan["title"])
    per_week = plan.get("sessions_per_week")
    per_week = per_week if type(per_week) is int and 1 <= per_week <= 7 else 0
    subject = _subject("plan_week", week=week, weeks=weeks, title=title)
    return _email(
        settings, to, "plan_week", subject, message_id, links,
        title=title, week=week, weeks=weeks, schedule=schedule, note=note_for(plan, week),
        sessions=per_week, first_session=(week - 1) * per_week + 1 if per_week else 0,
        last_session=week * per_week, total_sessions=weeks * per_week,
        exercise=_exercise(plan), card_url=plan["url"],
    )  # fmt: skip


def closing_email(
    settings: Settings,
    to: str,
    plan: dict,
    *,
    weeks: int,
    keep_days: int,
    links: dict[str, str],
    message_id: str,
) -> EmailMessage:
    title = one_line(plan["title"])
    per_week = plan.get("sessions_per_week")
    total = weeks * per_week if type(per_week) is int and 1 <= per_week <= 7 else 0
    subject = _subject("plan_closing", weeks=weeks, title=title)
    return _email(
        settings, to, "plan_closing", subject, message_id, links,
        title=title, weeks=weeks, total_sessions=total, keep_days=keep_days,
        card_url=plan["url"], library_url=f"{settings.core.site_url}/exercises/",
    )  # fmt: skip


__all__ = ["WEEKDAYS", "closing_email", "note_for", "schedule_words", "week_email"]
