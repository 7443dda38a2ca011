"""The email that asks a reader to confirm following an exercise plan (kind `plan_confirmation`).

Contract: `plan_confirmation_email(settings, follow, *, plan, confirm_url, stop_url, message_id)`
is a multipart/alternative `EmailMessage` made like the list's other emails (templates
`email/plan_confirm.{txt,html}` on the emails' base layout, CSS inlined,
`Auto-Submitted: auto-generated`, the postal address in the footer): which plan (its title and
card), when (every chosen weekday at the chosen hour, in NEWSLETTER_TIMEZONE, for the plan's
weeks), what is stored and for how long (NEWSLETTER_PLAN_KEEP_DAYS after the end; an
unconfirmed request, as long as the link works), the confirm link. Its List-Unsubscribe
(RFC 8058 one-click) and the footer's link are the follow's stop link. `when(follow)` is the
schedule in words ("Monday", "08:00"), for the pages too.
"""

from __future__ import annotations

from email.message import EmailMessage

from newsletter.mail import message as compose
from newsletter.settings import Settings
from newsletter.subscriptions.plan_follows import WEEKDAYS, Follow


def when(follow: Follow) -> tuple[str, str]:
    return WEEKDAYS[follow.weekday], f"{follow.hour:02d}:00"


def plan_confirmation_email(
    settings: Settings,
    follow: Follow,
    *,
    plan: dict,
    confirm_url: str,
    stop_url: str,
    message_id: str,
) -> EmailMessage:
    title = " ".join(str(plan["title"]).split())
    subject = f"Confirm: follow “{title}” by email"
    weekday, hour = when(follow)
    text, html = compose.render(
        "plan_confirm",
        subject=subject,
        site_name=settings.core.site_name,
        site_url=settings.core.site_url,
        postal_address=settings.mail.postal_address,
        unsubscribe_url=stop_url,
        plan_title=title,
        plan_url=plan["url"],
        weekday=weekday,
        hour=hour,
        zone=settings.core.timezone,
        weeks=follow.weeks,
        hours=settings.endpoint.confirm_max_age // 3600,
        keep_days=settings.endpoint.plan_keep_days,
        confirm_url=confirm_url,
    )
    message = compose.new_message(settings, follow.email, subject, message_id)
    message["Auto-Submitted"] = "auto-generated"
    compose.set_list_headers(message, settings, stop_url)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


__all__ = ["plan_confirmation_email", "when"]
