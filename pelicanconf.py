"""Development settings for the blog (Pelican reads this file).

`publishconf.py` imports everything here and overrides what differs in production.
Secrets never live here: the newsletter reads its own from NEWSLETTER_* environment variables.
"""

import os

from blog import feed_contract  # the feed paths the newsletter reads, in one place

AUTHOR = "Mark Williams"
SITENAME = "Walk Again"
SITESUBTITLE = "Rehab lessons for knees, hips and ankles from a registered acupuncturist"
SITE_DESCRIPTION = (
    "Mark Williams, a registered acupuncturist, writes about rehab, knee pain and the exercises "
    "that got him walking again."
)
# Pages are built with absolute URLs so that canonical links, share links and feeds are right.
# `invoke serve` serves output/ here; tests override it with their own server's address.
SITEURL = os.environ.get("SITEURL", "http://localhost:8000")
RELATIVE_URLS = False

PATH = "content"
ARTICLE_PATHS = ["articles"]
PAGE_PATHS = ["pages"]
STATIC_PATHS = ["images"]
OUTPUT_PATH = "output/"
THEME = "theme"
TIMEZONE = "Europe/London"
DEFAULT_LANG = "en"
DEFAULT_DATE_FORMAT = "%-d %B %Y"
DEFAULT_PAGINATION = 10
DELETE_OUTPUT_DIRECTORY = False
WITH_FUTURE_DATES = False  # a future-dated article stays a draft until its date

ARTICLE_URL = "{date:%Y}/{slug}/"
ARTICLE_SAVE_AS = "{date:%Y}/{slug}/index.html"
PAGE_URL = "{slug}/"
PAGE_SAVE_AS = "{slug}/index.html"
CATEGORY_URL = "category/{slug}/"
CATEGORY_SAVE_AS = "category/{slug}/index.html"
TAG_URL = "tag/{slug}/"
TAG_SAVE_AS = "tag/{slug}/index.html"
AUTHOR_URL = "author/{slug}/"
AUTHOR_SAVE_AS = "author/{slug}/index.html"
ARCHIVES_SAVE_AS = "archives/index.html"
YEAR_ARCHIVE_SAVE_AS = "{date:%Y}/index.html"
YEAR_ARCHIVE_URL = "{date:%Y}/"
CATEGORIES_SAVE_AS = "categories/index.html"
TAGS_SAVE_AS = "tags/index.html"
AUTHORS_SAVE_AS = "authors/index.html"
DIRECT_TEMPLATES = ["index", "archives", "categories", "tags", "authors", "404"]
PAGINATED_TEMPLATES = {"index": None, "tag": None, "category": None, "author": None}

# Markdown is CommonMark, read by plugins/commonmark_reader (pulldown-cmark through pyromark), not
# Python-Markdown: Pelican's MARKDOWN setting has no effect. See docs/writing.md for the syntax.

# Pelican's own feedgenerator feeds are off: plugins/feeds writes RSS and Atom with feedgen.
FEED_ALL_ATOM = None
FEED_ALL_RSS = None
CATEGORY_FEED_ATOM = None
CATEGORY_FEED_RSS = None
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None

# Our plugins are the package `plugins` (installed with the project, like `blog`), loaded by their
# dotted names; no PLUGIN_PATHS. commonmark_reader comes before content_check, which adds its checks
# to the reader it finds.
PLUGINS = [
    "plugins.commonmark_reader",
    "plugins.content_check",
    "plugins.theme_helpers",
    "plugins.video_embeds",
    "plugins.exercises",  # ```exercise blocks: cards, JSON-LD, the /exercises/ library
    "plugins.feeds",
    "plugins.robots",
    "plugins.search",  # /search/ and its menu entry; Pagefind indexes the published articles, pages
    "pelican.plugins.sitemap",
    "plugins.lean",  # Pelican's list work made linear, less kept in memory: every build
    "plugins.incremental",  # only with the content cache on: `invoke serve` renders what changed
]

FEEDS = {
    "max_items": 20,
    "all_rss": feed_contract.ALL_RSS,
    "all_atom": feed_contract.ALL_ATOM,
    "category_rss": "feeds/{slug}.rss.xml",
    "category_atom": "feeds/{slug}.atom.xml",
    "all_json": "feeds/all.json",  # JSON Feed 1.1, beside RSS and Atom
    "category_json": "feeds/{slug}.json",
}
# WebSub: a hub every feed declares (rel="hub", JSON Feed "hubs") and that `invoke publish` pings
# after the upload, e.g. https://pubsubhubbub.appspot.com/. Empty (the default): neither.
WEBSUB_HUB = os.environ.get("WEBSUB_HUB", "")

