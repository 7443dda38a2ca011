"""The plans of the published articles as public files: `exercises/plans.json` (the newsletter's
contract, blog/feed_contract.py) and one calendar feed per plan, `exercises/PLAN.ics`.

A plan's id (`plan_id`) is the article's `Id` (lower case) and the card's id without its
`exercise-` prefix: `6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30-side-lying-leg-raise`. It stays while
the article's Id and the exercise's name (so its card's id) stay.

The calendar feed (RFC 5545, written as the card's download is made in the browser,
theme/static/js/exercise-calendar.js: the same escaping, folding, event and reminder) holds one
weekly event repeated `per week x weeks` times (`RRULE:FREQ=WEEKLY;BYDAY=...;COUNT=30` for the
seed), on the days the download ticks by default (`SPREAD`: 5 a week Monday to Friday, 3 Mon/Wed/
Fri), at 08:00 floating local time (the reader's own), 20 minutes long, a reminder 10 minutes
before. A feed cannot know when a reader starts, so its anchor is fixed: the first of those days
on or after the first Monday after the article's date (`anchor`). Its UID is the plan's, so a
calendar that refreshes the feed updates the event; its DTSTAMP the article's `Modified` (else
`Date`), so an unchanged plan writes the same bytes.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit

from blog.feed_contract import PLAN_CALENDAR, PLANS_JSON, PLANS_VERSION
from blog.listing import published

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# The days ticked by default for n sessions a week (Monday is 0), as in exercise-calendar.js.
SPREAD = ("0", "0", "13", "024", "0134", "01234", "012345", "0123456")
START = time(8, 0)
MINUTES, REMINDER = 20, 10
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plan_id(article_id: str, card_id: str) -> str:
    article = re.sub(r"[^\w-]+", "-", str(article_id).strip().lower())
    return f"{article}-{card_id.removeprefix('exercise-')}"


def days(per_week: int) -> list[int]:
    """The weekdays (Monday 0) of the feed's sessions."""
    return [int(day) for day in SPREAD[min(max(per_week, 1), 7)]]


def anchor(published_on: date, per_week: int) -> date:
    """The feed's first session: the first Monday after the article's date, or the first of the
    plan's days after it (Tuesday for twice a week)."""
    monday = published_on + timedelta(days=7 - published_on.weekday())
    return monday + timedelta(days=days(per_week)[0])


# iCalendar text, as exercise-calendar.js writes it ---------------------------------------------
def escape(value: str) -> str:
    """RFC 5545 3.3.11: TEXT escapes backslash, semicolon, comma and newlines; no control
    characters."""
    value = re.sub(r"[\\;,]", lambda m: "\\" + m[0], value)
    value = re.sub(r"\r\n|\r|\n", r"\\n", value)
    return _CONTROL.sub("", value)


def fold(line: str) -> str:
    """RFC 5545 3.1: lines of at most 75 octets (UTF-8), folded with CRLF and a space, never
    inside a character."""
    out, size = [], 0
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > 75:
            out.append("\r\n ")
            size = 1
        out.append(char)
        size += width
    return "".join(out)


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def description(plan: dict, url: str) -> str:
    """The event's description: the targets, the numbered steps, the prescription, the week
    notes and the card's link, one a line (as the download's, plus the notes)."""
    lines = [f"Targets: {', '.join(plan['targets'])}", ""]
    lines += [f"{n}. {step}" for n, step in enumerate(plan["steps"], 1)]
    lines += ["", *(f"{label}: {value}" for label, value in plan["rows"])]
    notes = plan.get("notes") or ()
    if notes:
        lines += ["", *(f"Week {week}: {note}" for week, note in notes)]
    return "\n".join([*lines, "", url])


def calendar(plan: dict, *, ident: str, url: str, host: str, first: date, stamp: datetime) -> bytes:
    """The plan's calendar feed: one weekly event, `per week x weeks` sessions from `first`."""
    name = escape(plan["name"])
    byday = ",".join(DAYS[day] for day in days(plan["per_week"]))
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:-//{host}//Exercise plan//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"NAME:{name}",
        f"X-WR-CALNAME:{name}",
        "REFRESH-INTERVAL;VALUE=DURATION:P1D",
        "X-PUBLISHED-TTL:P1D",
        "BEGIN:VEVENT",
        f"UID:{ident}@{host}",
        f"DTSTAMP:{_stamp(stamp)}",
        f"DTSTART:{datetime.combine(first, START):%Y%m%dT%H%M%S}",
        f"DURATION:PT{MINUTES}M",
        f"RRULE:FREQ=WEEKLY;BYDAY={byday};COUNT={plan['per_week'] * plan['weeks']}",
        f"SUMMARY:{name}",
        f"DESCRIPTION:{escape(description(plan, url))}",
        f"URL:{url}",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        f"TRIGGER:-PT{REMINDER}M",
        f"DESCRIPTION:{name}",
        "END:VALARM",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(map(fold, lines)) + "\r\n").encode("utf-8")


