"""What an exercise card has on its article's page only, never in the feeds or emails: the link
to subscribe to the plan's calendar feed (webcal://) and the "Follow this plan by email" form.

The theme's article.html passes the article's HTML through the Jinja filter `exercise_page`
(`{{ article.content|exercise_page(article)|safe }}`), which this plugin adds to each
generator's environment. For each card of a published article's plan (`article.exercises`,
`plan_id` set) it inserts, before the card's `</section>`, the theme's
`partials/exercise_follow.html` rendered with: `card_id`, `plan` (the plan's dict), `plan_id`,
`calendar_url` (https), `webcal_url`, `follow_url` (NEWSLETTER_URL's base and
blog.feed_contract.PLAN_FOLLOW; empty without NEWSLETTER_URL or with EXERCISE_FOLLOW_BY_EMAIL
off: no form), `source` (the page's
URL), `timezone` (the hour's zone, said to the reader), `keep_days` (NEWSLETTER_PLAN_KEEP_DAYS,
default blog.feed_contract.PLAN_KEEP_DAYS: the days the form says a finished plan's record is
kept; anything but a whole number stops the build with an error naming the setting). Any other
HTML (an article without a plan, a draft, a page) comes back as it was, the same string.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from jinja2 import pass_environment

from blog.feed_contract import PLAN_FOLLOW, PLAN_KEEP_DAYS

from .plans import calendar_url, site_url, webcal_url

TEMPLATE = "partials/exercise_follow.html"
_CARD_END = re.compile(r'(<section class="exercise" id="(?P<id>[^"]+)"[^>]*>.*?)(</section>)', re.S)
# How the hour's time zone is said on the form; other zones by their name.
ZONE_NAMES = {"Europe/London": "UK time", "UTC": "UTC"}


def follow_url(newsletter_url: str) -> str:
    """The follow form's target: NEWSLETTER_URL without its last part (".../subscribe"), then
    PLAN_FOLLOW. Empty without NEWSLETTER_URL."""
    if not newsletter_url:
        return ""
    parts = urlsplit(newsletter_url)
    base = parts.path.rsplit("/", 1)[0] if "/" in parts.path else ""
    return urlunsplit((parts.scheme, parts.netloc, f"{base}/{PLAN_FOLLOW}", "", ""))


def keep_days(settings: dict) -> int:
    """NEWSLETTER_PLAN_KEEP_DAYS as a number of days; a clear error for anything else."""
    raw = settings.get("NEWSLETTER_PLAN_KEEP_DAYS", PLAN_KEEP_DAYS)
    text = str(raw).strip()
    if isinstance(raw, bool) or not re.fullmatch(r"[0-9]{1,5}", text):
        raise ValueError(
            f"NEWSLETTER_PLAN_KEEP_DAYS: must be a whole number of days (the newsletter's "
            f"setting, which the plan form states), not {raw!r}"
        )
    return int(text)


def zone_name(settings: dict) -> str:
    zone = str(settings.get("TIMEZONE") or "UTC")
    return ZONE_NAMES.get(zone, zone.replace("_", " "))


def make_filter(settings: dict):
    siteurl = site_url(settings)
    follow = (  # off until the endpoint answers /plans/follow (EXERCISE_FOLLOW_BY_EMAIL)
        follow_url(str(settings.get("NEWSLETTER_URL") or ""))
        if settings.get("EXERCISE_FOLLOW_BY_EMAIL")
        else ""
    )
    zone = zone_name(settings)
    kept = keep_days(settings)

    @pass_environment
    def exercise_page(env, html, article):
        if getattr(article, "status", None) != "published":
            return html
        plans = {p["id"]: p for p in getattr(article, "exercises", ()) or () if p.get("plan_id")}
        if not plans or not html:
            return html
        template = env.get_template(TEMPLATE)
        page = f"{siteurl}/{article.url}"

        def insert(match):
            plan = plans.get(match["id"])
            if plan is None:
                return match[0]
            calendar = calendar_url(siteurl, plan["plan_id"])
            pieces = template.render(
                card_id=plan["id"],
                plan=plan,
                plan_id=plan["plan_id"],
                calendar_url=calendar,
                webcal_url=webcal_url(calendar),
                follow_url=follow,
                source=page,
                timezone=zone,
                keep_days=kept,
            )
            return f"{match[1]}{pieces.strip()}\n{match[3]}"

        return _CARD_END.sub(insert, str(html))

    return exercise_page