SITEMAP = {
    "format": "xml",
    "priorities": {"articles": 0.7, "indexes": 0.5, "pages": 0.5},
    "changefreqs": {"articles": "monthly", "indexes": "daily", "pages": "monthly"},
    "exclude": ["tag/", "category/", "author/", "404.html", "share/"],
}

# The author box: one entry per author, keyed by the Author metadata.
AUTHORS_INFO = {
    "Mark Williams": {
        "job_title": "Registered acupuncturist",
        "bio": (
            "Mark treats chronic pain as a registered acupuncturist, after three decades as a "
            "fitness instructor and personal trainer. A torn Achilles tendon taught him to walk "
            "again; this blog shares what worked."
        ),
        "photo": None,  # a path under content/images, or None for a monogram
        "links": [
            {"label": "About Mark", "url": "about/"},
        ],
    },
}

# Share buttons, in this order. Each is a plain link: nothing is sent until a reader clicks.
# Any of facebook, twitter, linkedin, pinterest, bluesky, mastodon; "mastodon" links to our own
# page (share/mastodon/) that asks for the reader's server.
SHARE_NETWORKS = ["facebook", "twitter", "linkedin", "pinterest", "bluesky", "mastodon"]

# Video facades (plugins/video_embeds): where build-time thumbnails come from ({id}: the video);
# titles from YouTube's oEmbed, upload dates and descriptions from the channel's feed (the one
# the announcer reads), all fetched once into content/images/videos/ and reused offline.
VIDEO_THUMBNAIL_URL = "https://i.ytimg.com/vi/{id}/hqdefault.jpg"
VIDEO_OEMBED_URL = (
    "https://www.youtube.com/oembed?format=json"
    "&url=https%3A%2F%2Fwww.youtube.com%2Fwatch%3Fv%3D{id}"
)
VIDEO_CHANNEL_FEED_URL = os.environ.get("NEWSLETTER_VIDEO_FEED_URL", "")

# Comments: a self-hosted Isso server. Empty means no comment server: the section explains that.
ISSO_URL = os.environ.get("ISSO_URL", "")

# The "Stay tuned" form posts here (the newsletter endpoint). Empty hides the email form and keeps
# the RSS link.
NEWSLETTER_URL = os.environ.get("NEWSLETTER_URL", "http://127.0.0.1:5000/subscribe")
# "Follow this plan by email" on each exercise card, posting to the newsletter's endpoint
# (POST /plans/follow beside NEWSLETTER_URL): shown whenever NEWSLETTER_URL is set; False hides
# it. The calendar feed link is there either way.
EXERCISE_FOLLOW_BY_EMAIL = True
# The days a finished plan's follow record is kept, as the form says: the newsletter's own
# NEWSLETTER_PLAN_KEEP_DAYS (the same environment variable), so the form never promises less.
NEWSLETTER_PLAN_KEEP_DAYS = os.environ.get(
    "NEWSLETTER_PLAN_KEEP_DAYS", str(feed_contract.PLAN_KEEP_DAYS)
)
# The topics a reader may choose in the "Stay tuned" form: the blog's categories (and "videos"
# with a video channel), each named by its category unless given a friendlier name here; the ones
# listed come first, in this order (e.g. {"knees": "Knee pain", "hips": "Hip pain"}).
NEWSLETTER_TOPICS = {"rehab": "Rehab and exercises", "videos": "New videos"}
# How often a new reader gets email unless they choose: "each" (one per article) or "weekly"
# (one digest): the newsletter's NEWSLETTER_ANNOUNCE_MODE, mapped as the endpoint maps it.
NEWSLETTER_DEFAULT_FREQUENCY = feed_contract.default_frequency(
    os.environ.get("NEWSLETTER_ANNOUNCE_MODE", "each")
)
NEWSLETTER_CONSENT = (
    "One email when a new article is out, nothing else. Unsubscribe with one click from any email."
)

MENUITEMS = [("Archives", "archives/"), ("About", "about/")]  # + Videos, Exercises: plugins

# Titles and metadata are text: our theme escapes them, and marks content HTML as safe itself.
# auto_reload off: each build makes a new environment (`invoke serve` too), so there is no need
# to check every template's mtime again at each of its thousands of uses in a build.
JINJA_ENVIRONMENT = {
    "trim_blocks": True,
    "lstrip_blocks": True,
    "autoescape": True,
    "auto_reload": False,
}