# The plans -------------------------------------------------------------------------------------
def site_url(settings: dict) -> str:
    return str(settings.get("SITEURL", "") or "").rstrip("/")


def calendar_url(siteurl: str, ident: str) -> str:
    return f"{siteurl}/{PLAN_CALENDAR.format(plan=ident)}"


def webcal_url(url: str) -> str:
    """The feed's address for a calendar app to subscribe to (webcal://), when it is absolute."""
    parts = urlsplit(url)
    return "webcal://" + url.split("://", 1)[1] if parts.scheme in ("http", "https") else url


def prescription_text(rows) -> str:
    return "\n".join(f"{label}: {value}" for label, value in rows)


def record(article, plan: dict, siteurl: str) -> dict:
    """One plan of plans.json (the schema is in blog/feed_contract.py)."""
    page = f"{siteurl}/{article.url}"
    modified = getattr(article, "modified", None)
    reps = plan["reps"]
    return {
        "id": plan["plan_id"],
        "title": plan["name"],
        "url": f"{page}#{plan['id']}",
        "calendar": calendar_url(siteurl, plan["plan_id"]),
        "article": {
            "id": str(article.id).strip().lower(),
            "title": str(article.title),
            "url": page,
            "published": article.date.isoformat(),
            "modified": modified.isoformat() if modified else None,
        },
        "targets": list(plan["targets"]),
        "steps": list(plan["steps"]),
        "prescription": [{"label": label, "value": value} for label, value in plan["rows"]],
        "prescription_text": prescription_text(plan["rows"]),
        "sets": plan["sets"],
        "reps": {"min": reps[0], "max": reps[1]} if reps else None,
        "hold": plan["hold"] or None,
        "sessions_per_week": plan["per_week"],
        "weeks": plan["weeks"],
        "sessions": plan["per_week"] * plan["weeks"],
        "week_notes": [{"week": week, "note": note} for week, note in plan.get("notes") or ()],
    }


def followable(articles) -> list:
    """The published articles (not drafts, hidden or future ones) that have a plan, newest first
    (ties by Id, for stable output)."""
    found = [a for a in published(articles) if any(p.get("plan_id") for p in _plans(a))]
    return sorted(found, key=lambda a: (a.date, str(a.id).lower()), reverse=True)


def _plans(article) -> list[dict]:
    return list(getattr(article, "exercises", ()) or ())


def document(articles, settings: dict) -> dict:
    siteurl = site_url(settings)
    plans = [
        record(article, plan, siteurl)
        for article in followable(articles)
        for plan in _plans(article)
        if plan.get("plan_id")
    ]
    return {"version": PLANS_VERSION, "site": siteurl, "plans": plans}


def _write(path: str, data: bytes) -> None:
    """Whole or not at all: a reader of the output folder never sees half a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return  # unchanged: keep its mtime (a static host's caches stay valid)
    except OSError:
        pass
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def write(articles, settings: dict, output_path: str) -> list[str]:
    """Write plans.json and each plan's .ics under `output_path`; remove the ones an earlier
    build left (a plan gone while serving), and plans.json when no plan is left. Returns the
    paths written, relative to `output_path`."""
    siteurl = site_url(settings)
    host = urlsplit(siteurl).hostname or "localhost"
    written = []
    for article in followable(articles):
        modified = getattr(article, "modified", None) or article.date
        for plan in _plans(article):
            if not plan.get("plan_id"):
                continue
            relative = PLAN_CALENDAR.format(plan=plan["plan_id"])
            url = f"{siteurl}/{article.url}#{plan['id']}"
            first = anchor(article.date.date(), plan["per_week"])
            data = calendar(plan, ident=plan["plan_id"], url=url, host=host, first=first,
                            stamp=modified)  # fmt: skip
            _write(os.path.join(output_path, relative), data)
            written.append(relative)
    folder = os.path.join(output_path, os.path.dirname(PLAN_CALENDAR))
    keep = {os.path.basename(path) for path in written}
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(".ics") and name not in keep:
                os.remove(os.path.join(folder, name))
    target = os.path.join(output_path, PLANS_JSON)
    if written:
        text = json.dumps(document(articles, settings), ensure_ascii=False, indent=2) + "\n"
        _write(target, text.encode("utf-8"))
        written.append(PLANS_JSON)
    elif os.path.isfile(target):
        os.remove(target)
    return written
