"""The feed contract between the blog and the newsletter, in one place.

The blog (`plugins/feeds`) writes the feed with these names; the announcer
(`newsletter.announcements.feed`) reads it with the same ones, never Pelican's internals.
- `ALL_RSS`: where the feed of all articles lives under the output folder.
- `NAMESPACE` (prefix `PREFIX`): our own elements; `<st:subtitle>` is the article's dek
  (feedparser shows it as `st_subtitle`).
- An article's `Announce:` metadata set to one of `OPT_OUT` words becomes
  `<category domain="announce">no</category>` (`ANNOUNCE_DOMAIN`), and the announcer records
  the item without sending it. `opts_out(value)` is the one test of those words.
- An exercise plan travels in the item's full content as its card (plugins/exercises): an
  element of class `exercise` (a `<section>` with the card's `id`) holding `.exercise-name`,
  `.exercise-targets` (its text after the `.exercise-label`), the steps as the `<li>`s of
  `.exercise-steps`, and the prescription as `<dt>` label / `<dd>` value pairs in
  `.exercise-prescription`. `EXERCISE_CLASSES` names those classes; the announcer reads the
  cards back with them (`newsletter.announcements.feed.exercises_in`).
  A card may end with the author's week notes, `<dt>Week N</dt>` / `<dd>note</dd>` pairs in
  `.exercise-weeks` (`EXERCISE_CLASSES["weeks"]`), after the prescription.
- The exercise plans of the published articles, as data: `PLANS_JSON` (`exercises/plans.json`,
  UTF-8 JSON, written at every build that has a plan) is `{"version": PLANS_VERSION, "site":
  SITEURL, "plans": [...]}`, newest article first, cards in page order. A plan: `id` (stable:
  the article's `Id`, lower case, "-" and the card's id without "exercise-", e.g.
  "6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30-side-lying-leg-raise"; the follow form's `plan`),
  `title` (the exercise's name), `url` (the card, absolute), `calendar` (its feed,
  `PLAN_CALENDAR` under SITEURL), `article` ({`id`, `title`, `url`, `published`, `modified`
  (ISO 8601 or null)}), `targets` and `steps` (lists of text), `prescription` ([{`label`,
  `value`}] as the card shows it) and `prescription_text` (the same, "Label: value" a line),
  `sets` (int), `reps` ({`min`, `max`} or null), `hold` (text or null), `sessions_per_week`
  (1-7), `weeks`, `sessions` (their product) and `week_notes` ([{`week`, `note`}], by week).
- `PLAN_FOLLOW`: the path, under the newsletter's base (NEWSLETTER_URL without its last part),
  that each card's "Follow this plan by email" form POSTs to (`email`, `plan`, `weekday` 0-6
  Monday first, `hour` 0-23 in the site's TIMEZONE, `newsletter` "1" when ticked, `source` the
  page's URL, and the honeypot `website` left empty, as the "Stay tuned" form).
- `PLAN_KEEP_DAYS`: the default of NEWSLETTER_PLAN_KEEP_DAYS, the days a finished plan's follow
  record is kept before it is erased: the newsletter erases it then, and the card's form says so
  (pelicanconf's NEWSLETTER_PLAN_KEEP_DAYS, read from the same environment variable).
- Topics (issue 20): a reader chooses among the blog's categories, plus `VIDEO_TOPIC`
  ("videos", named `VIDEO_TOPIC_NAME`) when a video channel is set. Each feed item says its
  category's slug as `<category domain="topic">slug</category>` (`TOPIC_DOMAIN`); the build
  writes the topics a reader can choose, in the author's order, as `TOPICS_JSON`
  (`feeds/topics.json`, next to `feeds/all.rss.xml`): `{"version": TOPICS_VERSION, "site":
  SITEURL, "topics": [{"slug", "name"}, ...]}`. `topic_list(categories, names, videos)` makes
  that list, the one rule for the form and the file: the author's `NEWSLETTER_TOPICS` (slug ->
  friendlier name, in order) first, then the other categories by name; a name the author gives
  for a slug the blog does not publish is left out (no empty topic), `videos` included.
  The "Stay tuned" form posts the ticked slugs as `topics` (repeated) after one empty `topics`
  (the marker that the form offered them: only the marker means none ticked), and `frequency`
  (`FREQUENCIES`: "each" or "weekly"). A reader who does not choose gets
  `default_frequency(mode)`, the one mapping from NEWSLETTER_ANNOUNCE_MODE ("each" -> "each",
  "digest" -> "weekly"), for the form's ticked default (pelicanconf's
  NEWSLETTER_DEFAULT_FREQUENCY) and the endpoint's.
- `feed_settings(settings)`: the FEEDS setting completed with `FEED_DEFAULTS` and checked (the
  paths plugins/feeds writes and `blog.websub` pings), or `FeedSettingsError`.
"""

from __future__ import annotations

ALL_RSS = "feeds/all.rss.xml"
ALL_ATOM = "feeds/all.atom.xml"
NAMESPACE = "urn:x-stay-tuned:article:1"
PREFIX = "st"
ANNOUNCE_DOMAIN = "announce"
OPT_OUT = frozenset({"no", "false", "off", "0"})
EXERCISE_CLASSES = {
    "card": "exercise",
    "name": "exercise-name",
    "targets": "exercise-targets",
    "label": "exercise-label",
    "steps": "exercise-steps",
    "prescription": "exercise-prescription",
    "weeks": "exercise-weeks",
}
PLANS_JSON = "exercises/plans.json"
PLANS_VERSION = 1
PLAN_CALENDAR = "exercises/{plan}.ics"
PLAN_FOLLOW = "plans/follow"
PLAN_KEEP_DAYS = 30  # NEWSLETTER_PLAN_KEEP_DAYS's default; the card's consent says the days
TOPICS_JSON = "feeds/topics.json"
TOPICS_VERSION = 1
TOPIC_DOMAIN = "topic"
VIDEO_TOPIC = "videos"
VIDEO_TOPIC_NAME = "New videos"
FREQUENCIES = ("each", "weekly")


def default_frequency(mode: str) -> str:
    """NEWSLETTER_ANNOUNCE_MODE ("each" or "digest", any case) as a new reader's frequency."""
    return "weekly" if mode.strip().lower() == "digest" else "each"


FEED_DEFAULTS = {
    "max_items": 20,
    "all_rss": ALL_RSS,
    "all_atom": ALL_ATOM,
    "category_rss": "feeds/{slug}.rss.xml",
    "category_atom": "feeds/{slug}.atom.xml",
    "all_json": "feeds/all.json",
    "category_json": "feeds/{slug}.json",
}


class FeedSettingsError(Exception):
    """The FEEDS setting is malformed."""


def feed_settings(settings: dict) -> dict:
    """The FEEDS setting with its defaults, checked; SITEURL must be absolute for feeds."""
    given = settings.get("FEEDS", {}) or {}
    unknown = set(given) - set(FEED_DEFAULTS)
    if unknown:
        raise FeedSettingsError(
            f"FEEDS: unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(FEED_DEFAULTS)}"
        )
    conf = {**FEED_DEFAULTS, **given}
    if not isinstance(conf["max_items"], int) or conf["max_items"] < 1:
        raise FeedSettingsError(
            f"FEEDS['max_items'] must be a positive integer, not {conf['max_items']!r}"
        )
    if not settings.get("SITEURL", "").startswith(("http://", "https://")):
        raise FeedSettingsError(
            f"SITEURL must be an absolute http(s) URL for feeds, not {settings.get('SITEURL')!r}"
        )
    return conf


def topic_list(categories, names: dict | None = None, videos: bool = False) -> list[dict]:
    """The topics a reader may choose, in the author's order: `categories` as (slug, name)
    pairs, `names` the author's NEWSLETTER_TOPICS (slug -> friendlier name; its order first),
    `videos` when a video channel is set. [{"slug", "name"}, ...], each slug once."""
    names = dict(names or {})
    known = {str(slug): str(name) for slug, name in categories}
    if videos:
        known.setdefault(VIDEO_TOPIC, VIDEO_TOPIC_NAME)
    ordered = [slug for slug in names if slug in known]
    ordered += sorted((slug for slug in known if slug not in names), key=lambda s: known[s].lower())
    if VIDEO_TOPIC in ordered and VIDEO_TOPIC not in names:  # videos last unless placed
        ordered.remove(VIDEO_TOPIC)
        ordered.append(VIDEO_TOPIC)
    return [{"slug": slug, "name": str(names.get(slug) or known[slug])} for slug in ordered]


def opts_out(value: object) -> bool:
    """True when an `Announce:` value (or the feed's announce category) says not to announce."""
    return str(value).strip().lower() in OPT_OUT


__all__ = [
    "ALL_ATOM",
    "ALL_RSS",
    "ANNOUNCE_DOMAIN",
    "EXERCISE_CLASSES",
    "FEED_DEFAULTS",
    "FREQUENCIES",
    "default_frequency",
    "FeedSettingsError",
    "NAMESPACE",
    "OPT_OUT",
    "PLANS_JSON",
    "PLANS_VERSION",
    "PLAN_CALENDAR",
    "PLAN_FOLLOW",
    "PLAN_KEEP_DAYS",
    "PREFIX",
    "TOPICS_JSON",
    "TOPICS_VERSION",
    "TOPIC_DOMAIN",
    "VIDEO_TOPIC",
    "VIDEO_TOPIC_NAME",
    "feed_settings",
    "opts_out",
    "topic_list",
]
